"""Worker dispatch: dispatch -> bot in the room (p50/p95), and memory per job, for both execution modes.

``python -m bench.worker_bench [--dispatches 50] [--concurrent 20] [--bot data_echo|espeak_say]``
starts its own LiveKit dev server and prints the numbers; ``run(ctx, report)`` is the same
measurement as a scenario of ``python -m bench`` (bench/scenarios/worker_dispatch.py).

- latency: one worker (``--max-jobs 25``), dispatches one at a time into fresh rooms;
  "in room" = the server lists the bot's AGENT participant (API polled every 10 ms);
  "connected" = the worker's own log line (assignment -> pipecat's transport connected).
  Each room is deleted and the job's end awaited before the next dispatch.
- memory: PSS (shared pages split between the processes that map them) and RSS of the
  worker plus its children, with 0 jobs and then with ``--concurrent`` jobs in rooms;
  per job = (loaded - idle) / jobs. The warm spare of ``--process-per-job`` is in both.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
from livekit import api

from . import botfiles
from .procs import PYTHON, Procs, child_env
from .stats import summary

NAME = "worker_dispatch"
TITLE = "worker dispatch: dispatch -> bot in the room; memory per job"
TIME_LIMIT = 480
MODES = {"in-process": [], "process-per-job": ["--process-per-job"]}
JOINED = re.compile(r"\((\d+) ms after assignment\)")


def _children(pid: int) -> list[int]:
    out = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            kids = [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            continue
        for kid in kids:
            out += [kid, *_children(kid)]
    return out


def _mem_mb(pid: int) -> tuple[float, float]:
    """(PSS, RSS) in MB of a process and all its descendants."""
    pss = rss = 0.0
    for p in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1]) / 1024
                elif line.startswith("Rss:"):
                    rss += int(line.split()[1]) / 1024
        except OSError:
            continue
    return pss, rss


async def _metrics(port: int) -> dict[str, float]:
    async with aiohttp.ClientSession(trust_env=False) as session:
        async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
            text = await resp.text()
    return {k: float(v) for k, v in (line.rsplit(" ", 1) for line in text.splitlines()
                                     if line and not line.startswith("#"))}


async def _until(check, timeout: float, what: str, interval: float = 0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")


async def _agent_in(lk, room: str) -> bool:
    try:
        res = await lk.room.list_participants(api.ListParticipantsRequest(room=room))
    except api.TwirpError:
        return False
    return any(p.kind == api.ParticipantInfo.Kind.AGENT for p in res.participants)


async def measure_mode(server, folder: Path, mode: str, *, dispatches: int, concurrent: int, bot: str,
                       say=print, settle: float = 1.0) -> dict:
    """``settle``: seconds for memory to settle before each reading (idle, then with the jobs)."""
    from runner.host.devserver import free_port
    name = f"wb-{mode[:2]}-{uuid.uuid4().hex[:6]}"
    path = botfiles.render(bot, folder, "unused", name=name)
    port = free_port()
    cmd = [PYTHON, "-m", "runner.worker", "worker", str(path), "--max-jobs", str(concurrent + 5),
           "--http-port", str(port), *MODES[mode]]
    async with Procs(child_env(server)) as procs, api.LiveKitAPI(server.url, server.api_key, server.api_secret) as lk:
        worker = procs.spawn(cmd, f"worker-{mode}")

        async def registered():
            worker.check_alive()
            try:
                return (await _metrics(port)).get(f'lkrun_worker_registered{{agent_name="{name}"}}') == 1
            except aiohttp.ClientError:
                return False
        await _until(registered, 90, "the worker to register", 0.1)

        async def idle():
            return (await _metrics(port))["lkrun_worker_jobs_running"] == 0

        in_room = []
        for i in range(dispatches):
            room = f"wb-{uuid.uuid4().hex[:8]}"
            t0 = time.monotonic()
            await lk.agent_dispatch.create_dispatch(api.CreateAgentDispatchRequest(agent_name=name, room=room))
            await _until(lambda: _agent_in(lk, room), 30, f"the bot in {room}")
            in_room.append((time.monotonic() - t0) * 1000)
            done = len(in_room)
            await _until(lambda: _joined(port, done), 30, "the bot's transport to connect")
            await lk.room.delete_room(api.DeleteRoomRequest(room=room))
            await _until(idle, 30, "the job to end", 0.05)
        connected = [float(m) for m in JOINED.findall(worker.log_path.read_text(errors="replace"))]

        await asyncio.sleep(2 * settle)  # let the worker (and its spare) settle
        pss0, rss0 = _mem_mb(worker.pid)
        rooms = [f"wbm-{uuid.uuid4().hex[:8]}" for _ in range(concurrent)]
        base = (await _metrics(port))["lkrun_worker_job_join_seconds_count"]
        for room in rooms:
            await lk.agent_dispatch.create_dispatch(api.CreateAgentDispatchRequest(agent_name=name, room=room))
        await _until(lambda: _joined(port, base + concurrent), 120, f"{concurrent} bots to connect", 0.1)
        await asyncio.sleep(3 * settle)
        pss1, rss1 = _mem_mb(worker.pid)
        processes = 1 + len(_children(worker.pid))
        for room in rooms:
            await lk.room.delete_room(api.DeleteRoomRequest(room=room))
        await _until(idle, 30, "the jobs to end", 0.1)
    result = {"mode": mode, "in_room_ms": summary(in_room), "connected_ms": summary(connected),
              "idle_pss_mb": pss0, "idle_rss_mb": rss0, "loaded_pss_mb": pss1, "loaded_rss_mb": rss1,
              "pss_per_job_mb": (pss1 - pss0) / concurrent, "rss_per_job_mb": (rss1 - rss0) / concurrent,
              "processes": processes, "jobs": concurrent}
    say(f"{mode:>16}: dispatch -> in room p50 {result['in_room_ms']['p50']:.0f} ms, "
        f"p95 {result['in_room_ms']['p95']:.0f} ms (n={len(in_room)}); assignment -> connected p50 "
        f"{result['connected_ms']['p50']:.0f} ms, p95 {result['connected_ms']['p95']:.0f} ms")
    say(f"{'':>16}  memory: idle PSS {pss0:.0f} MB; {concurrent} jobs PSS {pss1:.0f} MB "
        f"({processes} processes) -> {result['pss_per_job_mb']:.1f} MB PSS / "
        f"{result['rss_per_job_mb']:.1f} MB RSS per job")
    return result


async def _joined(port: int, count: float) -> bool:
    return (await _metrics(port))["lkrun_worker_job_join_seconds_count"] >= count


async def run(ctx, report) -> None:
    """The bench scenario: both modes, fewer samples with --quick."""
    # quick: the CI smoke run stays under 2 min (a process-per-job dispatch alone is ~3 s)
    dispatches, concurrent, settle = (2, 2, 0.25) if ctx.quick else (50, 20, 1.0)
    for mode in MODES:
        r = await measure_mode(ctx.server, ctx.folder(f"worker-{mode}"), mode, dispatches=dispatches,
                               concurrent=concurrent, bot="data_echo", say=lambda text: None, settle=settle)
        s = r["in_room_ms"]
        report.row("dispatch -> bot in room", mode, s["p50"], "ms", p95=s["p95"], n=s["n"],
                   connected_p50_ms=r["connected_ms"]["p50"])
        report.row(f"memory per job ({concurrent} jobs)", mode, r["pss_per_job_mb"], "MB PSS",
                   rss_mb=r["rss_per_job_mb"], processes=r["processes"])
    report.note("in room = the server lists the AGENT participant; connected = the worker's own log line")


async def _standalone(args) -> int:
    from runner.host.devserver import DevServer
    server = DevServer(log_level="warn")
    await server.start()
    print(f"LiveKit dev server {server.url}; bot {args.bot}; {args.dispatches} dispatches, "
          f"{args.concurrent} concurrent jobs per mode")
    try:
        with tempfile.TemporaryDirectory(prefix="lkrun-worker-bench-") as scratch:
            for mode in args.modes:
                await measure_mode(server, Path(scratch), mode, dispatches=args.dispatches,
                                   concurrent=args.concurrent, bot=args.bot)
    finally:
        await server.stop()
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.worker_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--dispatches", type=int, default=50)
    parser.add_argument("--concurrent", type=int, default=20)
    parser.add_argument("--bot", default="data_echo", choices=["data_echo", "espeak_say"])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    args = parser.parse_args(argv)
    return asyncio.run(_standalone(args))


if __name__ == "__main__":
    sys.exit(main())

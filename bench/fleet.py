"""N bots, each in its own room with one person driving it: memory, CPU and latency under load.

``lkrun``: one process running N bot files (a folder). ``process-per-call``: N hand-written
pipecat processes, one per room (pipecat's recommended deployment). The window starts when
every bot has answered once; CPU is process CPU seconds over the window (summed over the
processes), memory is VmRSS (and PSS) read at the end of the window.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time

from . import botfiles
from .audio import Ear
from .clients import Peer, join_all, leave_all
from .procs import CLK_TCK, baseline_cmd, lkrun_cmd

TEMPLATES = {"data": ("data_echo", "data_bot"), "voice": ("espeak_say", "espeak_bot")}


class Driver:
    """One person: a data ping (data bots) or data -> first audible reply (voice bots)."""

    def __init__(self, peer: Peer, kind: str):
        self.peer, self.kind = peer, kind
        self.ear = Ear(peer.room, botfiles.BOT_IDENTITY) if kind == "voice" else None
        self.samples: list[float] = []
        self.lost = 0

    async def ready(self, timeout: float) -> None:
        await self.peer.wait_joined(botfiles.BOT_IDENTITY, timeout)
        if self.kind == "data":
            await self.peer.warm_up()
        else:
            await self.ear.wait_listening(timeout)
            await self.probe(count=False)

    async def probe(self, count: bool = True) -> None:
        try:
            if self.kind == "data":
                latency = await self.peer.ping(timeout=5)
            else:
                sent = await self.peer.send({"text": "ping", "seq": len(self.samples) + self.lost})
                latency = (await self.ear.first_sound(sent, timeout=10) - sent) * 1000
                await self.ear.quiet(0.3, timeout=8)
        except asyncio.TimeoutError:
            if count:
                self.lost += 1
            elif self.kind == "voice":
                raise
            return
        if count:
            self.samples.append(latency)

    async def load(self, window: float, period: float, iterations: int) -> None:
        """Probe every ``period`` s until ``window`` s or ``iterations`` probes, whichever first."""
        end = time.monotonic() + window
        for _ in range(iterations):
            tick = time.monotonic()
            if tick >= end:
                break
            await self.probe()
            await asyncio.sleep(max(0.0, period - (time.monotonic() - tick)))

    async def close(self) -> None:
        if self.ear is not None:
            await self.ear.close()


async def gather_or_cancel(coros) -> list:
    """gather, but a failure cancels the siblings instead of leaving them running."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def run_fleet(ctx, kind: str, system: str, n: int, *, window: float, period: float,
                    iterations: int) -> dict:
    """Start N bots of ``kind`` under ``system``, load them, measure.

    systems: "lkrun" (one process), "process-per-call" (N hand-written pipecat processes),
    "floor ..." (data only: N plain livekit clients in one process; "floor+audio ..." variants
    also publish a silent track, as pipecat's transport does).
    """
    template, baseline = TEMPLATES[kind]
    gc.collect()  # rooms of the previous fleet are freed now, not during this window
    await asyncio.sleep(0.2 if ctx.quick else 1.0)
    stamp = time.monotonic_ns() % 10**8
    rooms = [f"bench-{kind}{n}-{stamp}-{i}" for i in range(n)]
    drivers = [Driver(Peer(ctx.server, room), kind) for room in rooms]
    async with ctx.procs() as procs:
        try:
            t0 = time.monotonic()
            if system == "lkrun":
                folder = ctx.folder(f"fleet-{kind}-{n}-{stamp}")
                for room in rooms:
                    botfiles.render(template, folder, room)
                bots = [procs.spawn(lkrun_cmd(folder), f"fleet-{kind}-lkrun{n}")]
            elif system.startswith("floor"):  # the plain livekit SDK, every room in one process
                extra = ["--audio-track"] if "audio" in system else []
                bots = [procs.spawn(baseline_cmd("floor_echo", "-i", botfiles.BOT_IDENTITY, *extra, "-r", *rooms),
                                    f"fleet-{kind}-floor{n}")]
            else:
                bots = [procs.spawn(baseline_cmd(baseline, "-r", room, "-i", botfiles.BOT_IDENTITY),
                                    f"fleet-{kind}-ppc{i}") for i, room in enumerate(rooms)]
            await join_all([d.peer for d in drivers])
            gate = asyncio.Semaphore(10)

            async def ready(driver):
                async with gate:
                    await driver.ready(timeout=60)

            try:
                await gather_or_cancel(ready(d) for d in drivers)
            except (asyncio.TimeoutError, RuntimeError):
                for bot in bots:
                    bot.check_alive()
                raise
            ready_s = time.monotonic() - t0
            cpu0 = sum(b.cpu_s() for b in bots)
            others0 = machine_cpu(ctx)
            w0 = time.monotonic()
            spy = await start_profile(system, kind, n, bots, window)
            await gather_or_cancel(d.load(window, period, iterations) for d in drivers)
            if spy is not None:
                await spy.wait()
            elapsed = time.monotonic() - w0
            cpu = sum(b.cpu_s() for b in bots) - cpu0
            server_cpu, driver_cpu = (b - a for a, b in zip(others0, machine_cpu(ctx)))
            for bot in bots:
                bot.check_alive()
            rss = [b.rss_mb() for b in bots]
            pss = [b.pss_mb() for b in bots]
            hwm = [b.status_kb("VmHWM") / 1024 for b in bots]
        finally:
            await asyncio.gather(*(d.close() for d in drivers), return_exceptions=True)
            await leave_all([d.peer for d in drivers])
    samples = [x for d in drivers for x in d.samples]
    return {"n": n, "processes": len(bots), "ready_s": ready_s, "window_s": elapsed, "cpu_s": cpu,
            "cpu_pct": 100 * cpu / elapsed if elapsed else float("nan"),
            "rss_total_mb": sum(rss), "pss_total_mb": sum(pss), "peak_rss_total_mb": sum(hwm),
            "rss_per_bot_mb": sum(rss) / n, "rss_each_mb": rss, "pss_per_bot_mb": sum(pss) / n,
            "samples": samples, "lost": sum(d.lost for d in drivers),
            "server_cpu_pct": 100 * server_cpu / elapsed, "driver_cpu_pct": 100 * driver_cpu / elapsed}


async def start_profile(system: str, kind: str, n: int, bots, window: float):
    """With BENCH_PROFILE_DIR set: py-spy samples the lkrun process over the window (a flame graph
    in speedscope format, and the raw collapsed stacks for grep)."""
    folder = os.environ.get("BENCH_PROFILE_DIR")
    if not folder or system != "lkrun" or n < int(os.environ.get("BENCH_PROFILE_MIN_N", "2")):
        return None
    import shutil
    spy = shutil.which("py-spy")
    if spy is None:
        return None
    os.makedirs(folder, exist_ok=True)
    out = os.path.join(folder, f"{kind}-lkrun-N{n}.txt")
    return await asyncio.create_subprocess_exec(
        spy, "record", "-p", str(bots[0].pid), "-d", str(max(1, int(window) - 1)), "-r", "100", "-f", "raw",
        "-o", out, "--nonblocking", stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)


def machine_cpu(ctx) -> tuple[float, float]:
    """CPU seconds so far of the LiveKit server and of this (driving) process: the rest of the machine."""
    proc = getattr(ctx.server, "_proc", None)
    server = cpu_of(proc.pid) if proc is not None else float("nan")
    return server, cpu_of(os.getpid())


def cpu_of(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / CLK_TCK

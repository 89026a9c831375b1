"""`lkrun worker` against the real livekit-server: dispatch, capacity, drain, server restarts.

The first test runs in both execution modes (in the worker's process, ``--process-per-job``);
the two-node Redis test is opt-in (``LKRUN_MULTINODE=1``, needs ``redis-server``), outside CI.
Workers run as real processes (`python -m runner.worker worker ...`) because signals, exit
codes and "one worker per machine" are what is being tested. Each test uses its own agent
name so workers of one test never receive another test's jobs on the shared server.

Timing facts of livekit-server v1.13.5 these tests rely on (see docs/worker.md):
- a dispatch reaches a registered worker in ~0.2 s, but `list_dispatch` shows the job only
  once the server's CheckEnabled round (5 s timeout) ends after a worker registered, so the
  tests poll it for up to 8 s;
- with every worker WS_FULL the server drops the job (no queue): the 7th dispatch gets no bot.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import pytest
from livekit import api

from room_helpers import Person
from runner.host.devserver import DevServer, free_port
from runner.worker.ops import Metrics
from runner.worker.pool import JobPool
from runner.worker.protocol import agent_url

ROOT = Path(__file__).resolve().parent.parent
ECHO = """
version: 1
name: NAME
livekit: {room: unused, identity: NAME}
on:
  data_received:
    - send: {to: "{{ participant.id }}", data: {text: pong}}
"""


class WorkerProc:
    """One `lkrun worker` process with its /healthz and /metrics on a free loopback port."""

    def __init__(self, server, bot: Path, *args: str):
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile(prefix="lkrun-worker-", suffix=".log", delete=False)
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        env.update(LIVEKIT_URL=server.url, LIVEKIT_API_KEY=server.api_key, LIVEKIT_API_SECRET=server.api_secret,
                   PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "runner.worker", "worker", str(bot), "--http-port", str(self.port), *args],
            env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)

    async def get(self, path: str):
        async with aiohttp.ClientSession(trust_env=False) as session:
            async with session.get(f"http://127.0.0.1:{self.port}{path}",
                                   timeout=aiohttp.ClientTimeout(total=2)) as resp:
                return await (resp.json() if path == "/healthz" else resp.text())

    async def health(self) -> dict:
        return await self.get("/healthz")

    async def metrics(self) -> dict[str, float]:
        text = await self.get("/metrics")
        return {k: float(v) for k, v in (line.rsplit(" ", 1) for line in text.splitlines()
                                         if line and not line.startswith("#"))}

    async def wait_registered(self, timeout: float = 60.0, other_than: str | None = None) -> str:
        """Until every registration is up (with a worker id other than ``other_than``); the id."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"worker exited early:\n{self.tail()}"
            try:
                body = await self.health()
                ids = [r["worker_id"] for r in body["registrations"].values() if r["registered"]]
                if body["status"] == "ok" and ids and ids[0] != other_than:
                    return ids[0]
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass
            await asyncio.sleep(0.05)
        raise AssertionError(f"worker not registered within {timeout:g} s:\n{self.tail()}")

    def signal(self, sig=signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    async def wait_exit(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert self.proc.poll() is not None, f"worker still running after {timeout:g} s:\n{self.tail()}"
        return self.proc.returncode

    def tail(self, lines: int = 30) -> str:
        return "\n".join(Path(self.log.name).read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        Path(self.log.name).unlink(missing_ok=True)


@pytest.fixture
def workers(tmp_path):
    """workers(server, n, *args) -> (agent name, [WorkerProc]); every process is killed at the end."""
    started: list[WorkerProc] = []

    def start(server, n: int = 1, *args: str, name: str | None = None):
        name = name or f"wk-{uuid.uuid4().hex[:6]}"
        bot = tmp_path / f"{name}.yaml"
        bot.write_text(ECHO.replace("NAME", name))
        procs = [WorkerProc(server, bot, *args) for _ in range(n)]
        started.extend(procs)
        return name, procs

    yield start
    for proc in started:
        proc.kill()


def lkapi(server) -> api.LiveKitAPI:
    return api.LiveKitAPI(server.url, server.api_key, server.api_secret)


async def dispatch(lk, name: str, room: str):
    return await lk.agent_dispatch.create_dispatch(api.CreateAgentDispatchRequest(agent_name=name, room=room))


async def agents_in(lk, room: str) -> list[str]:
    try:
        res = await lk.room.list_participants(api.ListParticipantsRequest(room=room))
    except api.TwirpError:  # the room is gone
        return []
    return [p.identity for p in res.participants if p.kind == api.ParticipantInfo.Kind.AGENT]


async def until(check, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


@pytest.mark.livekit
@pytest.mark.parametrize("mode", [[], ["--process-per-job"]], ids=["in-process", "process-per-job"])
async def test_dispatch_puts_the_bot_in_the_room_and_delete_makes_it_leave(livekit_server, workers, mode):
    name, (worker,) = workers(livekit_server, 1, *mode)
    worker_id = await worker.wait_registered()
    room = f"wk-room-{uuid.uuid4().hex[:6]}"
    async with lkapi(livekit_server) as lk:
        created = await dispatch(lk, name, room)  # the room does not exist yet: the dispatch creates it
        (identity,) = await until(lambda: agents_in(lk, room), 10, "the bot in the room")
        assert identity.startswith(f"{name}-AJ_")

        person = await Person(livekit_server, room, "alice").join()
        try:
            assert await _answered(person, identity) == {"text": "pong"}
        finally:
            await person.leave()

        async def job_listed():
            found = await lk.agent_dispatch.list_dispatch(room)
            return [j for d in found if d.id == created.id for j in d.state.jobs]
        (job,) = await until(job_listed, 8, "the job in list_dispatch", interval=0.2)
        assert job.state.worker_id == worker_id
        assert job.state.participant_identity == identity

        await lk.agent_dispatch.delete_dispatch(created.id, room)
        await until(lambda: _absent(lk, room), 10, "the bot to leave")
        metrics = await until(lambda: _finished(worker), 5, "the worker to report the job's end")
        assert metrics["lkrun_worker_jobs_succeeded_total"] == 1
        assert metrics["lkrun_worker_jobs_failed_total"] == 0
        assert metrics["lkrun_worker_load"] == 0
    worker.signal()
    assert await worker.wait_exit(10) == 0


async def _answered(person, identity, attempts: int = 20):
    """Ping until the bot answers (right after a join it may not know the sender yet)."""
    for _ in range(attempts):
        await person.send("ping")
        try:
            return await person.next_data(timeout=0.5, sender=identity)
        except asyncio.TimeoutError:
            continue
    raise AssertionError("the bot never answered")


async def _absent(lk, room):
    return not await agents_in(lk, room)


async def _finished(worker):
    metrics = await worker.metrics()
    return metrics if metrics["lkrun_worker_jobs_running"] == 0 else None


@pytest.mark.livekit
async def test_three_workers_share_six_jobs_and_a_draining_worker_finishes_its_calls(livekit_server, workers):
    name, procs = workers(livekit_server, 3, "--max-jobs", "2", "--drain-timeout", "60")
    await asyncio.gather(*(w.wait_registered() for w in procs))
    rooms = [f"wk-fleet-{uuid.uuid4().hex[:6]}-{i}" for i in range(7)]
    async with lkapi(livekit_server) as lk:
        for room in rooms[:6]:
            await dispatch(lk, name, room)

        async def all_placed():
            return all([await agents_in(lk, room) for room in rooms[:6]])
        await until(all_placed, 15, "six bots in six rooms")
        placed = {w: (await w.health())["rooms"] for w in procs}
        assert sorted(r for rs in placed.values() for r in rs) == sorted(rooms[:6])
        assert all(len(rs) == 2 for rs in placed.values()), placed

        await dispatch(lk, name, rooms[6])  # everyone is full: the server drops it (no queue in OSS)
        await asyncio.sleep(4)
        assert await agents_in(lk, rooms[6]) == []
        for w in procs:
            assert w.proc.poll() is None and (await w.health())["status"] == "ok"
            assert (await w.metrics())["lkrun_worker_jobs_failed_total"] == 0

        drainer, others = procs[0], procs[1:]
        drainer.signal(signal.SIGTERM)
        await until(lambda: _draining(drainer), 5, "the worker to drain")
        await asyncio.sleep(1)
        assert drainer.proc.poll() is None  # its calls are still going on
        for room in placed[drainer]:
            assert await agents_in(lk, room), f"the draining worker's bot left {room} early"

        for w in others:  # one call ends on each of the others: two free slots, none on the drainer
            await lk.room.delete_room(api.DeleteRoomRequest(room=placed[w][0]))
        await until(lambda: _all_running(others, 1), 10, "the ended calls to be reported")
        fresh = [f"wk-fresh-{uuid.uuid4().hex[:6]}-{i}" for i in range(2)]
        for room in fresh:
            await dispatch(lk, name, room)

        async def fresh_placed():
            return all([await agents_in(lk, room) for room in fresh])
        await until(fresh_placed, 10, "the new dispatches to land")
        after = {w: (await w.health())["rooms"] for w in procs}
        assert sorted(r for w in others for r in after[w] if r in fresh) == sorted(fresh)
        assert after[drainer] == placed[drainer]

        for room in placed[drainer]:  # the draining worker's calls finish: it exits 0
            await lk.room.delete_room(api.DeleteRoomRequest(room=room))
        assert await drainer.wait_exit(10) == 0
        assert "worker stopped" in drainer.tail()


async def _draining(worker):
    return (await worker.health())["draining"]


async def _all_running(procs, n):
    return all([(await w.health())["jobs"] == n for w in procs])


@pytest.mark.livekit
async def test_drain_is_bounded_and_a_second_signal_leaves_at_once(livekit_server, workers):
    name, (bounded,) = workers(livekit_server, 1, "--max-jobs", "1", "--drain-timeout", "1")
    _, (impatient,) = workers(livekit_server, 1, "--max-jobs", "1", "--drain-timeout", "60", name=name)
    await asyncio.gather(bounded.wait_registered(), impatient.wait_registered())
    rooms = [f"wk-drain-{uuid.uuid4().hex[:6]}-{i}" for i in range(2)]
    async with lkapi(livekit_server) as lk:
        for room in rooms:
            await dispatch(lk, name, room)

        async def both():
            return all([await agents_in(lk, room) for room in rooms])
        await until(both, 10, "two bots")
        by_worker = {w: (await w.health())["rooms"] for w in (bounded, impatient)}
        started = time.monotonic()
        bounded.signal(signal.SIGTERM)
        assert await bounded.wait_exit(8) == 0
        assert time.monotonic() - started < 6
        await until(lambda: _absent(lk, by_worker[bounded][0]), 5, "the bounded worker's bot to leave")

    impatient.signal(signal.SIGTERM)
    await until(lambda: _draining(impatient), 5, "the second worker to drain")
    started = time.monotonic()
    impatient.signal(signal.SIGTERM)
    assert await impatient.wait_exit(6) == 143
    assert time.monotonic() - started < 5


@pytest.mark.livekit
async def test_workers_re_register_after_the_server_is_killed_and_restarted(workers):
    server = DevServer()
    await server.start()
    try:
        name, (worker,) = workers(server, 1, "--max-jobs", "2")
        first = await worker.wait_registered()
        server.kill()
        await until(lambda: _unregistered(worker), 10, "the worker to notice")
        await asyncio.sleep(1.0)  # down for a while: the worker keeps retrying
        await server.start()
        started = time.monotonic()
        second = await worker.wait_registered(timeout=10, other_than=first)
        elapsed = time.monotonic() - started
        print(f"re-registered {elapsed:.2f} s after the server answered again")
        assert elapsed < 10
        assert second != first
        room = f"wk-back-{uuid.uuid4().hex[:6]}"
        async with lkapi(server) as lk:
            await dispatch(lk, name, room)
            await until(lambda: agents_in(lk, room), 10, "a bot after the restart")
            await until(lambda: _joined(worker), 10, "the bot's pipeline to be connected")
            await lk.room.delete_room(api.DeleteRoomRequest(room=room))  # the call ends
        worker.signal()
        assert await worker.wait_exit(15) == 0
    finally:
        await server.stop()


async def _joined(worker, n: int = 1):
    return (await worker.metrics())["lkrun_worker_job_join_seconds_count"] >= n


async def _unregistered(worker):
    return (await worker.health())["status"] != "ok"


class _FakeWorker:
    def __init__(self):
        self.metrics, self.changes = Metrics(), 0

    def status_changed(self):
        self.changes += 1


class _Job:
    def __init__(self, job_id):
        self.id = job_id


def test_load_reaches_target_load_exactly_when_full_and_offers_hold_a_slot():
    worker = _FakeWorker()
    pool = JobPool(worker, max_jobs=2, target_load=0.7, process_per_job=False)
    assert (pool.load(), pool.full()) == (0.0, False)
    assert pool.offer(_Job("AJ_1"))
    assert (round(pool.load(), 3), pool.full()) == (0.35, False)
    assert pool.offer(_Job("AJ_2"))
    assert (round(pool.load(), 3), pool.full()) == (0.7, True)  # never above: the server would drop jobs
    assert not pool.offer(_Job("AJ_3"))
    assert worker.metrics.declined == 1
    pool.reserved["AJ_1"] = 0.0  # an offer whose assignment never came expires
    assert not pool.full() and pool.offer(_Job("AJ_4"))
    pool.reserved.clear()
    pool.draining = True
    assert pool.full() and not pool.offer(_Job("AJ_5"))


@pytest.mark.parametrize("url, expected", [
    ("ws://127.0.0.1:7880", "ws://127.0.0.1:7880/agent"),
    ("wss://lk.example.com/", "wss://lk.example.com/agent"),
    ("https://lk.example.com/prefix", "wss://lk.example.com/prefix/agent"),
    ("http://localhost:7880", "ws://localhost:7880/agent"),
])
def test_agent_url(url, expected):
    assert agent_url(url) == expected


def test_metrics_are_prometheus_text():
    worker = _FakeWorker()
    worker.pool = JobPool(worker, max_jobs=4, target_load=0.7, process_per_job=False)
    worker.registrations = []
    worker.metrics.event_run.observe(0.003)
    text = worker.metrics.render(worker)
    assert "# TYPE lkrun_worker_jobs_running gauge\nlkrun_worker_jobs_running 0.0\n" in text
    assert 'lkrun_worker_event_run_seconds_bucket{le="0.005"} 1' in text
    assert 'lkrun_worker_event_run_seconds_bucket{le="0.001"} 0' in text
    assert "lkrun_worker_event_run_seconds_count 1" in text


def test_worker_needs_a_server_and_unique_bot_names(tmp_path, capsys):
    from runner.worker.main import run_worker
    for name in ("a", "b"):
        (tmp_path / f"{name}.yaml").write_text(ECHO.replace("NAME", "same"))
    assert run_worker([str(tmp_path)], environ={}) == 1
    assert "unique per worker" in capsys.readouterr().err
    assert run_worker([str(tmp_path / "a.yaml")], environ={}) == 1
    assert "needs a LiveKit server" in capsys.readouterr().err


class _RedisNode(DevServer):
    """A livekit-server node that shares its rooms and agent jobs with others through Redis."""

    def __init__(self, redis_port: int):
        super().__init__()
        self.redis_port = redis_port

    def config_body(self) -> str:
        return super().config_body() + f"redis:\n  address: 127.0.0.1:{self.redis_port}\n"


@pytest.mark.livekit
@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("LKRUN_MULTINODE"), reason="opt-in (LKRUN_MULTINODE=1; needs redis-server)")
async def test_two_nodes_sharing_redis_route_jobs_to_a_worker_on_the_other_node(workers):
    redis_port = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no"], stdout=subprocess.DEVNULL)
    node_a, node_b = _RedisNode(redis_port), _RedisNode(redis_port)
    try:
        await node_a.start()
        await node_b.start()
        name, (worker,) = workers(node_a, 1, "--max-jobs", "8")  # the worker knows only node A
        await worker.wait_registered()
        rooms = [f"wk-mn-{uuid.uuid4().hex[:6]}-{i}" for i in range(8)]
        async with lkapi(node_b) as lk:  # rooms are created through node B
            for room in rooms:
                await dispatch(lk, name, room)
            for room in rooms:
                await until(lambda: agents_in(lk, room), 15, f"a bot in {room}")
            sessions_b = [line for line in Path(node_b.log_path).read_text().splitlines()
                          if "starting RTC session" in line]  # logged by the node that hosts the room
            hosted_on_b = [r for r in rooms if any(f'"room": "{r}"' in line for line in sessions_b)]
            assert hosted_on_b, "no room landed on node B: the cross-node path was not exercised"
            await until(lambda: _joined(worker, len(rooms)), 15, "every bot's pipeline to be connected")
            for room in rooms:
                await lk.room.delete_room(api.DeleteRoomRequest(room=room))
        worker.signal()
        assert await worker.wait_exit(15) == 0
    finally:
        await node_a.stop()
        await node_b.stop()
        redis.terminate()
        redis.wait()

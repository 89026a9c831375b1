"""Run metrics (runner.runtime.metrics): counted by the scheduler, served on the playground's
/metrics (run mode) and in the worker's /metrics. No LiveKit server: a checked spec, a fake bot."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import aiohttp
import pytest

from runner.botfile.check import check_file
from runner.playground import Playground
from runner.runtime import metrics
from runner.runtime.effects import NullEffects
from runner.runtime.scheduler import Dispatcher
from runner.runtime.state import SessionState
from runner.runtime.timers import IdleClock
from runner.runtime.trace import Trace


class FakeBot:
    def __init__(self, spec):
        self.spec, self.state, self.trace, self.idle = spec, SessionState(), Trace(), IdleClock()
        self.effects = NullEffects()

    def participants(self):
        return ["alice"]


@pytest.fixture
def dispatcher(tmp_path):
    def build(name: str, on: str, session: str = ""):
        path = tmp_path / f"{name}.yaml"
        path.write_text(f"version: 1\nname: {name}\nlivekit: {{room: r, identity: {name}}}\n"
                        + (f"session: {session}\n" if session else "") + "on:\n" + on)
        return Dispatcher(FakeBot(check_file(path, environ={})))
    return build


async def settle(dispatcher: Dispatcher) -> None:
    while any(not t.done() for t in dispatcher.tasks):
        await asyncio.sleep(0.005)


async def test_a_dropped_run_increments_runs_dropped(dispatcher):
    d = dispatcher("metrics_drop", '  data_received:\n    - log: "{{ data }}"\n', "{rate_limit: 1, rate_burst: 2}")
    before = metrics.value("lkrun_runs_dropped_total", bot="metrics_drop")
    for n in range(5):
        d.fire("data_received", "alice", payload=f"m{n}".encode())
    await settle(d)
    assert d.dropped == 3
    assert metrics.value("lkrun_runs_dropped_total", bot="metrics_drop") == before + 3
    assert metrics.value("lkrun_event_runs_total", bot="metrics_drop", event="data_received", outcome="ok") == 2
    assert metrics.value("lkrun_event_run_seconds_count", bot="metrics_drop") == 2
    d.drops.publish()


async def test_failed_runs_are_counted_by_outcome(dispatcher):
    d = dispatcher("metrics_fail", "  connected:\n    - wait: \"{{ 'soon' }}\"\n")
    d.fire("connected")
    await settle(d)
    assert metrics.value("lkrun_event_runs_total", bot="metrics_fail", event="connected", outcome="error") == 1
    assert metrics.value("lkrun_event_runs_total", bot="metrics_fail", event="connected", outcome="ok") == 0


async def test_the_playground_serves_the_run_metrics(dispatcher):
    d = dispatcher("metrics_page", '  data_received:\n    - log: "{{ data }}"\n', "{rate_limit: 1, rate_burst: 1}")
    for n in range(3):
        d.fire("data_received", "alice", payload=b"x")
    await settle(d)
    pg = Playground(SimpleNamespace(bots={}))
    await pg.start()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{pg.port}/metrics",
                                   headers={"Host": f"127.0.0.1:{pg.port}"}) as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"].startswith("text/plain")
                text = await resp.text()
            async with session.get(f"http://127.0.0.1:{pg.port}/metrics", headers={"Host": "evil.example"}) as resp:
                assert resp.status == 403  # the same loopback guard as every other path
    finally:
        await pg.stop()
    assert 'lkrun_runs_dropped_total{bot="metrics_page"} 2.0' in text
    assert 'lkrun_event_runs_total{bot="metrics_page",event="data_received",outcome="ok"} 1.0' in text
    assert "# TYPE lkrun_event_run_seconds histogram" in text
    assert "_created" not in text


def test_the_worker_metrics_include_the_run_metrics():
    from runner.worker.ops import Metrics
    metrics.run_dropped("metrics_worker")
    worker_metrics = Metrics()
    worker_metrics.accepted += 1
    worker = SimpleNamespace(pool=SimpleNamespace(jobs={}, load=lambda: 0.25, max_jobs=4, draining=False),
                             registrations=[SimpleNamespace(agent_name='a"b', registered=True)])
    text = worker_metrics.render(worker)
    assert "lkrun_worker_jobs_accepted_total 1.0" in text
    assert "lkrun_worker_load 0.25" in text
    assert 'lkrun_worker_registered{agent_name="a\\"b"} 1.0' in text  # label values are escaped
    assert 'lkrun_runs_dropped_total{bot="metrics_worker"}' in text
    assert Metrics().render(worker).count("lkrun_worker_jobs_accepted_total 0.0") == 1  # one registry each

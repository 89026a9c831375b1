"""The dispatcher without a room: ordering per participant, modes, rate limits, join dedupe,
and the `error` event. Bots are real checked specs; effects are recorded."""

from __future__ import annotations

import asyncio

import pytest

from runner.botfile.check import check_file
from runner.runtime.effects import NullEffects
from runner.runtime.scheduler import Dispatcher, RateLimiter
from runner.runtime.state import SessionState
from runner.runtime.trace import Trace


class Recorder(NullEffects):
    """Effects that record what a run did, and how many runs were inside a `wait` at once."""

    def __init__(self):
        self.calls: list[tuple] = []

    def sent(self) -> list:
        return [c[1] for c in self.calls if c[0] == "send"]

    async def send(self, data, to, after_speech):
        self.calls.append(("send", data, to))

    async def log(self, message, level):
        self.calls.append(("log", message))

    async def http(self, url, method, body, headers, timeout):
        raise ValueError(f"http {method} {url}: cannot connect: connection refused")

    async def wait(self, seconds):
        await asyncio.sleep(seconds)

    def state_changed(self, scope, participant, values):
        self.calls.append(("set", scope, values))


class FakeBot:
    def __init__(self, spec, people=()):
        from runner.runtime.timers import IdleClock
        self.spec, self.state, self.trace = spec, SessionState(), Trace()
        self.idle = IdleClock()
        self.effects = Recorder()
        self.people = list(people)

    def participants(self):
        return list(self.people)


@pytest.fixture
def make(tmp_path):
    """make(on_yaml, session='') -> (dispatcher, bot) for a data-only bot with these handlers."""
    def build(on: str, session: str = "", people=("alice", "bob")):
        path = tmp_path / "bot.yaml"
        path.write_text("version: 1\nname: unit\nlivekit: {room: r, identity: unit}\n"
                        + (f"session: {session}\n" if session else "") + "on:\n" + on)
        bot = FakeBot(check_file(path, environ={}), people)
        return Dispatcher(bot), bot
    return build


async def settle(dispatcher: Dispatcher, timeout: float = 5.0) -> None:
    """Until every scheduled run has finished."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while any(not t.done() for t in dispatcher.tasks):
        assert loop.time() < deadline, "runs did not finish"
        await asyncio.sleep(0.005)


STEPS = """\
  data_received:
    MODE
      - log: "start {{ data }}"
      - wait: 0.05
      - log: "end {{ data }}"
"""


def steps(mode: str | None) -> str:
    if mode is None:
        return STEPS.replace("    MODE\n", "").replace("      -", "    -")
    return STEPS.replace("MODE", f"mode: {mode}\n    do:")


def fire_data(dispatcher, who, text):
    dispatcher.fire("data_received", who, payload=text.encode())


async def test_runs_for_one_participant_are_queued_in_order(make):
    dispatcher, bot = make(steps(None))
    for text in ("a", "b", "c"):
        fire_data(dispatcher, "alice", text)
    await settle(dispatcher)
    logs = [c[1] for c in bot.effects.calls]
    assert logs == ["start a", "end a", "start b", "end b", "start c", "end c"]


async def test_different_participants_run_concurrently(make):
    dispatcher, bot = make(steps(None))
    fire_data(dispatcher, "alice", "a")
    fire_data(dispatcher, "bob", "b")
    await settle(dispatcher)
    logs = [c[1] for c in bot.effects.calls]
    assert logs[:2] == ["start a", "start b"]  # bob did not wait for alice's run


async def test_parallel_mode_overlaps_runs_of_one_participant(make):
    dispatcher, bot = make(steps("parallel"))
    fire_data(dispatcher, "alice", "a")
    fire_data(dispatcher, "alice", "b")
    await settle(dispatcher)
    assert [c[1] for c in bot.effects.calls][:2] == ["start a", "start b"]


async def test_restart_mode_cancels_the_running_run(make):
    dispatcher, bot = make(steps("restart"))
    fire_data(dispatcher, "alice", "a")
    await asyncio.sleep(0.01)  # let run "a" reach its wait
    fire_data(dispatcher, "alice", "b")
    await settle(dispatcher)
    assert [c[1] for c in bot.effects.calls] == ["start a", "start b", "end b"]


async def test_single_mode_drops_runs_while_one_is_running(make):
    dispatcher, bot = make(steps("single"))
    fire_data(dispatcher, "alice", "a")
    await asyncio.sleep(0.01)
    fire_data(dispatcher, "alice", "b")
    await settle(dispatcher)
    fire_data(dispatcher, "alice", "c")  # the lane is free again
    await settle(dispatcher)
    assert [c[1] for c in bot.effects.calls] == ["start a", "end a", "start c", "end c"]


def test_rate_limiter_allows_a_burst_then_the_rate():
    now = [100.0]
    limiter = RateLimiter(per_second=10, burst=20, clock=lambda: now[0])
    assert sum(limiter.allow("alice") for _ in range(50)) == 20
    assert limiter.allow("bob")  # buckets are per participant
    now[0] += 0.5  # half a second refills five runs
    assert sum(limiter.allow("alice") for _ in range(50)) == 5


def test_rate_limiter_forgets_full_buckets_but_not_a_flooding_one():
    now = [100.0]
    limiter = RateLimiter(per_second=10, burst=20, clock=lambda: now[0])
    assert sum(limiter.allow("mallory") for _ in range(50)) == 20  # empty now
    for n in range(limiter.PRUNE_AT):
        limiter.allow(f"visitor {n}")
    now[0] += 1.0  # visitors are full again (19 + 10 > 20); mallory has 10 of 20
    limiter.allow("newcomer")
    assert set(limiter.buckets) == {"mallory", "newcomer"}
    assert sum(limiter.allow("mallory") for _ in range(50)) == 10  # the flood's debt is kept


async def test_a_flood_from_one_participant_is_dropped_not_queued(make):
    dispatcher, bot = make('  data_received:\n    - send: {to: "{{ participant.id }}", data: "{{ data }}"}\n',
                           session="{rate_limit: 5, rate_burst: 10}")
    for n in range(200):
        fire_data(dispatcher, "mallory", f"spam {n}")
    fire_data(dispatcher, "alice", "ping")
    await settle(dispatcher)
    sent = bot.effects.sent()
    assert "ping" in sent
    assert sum(1 for s in sent if s.startswith("spam")) == 10  # the burst
    assert dispatcher.dropped == 190
    assert not [e for e in bot.trace.entries if e.outcome == "dropped"]  # published once a second
    dispatcher.drops.publish()
    drops = [e for e in bot.trace.entries if e.outcome == "dropped"]
    assert len(drops) == 1 and drops[0].dropped == 190 and drops[0].participant == "mallory"  # one entry counts


async def test_the_default_burst_lets_a_chatty_client_through(make):
    dispatcher, bot = make('  data_received:\n    - send: {to: "{{ participant.id }}", data: "{{ data }}"}\n')
    for n in range(40):  # a UI sending 40 messages at once (default: 10/s sustained, bursts of 50)
        fire_data(dispatcher, "alice", f"m{n}")
    await settle(dispatcher)
    assert len(bot.effects.sent()) == 40 and dispatcher.dropped == 0


async def test_packets_with_no_sender_share_one_rate_limit(make):
    dispatcher, bot = make("  data_received:\n    - log: \"{{ data }}\"\n", session="{rate_limit: 5, rate_burst: 10}")
    for n in range(50):
        fire_data(dispatcher, None, f"anon {n}")
    await settle(dispatcher)
    assert len(bot.effects.calls) == 10 and dispatcher.dropped == 40


async def test_system_events_are_never_rate_limited(make):
    dispatcher, bot = make("  timer:\n    - every: 1\n      do: [{log: tick}]\n  connected:\n    - log: up\n",
                           session="{rate_limit: 1}")
    for _ in range(20):
        dispatcher.fire("connected")
    await settle(dispatcher)
    assert len(bot.effects.calls) == 20


JOIN = """\
  participant_connected:
    - log: "hello {{ participant.id }}"
  first_participant_joined:
    - log: "first {{ participant.id }}"
"""


async def test_join_events_fire_once_per_identity_per_session(make):
    dispatcher, bot = make(JOIN)
    for who in ("alice", "alice", "bob", "alice", "bob"):  # reconnects, new generations
        dispatcher.fire("participant_connected", who)
        dispatcher.fire("first_participant_joined", who)
    await settle(dispatcher)
    assert sorted(c[1] for c in bot.effects.calls) == ["first alice", "hello alice", "hello bob"]
    bot.state.reset()  # `end`: a new session greets again
    dispatcher.fire("participant_connected", "alice")
    await settle(dispatcher)
    assert bot.effects.calls[-1] == ("log", "hello alice")


ERRORS = """\
  data_received:
    - log: "before"
    - http: {url: "http://127.0.0.1:9/hook"}
    - log: "after"
  error:
    - log: "error {{ error.event }} {{ error.action }} {{ error.line }}: {{ error.message }}"
    - http: {url: "http://127.0.0.1:9/again"}
"""


async def test_a_failing_action_stops_its_run_and_fires_error_once(make):
    dispatcher, bot = make(ERRORS)
    fire_data(dispatcher, "alice", "x")
    await settle(dispatcher)
    logs = [c[1] for c in bot.effects.calls]
    assert logs[0] == "before" and "after" not in logs
    assert len(logs) == 2, logs  # the error handler's own failure does not fire error again
    assert logs[1].startswith("error data_received http 7: ")
    assert "bot.yaml:7:" in logs[1] and "connection refused" in logs[1]
    assert bot.trace.entries[0].outcome == "error"


async def test_handlers_come_from_the_current_spec(make, tmp_path):
    dispatcher, bot = make('  data_received:\n    - log: "old"\n')
    path = tmp_path / "bot.yaml"
    path.write_text(path.read_text().replace('"old"', '"new"'))
    bot.spec = check_file(path, environ={})  # what a reload does
    fire_data(dispatcher, "alice", "x")
    await settle(dispatcher)
    assert bot.effects.calls == [("log", "new")]


async def test_stop_cancels_running_runs(make):
    dispatcher, bot = make('  data_received:\n    - wait: 30\n    - log: "never"\n')
    fire_data(dispatcher, "alice", "x")
    await asyncio.sleep(0.01)
    await asyncio.wait_for(dispatcher.stop(), 2)
    assert all(t.done() for t in dispatcher.tasks) and bot.effects.calls == []


OWNED = """\
  data_received:
    - wait: 30
    - send: {data: "late for {{ participant.id }}"}
  participant_left:
    - log: "left; still here: {{ room.participants | join(',') }}"
"""


async def test_a_person_leaving_cancels_their_runs_but_not_the_leave_event(make):
    dispatcher, bot = make(OWNED, people=("alice", "bob"))
    fire_data(dispatcher, "alice", "x")
    fire_data(dispatcher, "alice", "y")  # queued behind the first
    fire_data(dispatcher, "bob", "z")
    await asyncio.sleep(0.02)
    dispatcher.fire("participant_left", "alice", extra={"reason": "CLIENT_INITIATED"})
    await asyncio.sleep(0.05)
    assert [c[1] for c in bot.effects.calls] == ["left; still here: bob"]  # the leaver is not in the room
    cancelled = [e for e in bot.trace.entries if e.outcome == "cancelled"]
    assert [(e.participant, e.event) for e in cancelled] == [("alice", "data_received")]
    assert ("data_received", "bob") in dispatcher.lanes  # bob's run goes on
    await dispatcher.stop()


async def test_a_failing_run_fires_error_with_structured_fields(make):
    dispatcher, bot = make('  data_received:\n    - log: "{{ 1 / 0 }}"\n  error:\n'
                           '    - log: "{{ error.action }} line {{ error.line }} of {{ error.file }}"\n')
    fire_data(dispatcher, "alice", "x")
    await settle(dispatcher)
    await settle(dispatcher)
    assert [c[1] for c in bot.effects.calls] == [f"log line 6 of {bot.spec.file}"]

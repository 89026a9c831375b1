"""wait_for and collect_digits in the real scheduler and engine (no room; recorded effects)."""

from __future__ import annotations

import asyncio

import pytest

from runner.botfile.check import check_document
from runner.botfile.yamlsafe import load_text
from runner.runtime.effects import NullEffects
from runner.runtime.scheduler import Dispatcher
from runner.runtime.state import SessionState
from runner.runtime.timers import IdleClock
from runner.runtime.trace import Trace

HEAD = "version: 1\nname: waiter\nlivekit: {room: r, identity: waiter}\n"


class Recorder(NullEffects):
    def __init__(self):
        self.sent: list = []

    async def send(self, data, to, after_speech):
        self.sent.append((to[0] if to else None, data))

    async def wait(self, seconds):
        await asyncio.sleep(seconds)


class Bot:
    def __init__(self, text: str, people=("alice", "bob")):
        self.spec = check_document(load_text(HEAD + text, "bot.yaml"), environ={}, dotenv={})
        self.state, self.trace, self.idle, self.effects = SessionState(), Trace(), IdleClock(), Recorder()
        self.people = list(people)

    def participants(self):
        return list(self.people)


async def until(predicate, timeout=3.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.005)


MENU = """\
on:
  data_received:
    - send: {to: "{{ participant.id }}", data: "press 1 or say sales"}
    - wait_for:
        any:
          - {event: dtmf_event, match: "[12]"}
          - {event: chat_received, match: "(?i)sales"}
        timeout: 0.3
        continue_on_timeout: true
    - choose:
        - when: "{{ wait.timed_out }}"
          do: [{send: {to: "{{ participant.id }}", data: "nothing heard"}}]
        - when: "{{ wait.digit == '1' or (wait.text or '') is search('(?i)sales') }}"
          do: [{send: {to: "{{ participant.id }}", data: "sales via {{ wait.event }}"}}]
      default:
        - send: {to: "{{ participant.id }}", data: "support"}
  dtmf_event:
    - send: {to: "{{ participant.id }}", data: "handler saw {{ digit }}"}
"""


async def test_an_answer_goes_to_the_waiting_run_not_to_the_handler():
    bot = Bot(MENU.replace("(wait.text or '') is search('(?i)sales')", "'ales' in (wait.text or '')"))
    dispatcher = Dispatcher(bot)
    dispatcher.fire("data_received", "alice", payload=b"hi")
    await until(lambda: bot.effects.sent)
    dispatcher.fire("dtmf_event", "alice", digit="1")
    await until(lambda: len(bot.effects.sent) == 2)
    assert bot.effects.sent == [("alice", "press 1 or say sales"), ("alice", "sales via dtmf_event")]
    dispatcher.fire("dtmf_event", "alice", digit="9")  # nobody waits now: the handler runs
    await until(lambda: len(bot.effects.sent) == 3)
    assert bot.effects.sent[-1] == ("alice", "handler saw 9")
    await dispatcher.stop()


async def test_each_person_waits_for_their_own_answer_and_times_out_alone():
    bot = Bot(MENU.replace("(wait.text or '') is search('(?i)sales')", "'ales' in (wait.text or '')"))
    dispatcher = Dispatcher(bot)
    dispatcher.fire("data_received", "alice", payload=b"hi")
    dispatcher.fire("data_received", "bob", payload=b"hi")
    await until(lambda: len(bot.effects.sent) == 2)
    dispatcher.fire("chat_received", "bob", text="Sales please")
    await until(lambda: ("bob", "sales via chat_received") in bot.effects.sent)
    await until(lambda: ("alice", "nothing heard") in bot.effects.sent)  # bob's answer was not hers
    await dispatcher.stop()


async def test_a_timeout_without_continue_stops_the_run_quietly():
    bot = Bot("on:\n  data_received:\n    - wait_for: {event: dtmf_event, timeout: 0.05}\n"
              "    - send: {data: never}\n  error:\n    - send: {data: error}\n")
    dispatcher = Dispatcher(bot)
    dispatcher.fire("data_received", "alice", payload=b"x")
    await until(lambda: any(e.note for e in bot.trace.entries))
    entry = bot.trace.entries[-1]
    assert entry.outcome == "ok" and "timed out after 0.05 s" in entry.note
    await asyncio.sleep(0.05)
    assert bot.effects.sent == []  # no send, no error event
    await dispatcher.stop()


async def test_leaving_ends_the_wait_with_the_run():
    bot = Bot("on:\n  data_received:\n    - wait_for: {event: dtmf_event}\n    - send: {data: late}\n")
    dispatcher = Dispatcher(bot)
    dispatcher.fire("data_received", "alice", payload=b"x")
    await until(lambda: dispatcher.waits.active)
    dispatcher.fire("participant_left", "alice", extra={"reason": "CLIENT_INITIATED"})
    await until(lambda: not dispatcher.waits.active)
    dispatcher.fire("dtmf_event", "alice", digit="1")
    await asyncio.sleep(0.05)
    assert bot.effects.sent == []
    await dispatcher.stop()


DIGITS = """\
on:
  data_received:
    - collect_digits: {terminator: "#", first_timeout: 0.3, timeout: 0.15, save_as: account}
    - send: {to: "{{ participant.id }}", data: {digits: "{{ results.account.digits }}",
                                                timed_out: "{{ results.account.timed_out }}"}}
"""


@pytest.mark.parametrize("presses, expected", [
    ("1234#", {"digits": "1234", "timed_out": False}),
    ("12", {"digits": "12", "timed_out": True}),
    ("", {"digits": "", "timed_out": True}),
])
async def test_collect_digits(presses, expected):
    bot = Bot(DIGITS)
    dispatcher = Dispatcher(bot)
    dispatcher.fire("data_received", "alice", payload=b"x")
    await until(lambda: dispatcher.waits.active)
    for digit in presses:
        dispatcher.fire("dtmf_event", "alice", digit=digit)
        await asyncio.sleep(0.01)
    await until(lambda: bot.effects.sent)
    assert bot.effects.sent == [("alice", expected)]
    await dispatcher.stop()

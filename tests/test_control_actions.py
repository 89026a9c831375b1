"""repeat, parallel, stop, variables, run (scripts:) and continue_on_error in the real engine
(and, for `error`, the real scheduler): no room, recorded effects."""

from __future__ import annotations

import asyncio
import json
import time

import jsonschema
import pytest

from runner.botfile.check import check_document
from runner.botfile.errors import ConfigError
from runner.botfile.yamlsafe import load_text
from runner.runtime.effects import NullEffects
from runner.runtime.engine import Run, event_variables
from runner.runtime.scheduler import Dispatcher
from runner.runtime.state import SessionState
from runner.runtime.timers import IdleClock
from runner.runtime.trace import Trace

HEAD = "version: 1\nname: control\nlivekit: {room: r, identity: control}\n"


class Recorder(NullEffects):
    def __init__(self):
        self.logs: list[str] = []
        self.events: list[tuple] = []
        self.run_task: asyncio.Task | None = None

    async def log(self, message, level):
        self.logs.append(message)

    async def wait(self, seconds):
        self.events.append(("start", seconds, time.perf_counter()))
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            self.events.append(("cancelled", seconds))
            raise
        self.events.append(("done", seconds, time.perf_counter()))

    async def http(self, url, method, body, headers, timeout):
        raise ValueError("the server said 503")

    async def end(self, now, hangup=False):
        self.events.append(("end",))
        self.run_task.cancel()  # what the live bot does: end_session cancels the session's runs


def spec_of(text: str):
    return check_document(load_text(HEAD + text, "bot.yaml"), environ={}, dotenv={})


async def run(text: str, event="data_received", payload=b"x", effects=None):
    spec = spec_of(text)
    effects = effects or Recorder()
    variables = event_variables(event, "alice", payload=payload)
    runner = Run(spec, SessionState(), effects, event, variables, "alice", ["alice"], Trace())
    task = asyncio.ensure_future(runner.execute(spec.on[event].actions))
    effects.run_task = task
    try:
        entry = await task
    except asyncio.CancelledError:
        entry = runner.trace_entry
    return entry, effects


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        spec_of(text)
    return [f"{p.line}:{p.col}: {p.message}" for p in caught.value.problems if p.severity == "error"]


# --- repeat --------------------------------------------------------------------------------------

async def test_repeat_count_with_index_first_last():
    entry, effects = await run("""\
on:
  data_received:
    - repeat:
        count: 3
        do: [{log: "{{ repeat.index }} {{ repeat.first }} {{ repeat.last }}"}]
""")
    assert entry.outcome == "ok", entry.error
    assert effects.logs == ["1 True False", "2 False False", "3 False True"]
    marks = [s[2] for s in entry.steps if s[0] == "repeat"]  # the trace shows each iteration
    assert marks == [{"loop": "count", "times": 3}, {"iteration": 1}, {"iteration": 2}, {"iteration": 3},
                     {"iterations": 3}]


async def test_repeat_for_each_over_a_list_from_vars_and_a_written_list():
    entry, effects = await run("""\
vars: {rooms: [kitchen, hall]}
on:
  data_received:
    - repeat:
        for_each: "{{ vars.rooms }}"
        do: [{log: "{{ repeat.index }}:{{ repeat.item }}:{{ repeat.last }}"}]
    - repeat:
        for_each: ["{{ data }}", fixed]
        do: [{log: "{{ repeat.item }}"}]
""", payload=b"sent")
    assert entry.outcome == "ok", entry.error
    assert effects.logs == ["1:kitchen:False", "2:hall:True", "sent", "fixed"]
    assert {"iteration": 2, "item": "hall"} in [s[2] for s in entry.steps]


async def test_repeat_while_checks_before_and_until_after_each_iteration():
    entry, effects = await run("""\
on:
  data_received:
    - set: {values: {n: 0}}
    - repeat:
        while: "{{ state.n < 2 }}"
        do: [{set: {values: {n: "{{ state.n + 1 }}"}}}, {log: "while {{ state.n }}"}]
    - repeat:
        while: "{{ false }}"
        do: [{log: never}]
    - repeat:
        until: "{{ true }}"
        do: [{log: "until once"}]
    - repeat:
        until: "{{ repeat.index == 3 }}"
        do: [{log: "until {{ repeat.index }}"}]
""")
    assert entry.outcome == "ok", entry.error
    assert effects.logs == ["while 1", "while 2", "until once", "until 1", "until 2", "until 3"]
    assert {"iterations": 2, "while": False} in [s[2] for s in entry.steps]


async def test_nested_repeats_see_the_innermost():
    entry, effects = await run("""\
on:
  data_received:
    - repeat:
        for_each: [a, b]
        do:
          - variables: {outer: "{{ repeat.item }}"}
          - repeat: {count: 2, do: [{log: "{{ outer }}{{ repeat.index }}"}]}
          - log: "after {{ repeat.item }}"
""")
    assert entry.outcome == "ok", entry.error
    assert effects.logs == ["a1", "a2", "after a", "b1", "b2", "after b"]


async def test_at_most_1000_iterations_per_run_then_an_error_at_the_repeat():
    entry, effects = await run("""\
on:
  data_received:
    - repeat:
        while: "{{ true }}"
        do: [{log: x}]
    - log: never
""")
    assert entry.outcome == "error" and entry.action == "repeat" and entry.line == 6
    assert "at most 1,000 times" in entry.error and entry.error.startswith("bot.yaml:6:")
    assert effects.logs == ["x"] * 1000


async def test_the_cap_counts_all_repeats_of_the_run_together():
    entry, effects = await run("""\
on:
  data_received:
    - repeat:
        count: 100
        do:
          - repeat: {count: 20, do: [{log: x}]}
""")
    assert entry.outcome == "error" and entry.line == 9  # the inner repeat: its 1001st iteration overall
    # each outer iteration counts 1 + 20: 47 of them are 987, the 48th is the 988th, then 12 inner ones
    assert len(effects.logs) == 47 * 20 + 12


@pytest.mark.parametrize("count, outcome", [('"{{ 2 }}"', "ok"), ('"{{ data }}"', "error")])
async def test_a_templated_count_must_be_a_whole_number(count, outcome):
    entry, effects = await run(f"on:\n  data_received:\n    - repeat: {{count: {count}, do: [{{log: x}}]}}\n",
                               payload=b"lots")
    assert entry.outcome == outcome
    if outcome == "error":
        assert "repeat count must be a whole number" in entry.error


# --- parallel ------------------------------------------------------------------------------------

async def test_parallel_branches_run_at_the_same_time_and_the_run_waits_for_all():
    started = time.perf_counter()
    entry, effects = await run("""\
on:
  data_received:
    - parallel:
        - [{wait: 0.3}, {log: one}]
        - [{wait: 0.3}, {log: two}]
    - log: both done
""")
    elapsed = time.perf_counter() - started
    assert entry.outcome == "ok", entry.error
    assert 0.3 <= elapsed < 0.55, elapsed  # overlapping, not 0.6 s one after the other
    starts = [e[2] for e in effects.events if e[0] == "start"]
    dones = [e[2] for e in effects.events if e[0] == "done"]
    assert max(starts) < min(dones)  # the second wait began before the first ended
    assert sorted(effects.logs[:2]) == ["one", "two"] and effects.logs[2] == "both done"
    assert [s[2] for s in entry.steps if s[0] == "parallel"] == [{"branches": 2}, {"branch": 1}, {"branch": 2}]


async def test_a_failing_branch_cancels_the_others_and_fails_the_run_at_its_line():
    started = time.perf_counter()
    entry, effects = await run("""\
on:
  data_received:
    - parallel:
        - [{wait: 0.05}, {http: {url: "https://example.com/x"}}]
        - [{wait: 2}, {log: late}]
    - log: never
""")
    assert time.perf_counter() - started < 1
    assert entry.outcome == "error" and entry.action == "http" and entry.line == 7
    assert "the server said 503" in entry.error
    assert ("cancelled", 2) in effects.events and effects.logs == []


async def test_a_stop_in_a_branch_stops_the_whole_run_quietly():
    entry, effects = await run("""\
on:
  data_received:
    - parallel:
        - [{stop: enough}]
        - [{wait: 2}, {log: late}]
    - log: never
""")
    assert entry.outcome == "ok" and entry.note == "stop: enough"
    assert ("cancelled", 2) in effects.events and effects.logs == []


async def test_end_in_a_branch_cancels_every_branch():
    entry, effects = await run("""\
on:
  data_received:
    - parallel:
        - [{wait: 0.05}, {end: {}}]
        - [{wait: 2}, {log: late}]
        - [{repeat: {count: 5, do: [{wait: 1}]}}]
""")
    assert entry.outcome == "cancelled"
    assert ("end",) in effects.events and ("cancelled", 2) in effects.events and ("cancelled", 1) in effects.events
    assert effects.logs == []


async def test_branches_keep_their_own_loop_and_action():
    entry, effects = await run("""\
on:
  data_received:
    - parallel:
        - [{repeat: {for_each: [a, b], do: [{wait: 0.02}, {log: "{{ repeat.item }}"}]}}]
        - [{repeat: {for_each: [x, y, z], do: [{wait: 0.015}, {log: "{{ repeat.item }}"}]}}]
""")
    assert entry.outcome == "ok", entry.error
    assert sorted(effects.logs) == ["a", "b", "x", "y", "z"]
    assert [x for x in effects.logs if x in "ab"] == ["a", "b"]


# --- stop ----------------------------------------------------------------------------------------

async def test_stop_ends_the_run_quietly():
    entry, effects = await run('on:\n  data_received:\n    - log: before\n    - stop: "nothing to do"\n'
                               '    - log: after\n')
    assert entry.outcome == "ok" and entry.error is None and entry.note == "stop: nothing to do"
    assert effects.logs == ["before"]


async def test_stop_with_error_is_a_failure_with_the_reason():
    entry, effects = await run('on:\n  data_received:\n    - stop: {reason: "no account for {{ data }}", error: true}\n'
                               '    - log: after\n', payload=b"42")
    assert entry.outcome == "error" and entry.action == "stop" and entry.line == 6
    assert entry.message == "no account for 42" and effects.logs == []


class _Bot:
    def __init__(self, text: str):
        self.spec = spec_of(text)
        self.state, self.trace, self.idle, self.effects = SessionState(), Trace(), IdleClock(), Recorder()

    def participants(self):
        return ["alice"]


@pytest.mark.parametrize("error, fired", [("false", False), ("true", True)])
async def test_only_stop_with_error_fires_the_error_event(error, fired):
    bot = _Bot(f"""\
on:
  data_received:
    - stop: {{reason: "gave up", error: {error}}}
  error:
    - log: "error event: {{{{ error.message }}}}"
""")
    dispatcher = Dispatcher(bot)
    dispatcher.fire("data_received", "alice", payload=b"x")
    for _ in range(100):
        await asyncio.sleep(0.01)
        if bot.effects.logs or (not fired and len(bot.trace.entries) >= 1):
            break
    await asyncio.sleep(0.05)
    if fired:
        assert len(bot.effects.logs) == 1 and "gave up" in bot.effects.logs[0]
        assert "bot.yaml:6:7: error in action 'stop'" in bot.effects.logs[0]
    else:
        assert bot.effects.logs == []
    await dispatcher.stop()


# --- variables -----------------------------------------------------------------------------------

async def test_variables_are_rendered_in_order_and_seen_by_later_actions():
    entry, effects = await run("""\
on:
  data_received:
    - variables: {tries: 1, next: "{{ tries + 1 }}", who: "{{ participant.id }}", items: [1, "{{ data }}"]}
    - log: "{{ tries }} {{ next }} {{ who }} {{ items }}"
    - if: "{{ next == 2 }}"
      then:
        - variables: {tries: "{{ tries + 10 }}"}
    - log: "{{ tries }}"
""", payload=b"two")
    assert entry.outcome == "ok", entry.error
    assert effects.logs == ["1 2 alice [1, 'two']", "11"]
    assert entry.steps[0][2] == {"tries": 1, "next": 2, "who": "alice", "items": [1, "two"]}


def test_variables_may_not_hide_a_builtin_or_event_variable():
    assert errors("on:\n  data_received:\n    - variables: {state: 1, data: 2, fine: 3}\n") == [
        "6:19: 'state' is already a variable here: a 'variables' entry cannot hide it",
        "6:29: 'data' is already a variable here: a 'variables' entry cannot hide it"]


def test_variables_are_checked_like_every_other_name():
    assert errors('on:\n  data_received:\n    - log: "{{ score }}"\n    - variables: {score: 0}\n'
                  '    - log: "{{ scor }}"\n') == [
        "6:16: unknown variable 'score'", "8:16: unknown variable 'scor' (did you mean 'score'?)"]


# --- run and scripts: ----------------------------------------------------------------------------

SCRIPTS = """\
scripts:
  answer:
    description: reply the same way on data and chat
    fields:
      who: {required: true}
      text: {default: "{{ vars.greeting }}"}
      mood: {}
    do:
      - variables: {line: "{{ text }}, {{ who }} ({{ mood }})"}
      - log: "{{ line }}"
vars: {greeting: Hello}
on:
  data_received:
    - variables: {line: outer}
    - run: {script: answer, with: {who: "{{ participant.id }}", mood: "{{ data }}"}}
    - log: "{{ line }}"
  chat_received:
    - run: {script: answer, with: {who: "{{ participant.id }}", text: "{{ text }}"}}
"""


async def test_run_passes_fields_with_defaults_and_keeps_the_callers_variables():
    entry, effects = await run(SCRIPTS, payload=b"happy")
    assert entry.outcome == "ok", entry.error
    assert effects.logs == ["Hello, alice (happy)", "outer"]  # the script's own `line`, then the caller's
    assert ["run", 18, {"script": "answer", "with": {"who": "alice", "mood": "happy"}}] == entry.steps[1][:3]
    spec = spec_of(SCRIPTS)
    assert set(spec.scripts) == {"answer"} and spec.scripts["answer"].fields["who"].required


async def test_the_same_script_serves_chat():
    spec = spec_of(SCRIPTS)
    effects = Recorder()
    variables = event_variables("chat_received", "alice", text="Hi there")
    entry = await Run(spec, SessionState(), effects, "chat_received", variables, "alice").execute(
        spec.on["chat_received"].actions)
    assert entry.outcome == "ok", entry.error
    assert effects.logs == ["Hi there, alice ()"]  # a field not given is null


def test_run_checks_the_script_its_fields_and_cycles():
    problems = errors("""\
scripts:
  greet:
    fields: {who: {required: true}}
    do: [{run: again}]
  again:
    do: [{run: greet, continue_on_error: true}]
on:
  data_received:
    - run: gret
    - run: {script: greet, with: {who: x, hwo: y}}
    - run: greet
""")
    assert problems == [
        "9:16: script 'greet' needs the field 'who'",
        "9:16: script 'greet' runs itself: greet -> again -> greet",
        "12:12: unknown script 'gret' (did you mean 'greet'?)",
        "13:43: script 'greet' has no field 'hwo' (did you mean 'who'?)",
        "14:12: script 'greet' needs the field 'who'"]


def test_scripts_appear_in_the_editor_schema():
    from runner.botfile import schema
    built = schema.build()
    assert "scripts" in built["properties"]
    assert {"repeat", "parallel", "stop", "variables", "run"} <= set(built["$defs"]["actions"])
    assert "continue_on_error" in built["$defs"]["action"]["propertyNames"]["enum"]
    assert "x-lkrun-exactly-one" not in json.dumps(built)
    validator = jsonschema.Draft202012Validator(built)
    good = load_text(HEAD + SCRIPTS + "    - repeat: {count: 2, do: [{log: x}]}\n      continue_on_error: true\n"
                     "    - parallel: [[{log: a}], [{stop: done}]]\n", "bot.yaml").data
    assert list(validator.iter_errors(good)) == []
    two_kinds = load_text(HEAD + "on:\n  connected:\n    - repeat: {count: 2, until: '{{ true }}', do: []}\n",
                          "bot.yaml").data
    assert list(validator.iter_errors(two_kinds))


# --- continue_on_error ---------------------------------------------------------------------------

async def test_continue_on_error_logs_the_failure_and_goes_on():
    entry, effects = await run("""\
on:
  data_received:
    - http: {url: "https://example.com/x"}
      continue_on_error: true
    - log: "{{ 1 / 0 }}"
      continue_on_error: true
    - repeat:
        count: 2
        do: [{log: "{{ repeat.index }}"}, {stop: {reason: inner, error: true}}]
      continue_on_error: true
    - log: still here
    - http: {url: "https://example.com/y"}
    - log: never
""")
    assert entry.outcome == "error" and entry.line == 15  # the last http has no continue_on_error
    failures = [m for m in effects.logs if "continue_on_error" in m]
    assert len(failures) == 3 and "bot.yaml:6:7: error in action 'http': the server said 503" in failures[0]
    assert "bot.yaml:12:43: error in action 'stop': inner" in failures[2]  # a nested failure ends the repeat
    assert [m for m in effects.logs if "continue_on_error" not in m] == ["1", "still here"]
    continued = [s for s in entry.steps if s[2].get("continued")]
    assert [s[0] for s in continued] == ["http", "log", "repeat"]


async def test_continue_on_error_does_not_swallow_a_stop():
    entry, effects = await run("on:\n  data_received:\n    - stop: done\n      continue_on_error: true\n"
                               "    - log: after\n")
    assert entry.outcome == "ok" and entry.note == "stop: done" and effects.logs == []

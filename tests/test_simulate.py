"""``lkrun simulate``: an event's actions run without a room, printing what would happen."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from runner.botfile.check import check_document, check_file
from runner.cli import main
from runner.runtime.state import SessionState
from runner.runtime.simulate import PrintEffects, simulate
from runner.botfile.yamlsafe import load_text

ROOT = Path(__file__).resolve().parent.parent
GREETER = ROOT / "tests" / "fixtures" / "valid" / "greeter.yaml"


def spec_of(text: str, file: str = "bot.yaml"):
    return check_document(load_text(text, file), environ={}, dotenv={})


class Quiet(PrintEffects):
    """PrintEffects that only records (no click output) so tests read .lines."""

    def _emit(self, line: str, err: bool = False) -> None:
        pass


async def run(spec, event, **kw) -> list[str]:
    effects = Quiet(spec.secrets)
    await simulate(spec, event, effects=effects, **kw)
    return effects.lines


HEAD = "version: 1\nname: sim\nlivekit: {room: lobby}\n"


@pytest.mark.parametrize("name", ["{{ 7*7 }}", "{% for x in range(3) %}x{% endfor %}", "{{ cycler.__init__ }}",
                                  "${HOME}", "$${X}", "<b>&amp;</b>", ""])
async def test_participant_names_render_literally(name):
    lines = await run(check_file(GREETER, environ={}), "participant_connected", participant="alice", name=name)
    shown = name or "alice"
    assert lines[:2] == [f'send to alice: {{"text": "Welcome, {shown}!"}}', f"say: Welcome, {shown}!"]


def test_simulate_cli_renders_a_template_name_literally():
    result = CliRunner().invoke(main, ["simulate", str(GREETER), "participant_connected", "--name", "{{ 7*7 }}"])
    assert result.exit_code == 0
    assert "say: Welcome, {{ 7*7 }}!" in result.stdout and "49" not in result.stdout


CONTROL = HEAD + """\
vars: {pause: 0.01, limit: 2}
on:
  data_received:
    - set: {values: {count: "{{ (state.count or 0) + 1 }}"}}
    - set: {scope: participant, values: {last: "{{ data }}"}}
    - wait: "{{ vars.pause * 2 }}"
    - if: "{{ state.count >= vars.limit }}"
      then:
        - send: {to: "{{ participant.id }}", data: {count: "{{ state.count }}", last: "{{ participant.state.last }}"}}
      else:
        - log: "count is {{ state.count }}"
    - choose:
        - when: "{{ message.kind == 'a' }}"
          do: [{chat: branch a}]
        - when: "{{ data == 'b' }}"
          do: [{chat: branch b}]
      default:
        - chat: {text: "default for {{ data }}", to: ["{{ participant.id }}", bob]}
"""


async def test_if_choose_set_and_wait_with_templated_numbers():
    spec, state = spec_of(CONTROL), SessionState()
    first = await run(spec, "data_received", participant="alice", data='{"kind": "a"}', state=state)
    assert first == ["set: state.count = 1", 'set: participant.state.last = "{\\"kind\\": \\"a\\"}" (alice)',
                     "wait: 0.02 s (simulate does not wait)", "log (info): count is 1", "chat to everyone: branch a"]
    assert state.room == {"count": 1} and state.participants["alice"] == {"last": '{"kind": "a"}'}
    second = await run(spec, "data_received", participant="alice", data="b", state=state)
    assert second[3:] == ['send to alice: {"count": 2, "last": "b"}', "chat to everyone: branch b"]
    third = await run(spec, "data_received", participant="carol", data="zzz", state=state)
    assert third[:2] == ["set: state.count = 3", 'set: participant.state.last = "zzz" (carol)']
    assert third[3:] == ['send to carol: {"count": 3, "last": "zzz"}', "chat to carol, bob: default for zzz"]
    assert isinstance(state.room["count"], int)


@pytest.mark.parametrize("data", ["not json", "[1, 2]", "42", '"text"', "", "{broken", '{"a": {"b": 1}}'])
async def test_data_received_with_any_payload(data):
    spec = spec_of(HEAD + "on:\n  data_received:\n"
                          "    - log: \"{{ message is mapping }}|{{ message.text is none }}|"
                          "{{ message.text }}|{{ data }}\"\n")
    (line,) = await run(spec, "data_received", participant="alice", data=data)
    assert line == f"log (info): True|True||{data}"


async def test_data_received_json_object_gives_message_fields():
    spec = spec_of(HEAD + "on:\n  data_received:\n    - log: \"{{ message.text }} {{ message.missing.deeper }}\"\n")
    (line,) = await run(spec, "data_received", participant="alice", data='{"text": "ping"}')
    assert line == "log (info): ping "


async def test_a_lone_expression_keeps_its_type():
    spec = spec_of(HEAD + "vars: {n: 3}\non:\n  connected:\n"
                          "    - send: {data: {n: \"{{ vars.n }}\", s: \"n={{ vars.n }}\", f: \"{{ 1 == 2 }}\"}}\n")
    assert await run(spec, "connected") == ['send to everyone: {"n": 3, "s": "n=3", "f": false}']


FAILING = HEAD + """\
vars: {pause: soon}
on:
  connected:
    - log: before
    - wait: "{{ vars.pause }}"
    - log: never
  data_received:
    - log: "{{ message.text.upper() }}"
"""


async def test_an_action_failure_prints_error_with_file_and_line():
    lines = await run(spec_of(FAILING, "bots/failing.yaml"), "connected")
    assert lines[0] == "log (info): before"
    assert lines[1].startswith("bots/failing.yaml:8:7: error in action 'wait': ")
    assert "never" not in "".join(lines)
    (line,) = await run(spec_of(FAILING, "bots/failing.yaml"), "data_received", participant="a", data="x")
    assert line.startswith("bots/failing.yaml:11:7: error in action 'log': ")


def test_simulate_cli_exit_code_on_failure(tmp_path):
    bot = tmp_path / "failing.yaml"
    bot.write_text(FAILING)
    result = CliRunner().invoke(main, ["simulate", str(bot), "connected"])
    assert result.exit_code == 1
    assert result.stdout == "log (info): before\n"
    assert result.stderr.startswith(f"{bot}:8:7: error in action 'wait': wait needs a number of seconds")
    with_handler = tmp_path / "handled.yaml"
    with_handler.write_text(FAILING + "  error:\n    - log: \"{{ error.message }}\"\n")
    result = CliRunner().invoke(main, ["simulate", str(with_handler), "connected"])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[1] == (f"in a room, 'error' runs next: lkrun simulate {with_handler} error "
                                             "--var error.message=...")


async def test_user_said_first_match_wins_and_groups():
    spec = spec_of(HEAD + "pipeline:\n  - stt: whisper_stt\non:\n  user_said:\n"
                          "    - match: \"(?i)order (\\\\d+)\"\n"
                          "      do: [{log: \"order {{ groups[0] }} for {{ text }}\"}]\n"
                          "    - match: order\n      do: [{log: never}]\n")
    assert await run(spec, "user_said", participant="a", text="Order 42 please") == [
        "log (info): order 42 for Order 42 please"]
    assert await run(spec, "user_said", participant="a", text="nothing") == [
        "no actions ran: no user_said pattern matched 'nothing' (the bot has no llm stage, so nothing answers)"]
    assert await run(spec, "user_said", participant="a") == [
        "no actions ran: no user_said pattern matched '' (give the words with --text)"]


async def test_http_is_described_not_sent():
    spec = spec_of(HEAD + "on:\n  data_received:\n"
                          "    - http: {url: \"https://example.com/items/{{ data }}\", method: POST, json: {a: 1}, "
                          "save_as: r}\n    - log: \"status {{ results.r.status }}\"\n")
    assert await run(spec, "data_received", participant="a", data="a b") == [
        'http POST https://example.com/items/a%20b json={"a": 1} (not sent)', "log (info): status 0"]
    line = (await run(spec, "data_received", participant="a", data="@evil.example.com/x"))[0]
    assert line.startswith("http POST https://example.com/items/")  # the host never comes from data


async def test_dtmf_event_digit():
    spec = spec_of(HEAD + "on:\n  dtmf_event:\n    - choose:\n        - when: \"{{ digit == '1' }}\"\n"
                          "          do: [{dtmf: \"1#\"}]\n      default: [{end: {now: true}}]\n")
    assert await run(spec, "dtmf_event", participant="sip", digit="1") == ["dtmf: 1#"]
    assert await run(spec, "dtmf_event", participant="sip", digit="9") == ["end now"]
    assert await run(spec, "dtmf_event", participant="sip", data="1") == ["dtmf: 1#"]  # the old spelling


# ---- the CLI: every event variable can be set, and every path says what happened ------------------

def sim(*args: str):
    return CliRunner().invoke(main, ["simulate", *args])


def bot_file(tmp_path, on: str):
    path = tmp_path / "bot.yaml"
    path.write_text(HEAD + "on:\n" + on)
    return str(path)


@pytest.mark.parametrize("args", [["--text", "ping"], ["--data", "ping"], ["--data", '{"text": "ping"}'],
                                  ["--text", '{"text": "ping"}']])
def test_greeter_answers_ping_from_text_or_data(args):
    result = sim(str(ROOT / "bots" / "greeter.yaml"), "data_received", *args)
    assert (result.exit_code, result.stdout, result.stderr) == (0, 'send to alice: {"text": "pong"}\n', "")


def test_a_run_with_no_output_says_so():
    result = sim(str(ROOT / "bots" / "greeter.yaml"), "data_received", "--text", "hello")
    assert (result.exit_code, result.stdout) == (0, "ran 2 actions (run at line 31, if at line 49), nothing to show\n")


def test_missing_event_fields_read_as_null(tmp_path):
    bot = bot_file(tmp_path,
                   "  data_received:\n    - log: \"{{ data is none }}|{{ message == {} }}|{{ message.text is none }}\"\n"
                   "  participant_left:\n    - log: \"{{ reason is none }}|{{ participant.name is none }}\"\n"
                   "  error:\n    - log: \"{{ error.message is none }}|{{ error.line is none }}\"\n")
    assert sim(bot, "data_received").stdout == "log (info): True|True|True\n"
    assert sim(bot, "participant_left").stdout == "log (info): True|True\n"
    assert sim(bot, "error").stdout == "log (info): True|True\n"


def test_var_sets_any_event_variable(tmp_path):
    bot = bot_file(tmp_path,
                   "  participant_left:\n    - log: \"{{ participant.id }} {{ reason }}\"\n"
                   "  error:\n    - log: \"{{ error.message }} at {{ error.line + 1 }} ({{ error.action }})\"\n"
                   "  app_message:\n    - log: \"{{ message.user.name }} {{ message.n * 2 }}\"\n")
    assert sim(bot, "participant_left", "--var", "reason=CLIENT_INITIATED").stdout == \
        "log (info): alice CLIENT_INITIATED\n"
    assert sim(bot, "error", "--var", "error.message=boom", "--var", "error.line=12").stdout == \
        "log (info): boom at 13 ()\n"  # 12 parsed as JSON: a number
    assert sim(bot, "app_message", "--var", "message.user.name=Ada", "--var", "message.n=21").stdout == \
        "log (info): Ada 42\n"
    assert sim(bot, "participant_left", "--var", "participant.id=bob").stdout == "log (info): bob \n"


@pytest.mark.parametrize("var, message", [
    ("reasn=x", "error: --var reasn: 'participant_left' has no variable 'reasn' (did you mean 'reason'?) "
                "(its variables: participant, reason)"),
    ("state.count=1", "error: --var state.count: 'state' is not an event variable; it comes from --state"),
    ("participant.state.n=1", "error: --var participant.state.n: 'participant' is not an event variable; "
                              "it comes from --participant-state"),
    ("reason", "error: --var needs NAME=VALUE, got 'reason'"),
])
def test_var_mistakes_are_one_clear_line(tmp_path, var, message):
    bot = bot_file(tmp_path, "  participant_left:\n    - log: never\n")
    result = sim(bot, "participant_left", "--var", var)
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", message + "\n")


def test_digit_state_and_participant_state(tmp_path):
    bot = bot_file(tmp_path, "  dtmf_event:\n    - log: \"{{ digit == '5' }} {{ state.count + 1 }} "
                             "{{ participant.state.tries }}\"\n")
    result = sim(bot, "dtmf_event", "--digit", "5", "--state", '{"count": 2}', "--participant-state", '{"tries": 1}')
    assert (result.exit_code, result.stdout) == (0, "log (info): True 3 1\n")
    bad = sim(bot, "dtmf_event", "--state", "[1]")
    assert bad.exit_code == 2
    assert bad.stderr == "error: --state needs a JSON object such as '{\"count\": 2}', got '[1]'\n"
    unused = sim(bot, "dtmf_event", "--text", "5")
    assert unused.stderr.splitlines()[0] == "note: 'dtmf_event' does not use --text; ignored"


@pytest.mark.parametrize("event", ["participant_left", "participant_disconnected"])
def test_the_leaving_person_is_not_in_the_room(tmp_path, event):
    bot = bot_file(tmp_path, f"  {event}:\n    - log: \"{{{{ room.participants }}}}\"\n"
                             "    - if: \"{{ room.participants | length == 0 }}\"\n      then: [{end: {}}]\n")
    assert sim(bot, event).stdout == "log (info): []\nend (after queued speech)\n"
    assert sim(bot, event, "--others", "bob,carol").stdout == "log (info): ['bob', 'carol']\n"


def test_greeter_ends_when_the_only_person_leaves():
    greeter = str(ROOT / "bots" / "greeter.yaml")
    assert sim(greeter, "participant_left").stdout == "end (after queued speech)\n"
    assert sim(greeter, "participant_left", "--others", "bob").stdout == \
        "ran 1 action (if at line 39), nothing to show\n"


def test_others_are_in_the_room_for_other_events(tmp_path):
    bot = bot_file(tmp_path, "  participant_connected:\n    - log: \"{{ room.participants }}\"\n")
    assert sim(bot, "participant_connected", "--others", "bob").stdout == "log (info): ['alice', 'bob']\n"


IDLE = """\
  idle:
    - after: 30
      do: [{end: {}}]
    - after: 10
      do: [{set: {values: {nudged: true}}}, {say: "Are you still there?"}]
    - after: 20
      do:
        - if: "{{ state.nudged and not state.answered }}"
          then: [{log: nudged once}]
  timer:
    - every: 5
      do: [{log: "tick {{ state.n }}"}]
    - after: 2
      do: [{wait: "{{ state.pause }}"}]
    - after: 1
      every: 60
      do: [{log: late}]
"""


def test_idle_steps_run_in_order_each_labelled(tmp_path):
    bot = bot_file(tmp_path, IDLE)
    (tmp_path / "bot.yaml").write_text(HEAD + "pipeline:\n  - tts: espeak_tts\non:\n" + IDLE)  # say needs tts
    result = sim(bot, "idle")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "after 10 s:", "  set: state.nudged = true", "  say: Are you still there?",
        "after 20 s:", "  log (info): nudged once",
        "after 30 s:", "  end (after queued speech)"]


def test_timer_steps_are_labelled_and_a_failing_step_does_not_stop_the_others(tmp_path):
    bot = bot_file(tmp_path, IDLE.replace('say: "Are you still there?"', "log: hi"))
    result = sim(bot, "timer", "--state", '{"n": 7}')
    assert result.exit_code == 1
    assert result.stdout.splitlines() == ["every 5 s:", "  log (info): tick 7", "after 2 s (once):",
                                          "after 1 s, then every 60 s:", "  log (info): late"]
    assert result.stderr.startswith(f"{bot}:18:12: error in action 'wait': ")



def test_simulate_node_entered_shows_the_node_rendered_after_its_on_enter(monkeypatch):
    """`lkrun simulate BOT node_entered --node NAME`: on_enter runs first (its http is not sent), then
    the node's messages are rendered from the state it left, with the functions the LLM is offered."""
    from click.testing import CliRunner
    from runner.cli import main
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real")
    state = '{"name": "Ada", "birthday": "1990-01-02", "reason": "a cough", "urgent": true}'
    result = CliRunner().invoke(main, ["simulate", "examples/clinic_intake.yaml", "node_entered", "--node", "book",
                                       "--state", state])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[:3] == ["book.on_enter:", "  http GET http://127.0.0.1:8099/slots?urgent=true (not sent)",
                         '  set: state.slot = "tomorrow at nine"']
    assert "  developer: The caller is Ada, born 1990-01-02, calling about a cough. Offer the slot tomorrow " \
           "at nine and ask whether it suits them." in lines
    assert "  function confirm_slot() -> goodbye" in lines
    wrong = CliRunner().invoke(main, ["simulate", "examples/clinic_intake.yaml", "node_entered", "--node", "bok"])
    assert wrong.exit_code == 2 and "did you mean 'book'" in wrong.output

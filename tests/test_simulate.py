"""``lkrun simulate``: an event's actions run without a room, printing what would happen."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from runner.check import check_document, check_file
from runner.cli import main
from runner.engine import SessionState
from runner.simulate import PrintEffects, simulate
from runner.yamlsafe import load_text

ROOT = Path(__file__).resolve().parent.parent
GREETER = ROOT / "tests" / "fixtures" / "valid" / "greeter.yaml"


def spec_of(text: str, file: str = "bot.yaml"):
    return check_document(load_text(text, file), environ={}, dotenv={})


class Quiet(PrintEffects):
    """PrintEffects that only records (no click output) so tests read .lines."""

    def _out(self, text: str) -> None:
        from runner.env import mask
        self.lines.append(mask(text, self.secrets))


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
    assert first == ["log (info): count is 1", "chat to everyone: branch a"]
    assert state.room == {"count": 1} and state.participants["alice"] == {"last": '{"kind": "a"}'}
    second = await run(spec, "data_received", participant="alice", data="b", state=state)
    assert second == ['send to alice: {"count": 2, "last": "b"}', "chat to everyone: branch b"]
    third = await run(spec, "data_received", participant="carol", data="zzz", state=state)
    assert third == ['send to carol: {"count": 3, "last": "zzz"}', "chat to carol, bob: default for zzz"]
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
    assert lines[1].startswith("error: bots/failing.yaml:8:7: error in action 'wait': ")
    assert "never" not in "".join(lines)
    (line,) = await run(spec_of(FAILING, "bots/failing.yaml"), "data_received", participant="a", data="x")
    assert line.startswith("error: bots/failing.yaml:11:7: error in action 'log': ")


def test_simulate_cli_exit_code_on_failure(tmp_path):
    bot = tmp_path / "failing.yaml"
    bot.write_text(FAILING)
    result = CliRunner().invoke(main, ["simulate", str(bot), "connected"])
    assert result.exit_code == 1
    assert f"error: {bot}:8:7: error in action 'wait'" in result.stdout


async def test_user_said_first_match_wins_and_groups():
    spec = spec_of(HEAD + "pipeline:\n  - stt: whisper_stt\non:\n  user_said:\n"
                          "    - match: \"(?i)order (\\\\d+)\"\n"
                          "      do: [{log: \"order {{ groups[0] }} for {{ text }}\"}]\n"
                          "    - match: order\n      do: [{log: never}]\n")
    assert await run(spec, "user_said", participant="a", text="Order 42 please") == [
        "log (info): order 42 for Order 42 please"]
    assert await run(spec, "user_said", participant="a", text="nothing") == [
        "no user_said pattern matched 'nothing': the turn goes to the LLM"]


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
    assert await run(spec, "dtmf_event", participant="sip", data="1") == ["dtmf: 1#"]
    assert await run(spec, "dtmf_event", participant="sip", data="9") == ["end now"]

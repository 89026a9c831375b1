"""Static checks of waiting (issue 15) and what an action's registry check receives.

The misuse fixtures (tests/fixtures/invalid/wait_*.yaml) show each error with its exact line; here:
the same rules do not fire where the code is right, and ``ActionDef.check`` gets the file and the
bot's capabilities as an argument (nothing is looked up on the call stack)."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from runner.botfile import actions_call, check_actions
from runner.botfile.actions import ACTIONS
from runner.botfile.check import check_document
from runner.botfile.errors import ConfigError
from runner.botfile.registry import CheckContext
from runner.botfile.yamlsafe import load_text

HEAD = "version: 1\nname: w\nlivekit: {room: r, identity: w}\n"
VOICE = "pipeline:\n  - stt: {type: whisper_stt}\n  - tts: {type: piper_tts}\n"


def errors(text: str, head: str = HEAD) -> list[str]:
    try:
        check_document(load_text(head + text, "bot.yaml"), environ={"TOKEN": "t"}, dotenv={})
    except ConfigError as exc:
        return [p.render().splitlines()[0] for p in exc.problems if p.severity == "error"]
    return []


@pytest.mark.parametrize("text", [
    # wait.digit after collect_digits, after a wait_for that includes dtmf_event, after either branch
    "on:\n  data_received:\n    - collect_digits: {count: 2, save_as: code}\n"
    "    - send: {data: \"{{ wait.digit }}\"}\n",
    "on:\n  data_received:\n    - wait_for: {any: [{event: chat_received}, {event: dtmf_event}], timeout: 5}\n"
    "    - if: \"{{ wait.digit == '1' }}\"\n      then: [{send: {data: one}}]\n",
    # in a loop, the wait later in the body fills wait.digit for the next time round
    "on:\n  data_received:\n    - repeat:\n        count: 3\n        do:\n"
    "          - if: \"{{ wait.digit == '1' }}\"\n            then: [{stop: done}]\n"
    "          - wait_for: {event: dtmf_event, timeout: 5, continue_on_timeout: true}\n",
    # a script that waits for a digit, run first
    "scripts:\n  ask:\n    do:\n      - wait_for: {event: dtmf_event, timeout: 5}\n"
    "on:\n  data_received:\n    - run: ask\n    - send: {data: \"{{ wait.digit }}\"}\n",
    # inside a script: its caller may have waited (not known, not checked)
    "scripts:\n  answer:\n    do:\n      - send: {data: \"{{ wait.digit }}\"}\n"
    "on:\n  data_received:\n    - wait_for: {event: dtmf_event, timeout: 5}\n    - run: answer\n",
    # a timer's run belongs to nobody: waiting for anyone to leave is fine there
    "on:\n  timer:\n    - every: 10\n      do:\n        - wait_for: {event: participant_left, timeout: 5}\n",
    # someone else's leaving
    "on:\n  data_received:\n    - wait_for: {event: participant_left, from: bob, timeout: 5}\n",
])
def test_right_uses_of_waiting_are_not_reported(text):
    assert errors(text) == []


def test_user_said_wait_is_fine_with_an_stt_stage():
    assert errors(VOICE + "on:\n  participant_connected:\n    - say: Yes or no?\n"
                          "    - wait_for: {event: user_said, timeout: 5}\n") == []
    (line,) = errors("pipeline:\n  - tts: {type: piper_tts}\non:\n  participant_connected:\n"
                     "    - wait_for: {event: user_said, timeout: 5}\n")
    assert line.startswith("bot.yaml:8:25: error: wait_for 'user_said' needs an stt stage in this bot")


def test_wait_digit_is_checked_in_branches_after_the_condition_not_before():
    """The condition of an `if` is read before its branches run: a wait inside them does not count."""
    (line,) = errors("on:\n  data_received:\n    - if: \"{{ wait.digit == '1' }}\"\n"
                     "      then:\n        - wait_for: {event: dtmf_event, timeout: 5}\n"
                     "        - send: {data: \"{{ wait.digit }}\"}\n")
    assert line == ("bot.yaml:6:11: error: 'wait.digit' is always empty here: no wait before it in this run "
                    "can receive a digit")


def test_a_registry_check_receives_the_file_and_the_capabilities():
    seen: list[CheckContext] = []
    entry = ACTIONS["log"]
    ACTIONS._entries["log"] = dataclasses.replace(entry, check=lambda body, report, context: seen.append(context))
    try:
        assert errors(VOICE + "on:\n  participant_connected:\n    - log: hi\n"
                              "  timer:\n    - every: 5\n      do: [{log: tick}]\n") == []
    finally:
        ACTIONS._entries["log"] = entry
    joined, timer = seen
    assert joined.file["name"] == "w" and joined.file["livekit"] == {"room": "r", "identity": "w"}
    assert joined.capabilities >= {"stt", "tts"} and "llm" not in joined.capabilities
    assert (joined.event, joined.person) == ("participant_connected", True)
    assert (timer.event, timer.person) == ("timer", False)


def test_nothing_is_found_on_the_call_stack_any_more():
    """The token-only rule reads the file from its argument (tests/fixtures/invalid/call_token_only_*.yaml
    show it still fires), and `end` carries its check from its own registration."""
    assert "_getframe" not in inspect.getsource(actions_call) and "_getframe" not in inspect.getsource(check_actions)
    from runner.testing import recorder
    assert "_getframe" not in inspect.getsource(recorder)
    assert ACTIONS["end"].check is not None
    (line,) = errors("version: 1\nlivekit: {room: r, identity: w, token: \"${TOKEN}\"}\n"
                     "on:\n  data_received:\n    - end: {hangup: true}\n", head="")
    assert "needs the LiveKit API key and secret, but this bot has only livekit.token" in line


def test_collect_digits_leaves_its_digits_in_wait_digit(tmp_path):
    """At run time (the real engine, offline): wait.digit after collect_digits is what was entered."""
    from click.testing import CliRunner

    from runner.cli import main
    (tmp_path / "bot.yaml").write_text(HEAD + "on:\n  participant_connected:\n"
                                       "    - collect_digits: {terminator: \"#\", save_as: code}\n"
                                       "    - send: {data: \"{{ wait.digit }}/{{ wait.timed_out }}\"}\n")
    (tmp_path / "bot.test.yaml").write_text(
        "bot: bot.yaml\ncases:\n  - name: digits\n    steps:\n      - join: ada\n"
        "      - press: {from: ada, digits: \"42#\"}\n      - expect: {send: {data: \"42/False\"}}\n"
        "  - name: nothing\n    steps:\n      - join: ada\n      - wait: 6\n"
        "      - expect: {send: {data: \"/True\"}}\n")
    result = CliRunner().invoke(main, ["test", str(tmp_path / "bot.test.yaml")])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "2 passed, 0 failed"

"""`lkrun test` offline: the committed tests pass, virtual time, failures that point at both files,
JUnit/JSON output, exit codes, and no pipecat for a data bot."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from click.testing import CliRunner

from runner.cli import main

ROOT = Path(__file__).resolve().parent.parent
DATA_BOT = """\
version: 1
livekit: {room: lobby, identity: tester}
on:
  participant_connected:
    - send: {to: "{{ participant.id }}", data: {hello: "{{ participant.name }}"}}
  data_received:
    - if: "{{ data == 'slow' }}"
      then:
        - wait: 30
        - send: {data: done}
      else:
        - send: {to: "{{ participant.id }}", data: "echo {{ data }}"}
  timer:
    - every: 60
      do: [{set: {values: {ticks: "{{ (state.ticks or 0) + 1 }}"}}}]
  idle:
    - after: 20
      do: [{chat: "anyone there?"}]
"""


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def write(folder: Path, cases: str, bot: str = DATA_BOT) -> Path:
    (folder / "bot.yaml").write_text(bot)
    path = folder / "bot.test.yaml"
    path.write_text("bot: bot.yaml\ncases:\n" + textwrap.indent(textwrap.dedent(cases), "  "))
    return path


def test_the_committed_bots_and_examples_pass(monkeypatch):
    monkeypatch.chdir(ROOT)
    result = invoke("test", "bots/", "examples/")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[-1].endswith(" passed, 0 failed") and int(lines[-1].split()[0]) >= 25
    assert all(line.startswith(("  PASS ", "bots/", "examples/")) for line in lines[:-1])


def test_virtual_time_makes_long_waits_instant(tmp_path):
    path = write(tmp_path, """\
        - name: an hour of timers and a slow reply
          steps:
            - join: {id: ada, name: Ada}
            - expect: {send: {to: ada, data: {hello: Ada}}}
            - send: {from: ada, data: slow}
            - expect: {no: [send], timeout: 29}
            - expect: {send: {to: everyone, data: done}, timeout: 2}
            - wait: 3570
            - expect: {state: {room: {ticks: 60}}}
        """)
    started = time.perf_counter()
    result = invoke("test", str(path))
    assert result.exit_code == 0, result.output
    assert time.perf_counter() - started < 5


def test_idle_counts_only_with_someone_in_the_room_and_starts_over(tmp_path):
    path = write(tmp_path, """\
        - name: idle
          steps:
            - wait: 100
            - expect: {no: [chat]}
            - join: ada
            - wait: 19
            - send: {from: ada, data: hi}
            - wait: 19
            - expect: {no: [chat]}
            - wait: 1
            - expect: {chat: "anyone there?", timeout: 0}
            - wait: 100
            - expect: {no: [chat]}
        """)
    result = invoke("test", str(path))
    assert result.exit_code == 0, result.output


def test_rate_limits_use_the_virtual_clock(tmp_path):
    steps = "".join(f"      - send: {{from: ada, data: m{i}}}\n      - wait: 1\n" for i in range(40))
    path = write(tmp_path, "- name: forty messages a second apart\n  steps:\n      - join: ada\n" + steps +
                 "      - expect: {send: {data: echo m39}}\n")
    result = invoke("test", str(path))
    assert result.exit_code == 0, result.output


def test_a_failure_names_the_step_the_expected_and_actual_values_and_the_bot_line(tmp_path):
    path = write(tmp_path, """\
        - name: passes
          steps:
            - join: ada
            - expect: {send: {data: {hello: null}}}
        - name: wrong echo
          steps:
            - join: ada
            - send: {from: ada, data: ping}
            - expect: {send: {data: "echo pong"}, timeout: 1}
        - name: a stranger
          steps:
            - send: {from: zoe, data: ping}
        """)
    junit = tmp_path / "junit.xml"
    result = invoke("test", str(path), "--junit", str(junit))
    assert result.exit_code == 1
    out = result.stdout
    assert "  PASS passes\n  FAIL wrong echo\n" in out and "  FAIL a stranger\n" in out
    assert f"{path}:11:9: expect send" in out
    assert 'expected: send data: "echo pong"' in out
    assert f'actual:   send to ada: "echo ping"  ({tmp_path / "bot.yaml"}:12)' in out
    assert "data_received (ada): if at line 7 -> else, send at line 12" in out
    assert "zoe sends data but is not in the room" in out
    assert out.splitlines()[-1] == "1 passed, 2 failed"
    suite = ET.parse(junit).getroot().find("testsuite")
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert set(cases) == {"passes", "wrong echo", "a stranger"} and suite.get("failures") == "2"
    assert cases["passes"].find("failure") is None and cases["wrong echo"].find("failure") is not None


def test_json_format(tmp_path):
    path = write(tmp_path, """\
        - name: ok
          steps: [{join: ada}, {expect: {send: {to: ada}}}]
        - name: bad
          steps: [{join: ada}, {expect: {chat: nope, timeout: 0}}]
        """)
    result = invoke("test", str(path), "--format", "json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert (data["passed"], data["failed"]) == (1, 1)
    bad = data["files"][0]["cases"][1]
    assert bad["name"] == "bad" and bad["failure"]["actual"][0] == "no chat happened"


def test_a_bot_file_runs_its_sibling_test_file(tmp_path):
    write(tmp_path, "- name: ok\n  steps: [{join: ada}, {expect: {send: {to: ada}}}]\n")
    assert invoke("test", str(tmp_path / "bot.yaml")).exit_code == 0


def test_a_bot_with_errors_is_a_test_file_error(tmp_path):
    path = write(tmp_path, "- name: ok\n  steps: [{join: ada}]\n", bot="version: 1\nlivekit: {room: x}\non: {nope: []}\n")
    result = invoke("test", str(path))
    assert result.exit_code == 2 and "bot.yaml:3:6: error: unknown event 'nope'" in result.stderr


def test_new_writes_a_starter_test_that_passes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LIVEKIT_ROOM", raising=False)
    assert invoke("new", "desk").exit_code == 0
    assert (tmp_path / "desk.test.yaml").exists()
    result = invoke("test", "desk.yaml")
    assert result.exit_code == 0 and result.stdout.splitlines()[-1] == "2 passed, 0 failed", result.output


def test_a_data_bot_is_tested_without_pipecat():
    code = ("import sys\nfrom runner.testing.run import run_paths\n"
            "outcome = run_paths(['examples/data_only.test.yaml', 'examples/webhook.test.yaml'])\n"
            "assert outcome.exit_code() == 0 and outcome.passed >= 6, outcome.problems\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pipecat', 'livekit')))\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


FAILING_BOT = """\
version: 1
livekit: {room: lobby, identity: tester}
on:
  data_received:
    - send: {to: "{{ participant.id }}", data: "trying {{ data }}"}
    - transfer: {participant: "{{ participant.id }}", to: "tel:+15550100"}
    - stop: transferred
  error:
    - send: {data: "sorry: {{ error.action }} failed"}
"""


def test_a_fail_step_makes_the_next_such_action_fail_and_the_error_event_fire(tmp_path):
    path = write(tmp_path, """\
        - name: a failed transfer
          steps:
            - join: ada
            - fail: {action: transfer, message: "no SIP trunk"}
            - send: {from: ada, data: one}
            - expect: {send: {data: "trying one"}}
            - expect: {error: "no SIP trunk", send: {data: "sorry: transfer failed"}}
            - expect: {no: [transfer, stopped]}
            - send: {from: ada, data: two}
            - expect: {transfer: {to: "tel:+15550100"}, stopped: transferred}
            - expect: {no: [error]}
        - name: the action alone, with the message it gets
          steps:
            - join: ada
            - fail: send
            - send: {from: ada, data: one}
            - expect: {error: "send failed (the fail: step at"}
            - expect: {no: [transfer]}
        """, FAILING_BOT)
    result = invoke("test", str(path))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "2 passed, 0 failed"


def test_an_expected_stop_reason_that_differs_fails_with_the_actual_one(tmp_path):
    path = write(tmp_path, """\
        - name: wrong reason
          steps:
            - join: ada
            - send: {from: ada, data: one}
            - expect: {stopped: "done", timeout: 1}
        """, FAILING_BOT)
    result = invoke("test", str(path))
    assert result.exit_code == 1
    assert 'expected: stopped "done"' in result.output
    assert f'actual:   stopped: "transferred"  ({tmp_path / "bot.yaml"}:7)' in result.output


def test_a_fail_step_names_an_action_that_can_fail(tmp_path):
    path = write(tmp_path, """\
        - name: teleport
          steps:
            - fail: {action: teleprt}
        """, FAILING_BOT)
    result = invoke("test", str(path))
    assert result.exit_code == 2
    assert f"{path}:5:24: error: fail.action: 'teleprt' is not one of: say, play, send" in result.output

"""The broken-bot matrix: every file in tests/fixtures/invalid states the errors it must produce.

Each fixture starts with one ``# expect: <first line of the rendered error>`` line per problem,
with the path shown as ``tests/fixtures/invalid/NAME.yaml``. ``lkrun validate`` must print exactly
those error lines (one error per problem, at the right line:column) and exit 1.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from runner.botfile.actions import ACTIONS
from runner.cli import main

ROOT = Path(__file__).resolve().parent.parent
INVALID = ROOT / "tests" / "fixtures" / "invalid"
FILES = sorted(INVALID.glob("*.yaml"))
REL = {path: path.relative_to(ROOT).as_posix() for path in FILES}
ERROR_LINE = re.compile(r"^(?P<file>\S+?):(?P<line>\d+):(?P<col>\d+): error: ")


def expected(path: Path) -> list[str]:
    """The ``# expect:`` lines at the top of a fixture (UTF-8; the non-UTF-8 fixture's header is ASCII)."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    lines = []
    for raw in text.splitlines():
        if not raw.startswith("# expect: "):
            break
        lines.append(raw[len("# expect: "):])
    return lines


def error_lines(output: str) -> dict[str, list[str]]:
    """Rendered error lines grouped by file, in the order printed."""
    found: dict[str, list[str]] = {}
    for line in output.splitlines():
        match = ERROR_LINE.match(line)
        if match:
            found.setdefault(match["file"], []).append(line)
    return found


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("LKRUN_FIXTURE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(ROOT)


def test_the_matrix_is_big_enough():
    assert len(FILES) >= 40
    for path in FILES:
        assert expected(path), f"{path.name} has no '# expect:' line"


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_each_fixture_gives_exactly_its_expected_errors(path):
    result = CliRunner().invoke(main, ["validate", REL[path]])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    got = error_lines(result.output).get(REL[path], [])
    assert got == expected(path), result.output
    for line in got:  # every error is located in this file, at a real line of it
        match = ERROR_LINE.match(line)
        assert 1 <= int(match["line"]) <= max(1, len(path.read_bytes().splitlines()))
        assert int(match["col"]) >= 1
    summary = f"{len(got)} error{'s' * (len(got) != 1)} in 1 file"
    assert summary in result.stderr


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_json_format_reports_the_same_positions(path):
    import json
    result = CliRunner().invoke(main, ["validate", "--format", "json", REL[path]])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["files"] == [REL[path]]
    rendered = [f"{p['file']}:{p['line']}:{p['col']}: {p['severity']}: {p['message']}"
                for p in report["problems"] if p["severity"] == "error"]
    assert rendered == expected(path)


def test_whole_folder_in_a_real_subprocess():
    """The installed console script, on the folder, prints every fixture's errors and exits 1."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LKRUN_FIXTURE_")}
    lkrun = Path(sys.executable).with_name("lkrun")
    proc = subprocess.run([str(lkrun), "validate", "tests/fixtures/invalid/"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    got = error_lines(proc.stderr)
    for path in FILES:
        assert got.get(REL[path], []) == expected(path), REL[path]
    total = sum(len(expected(p)) for p in FILES)
    assert f"{total} errors in {len(FILES)} files" in proc.stderr


def test_folder_validation_matches_file_by_file():
    result = CliRunner().invoke(main, ["validate", "tests/fixtures/invalid"])
    assert result.exit_code == 1
    found = error_lines(result.stderr)
    assert set(found) == set(REL.values())


# ---- the matrix covers what it claims to cover ----------------------------------------------

def _messages(stem: str) -> list[str]:
    path = INVALID / f"{stem}.yaml"
    assert path.exists(), f"missing fixture {path.name}"
    return [line.split(": error: ", 1)[1] for line in expected(path)]


@pytest.mark.parametrize("name", ACTIONS.names())
def test_every_action_has_a_fixture_for_its_fields(name):
    """Missing required field, wrong type, unknown key with did-you-mean, for EVERY action."""
    messages = _messages(f"action_{name}")
    if ACTIONS[name].body.get("required"):
        assert any("missing required key" in m for m in messages), messages
    assert any("expected" in m for m in messages), messages
    unknown = [m for m in messages if m.startswith("unknown key")]
    assert unknown, messages
    if ACTIONS[name].body.get("properties"):
        assert any("did you mean" in m for m in unknown), messages


@pytest.mark.parametrize("stem, fragment", [
    ("yaml_tab_indent", "tab character"),
    ("yaml_bad_indent", "indentation"),
    ("yaml_unquoted_colon", "':'"),
    ("yaml_duplicate_key", "first defined at line 4"),
    ("yaml_anchor", "anchors"),
    ("yaml_alias", "aliases"),
    ("yaml_python_tag", "!!python/object/apply:os.system"),
    ("yaml_custom_tag", "'!env'"),
    ("yaml_merge_key", "merge keys"),
    ("yaml_deep_nesting", "nests deeper"),
    ("yaml_interruptions_yes", "expected true or false"),
    ("yaml_unclosed_quote", "not closed"),
    ("yaml_not_utf8", "UTF-8"),
    ("yaml_list_not_mapping", "must be a mapping"),
    ("yaml_empty", "empty"),
    ("template_syntax_error", "syntax error"),
    ("template_unknown_variable", "did you mean 'participant'"),
    ("template_unknown_attribute", "did you mean 'name'"),
    ("template_unknown_attribute", "did you mean 'greeting'"),
    ("template_event_variable", "not available here"),
    ("dym_top_level_key", "did you mean 'pipeline'"),
    ("dym_event", "did you mean 'participant_connected'"),
    ("dym_action", "did you mean 'say'"),
    ("dym_params_field", "did you mean 'audio_in_enabled'"),
    ("action_log", "did you mean 'warning'"),
    ("action_set", "did you mean 'room'"),
    ("dym_session_turn_stop", "did you mean 'smart_turn'"),
    ("dym_stage_kind", "did you mean 'vad'"),
    ("dym_stage_type", "did you mean 'whisper_stt'"),
    ("dym_stage_settings", "did you mean 'model'"),
    ("secret_literal", "secret"),
    ("env_unset", "is not set"),
    ("version_future", "version 2"),
    ("say_without_tts", "needs a tts stage"),
    ("user_said_without_stt", "needs an stt stage"),
    ("user_said_bad_regex", "invalid pattern"),
    ("http_templated_host", "written literally"),
    ("typographic_quotes", "is in typographic quotes “ ”"),
    ("typographic_quotes", "ends with a typographic quote ”"),
    ("condition_not_one_expression", "the condition of 'if' is not one {{ expression }}"),
    ("condition_not_one_expression", "the condition of 'choose' entry 2"),
    ("user_said_regex_backspace", "backspace character (U+0008)"),
    ("yaml_unclosed_quote_later", "not closed"),
    ("yaml_unknown_escape", "'\\d' is not one"),
    ("number_for_text", "livekit.room: expected text, got 1234"),
    ("number_for_text", "action 'say': expected text, got 5"),
    ("if_else_without_then", "'else:' but no 'then:'"),
])
def test_the_matrix_covers(stem, fragment):
    assert any(fragment in m for m in _messages(stem)), _messages(stem)


def test_the_duplicate_key_message_names_both_lines():
    (line,) = expected(INVALID / "yaml_duplicate_key.yaml")
    assert line.startswith("tests/fixtures/invalid/yaml_duplicate_key.yaml:5:")
    assert "first defined at line 4" in line


def test_a_literal_secret_is_never_printed():
    secret = "hunter2-very-secret-value"
    assert secret in (INVALID / "secret_literal.yaml").read_text()
    for fmt in ("text", "json"):
        result = CliRunner().invoke(main, ["validate", "--format", fmt, "tests/fixtures/invalid/secret_literal.yaml",
                                           "tests/fixtures/invalid/secret_literal_stage_key.yaml"])
        assert result.exit_code == 1
        assert secret not in result.output
        assert "sk-literal-key-0123456789" not in result.output


def test_a_late_quote_error_is_not_called_an_indentation_problem():
    """A deleted closing quote used to be reported two lines later as bad indentation."""
    (line,) = expected(INVALID / "yaml_unclosed_quote_later.yaml")
    text = (INVALID / "yaml_unclosed_quote_later.yaml").read_text().splitlines()
    row, col = map(int, line.split(":")[1:3])
    assert text[row - 1][col - 1] == '"' and "indentation" not in line


@pytest.mark.parametrize("stem, hint", [
    ("typographic_quotes", 'replace the typographic quotes “ ” with straight quotes " or remove them'),
    ("user_said_regex_backspace", "in double quotes \\b is a backspace character: use single quotes "
                                  "'\\b(bye|goodbye)\\b' or write \\\\b"),
    ("number_for_text", 'put it in quotes to make it text: say: "5"'),
    ("if_else_without_then", "add 'then:' with the actions for when the condition is true"),
    ("condition_not_one_expression", 'write it as if: "{{ x == 1 }}"'),
])
def test_the_new_mistakes_say_how_to_fix_them(stem, hint):
    result = CliRunner().invoke(main, ["validate", f"tests/fixtures/invalid/{stem}.yaml"])
    assert f"hint: {hint}" in result.output, result.output

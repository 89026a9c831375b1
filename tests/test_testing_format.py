"""`lkrun test` files: the committed schema is current, committed test files pass it, and every
bad test file in tests/fixtures/tests gives exactly its `# expect:` errors (file:line:col) and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from runner.cli import main
from runner.testing import schema
from runner.testing.load import load_test_file

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "schemas" / "test.schema.json"
BAD = sorted((ROOT / "tests" / "fixtures" / "tests").glob("*.test.yaml"))
GOOD = sorted((ROOT / "bots").glob("*.test.yaml")) + sorted((ROOT / "examples").glob("*.test.yaml"))


def test_committed_schema_is_current():
    assert COMMITTED.read_text() == schema.render(), \
        "schemas/test.schema.json is out of date; regenerate it with: .venv/bin/python -m runner.testing.schema --write"


def test_committed_schema_is_valid_and_accepts_every_committed_test_file():
    committed = json.loads(COMMITTED.read_text())
    jsonschema.Draft202012Validator.check_schema(committed)
    validator = jsonschema.Draft202012Validator(committed, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    assert len(GOOD) >= 6
    for path in GOOD:
        errors = [e.message for e in validator.iter_errors(load_test_file(path).doc.data)]
        assert errors == [], path


def test_the_editor_schema_rejects_what_the_loader_rejects():
    committed = json.loads(COMMITTED.read_text())
    validator = jsonschema.Draft202012Validator(committed)
    for data in ({"bot": "x.yaml", "cases": [{"name": "a", "steps": [{"jion": "ada"}]}]},
                 {"bot": "x.yaml", "cases": [{"name": "a", "steps": [{"expect": {"say": {"contain": "x"}}}]}]},
                 {"bots": "x.yaml", "cases": []}):
        assert list(validator.iter_errors(data)), data


def _expected(path: Path) -> list[str]:
    return [line[len("# expect: "):] for line in path.read_text().splitlines() if line.startswith("# expect: ")]


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.name)
def test_bad_test_files_report_positions(path, monkeypatch):
    monkeypatch.chdir(ROOT)
    rel = path.relative_to(ROOT).as_posix()
    result = CliRunner().invoke(main, ["test", rel])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert errors == _expected(path) and errors, result.stderr
    assert result.stdout.splitlines()[-1].startswith("0 passed, 0 failed")


def test_a_schema_key_and_comment_are_accepted(tmp_path):
    (tmp_path / "bot.yaml").write_text("version: 1\nlivekit: {room: lobby}\non:\n  participant_connected:\n"
                                       "    - send: {data: hi}\n")
    (tmp_path / "bot.test.yaml").write_text("# yaml-language-server: $schema=../schemas/test.schema.json\n"
                                            "$schema: ../schemas/test.schema.json\nbot: bot.yaml\ncases:\n"
                                            "  - name: hi\n    steps:\n      - join: ada\n"
                                            "      - expect: {send: {data: hi, to: everyone}}\n")
    result = CliRunner().invoke(main, ["test", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "1 passed, 0 failed"


def test_missing_paths_and_bots_without_tests(tmp_path):
    (tmp_path / "lonely.yaml").write_text("version: 1\nlivekit: {room: lobby}\n")
    result = CliRunner().invoke(main, ["test", str(tmp_path / "lonely.yaml"), str(tmp_path / "nope.test.yaml")])
    assert result.exit_code == 2
    assert "this bot has no test file" in result.stderr and "nope.test.yaml:1:1: error: file not found" in result.stderr

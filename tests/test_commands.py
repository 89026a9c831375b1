"""The plain functions behind the CLI: expanding paths, checking many bots, the starter file, self-docs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.botfile.files import check_many, expand
from runner.cli.describe import describe_actions, describe_events, describe_stages
from runner.cli.new import new_bot
from runner.cli.validate import validate_paths
from runner.botfile.actions import ACTIONS
from runner.botfile.catalog import stage_types
from runner.botfile.check import TOP_LEVEL, check_file
from runner.botfile.events import EVENTS

ROOT = Path(__file__).resolve().parent.parent


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def bot(room="lobby", identity=None, name=None) -> str:
    lines = ["version: 1"] + ([f"name: {name}"] if name else []) + ["livekit:", f"  room: {room}"]
    if identity:
        lines.append(f"  identity: {identity}")
    return "\n".join(lines) + "\n"


def test_expand_files_folders_and_missing_paths(tmp_path):
    write(tmp_path, "b.yaml", bot())
    write(tmp_path, "a.yml", bot())
    write(tmp_path, "notes.txt", "x")
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", "c.yaml", bot())
    files, problems = expand([str(tmp_path), str(tmp_path / "sub" / "c.yaml"), str(tmp_path / "nope.yaml")])
    assert [f.name for f in files] == ["a.yml", "b.yaml", "c.yaml"]
    assert [(p.message, p.severity) for p in problems] == [("file not found", "error")]


def test_expand_an_empty_folder_is_a_warning(tmp_path):
    files, (problem,) = expand([str(tmp_path)])
    assert files == [] and problem.severity == "warning"


def test_two_bots_sharing_room_and_identity_is_an_error(tmp_path):
    write(tmp_path, "a.yaml", bot(identity="helper"))
    second = write(tmp_path, "b.yaml", "# another\n" + bot(identity="helper"))
    specs, problems = check_many(sorted(tmp_path.glob("*.yaml")), environ={})
    assert len(specs) == 1
    (problem,) = problems
    assert (problem.file, problem.line, problem.col, problem.severity) == (str(second), 5, 13, "error")
    assert problem.message.startswith(f"bot 'b' uses the same room 'lobby' and identity 'helper' as {tmp_path / 'a.yaml'}:")


def test_identity_defaults_count_for_duplicates(tmp_path):
    write(tmp_path, "a.yaml", bot(name="same"))
    write(tmp_path, "b.yaml", bot(name="same"))
    _, (problem,) = check_many(sorted(tmp_path.glob("*.yaml")), environ={})
    assert "identity 'same'" in problem.message and problem.line == 3


@pytest.mark.parametrize("other", [bot(room="other", identity="helper"), bot(identity="other")])
def test_different_room_or_identity_is_fine(tmp_path, other):
    write(tmp_path, "a.yaml", bot(identity="helper"))
    write(tmp_path, "b.yaml", other)
    specs, problems = check_many(sorted(tmp_path.glob("*.yaml")), environ={})
    assert len(specs) == 2 and problems == []


def test_validate_paths_json_shape(tmp_path, capsys):
    good = write(tmp_path, "good.yaml", bot(identity="g"))
    bad = write(tmp_path, "bad.yaml", bot(identity="b") + "bogus: 1\n")
    assert validate_paths([str(tmp_path)], fmt="json") == 1
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"files", "ok", "problems"}
    assert report["files"] == [str(bad), str(good)] and report["ok"] is False
    assert report["problems"] == [{"file": str(bad), "line": 5, "col": 1, "message": "unknown top-level key 'bogus'",
                                   "hint": "allowed: " + ", ".join(TOP_LEVEL), "severity": "error"}]
    assert TOP_LEVEL[:4] == ["version", "name", "description", "livekit"]


def test_validate_paths_ok(tmp_path, capsys):
    write(tmp_path, "good.yaml", bot())
    assert validate_paths([str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == "ok: 1 bot file valid"
    assert validate_paths([str(tmp_path)], fmt="json") == 0
    assert json.loads(capsys.readouterr().out) == {"files": [str(tmp_path / "good.yaml")], "ok": True, "problems": []}


def test_validate_nothing_to_check_fails(tmp_path, capsys):
    assert validate_paths([str(tmp_path)]) == 1
    assert "no .yaml bot files in this folder" in capsys.readouterr().out


def test_new_bot_writes_a_file_that_validates(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LIVEKIT_ROOM", raising=False)
    assert new_bot("my_bot") == 0
    path = tmp_path / "my_bot.yaml"
    text = path.read_text()
    assert text.startswith("# yaml-language-server: $schema=")
    schema_ref = text.splitlines()[0].split("$schema=", 1)[1]
    assert (tmp_path / schema_ref).resolve() == (ROOT / "schemas" / "bot.schema.json").resolve()
    spec = check_file(path, environ={})
    assert spec.name == "my_bot" and spec.room == "lobby" and set(spec.on) == {"participant_connected", "data_received"}


def test_new_bot_in_a_folder_and_with_suffix(tmp_path):
    assert new_bot(str(tmp_path / "bots" / "helper.yaml")) == 0
    assert check_file(tmp_path / "bots" / "helper.yaml", environ={}).identity == "helper"


def test_new_bot_refuses_to_overwrite_and_bad_names(tmp_path, capsys):
    target = tmp_path / "x.yaml"
    target.write_text("keep me")
    assert new_bot(str(target)) == 1
    assert target.read_text() == "keep me"
    assert new_bot(str(target), force=True) == 0
    assert target.read_text() != "keep me"
    assert new_bot(str(tmp_path / "bad name!")) == 1
    assert "not a good bot name" in capsys.readouterr().err


def test_describe_events_lists_every_registered_event_with_variables():
    text = describe_events()
    for event in EVENTS:
        assert f"  {event.name} " in text
    assert "participant.id" in text and "digit" in text and "[triggers]" in text


def test_describe_actions_lists_every_registered_action():
    text = describe_actions()
    for entry in ACTIONS:
        assert f"  {entry.name} " in text and entry.doc in text


@pytest.mark.parametrize("kind", ["vad", "stt", "llm", "tts", None])
def test_describe_stages_lists_the_catalog(kind):
    text = describe_stages(kind)
    for value in stage_types(kind):
        assert value in text
    assert "python" in text

"""The click CLI end to end (CliRunner), the registry-drives-everything test, and no pipecat in validate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from runner.botfile import schema
from runner.botfile.actions import ACTIONS
from runner.cli import main
from runner.botfile.events import EVENTS
from runner.botfile.registry import ActionDef

ROOT = Path(__file__).resolve().parent.parent


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def test_validate_text_and_exit_codes(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("version: 1\nlivekit: {room: lobby}\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nlivekit: {room: lobby, identity: other}\non:\n  connected:\n    - sya: hi\n")
    ok = invoke("validate", str(good))
    assert ok.exit_code == 0 and ok.stdout == "ok: 1 bot file valid\n" and ok.stderr == ""
    failed = invoke("validate", str(good), str(bad))
    assert failed.exit_code == 1
    assert failed.stderr == (f"{bad}:5:7: error: unknown action 'sya' (did you mean 'say'?)\n"
                             "1 error in 1 file\n")


def test_validate_json_format(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nlivekit: {room: lobby}\nsession: {interruptions: yes}\n")
    result = invoke("validate", "--format", "json", str(bad))
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report == {"files": [str(bad)], "ok": False, "problems": [{
        "file": str(bad), "line": 3, "col": 26, "severity": "error",
        "message": "session.interruptions: expected true or false, got 'yes'",
        "hint": "write true or false (only these two words are yes/no in bot files)"}]}


def test_validate_a_missing_path():
    result = invoke("validate", "no/such/bot.yaml")
    assert result.exit_code == 1
    assert "no/such/bot.yaml:1:1: error: file not found" in result.stderr


def test_validate_folders_with_a_duplicate_bot(tmp_path):
    for name in ("one", "two"):
        (tmp_path / f"{name}.yaml").write_text("version: 1\nlivekit:\n  room: lobby\n  identity: helper\n")
    result = invoke("validate", str(tmp_path))
    assert result.exit_code == 1
    assert f"{tmp_path / 'two.yaml'}:4:13: error: bot 'two' uses the same room 'lobby' and identity 'helper'" \
        in result.stderr


@pytest.mark.parametrize("folder", ["bots", "examples", "tests/fixtures/valid"])
def test_committed_bots_validate(folder, monkeypatch):
    monkeypatch.chdir(ROOT)
    if not list((ROOT / folder).glob("*.yaml")):
        pytest.skip(f"no bot files in {folder} yet")
    result = invoke("validate", "--allow-missing-env", folder)
    assert result.exit_code == 0, result.output


def test_new_writes_a_valid_bot(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LIVEKIT_ROOM", raising=False)
    result = invoke("new", "front_desk")
    assert result.exit_code == 0 and "wrote front_desk.yaml" in result.stdout
    assert invoke("validate", "front_desk.yaml").exit_code == 0
    again = invoke("new", "front_desk")
    assert again.exit_code == 1 and "already exists" in again.stderr


def test_events_actions_stages_print_the_registries():
    events = invoke("events")
    assert events.exit_code == 0 and all(e.name in events.stdout for e in EVENTS)
    actions = invoke("actions")
    assert actions.exit_code == 0 and all(f"  {a.name} " in actions.stdout for a in ACTIONS)
    stages = invoke("stages", "tts")
    assert stages.exit_code == 0 and "piper_tts" in stages.stdout and "whisper_stt" not in stages.stdout
    assert invoke("stages", "tsst").exit_code == 2


def test_schema_prints_valid_json_schema(tmp_path):
    result = invoke("schema")
    assert result.exit_code == 0
    document = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(document)
    assert document == schema.build()
    target = tmp_path / "bot.schema.json"
    written = invoke("schema", "--write", str(target))
    assert written.exit_code == 0 and json.loads(target.read_text()) == document


def test_simulate_unknown_event_and_missing_handler(tmp_path):
    bot = tmp_path / "bot.yaml"
    bot.write_text("version: 1\nlivekit: {room: lobby}\non:\n  connected:\n    - log: hi\n")
    unknown = invoke("simulate", str(bot), "participant_conected")
    assert unknown.exit_code == 1 and "did you mean 'participant_connected'?" in unknown.stderr
    missing = invoke("simulate", str(bot), "data_received")
    assert missing.exit_code == 0 and "has no actions for 'data_received'" in missing.stdout
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nlivekit: {room: lobby}\nbogus: 1\n")
    result = invoke("simulate", str(broken), "connected")
    assert result.exit_code == 1 and f"{broken}:3:1: error: unknown top-level key 'bogus'" in result.stderr


def test_simulate_says_why_nothing_ran(tmp_path):
    bot = tmp_path / "bot.yaml"
    bot.write_text("version: 1\nlivekit: {room: lobby}\non:\n  connected: []\n  data_received:\n"
                   "    - if: \"{{ data == 'x' }}\"\n      then: [{log: x}]\n")
    assert invoke("simulate", str(bot), "idle").stdout == f"{bot} has no actions for 'idle'\n"
    assert invoke("simulate", str(bot), "connected").stdout == "no actions ran: the 'connected' list is empty\n"
    assert invoke("simulate", str(bot), "data_received", "--text", "y").stdout == \
        "ran 1 action (if at line 6), nothing to show\n"
    assert invoke("simulate", str(bot), "data_received", "--text", "x").stdout == "log (info): x\n"
    llm = tmp_path / "llm.yaml"
    llm.write_text("version: 1\nlivekit: {room: lobby}\npipeline:\n  - stt: whisper_stt\n"
                   "  - llm: {type: openai_llm, api_key: '${LKRUN_TEST_KEY:-sk-test}'}\n"
                   "on:\n  user_said:\n    - match: help\n      do: [{log: helping}]\n")
    said = invoke("simulate", str(llm), "user_said", "--text", "hello there")
    assert (said.exit_code, said.stdout) == (0, "no actions ran: no user_said pattern matched 'hello there' "
                                                "(the turn goes to the LLM)\n")


def test_simulate_help_lists_every_option():
    result = invoke("simulate", "--help")
    for option in ("--participant", "--name", "--text", "--data", "--digit", "--var NAME=VALUE", "--others ID,ID",
                   "--state JSON", "--participant-state JSON"):
        assert f"  {option} " in result.stdout, option
    assert "lkrun simulate bots/greeter.yaml data_received --text ping" in result.stdout


# ---- THE REGISTRY TEST: one ActionDef, and everything a user can see knows it -----------------

@pytest.fixture
def beep_action():
    async def run(run_context, body):
        await run_context.effects.log(f"beep {body['pitch']}", "info")

    entry = ActionDef(name="beep", doc="make a short beep", shorthand="pitch",
                      body={"type": "object", "additionalProperties": False, "required": ["pitch"],
                            "properties": {"pitch": {"type": "number", "minimum": 20, "maximum": 20000}}},
                      example="beep: 440", run=run)
    ACTIONS.register(entry)
    try:
        yield entry
    finally:
        ACTIONS.unregister("beep")


def test_a_registered_action_appears_everywhere(beep_action, tmp_path):
    built = schema.build()
    assert "beep" in built["$defs"]["actions"]
    assert "beep" in built["$defs"]["action"]["propertyNames"]["enum"]
    jsonschema.Draft202012Validator.check_schema(built)
    validator = jsonschema.Draft202012Validator(built)
    document = {"version": 1, "livekit": {"room": "r"}, "on": {"connected": [{"beep": 440}, {"beep": {"pitch": 880}}]}}
    assert list(validator.iter_errors(document)) == []
    document["on"]["connected"].append({"beep": "loud"})
    assert list(validator.iter_errors(document))

    listing = invoke("actions")
    assert "  beep " in listing.stdout and "make a short beep" in listing.stdout and "beep: 440" in listing.stdout

    bot = tmp_path / "beeper.yaml"
    bot.write_text("version: 1\nlivekit: {room: lobby}\non:\n  connected:\n    - beep: 440\n    - bep: 440\n"
                   "    - beep: 5\n    - beep: {ptch: 440}\n")
    result = invoke("validate", str(bot))
    assert result.exit_code == 1
    assert result.stderr.splitlines()[:4] == [
        f"{bot}:6:7: error: unknown action 'bep' (did you mean 'beep'?)",
        f"{bot}:7:13: error: action 'beep': must be at least 20, got 5",
        f"{bot}:8:14: error: unknown key 'ptch' in action 'beep' (did you mean 'pitch'?)",
        "3 errors in 1 file",
    ]

    bot.write_text("version: 1\nlivekit: {room: lobby}\non:\n  connected:\n    - beep: \"{{ 400 + 40 }}\"\n")
    simulated = invoke("simulate", str(bot), "connected")
    assert simulated.exit_code == 0 and "log (info): beep 440" in simulated.stdout


def test_unregistered_action_is_gone_again():
    assert "beep" not in ACTIONS and "beep" not in schema.build()["$defs"]["actions"]


# ---- validate never imports pipecat -----------------------------------------------------------

def test_validate_does_not_import_pipecat():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "import runner.cli\n"
        "import os\n"
        "folders = ('bots', 'examples', 'tests/fixtures/valid', 'tests/fixtures/invalid')\n"
        "paths = [p for p in folders if os.path.isdir(p)]\n"
        "result = CliRunner().invoke(runner.cli.main, ['validate', '--allow-missing-env', *paths])\n"
        "assert result.exit_code in (0, 1), result.output\n"
        "assert 'Traceback' not in result.output, result.output\n"
        "loaded = sorted(m for m in sys.modules if m == 'pipecat' or m.startswith('pipecat.'))\n"
        "assert not loaded, loaded[:10]\n"
        "print('checked', len(paths), 'folders')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "checked" in proc.stdout


def test_the_lkrun_program_holds_collections_at_start_up_and_the_click_group_does_not():
    import gc
    import subprocess
    import sys
    code = ("import gc, sys\nfrom runner.cli import program\nsys.argv = ['lkrun', '--version']\n"
            "try:\n    program.main()\nexcept SystemExit:\n    pass\nprint('collecting', gc.isenabled())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "collecting False" in out.stdout, out.stdout + out.stderr  # held until a bot is in its room
    assert gc.isenabled()  # tests import the click group (runner.cli.main) without the hold

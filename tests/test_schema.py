"""The editor JSON Schema: committed copy is current, is a valid schema, and agrees with the validator."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import jsonschema
import pytest

from runner.botfile import schema
from runner.botfile.check import check_file
from runner.botfile.errors import ConfigError
from runner.botfile.yamlsafe import load_file

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "schemas" / "bot.schema.json"
REGENERATE = "regenerate it with: .venv/bin/python -m runner.botfile.schema --write"
BOT_FILES = [p for p in sorted((ROOT / "tests" / "fixtures" / "valid").glob("*.yaml")) +
             sorted((ROOT / "bots").glob("*.yaml")) + sorted((ROOT / "examples").glob("*.yaml"))
             if not p.name.endswith(".test.yaml")]  # conversation tests have their own schema
INVALID = sorted((ROOT / "tests" / "fixtures" / "invalid").glob("*.yaml"))


@lru_cache(maxsize=1)
def committed() -> dict:
    return json.loads(COMMITTED.read_text())


@lru_cache(maxsize=1)
def validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(committed(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def test_committed_schema_is_current():
    assert COMMITTED.exists(), f"schemas/bot.schema.json is missing; {REGENERATE}"
    assert COMMITTED.read_text() == schema.render(), f"schemas/bot.schema.json is out of date; {REGENERATE}"


def test_committed_schema_is_a_valid_draft_2020_12_schema():
    jsonschema.Draft202012Validator.check_schema(committed())
    assert committed()["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_the_build_is_deterministic():
    assert schema.render() == schema.render()


def test_schema_main_prints(capsys):
    assert schema.main([]) == 0
    assert capsys.readouterr().out == schema.render()


def test_every_bot_file_is_found():
    assert len(BOT_FILES) >= 4  # the valid fixtures at least; bots/ and examples/ are added as they are written


@pytest.mark.parametrize("path", BOT_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_valid_bot_file_passes_the_editor_schema(path):
    """What the editor sees (the file before ${VAR} substitution) must pass the editor schema."""
    data = load_file(path).data
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in validator().iter_errors(data)]
    assert errors == [], f"{path.name} is valid for lkrun but the editor schema rejects it"


@pytest.mark.parametrize("path", BOT_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_valid_bot_file_passes_the_validator(path):
    try:
        check_file(path, allow_missing_env=True)
    except ConfigError as exc:
        pytest.fail(exc.render())


# Problems only the validator can see: template variables, capabilities, regexes, url rules,
# env values, stage order. Everything else the editor schema must reject as well.
SEMANTIC_ONLY = {
    "template_syntax_error", "template_unknown_variable", "template_unknown_attribute", "template_event_variable",
    "template_unknown_filter", "say_without_tts", "user_said_without_stt", "http_templated_host",
    "timer_without_interval", "stage_order", "env_unset",
    # what the checker sees in the text as written (typographic quotes, a backspace from an escape)
    "typographic_quotes", "user_said_regex_backspace", "if_else_without_then",
    # control actions and scripts: conditions, names in scope, which scripts and fields exist
    "control_repeat_variable_outside", "control_repeat_while_not_one_expression", "control_run_missing_field",
    "control_run_unknown_field", "control_run_unknown_script", "control_script_cycle", "control_script_field_shadow",
    "control_variables_shadow_state",
    "wait_for_bad_pattern", "wait_for_event_and_any", "wait_for_no_event", "wait_for_own_leave",
    "call_token_only_hangup", "call_token_only_end_hangup",
    "wait_for_user_said_without_stt", "wait_digit_without_digit_wait", "wait_digit_after_speech_wait",
    "wait_for_own_leave_any",
}


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_the_editor_schema_rejects_structural_mistakes(path):
    try:
        data = load_file(path).data
    except ConfigError:
        return  # YAML-level problems: the editor's YAML parser reports those
    errors = list(validator().iter_errors(data))
    if path.stem in SEMANTIC_ONLY:
        assert not errors, f"{path.name} is now caught by the editor schema too: remove it from SEMANTIC_ONLY"
    else:
        assert errors, f"{path.name}: the validator rejects it, the editor schema should too"


@pytest.mark.parametrize("value", ["${RATE}", "${RATE:-24000}"])
def test_env_references_are_accepted_where_values_are_typed(value):
    document = {"version": 1, "livekit": {"room": "r", "url": "${LIVEKIT_URL}"},
                "params": {"audio_out_sample_rate": value}, "session": {"turn_stop": "${STOP:-smart_turn}"},
                "on": {"connected": [{"wait": value}, {"log": {"message": "x", "level": "${LEVEL}"}}]}}
    assert list(validator().iter_errors(document)) == []


@pytest.mark.parametrize("path, value", [
    (("livekit", "api_secret"), "literal-secret"),
    (("livekit", "token"), "eyJhbGciOi"),
    (("pipeline", 0, "llm", "api_key"), "sk-literal"),
])
def test_secret_fields_accept_only_references_in_the_editor_too(path, value):
    document = {"version": 1, "livekit": {"room": "r"}, "pipeline": [{"llm": {"type": "openai_llm"}}]}
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert list(validator().iter_errors(document))
    target[path[-1]] = "${MY_SECRET}"
    assert list(validator().iter_errors(document)) == []


def test_stage_shorthand_and_long_forms():
    document = {"version": 1, "livekit": {"room": "r"},
                "pipeline": [{"vad": "silero"}, {"stt": {"type": "whisper_stt"}}, {"tts": "nope_tts"}]}
    (error,) = validator().iter_errors(document)
    assert list(error.absolute_path)[:2] == ["pipeline", 2]

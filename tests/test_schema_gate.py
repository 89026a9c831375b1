"""The schema gate: fastjsonschema's quick yes must never accept what jsonschema rejects."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.botfile import check_actions, humanize, schema_gate, tools
from runner.botfile.check import check_file
from runner.botfile.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
FILES = sorted([ROOT / "bots" / "greeter.yaml", *(ROOT / "examples").glob("*.yaml"),
                *(ROOT / "tests" / "fixtures").rglob("*.yaml")])
ODD_VALUES = [True, False, 0, 1, 1.0, 1.5, -3, "", "x", "x\n", "{{ a }}", None, [], {}, ["x"], {"x": 1}]


def _checked_pairs() -> list[tuple[dict, object]]:
    """(schema, value) for every value the checker validates in the repo's bot files."""
    pairs = []
    check_actions.clear_body_problems()  # bodies other tests checked would skip humanize.validate
    original = humanize.validate

    def spy(schema, instance, where, *, hide=()):
        pairs.append((schema, instance))
        return original(schema, instance, where, hide=hide)

    humanize.validate = spy
    try:
        for path in FILES:
            if path.name.endswith(".test.yaml"):
                continue
            try:
                check_file(str(path), environ={"OPENAI_API_KEY": "x"}, allow_missing_env=True)
            except (ConfigError, OSError):
                pass
    finally:
        humanize.validate = original
    return pairs


def _mutations(value):
    yield value
    if isinstance(value, dict):
        for key in value:
            yield {k: v for k, v in value.items() if k != key}
            for odd in ODD_VALUES:
                yield {**value, key: odd}
        yield {**value, "unknwon": 1}
    elif isinstance(value, list):
        yield [*value, *ODD_VALUES[:4]]
        for odd in ODD_VALUES:
            yield [odd]
    else:
        yield from ODD_VALUES


def test_the_gate_never_accepts_what_jsonschema_rejects_on_the_checkers_schemas(tmp_path, monkeypatch):
    monkeypatch.setenv("LKRUN_CACHE_DIR", str(tmp_path))
    pairs = _checked_pairs()
    schemas = {id(s): s for s, _ in pairs}
    assert len(pairs) > 250 and len(schemas) > 60, (len(pairs), len(schemas))
    wrongly_accepted, valid, accepted_valid = [], 0, 0
    for schema, value in pairs:
        text, full = humanize.prepared(schema)
        judge = humanize.validator(schema)
        for candidate in _mutations(value):
            passes = not any(True for _ in judge.iter_errors(candidate))
            gate = schema_gate.accepts(text, full, candidate)
            if gate and not passes:
                wrongly_accepted.append((text[:120], candidate))
            valid += passes
            accepted_valid += gate and passes
    assert not wrongly_accepted, wrongly_accepted[:5]
    # and it is a gate worth having: nearly every valid value gets the quick yes
    assert accepted_valid >= 0.95 * valid, (accepted_valid, valid)


def test_schemas_fastjsonschema_reads_differently_go_to_jsonschema():
    assert schema_gate.gateable({"type": "object", "properties": {"a": {"type": "string", "minLength": 1}}})
    assert schema_gate.gateable({"anyOf": [{"$ref": "#/$defs/t", "description": "d"}], "$defs": {"t": {}}})
    assert not schema_gate.gateable({"$ref": "#/$defs/t", "minLength": 2, "$defs": {"t": {}}})  # Draft 7 drops it
    assert not schema_gate.gateable({"type": "array", "items": [{"type": "string"}]})  # a tuple in Draft 7
    assert not schema_gate.gateable({"type": "string", "format": "email"})
    assert not schema_gate.gateable({"prefixItems": [{"type": "string"}]})  # unknown to Draft 7
    assert not schema_gate.gateable({"properties": {"a": {"unevaluatedProperties": False}}})
    assert not schema_gate.gateable({"$ref": "https://example.com/schema"})
    # such a schema is still checked, by jsonschema
    assert humanize.validate({"$ref": "#/$defs/t", "minLength": 2, "$defs": {"t": {}}}, "x", "f")


_TYPE = st.sampled_from(["object", "array", "string", "number", "integer", "boolean", "null", "strng", 3])
_LEAF = st.fixed_dictionaries({"type": _TYPE}, optional={
    "description": st.one_of(st.text(max_size=5), st.integers()),
    "enum": st.one_of(st.lists(st.integers(), max_size=3), st.text(max_size=2)),
    "minimum": st.one_of(st.integers(), st.floats(allow_nan=False), st.text(max_size=2)),
    "minLength": st.integers(min_value=-2, max_value=3),
    "pattern": st.sampled_from(["^a+$", "(", "[a-", "\\d"]),
    "required": st.one_of(st.lists(st.sampled_from(["a", "b"]), max_size=3), st.text(max_size=2)),
    "uniqueItems": st.booleans(),
})
_PARAMETERS = st.recursive(_LEAF, lambda inner: st.fixed_dictionaries({"type": st.just("object")}, optional={
    "properties": st.dictionaries(st.sampled_from(["a", "b", "c"]), inner, max_size=3),
    "items": inner, "additionalProperties": st.one_of(st.booleans(), inner)}), max_leaves=6)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_PARAMETERS)
def test_tool_parameters_the_gate_accepts_are_valid_json_schemas(parameters):
    if schema_gate.accepts(tools._PLAIN_TEXT, tools.PLAIN_PARAMETERS, parameters):
        jsonschema.Draft202012Validator.check_schema(parameters)  # raises if the gate was wrong


def test_common_tool_parameters_need_no_meta_schema_check():
    parameters = {"type": "object", "required": ["date"], "properties": {
        "date": {"type": "string", "description": "the day", "pattern": "^\\d{4}-\\d{2}-\\d{2}$"},
        "people": {"type": "integer", "minimum": 1, "maximum": 12},
        "extras": {"type": "array", "items": {"type": "string", "enum": ["cake", "wine"]}}}}
    assert schema_gate.accepts(tools._PLAIN_TEXT, tools.PLAIN_PARAMETERS, parameters)
    assert tools._meta_check({"type": "object", "required": ["a", "a"]}) is not None  # jsonschema's verdict
    assert tools._meta_check({"type": "object", "properties": {"a": {"type": "strng"}}}) is not None


def _validate_in_a_new_process(cache: Path, *files: str) -> dict:
    code = ("import json, sys\n"
            "from click.testing import CliRunner\n"
            "import runner.cli\n"
            "result = CliRunner().invoke(runner.cli.main, ['validate', *sys.argv[1:]])\n"
            "print(json.dumps({'code': result.exit_code, 'output': result.output,\n"
            "                  'jsonschema': 'jsonschema' in sys.modules}))\n")
    env = {**os.environ, "LKRUN_CACHE_DIR": str(cache), "OPENAI_API_KEY": "x"}
    proc = subprocess.run([sys.executable, "-c", code, *files], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_valid_file_is_checked_without_jsonschema_from_the_cache_and_a_broken_cache_costs_only_time(tmp_path):
    cache = tmp_path / "cache"
    first = _validate_in_a_new_process(cache, "bots/greeter.yaml", "examples/")
    assert first["code"] == 0 and not first["jsonschema"], first
    stored = sorted(cache.rglob("*.marshal"))
    assert stored
    mtimes = [p.stat().st_mtime_ns for p in stored]
    again = _validate_in_a_new_process(cache, "bots/greeter.yaml")
    assert again["code"] == 0 and not again["jsonschema"]
    assert [p.stat().st_mtime_ns for p in stored] == mtimes  # read, not written again
    for path in stored:
        path.write_bytes(b"\x00garbage")
    broken = _validate_in_a_new_process(cache, "bots/greeter.yaml")
    assert broken["code"] == 0 and broken["output"] == again["output"]
    unwritable = tmp_path / "a-file"
    unwritable.write_text("not a folder")
    nowhere = _validate_in_a_new_process(unwritable / "cache", "bots/greeter.yaml")
    assert nowhere["code"] == 0 and nowhere["output"] == again["output"]


@pytest.mark.parametrize("name", ["unknown_key.yaml", "wrong_type.yaml"])
def test_a_broken_file_still_gets_jsonschemas_explanation(tmp_path, name):
    bot = tmp_path / name
    body = "session: {max_duraton: 10}" if name == "unknown_key.yaml" else "session: {max_duration: soon}"
    bot.write_text(f"version: 1\nname: b\nlivekit: {{room: r}}\n{body}\non:\n  participant_connected:\n"
                   f"    - log: hi\n")
    result = _validate_in_a_new_process(tmp_path / "cache", str(bot))
    assert result["code"] == 1 and result["jsonschema"]
    expected = "unknown key 'max_duraton'" if name == "unknown_key.yaml" else "expected a number"
    assert expected in result["output"], result["output"]

"""schemas/livekit_params.json is generated from pipecat's LiveKitParams and must stay in step with it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.devtools import params_gen
from runner.botfile import sections
from runner.botfile.check import check_document
from runner.botfile.errors import ConfigError
from runner.botfile.yamlsafe import load_text

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "schemas" / "livekit_params.json"
REGENERATE = ("regenerate it with: .venv/bin/python -m runner.devtools.params_gen --write "
              "(and then .venv/bin/python -m runner.botfile.schema --write)")


@pytest.fixture(scope="module")
def generated() -> dict:
    return params_gen.generate()


def committed() -> dict:
    return json.loads(COMMITTED.read_text())


def test_committed_params_file_is_current(generated):
    assert COMMITTED.read_text() == params_gen.render(generated), f"schemas/livekit_params.json is stale; {REGENERATE}"


def test_pipecat_fields_equal_the_committed_field_list():
    from pipecat.transports.livekit.transport import LiveKitParams
    live, listed = set(LiveKitParams.model_fields), set(committed()["fields"])
    assert live == listed, (f"pipecat's LiveKitParams gained {sorted(live - listed)} and lost {sorted(listed - live)}; "
                            f"{REGENERATE}")


def test_every_field_is_either_writable_or_explained():
    data = committed()
    assert set(data["properties"]) | set(data["unsupported"]) == set(data["fields"])
    assert not set(data["properties"]) & set(data["unsupported"])
    assert set(params_gen.UNSUPPORTED) <= set(data["unsupported"])


def test_the_checker_uses_the_committed_fields():
    assert sections.params_schema()["properties"] == committed()["properties"]


@pytest.mark.parametrize("annotation, schema", [
    (bool, {"type": "boolean"}), (int, {"type": "integer"}), (float, {"type": "number"}), (str, {"type": "string"}),
    (int | None, {"type": ["integer", "null"]}), (list[str], {"type": "array", "items": {"type": "string"}}),
    (int | str, {"anyOf": [{"type": "integer"}, {"type": "string"}]}), (object, None), (list[object], None),
])
def test_json_types(annotation, schema):
    assert params_gen._json_type(annotation) == schema


def _bot(params: str) -> str:
    return f"version: 1\nlivekit: {{room: lobby}}\nparams:\n{params}"


SAMPLES = {"boolean": True, "integer": 3, "number": 1.5, "string": "x", "array": [], "object": {}, "null": None}


def _sample(schema: dict):
    if "default" in schema:
        return schema["default"]
    kinds = schema.get("type") or schema["anyOf"][0]["type"]
    return SAMPLES[kinds if isinstance(kinds, str) else kinds[0]]


@pytest.mark.parametrize("field", sorted(json.loads(COMMITTED.read_text())["properties"]))
def test_every_writable_field_is_accepted(field):
    value = _sample(committed()["properties"][field])
    spec = check_document(load_text(_bot(f"  {field}: {json.dumps(value)}\n"), "bot.yaml"), environ={}, dotenv={})
    assert spec.params[field] == value


@pytest.mark.parametrize("field", sorted(params_gen.UNSUPPORTED))
def test_object_fields_get_a_clear_message(field):
    with pytest.raises(ConfigError) as info:
        check_document(load_text(_bot(f"  {field}: something\n"), "bot.yaml"), environ={}, dotenv={})
    (problem,) = info.value.problems
    assert (problem.line, problem.col) == (4, 3)
    assert problem.message.startswith(f"params.{field} cannot be set in a bot file: it is ")

"""Generate ``schemas/livekit_params.json`` from pipecat's ``LiveKitParams`` (dev time).

``lkrun validate`` must not import pipecat, so the fields are read here once and the
result is committed; ``tests/test_params_gen.py`` fails when pipecat's model changes.
Object-typed fields (filters, mixers) cannot be written in YAML and are listed as
unsupported instead of silently accepted.

Run: ``python -m runner.devtools.params_gen --write``
"""

from __future__ import annotations

import json
import sys
import types
import typing
from pathlib import Path

OUTPUT = Path(__file__).resolve().parents[2] / "schemas" / "livekit_params.json"

UNSUPPORTED = {
    "audio_in_filter": "an audio filter object (RNNoise, Krisp, ...): needs Python code",
    "audio_out_filter": "an audio filter object: needs Python code",
    "audio_out_mixer": "an audio mixer object (SoundfileMixer): needs Python code",
}


def _json_type(annotation) -> dict | None:
    origin = typing.get_origin(annotation)
    if annotation is bool:
        return {"type": "boolean"}
    if annotation is int:
        return {"type": "integer"}
    if annotation is float:
        return {"type": "number"}
    if annotation is str:
        return {"type": "string"}
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        inner = [_json_type(a) for a in options]
        if any(i is None for i in inner):
            return None
        nullable = len(options) < len(typing.get_args(annotation))
        schema = inner[0] if len(inner) == 1 else {"anyOf": inner}
        if nullable and "type" in schema:
            return {"type": [schema["type"], "null"]}
        return schema
    if origin is list:
        item = _json_type(typing.get_args(annotation)[0])
        return {"type": "array", "items": item} if item else None
    if origin is dict:
        key, value = typing.get_args(annotation)
        if key is str and hasattr(value, "model_fields"):
            return {"type": "object", "additionalProperties": _model_schema(value)}
    return None


def _model_schema(model) -> dict:
    properties = {}
    for name, info in model.model_fields.items():
        schema = _json_type(info.annotation) or {}
        if info.default is not None and not callable(info.default) and _is_json(info.default):
            schema = {**schema, "default": info.default}
        if info.description:
            schema["description"] = info.description
        properties[name] = schema
    return {"type": "object", "additionalProperties": False, "properties": properties}


def _is_json(value) -> bool:
    try:
        json.dumps(value)
    except TypeError:
        return False
    return type(value).__name__ != "PydanticUndefinedType"


def generate() -> dict:
    import pipecat
    from pipecat.transports.livekit.transport import LiveKitParams

    properties, unsupported = {}, {}
    for name, info in LiveKitParams.model_fields.items():
        schema = _json_type(info.annotation)
        if schema is None:
            unsupported[name] = UNSUPPORTED.get(name, f"a Python object ({info.annotation})")
            continue
        default = info.default
        if default is not None and _is_json(default):
            schema = {**schema, "default": default}
        properties[name] = schema
    return {
        "pipecat_version": pipecat.version() if callable(getattr(pipecat, "version", None)) else "",
        "fields": sorted(LiveKitParams.model_fields),
        "properties": properties,
        "unsupported": unsupported,
    }


def render(data: dict) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    text = render(generate())
    if "--write" in argv:
        OUTPUT.write_text(text)
        print(f"wrote {OUTPUT}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

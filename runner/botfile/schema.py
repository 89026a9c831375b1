"""Assemble ``schemas/bot.schema.json`` (for editors) from the registries and pipecat's params.

The validator itself does not use this big document: it dispatches on each key and
checks the body against that entry's own sub-schema (see ``check.py``). This file is
what editors use for completion, and a test keeps the committed copy current.
"""

from __future__ import annotations

import copy
import json
import sys

from runner.botfile import catalog, sections
from runner.botfile.actions import ACTIONS
from runner.botfile.actions_control import CONTINUE, EXACTLY_ONE
from runner.botfile.events import EVENTS, MODES
from runner.botfile.registry import TEMPLATE
from runner.botfile.stages import KINDS, PYTHON_SCHEMA, types_for

SCHEMA_ID = "https://lkrun.dev/schemas/bot.schema.json"


CONTINUE_SCHEMA = {"type": "boolean", "description": "true: a failure of this action is logged and the run goes on"}


def _action_schema(entry) -> dict:
    body = copy.deepcopy(entry.body)
    keys = body.pop(EXACTLY_ONE, None)
    if keys:
        body["oneOf"] = [{"required": [key]} for key in keys]
    if entry.shorthand:
        value = {"anyOf": [body["properties"][entry.shorthand], body]}
    else:
        value = {"anyOf": [body, {"type": "null"}]}
    properties = {entry.name: {**value, "description": entry.doc}}
    properties.update(copy.deepcopy(entry.companions))
    properties[CONTINUE] = CONTINUE_SCHEMA
    return {"type": "object", "additionalProperties": False, "required": [entry.name], "properties": properties}


def _action_item() -> dict:
    names = ACTIONS.names()
    keys = sorted({k for entry in ACTIONS for k in (entry.name, *entry.companions)} | {CONTINUE})
    return {
        "type": "object", "minProperties": 1, "propertyNames": {"enum": keys},
        "allOf": [{"if": {"required": [n]}, "then": {"$ref": f"#/$defs/actions/{n}"}} for n in names],
        "description": "one action: " + ", ".join(names),
    }


def _event_schema(event) -> dict:
    actions = {"type": "array", "items": {"$ref": "#/$defs/action"}}
    if event.kind == "triggers":
        trigger = copy.deepcopy(event.trigger)
        trigger["properties"]["do"] = actions
        value = {"type": "array", "items": trigger}
    else:
        value = actions
    return {"description": event.doc, "anyOf": [value, {
        "type": "object", "additionalProperties": False, "required": ["do"],
        "properties": {"mode": {"enum": list(MODES)}, "do": value}}]}


def _stage_schema(kind: str) -> dict:
    options = types_for(kind)
    return {"description": KINDS[kind], "anyOf": [{"enum": [t for t in options if t != "python"]}, {
        "type": "object", "required": ["type"], "properties": {"type": {"enum": options}},
        "allOf": [{"if": {"properties": {"type": {"const": t}}},
                   "then": {"$ref": f"#/$defs/stage_types/{t}"}} for t in options],
    }]}


def _without_meta(schema: dict) -> dict:
    return {k: v for k, v in schema.items() if k not in ("$schema", "$id")}


ENV_REF = {"type": "string", "pattern": r"^\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}$",
           "description": "${VAR} or ${VAR:-default}: the value comes from the environment"}
_SCALARS = {"number", "integer", "boolean", "null", "string"}
_STRING_RULES = ("pattern", "enum", "const", "format", "minLength", "maxLength")
_SKIP = {"if", "propertyNames", "required", "enum", "const", "default", "examples"}


def _env_ok(schema):
    """Let a ``${VAR}`` stand wherever the validator would accept the substituted value."""
    if isinstance(schema, list):
        return [_env_ok(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    types = schema.get("type", [])
    types = {types} if isinstance(types, str) else set(types)
    constrained = any(k in schema for k in _STRING_RULES)
    if (types and types <= _SCALARS and (types != {"string"} or constrained)) or (not types and constrained):
        return {"anyOf": [schema, {"$ref": "#/$defs/env"}]}
    out = {}
    for key, value in schema.items():
        if key == "properties":
            out[key] = {k: _env_ok(v) for k, v in value.items()}
        elif key in _SKIP:
            out[key] = value
        else:
            out[key] = _env_ok(value)
    return out


def _secret(schema: dict) -> dict:
    return {**schema, "pattern": ENV_REF["pattern"], "description": "secret: only ${VAR} (never the value)"}


def _tools_schema() -> dict:
    from runner.botfile.tools import SCHEMA
    schema = copy.deepcopy(SCHEMA)
    schema["items"]["properties"]["do"]["items"] = {"$ref": "#/$defs/action"}
    schema["description"] = sections.SECTIONS["tools"].doc
    return schema


def _scripts_schema() -> dict:
    from runner.botfile.check_scripts import SCHEMA
    schema = copy.deepcopy(SCHEMA)
    schema["additionalProperties"]["properties"]["do"]["items"] = {"$ref": "#/$defs/action"}
    schema["description"] = sections.SECTIONS["scripts"].doc
    return schema


def _flow_schema() -> dict:
    from runner.botfile.flow_schema import editor_schema
    return editor_schema({"$ref": "#/$defs/action"})


def build() -> dict:
    stage_types = {t: _without_meta(catalog.stage_body_schema(t)) for t in catalog.stage_types()}
    stage_types["python"] = PYTHON_SCHEMA
    for body in stage_types.values():
        if "api_key" in body.get("properties", {}):
            body["properties"]["api_key"] = _secret(body["properties"]["api_key"])
    livekit = copy.deepcopy(sections.LIVEKIT)
    for key in ("api_key", "api_secret", "token"):
        livekit["properties"][key] = _secret(livekit["properties"][key])
    schema = _build(stage_types, livekit)
    defs = schema.pop("$defs")
    version = schema["properties"]["version"]  # checked before substitution: never a ${VAR}
    schema = _env_ok(schema)
    schema["properties"]["version"] = version
    named = ("actions", "stages", "stage_types")  # name -> schema tables (an action is called 'if')
    schema["$defs"] = {"template": defs["template"], "env": ENV_REF, "action": _env_ok(defs["action"]),
                       **{group: {name: _env_ok(value) for name, value in defs[group].items()} for group in named}}
    return schema


def _build(stage_types: dict, livekit: dict) -> dict:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "lkrun bot file",
        "type": "object",
        "additionalProperties": False,
        "required": ["version", "livekit"],
        "properties": {
            "version": {"const": sections.VERSION, "description": sections.SECTIONS["version"].doc},
            "name": {"type": "string", "description": sections.SECTIONS["name"].doc},
            "description": {"type": "string", "description": sections.SECTIONS["description"].doc},
            "livekit": livekit,
            "params": sections.params_schema(),
            "session": sections.SESSION,
            "pipeline": {"type": "array", "description": sections.SECTIONS["pipeline"].doc,
                         "items": {"type": "object", "minProperties": 1, "maxProperties": 1,
                                   "additionalProperties": False,
                                   "properties": {k: {"$ref": f"#/$defs/stages/{k}"} for k in KINDS}}},
            "vars": sections.VARS,
            "tools": _tools_schema(),
            "on": {"type": "object", "additionalProperties": False, "description": sections.SECTIONS["on"].doc,
                   "properties": {e.name: _event_schema(e) for e in EVENTS}},
            "scripts": _scripts_schema(),
            "flow": _flow_schema(),
            **{entry.name: {**copy.deepcopy(entry.schema or {}), "description": entry.doc}
               for entry in sections.SECTIONS if not entry.builtin},
        },
        "$defs": {
            "template": TEMPLATE,
            "action": _action_item(),
            "actions": {entry.name: _action_schema(entry) for entry in ACTIONS},
            "stages": {kind: _stage_schema(kind) for kind in KINDS},
            "stage_types": stage_types,
        },
    }


def render() -> str:
    return json.dumps(build(), indent=1, sort_keys=True) + "\n"


def main(argv: list[str], text: str | None = None, name: str = "bot.schema.json") -> int:
    """Print a generated schema, or with --write put it in schemas/ (the bot schema; lkrun test's too)."""
    text = render() if text is None else text
    if "--write" in argv:
        target = sections.schemas_dir() / name
        target.write_text(text)
        print(f"wrote {target}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

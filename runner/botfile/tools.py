"""`tools:` — LLM function calls whose handlers are action lists.

A non-programmer's voice bot transfers a call, looks something up over `http`, or ends
the call when the LLM decides. The call's arguments are `args`; `result:` (a template)
is what the LLM receives back.
"""

from __future__ import annotations

import json
from functools import lru_cache

from runner.botfile import humanize, schema_gate
from runner.botfile.check_actions import ActionChecker
from runner.botfile.errors import did_you_mean
from runner.botfile.events import PARTICIPANT
from runner.botfile.spec import ToolSpec
from runner.botfile.templates import LEAF


TOOL = {
    "type": "object", "additionalProperties": False, "required": ["name", "do"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$",
                 "description": "the function name the LLM calls"},
        "description": {"type": "string", "description": "when the LLM should call it"},
        "parameters": {"type": "object", "description": "the arguments, as a JSON Schema object"},
        "do": {"type": "array", "description": "actions to run; the call's arguments are `args`"},
        "result": {"type": "string", "description": "template of what the LLM gets back (default: done)"},
    },
}
SCHEMA = {"type": "array", "items": TOOL}


def check_tools(checker, value, variables: dict) -> tuple:
    if value is None:
        return ()
    if not isinstance(value, list):
        checker.report(("tools",), "tools: expected a list of tools",
                       "for example: tools: [{name: end_call, description: End the call, do: [{end: {}}]}]")
        return ()
    if "llm" not in checker.capabilities:
        checker.report(("tools",), "tools need an llm stage in pipeline:", key=True)
    tools, names = [], set()
    for index, item in enumerate(value):
        path = ("tools", index)
        for rel, message, hint, at_key in humanize.validate(TOOL, item, "tool"):
            checker.report(path + rel, message, hint, key=at_key)
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        if item["name"] in names:
            checker.report(path + ("name",), f"a second tool named '{item['name']}'")
        names.add(item["name"])
        parameters = item.get("parameters") or {"type": "object", "properties": {}}
        if not isinstance(parameters, dict):
            continue  # reported by the schema above
        _check_parameters(checker, parameters, path + ("parameters",))
        scope = {**variables, **PARTICIPANT, "args": _args_shape(parameters)}  # participant: the last speaker
        actions = ActionChecker(checker, scope, f"tool '{item['name']}'").actions(item.get("do"), path + ("do",))
        result = item.get("result", "done")
        if isinstance(result, str):
            from runner.botfile.templates import is_template
            if is_template(result):
                checker.check_template(result, path + ("result",), scope)
            result = checker.compile(result, path + ("result",))
        tools.append(ToolSpec(item["name"], item.get("description") or "", dict(parameters), actions, result))
    return tuple(tools)


def _args_shape(parameters):
    properties = parameters.get("properties") if isinstance(parameters, dict) else None
    return {str(k): LEAF for k in properties} if isinstance(properties, dict) else LEAF


def _check_parameters(checker, parameters: dict, path: tuple) -> None:
    if parameters.get("type", "object") != "object":
        checker.report(path + ("type",), "tool parameters must be a JSON Schema of type object")
        return
    try:
        text = json.dumps(parameters, sort_keys=True)
    except (TypeError, ValueError):
        text = None
    problem = _schema_problem(text) if text is not None else _meta_check(parameters)
    if problem is not None:
        checker.report(path + problem[0], f"tool parameters are not a valid JSON Schema: {problem[1]}")
    for name in parameters.get("required", []) or []:
        if name not in (parameters.get("properties") or {}):
            checker.report(path + ("required",), f"required argument '{name}' is not in properties"
                                                 f"{did_you_mean(name, parameters.get('properties') or {})}")


@lru_cache(maxsize=512)
def _schema_problem(text: str):
    """Checking against the JSON Schema meta-schema costs ~2 ms; a flow repeats the same parameters."""
    return _meta_check(json.loads(text))


_TYPES = ["object", "array", "string", "number", "integer", "boolean", "null"]
_COUNT = {"type": "integer", "minimum": 0}
# The JSON Schema that tool parameters are in nearly every bot file: every document it accepts is a
# valid Draft 2020-12 schema (tests/test_schema_gate.py checks that on generated ones), so such
# parameters need no meta-schema check and no jsonschema import. Anything else gets the full check.
PLAIN_PARAMETERS = {
    "$ref": "#/$defs/node",
    "$defs": {"node": {"type": "object", "additionalProperties": False, "properties": {
        "type": {"anyOf": [{"enum": _TYPES},
                           {"type": "array", "items": {"enum": _TYPES}, "minItems": 1, "uniqueItems": True}]},
        "description": {"type": "string"}, "title": {"type": "string"},
        "enum": {"type": "array"}, "const": {}, "default": {}, "examples": {"type": "array"},
        "properties": {"type": "object", "additionalProperties": {"$ref": "#/$defs/node"}},
        "required": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
        "items": {"$ref": "#/$defs/node"},
        "additionalProperties": {"anyOf": [{"type": "boolean"}, {"$ref": "#/$defs/node"}]},
        **{k: {"type": "number"} for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")},
        **{k: _COUNT for k in ("minLength", "maxLength", "minItems", "maxItems")},
        "pattern": {"type": "string", "format": "regex"},
    }}},
}
_PLAIN_TEXT = json.dumps(PLAIN_PARAMETERS, sort_keys=True)


def _meta_check(parameters: dict):
    if schema_gate.accepts(_PLAIN_TEXT, PLAIN_PARAMETERS, parameters):
        return None
    import jsonschema
    try:
        jsonschema.Draft202012Validator.check_schema(parameters)
    except jsonschema.SchemaError as exc:
        return tuple(exc.absolute_path), exc.message
    return None

"""Turn jsonschema errors into sentences a non-programmer can act on.

Validation dispatches on the key first (event, action, stage), so the schema each
body is checked against is small and its errors are specific.
"""

from __future__ import annotations

from functools import lru_cache

import jsonschema

from runner.botfile.errors import closest, did_you_mean
from runner.botfile.registry import TEMPLATE

_TYPE_NAMES = {"number": "a number", "integer": "a whole number", "string": "text", "boolean": "true or false",
               "object": "a mapping (key: value lines)", "array": "a list", "null": "empty"}


def describe(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return f"'{value}'" if len(value) <= 60 else f"'{value[:57]}...'"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _expected(types) -> str:
    if isinstance(types, str):
        types = [types]
    return " or ".join(_TYPE_NAMES.get(t, t) for t in types)


@lru_cache(maxsize=512)
def _validator_for(schema_id: int, schema_json: str):
    import json
    return jsonschema.Draft202012Validator(json.loads(schema_json),
                                           format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


_BY_IDENTITY: dict[int, tuple] = {}


def validator(schema: dict):
    """A validator per schema: registry schemas are long-lived objects, so look them up by identity
    first (serialising a schema for every action checked was a third of a big bot's check time)."""
    hit = _BY_IDENTITY.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    import json
    text = json.dumps({**schema, "$defs": {**schema.get("$defs", {}), "template": TEMPLATE,
                                           "action": {}}}, sort_keys=True)
    found = _validator_for(hash(text), text)
    if len(_BY_IDENTITY) > 4096:
        _BY_IDENTITY.clear()
    _BY_IDENTITY[id(schema)] = (schema, found)
    return found


def _is_template(value) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _dotted(path: tuple) -> str:
    dotted = ""
    for part in path:
        dotted += f"[{part}]" if isinstance(part, int) else (f".{part}" if dotted else str(part))
    return dotted


def field_label(where: str, path: tuple, of: bool = False) -> str:
    """``session.turn_stop`` for a section, ``action 'llm' field 'append[0].role'`` otherwise."""
    if not path:
        return where
    if isinstance(path[0], int):  # a list written directly under the key (choose's branches)
        entry = f"{where} entry {path[0] + 1}"
        return field_label(entry, path[1:], of) if path[1:] else entry
    if where.isidentifier():
        return f"{where}.{_dotted(path)}"
    return f"'{_dotted(path)}' of {where}" if of else f"{where} field '{_dotted(path)}'"


def _suggest(value, options: list[str]) -> str:
    """did-you-mean that also catches a wrong case ('get' -> 'GET')."""
    same = [o for o in options if o.lower() == str(value).lower()]
    return f" (did you mean '{same[0]}'?)" if same else did_you_mean(str(value), options)


def humanize(error: jsonschema.ValidationError, where: str,
             hide: tuple = ()) -> list[tuple[tuple, str, str | None, bool]]:
    """-> [(relative path, message, hint, points_at_key)] for one jsonschema error.

    ``hide`` is a path prefix left out of field names (an action's shorthand key).
    """
    path = tuple(error.absolute_path)
    value = error.instance
    kind = error.validator
    shown = path[len(hide):] if path[:len(hide)] == hide else path
    label = field_label(where, shown)
    if kind in ("anyOf", "oneOf"):
        if _is_template(value):
            return []
        branches = [e for e in (error.context or []) if not _is_template_branch(e)]
        if branches and all(e.validator == "type" for e in branches):
            wanted = [t for e in branches for t in ([e.validator_value] if isinstance(e.validator_value, str)
                                                     else e.validator_value)]
            return [(path, f"{label}: expected {_expected(sorted(set(wanted), key=wanted.index))}, "
                           f"got {describe(value)}", _type_hint(value, wanted, _key(where, shown)), False)]
        if branches:
            best = jsonschema.exceptions.best_match(branches)
            return humanize(best, where, hide)
        return [(path, f"{label}: {describe(value)} is not allowed here", None, False)]
    if _is_template(value) and kind in ("type", "pattern", "enum", "format", "const"):
        return []  # checked when rendered
    if kind == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        extras = [k for k in value if k not in error.schema.get("properties", {})]
        in_what = field_label(where, shown, of=True)
        none_hint = f"{in_what} takes no keys: write {{}}" if not allowed else None
        return [(path + (k,), f"unknown key '{k}' in {in_what}{did_you_mean(k, allowed)}",
                 ("allowed keys: " + ", ".join(allowed)) if allowed and not did_you_mean(k, allowed) else none_hint,
                 True) for k in extras]
    if kind == "required":
        known = error.schema.get("properties", {})
        typos = {closest(k, known) for k in value if k not in known} if isinstance(value, dict) else set()
        missing = [k for k in error.validator_value if isinstance(value, dict) and k not in value
                   and k not in typos]  # a misspelt key is reported once, as unknown
        return [(path, f"{label}: missing required key '{k}'", None, False) for k in missing]
    if kind == "type":
        hint = _type_hint(value, error.validator_value, _key(where, shown))
        return [(path, f"{label}: expected {_expected(error.validator_value)}, got {describe(value)}", hint, False)]
    if kind == "enum":
        options = [str(o) for o in error.validator_value]
        return [(path, f"{label}: {describe(value)} is not one of: {', '.join(options)}"
                       f"{_suggest(value, options)}", None, False)]
    if kind == "const":
        return [(path, f"{label}: must be {describe(error.validator_value)}", None, False)]
    if kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        words = {"minimum": "at least", "exclusiveMinimum": "more than", "maximum": "at most",
                 "exclusiveMaximum": "less than"}[kind]
        return [(path, f"{label}: must be {words} {error.validator_value}, got {describe(value)}", None, False)]
    if kind == "pattern":
        note = error.schema.get("description")
        return [(path, f"{label}: {describe(value)} does not have the expected form", note, False)]
    if kind in ("minItems", "minLength"):
        return [(path, f"{label}: must not be empty", None, False)]
    if kind == "maxLength":
        return [(path, f"{label}: must be at most {error.validator_value} characters long", None, False)]
    if kind == "format" and error.validator_value == "regex":
        return [(path, f"{label}: {describe(value)} is not a valid regular expression", None, False)]
    return [(path, f"{label}: {error.message}", None, False)]


def _key(where: str, shown: tuple) -> str | None:
    """The key the user typed for a field: its own name, or the action's for a shorthand value."""
    name = next((p for p in reversed(shown) if isinstance(p, str)), None)
    if name is None and where.startswith("action '") and where.endswith("'"):
        name = where[len("action '"):-1]
    return name


def quote_hint(key: str | None, value) -> str | None:
    """For a number or true/false where text is expected: YAML read it as a number, quote it."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (int, float)):
        text = repr(value)
    else:
        return None
    return f'put it in quotes to make it text: {key}: "{text}"' if key else \
        f'put it in quotes to make it text: "{text}"'


def _type_hint(value, wanted, key: str | None = None) -> str | None:
    wanted = [wanted] if isinstance(wanted, str) else list(wanted)
    if "string" in wanted and not isinstance(value, (str, dict, list)) and value is not None:
        return quote_hint(key, value)
    if isinstance(value, str) and ("number" in wanted or "integer" in wanted):
        return "write only the number, without units or quotes (seconds are plain numbers: 2.5)"
    if isinstance(value, str) and "boolean" in wanted:
        return "write true or false (only these two words are yes/no in bot files)"
    return None


def _is_template_branch(error: jsonschema.ValidationError) -> bool:
    return "template" in str(error.schema.get("$ref", "")) or error.schema is TEMPLATE or \
        error.schema.get("pattern") == TEMPLATE["pattern"]


def validate(schema: dict, instance, where: str, *, hide: tuple = ()):
    """Every problem in ``instance``, humanized, in document order."""
    found = []
    for error in validator(schema).iter_errors(instance):
        found.extend(humanize(error, where, hide))
    return found

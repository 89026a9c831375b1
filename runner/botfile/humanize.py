"""Turn jsonschema errors into sentences a non-programmer can act on.

Validation dispatches on the key first (event, action, stage), so the schema each
body is checked against is small and its errors are specific.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from runner.botfile import schema_gate
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
def _validator_for(schema_json: str):
    import json

    import jsonschema  # only when something is wrong (see schema_gate): its import is most of a cold check
    return jsonschema.Draft202012Validator(json.loads(schema_json),
                                           format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


_BY_IDENTITY: dict[int, tuple] = {}


def prepared(schema: dict) -> tuple[str, dict]:
    """-> (canonical JSON, schema with lkrun's shared $defs). Registry schemas are long-lived
    objects, so look them up by identity first (serialising a schema for every action checked
    was a third of a big bot's check time)."""
    hit = _BY_IDENTITY.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    import json
    full = {**schema, "$defs": {**schema.get("$defs", {}), "template": TEMPLATE, "action": {}}}
    found = (json.dumps(full, sort_keys=True), full)
    if len(_BY_IDENTITY) > 4096:
        _BY_IDENTITY.clear()
    _BY_IDENTITY[id(schema)] = (schema, found)
    return found


def validator(schema: dict):
    """The jsonschema validator for ``schema`` (with lkrun's shared $defs)."""
    return _validator_for(prepared(schema)[0])


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


def humanize(error, where: str,
             hide: tuple = ()) -> list[tuple[tuple, str, str | None, bool]]:
    """-> [(relative path, message, hint, points_at_key)] for one jsonschema error.

    ``hide`` is a path prefix left out of field names (an action's shorthand key).
    """
    path = tuple(error.absolute_path)
    shown = path[len(hide):] if path[:len(hide)] == hide else path
    found = _Found(error, where, hide, path, shown, field_label(where, shown))
    if _is_template(error.instance) and error.validator in ("type", "pattern", "enum", "format", "const"):
        return []  # checked when rendered
    explain = _EXPLAIN.get(error.validator)
    if explain is not None:
        return explain(found)
    if error.validator == "format" and error.validator_value == "regex":
        return found.one(f"{found.label}: {describe(error.instance)} is not a valid regular expression")
    return found.one(f"{found.label}: {error.message}")


@dataclass
class _Found:
    """One schema error and how to name where it is."""

    error: object  # a jsonschema.ValidationError
    where: str
    hide: tuple
    path: tuple
    shown: tuple
    label: str

    @property
    def value(self):
        return self.error.instance

    def one(self, message: str, hint: str | None = None) -> list:
        return [(self.path, message, hint, False)]


def _alternatives(f: _Found) -> list:
    if _is_template(f.value):
        return []
    branches = [e for e in (f.error.context or []) if not _is_template_branch(e)]
    if branches and all(e.validator == "type" for e in branches):
        wanted = [t for e in branches for t in ([e.validator_value] if isinstance(e.validator_value, str)
                                                 else e.validator_value)]
        return f.one(f"{f.label}: expected {_expected(sorted(set(wanted), key=wanted.index))}, "
                     f"got {describe(f.value)}", _type_hint(f.value, wanted, _key(f.where, f.shown)))
    if branches:
        from jsonschema.exceptions import best_match
        return humanize(best_match(branches), f.where, f.hide)
    return f.one(f"{f.label}: {describe(f.value)} is not allowed here")


def _unknown_keys(f: _Found) -> list:
    allowed = list(f.error.schema.get("properties", {}))
    extras = [k for k in f.value if k not in f.error.schema.get("properties", {})]
    in_what = field_label(f.where, f.shown, of=True)
    none_hint = f"{in_what} takes no keys: write {{}}" if not allowed else None
    return [(f.path + (k,), f"unknown key '{k}' in {in_what}{did_you_mean(k, allowed)}",
             ("allowed keys: " + ", ".join(allowed)) if allowed and not did_you_mean(k, allowed) else none_hint,
             True) for k in extras]


def _missing(f: _Found) -> list:
    known = f.error.schema.get("properties", {})
    value = f.value
    typos = {closest(k, known) for k in value if k not in known} if isinstance(value, dict) else set()
    missing = [k for k in f.error.validator_value if isinstance(value, dict) and k not in value
               and k not in typos]  # a misspelt key is reported once, as unknown
    return [(f.path, f"{f.label}: missing required key '{k}'", None, False) for k in missing]


def _wrong_type(f: _Found) -> list:
    hint = _type_hint(f.value, f.error.validator_value, _key(f.where, f.shown))
    return f.one(f"{f.label}: expected {_expected(f.error.validator_value)}, got {describe(f.value)}", hint)


def _not_an_option(f: _Found) -> list:
    options = [str(o) for o in f.error.validator_value]
    return f.one(f"{f.label}: {describe(f.value)} is not one of: {', '.join(options)}{_suggest(f.value, options)}")


_BOUNDS = {"minimum": "at least", "exclusiveMinimum": "more than", "maximum": "at most", "exclusiveMaximum": "less than"}

_EXPLAIN = {
    "anyOf": _alternatives, "oneOf": _alternatives, "additionalProperties": _unknown_keys, "required": _missing,
    "type": _wrong_type, "enum": _not_an_option,
    "const": lambda f: f.one(f"{f.label}: must be {describe(f.error.validator_value)}"),
    **{kind: (lambda f: f.one(f"{f.label}: must be {_BOUNDS[f.error.validator]} {f.error.validator_value}, "
                              f"got {describe(f.value)}")) for kind in _BOUNDS},
    "pattern": lambda f: f.one(f"{f.label}: {describe(f.value)} does not have the expected form",
                               f.error.schema.get("description")),
    "minItems": lambda f: f.one(f"{f.label}: must not be empty"),
    "minLength": lambda f: f.one(f"{f.label}: must not be empty"),
    "maxLength": lambda f: f.one(f"{f.label}: must be at most {f.error.validator_value} characters long"),
}


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


def _is_template_branch(error) -> bool:
    return "template" in str(error.schema.get("$ref", "")) or error.schema is TEMPLATE or \
        error.schema.get("pattern") == TEMPLATE["pattern"]


def validate(schema: dict, instance, where: str, *, hide: tuple = ()):
    """Every problem in ``instance``, humanized, in document order."""
    text, full = prepared(schema)
    if schema_gate.accepts(text, full, instance):
        return []
    found = []
    for error in _validator_for(text).iter_errors(instance):
        found.extend(humanize(error, where, hide))
    return found

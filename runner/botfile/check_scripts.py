"""`scripts:` — named action lists that the `run` action starts, with fields as their inputs.

``prepare_scripts`` reads the names and fields first (``run:`` under ``on:`` and ``tools:`` is
checked against them); ``check_scripts`` checks each script's actions with the common variables
plus its fields, then that no script runs itself (directly or through others).
"""

from __future__ import annotations

from types import MappingProxyType

from runner.botfile import humanize, templates
from runner.botfile.actions_control import NAME, RESERVED
from runner.botfile.errors import did_you_mean
from runner.botfile.spec import ScriptField, ScriptSpec

SCRIPT_NAME = r"^[A-Za-z_][A-Za-z0-9_-]*$"
FIELD = {"type": "object", "additionalProperties": False,
         "properties": {"description": {"type": "string"}, "required": {"type": "boolean"}, "default": {}}}
SCRIPT = {
    "type": "object", "additionalProperties": False, "required": ["do"],
    "properties": {
        "description": {"type": "string", "description": "what the script does, for people"},
        "fields": {"type": "object", "propertyNames": NAME, "additionalProperties": FIELD,
                   "description": "its inputs: run: {script: NAME, with: {FIELD: VALUE}} gives them"},
        "do": {"type": "array", "description": "the actions; the fields are variables here"},
    },
}
SCHEMA = {"type": "object", "additionalProperties": SCRIPT,
          "propertyNames": {"type": "string", "pattern": SCRIPT_NAME,
                            "description": "a name of letters, digits, _ and -"}}


def prepare_scripts(checker, value) -> None:
    """The scripts' names and fields, for `run:` anywhere in the file (checked before the scripts)."""
    checker.scripts, checker.script_calls = {}, []
    if not isinstance(value, dict):
        return
    for name, script in value.items():
        fields = script.get("fields") if isinstance(script, dict) else None
        fields = {k: v if isinstance(v, dict) else {} for k, v in fields.items()} if isinstance(fields, dict) else {}
        checker.scripts[str(name)] = fields


def check_scripts(checker, value, variables: dict) -> MappingProxyType:
    found: dict[str, ScriptSpec] = {}
    if value is None:
        return MappingProxyType(found)
    for rel, message, hint, at_key in humanize.validate(SCHEMA, value, "scripts"):
        checker.report(("scripts",) + rel, message, hint, key=at_key)
    if not isinstance(value, dict):
        return MappingProxyType(found)
    reserved = set(variables) | set(RESERVED)
    elsewhere = checker.elsewhere
    hint = ('a script sees the common variables and its fields: give it as a field, '
            'e.g. with: {who: "{{ participant.id }}"}')
    checker.elsewhere = {**elsewhere, **{key: hint for key in elsewhere if key != "repeat"}}
    try:
        for name, script in value.items():
            if isinstance(script, dict):
                found[str(name)] = _script(checker, str(name), script, variables, reserved)
    finally:
        checker.elsewhere = elsewhere
    _cycles(checker)
    return MappingProxyType(found)


def _script(checker, name: str, script: dict, variables: dict, reserved: set) -> ScriptSpec:
    from runner.botfile.check_actions import ActionChecker
    path = ("scripts", name)
    fields = {}
    for field, spec in (script.get("fields") or {}).items() if isinstance(script.get("fields"), dict) else ():
        spec = spec if isinstance(spec, dict) else {}
        if field in reserved:
            checker.report(path + ("fields", field), f"field '{field}' of script '{name}' would hide the "
                                                     f"variable '{field}'", f"choose another name, e.g. my_{field}",
                           key=True)
        default = spec.get("default")
        for rel, text in templates.template_strings(default):
            checker.check_template(text, path + ("fields", field, "default") + rel, variables)
        fields[field] = ScriptField(str(spec.get("description") or ""), spec.get("required") is True,
                                    checker.compile(default, path + ("fields", field, "default")))
    actions = ActionChecker(checker, variables, f"script '{name}'", local=dict.fromkeys(fields, templates.LEAF),
                            script=name).actions(script.get("do"), path + ("do",))
    return ScriptSpec(actions, MappingProxyType(fields), str(script.get("description") or ""),
                      checker.doc.where(path, key=True)[0])


def check_run(actions, body: dict, base: tuple, shorthand: bool) -> None:
    """`run:` names a script of this file; `with:` gives only its fields, and every required one."""
    checker = actions.checker
    scripts = getattr(checker, "scripts", None)
    name = body.get("script")
    if scripts is None or not isinstance(name, str):
        return  # not a bot file's checker, or not text (the schema said so)
    where = base if shorthand else base + ("script",)
    if templates.is_template(name):
        checker.report(where, "the script's name must be written out: 'run' cannot choose a script with {{ }}",
                       "use choose: with one 'run:' per script")
        return
    if name not in scripts:
        suggestion = did_you_mean(name, list(scripts))
        hint = None if suggestion else ("scripts: " + ", ".join(scripts) if scripts else
                                        "add it under a top-level scripts: section, e.g. scripts: {" + name +
                                        ": {do: [...]}}")
        checker.report(where, f"unknown script '{name}'{suggestion}", hint)
        return
    checker.script_calls.append((actions.script, name, where))
    fields, given = scripts[name], body.get("with")
    given = given if isinstance(given, dict) else {}
    for key in given:
        if key not in fields:
            suggestion = did_you_mean(str(key), list(fields))
            hint = None if suggestion else (f"script '{name}' takes: " + ", ".join(fields) if fields else
                                            f"script '{name}' has no fields: leave out with:")
            checker.report(base + ("with", key), f"script '{name}' has no field '{key}'{suggestion}", hint, key=True)
    for field, spec in fields.items():
        if spec.get("required") is True and field not in given and spec.get("default") is None:
            checker.report(where, f"script '{name}' needs the field '{field}'",
                           f"give it: run: {{script: {name}, with: {{{field}: ...}}}}")


def _cycles(checker) -> None:
    """A script that runs itself, directly or through others, never ends: one error per cycle."""
    calls: dict[str, list] = {}
    for caller, target, where in checker.script_calls:
        if caller is not None:
            calls.setdefault(caller, []).append((target, where))
    reported: set[frozenset] = set()

    def visit(name: str, trail: list) -> None:
        for target, where in calls.get(name, ()):
            if target in trail:
                cycle = trail[trail.index(target):] + [target]
                if frozenset(cycle) not in reported:
                    reported.add(frozenset(cycle))
                    loop = " -> ".join(cycle)
                    checker.report(where, f"script '{target}' runs itself: {loop}" if len(cycle) > 2 else
                                   f"script '{target}' runs itself", "a script cannot start itself, directly or "
                                                                     "through another script: use repeat: to do "
                                                                     "something again")
            elif len(trail) < 100:
                visit(target, trail + [target])

    for name in checker.scripts:  # in file order: the first script of a cycle names it
        if name in calls:
            visit(name, [name])

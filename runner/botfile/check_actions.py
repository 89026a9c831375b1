"""Checking action lists: dispatch on the action key, then the body's own schema, then templates."""

from __future__ import annotations

import functools
from types import MappingProxyType

from runner.botfile import humanize, templates
from runner.botfile.actions import ACTIONS
from runner.botfile.actions_control import CONTINUE, EXACTLY_ONE, RESERVED, SCOPED
from runner.botfile.actions_wait import can_yield_digit, waited_events
from runner.botfile.errors import did_you_mean
from runner.botfile.registry import CheckContext
from runner.botfile.spec import ActionNode
from runner.botfile.template_paths import plain_path
NEEDS_TEXT = {"tts": "a tts stage", "llm": "an llm stage", "stt": "an stt stage", "vad": "a vad stage",
              "audio_out": "audio output"}
NEEDS_HINT = {
    "tts": "add a tts stage under pipeline: (for example '- tts: {type: piper_tts}')",
    "llm": "add an llm stage under pipeline: (for example '- llm: {type: openai_llm}')",
    "audio_out": "set params.audio_out_enabled: true (or add a tts stage)",
    "stt": "add an stt stage under pipeline: (for example '- stt: {type: whisper_stt}')",
    "vad": "add a vad stage under pipeline: ('- vad: {type: silero}')",
}


# actions that act in the room (beside those with `needs`, which all do): not under an after_leaving event
NEEDS_ROOM = {"say", "send", "chat", "play", "mute", "unmute", "set_metadata", "dtmf", "interrupt", "llm", "end",
              "wait_for", "collect_digits", "transfer", "hangup", "hold", "sip_transfer", "sip_dtmf"}


class ActionChecker:
    """Walks one event's action lists; reports through the owning Checker.

    ``variables`` are the event's; ``local`` the run-local names known so far (a script's fields,
    then each ``variables:`` entry, for the actions after it); ``script`` the script being checked."""

    def __init__(self, checker, variables: dict, event: str, *, local: dict | None = None,
                 script: str | None = None):
        self.checker = checker
        self.variables = variables
        self.event = event
        self.local = dict(local or {})
        self.script = script
        self.inner: dict = {}  # loop variables of the repeats being checked
        checker.elsewhere.setdefault("repeat", "only in the actions of a repeat")
        from runner.botfile.events import EVENTS
        event_def = EVENTS.get(event)
        # a run of an event starts with an empty `wait`: wait.digit needs a digit wait before it.
        # A script (its caller may have waited), a tool or a flow's actions: not known, not checked.
        self.waited: list[str] | None = [] if event_def is not None else None
        self.digit_wait = event_def is None
        self._context: CheckContext | None = None
        self._person = None if event_def is None else bool(
            event_def.per_participant or "participant" in event_def.variables)

    @property
    def context(self) -> CheckContext:
        """What an action's registry check may know besides its body (``ActionDef.check``)."""
        if self._context is None:
            data = getattr(getattr(self.checker, "doc", None), "data", None)
            self._context = CheckContext(data if isinstance(data, dict) else {},
                                         frozenset(getattr(self.checker, "capabilities", ()) or ()),
                                         self.event, self._person)
        return self._context

    def scope(self, extra: dict | None = None) -> dict:
        return {**self.variables, **self.local, **self.inner, **(extra or {})}

    def actions(self, items, path: tuple) -> tuple:
        if items is None:
            return ()
        if not isinstance(items, list):
            self.checker.report(path, f"expected a list of actions under '{self.event}', got "
                                      f"{humanize.describe(items)}",
                                "start each action on its own line with '- ', e.g. '- say: Hello'")
            return ()
        nodes = []
        for index, item in enumerate(items):
            node = self.action(item, path + (index,))
            if node is not None:
                nodes.append(node)
        return tuple(nodes)

    def action(self, item, path: tuple) -> ActionNode | None:
        """One action: which one it is, its body against its schema, its nested lists, its templates."""
        name = self._identify(item, path)
        if name is None:
            return None
        entry = ACTIONS[name]
        self._keys_and_needs(name, entry, item, path)
        raw = item[name]
        shorthand = bool(entry.shorthand) and not (isinstance(raw, dict) and not _takes_mapping(
            entry.body["properties"][entry.shorthand]))
        body = {entry.shorthand: raw} if shorthand else ({} if raw is None else raw)
        base = path + (name,)
        if not isinstance(body, dict):
            self.checker.report(base, f"action '{name}': expected a mapping, got {humanize.describe(raw)}",
                                "for example: " + ", ".join(entry.example.splitlines()) if entry.example else None)
            return None
        conditions = [c for pattern in entry.conditions for c in _expand(body, pattern)]
        self._validate_body(name, entry, body, base, shorthand, conditions)
        self._companions(name, entry, item, path)
        self._wait_digit(name, item, base, entry)
        extra, sees = SCOPED.get(name, ({}, ()))
        nested, outer = {}, self.inner
        self.inner = {**outer, **extra}
        if name == "repeat" and not self.digit_wait and _digit_wait_in(item, self._script_actions):
            self.digit_wait = True  # a wait later in the loop: its digit is there for the next iteration
        for pattern in entry.nested:
            for concrete in _expand(item, pattern):
                value = _get(item, concrete)  # not a list: already reported by the schema or companion check
                nested[concrete] = self.actions(value, path + concrete) if isinstance(value, list) else ()
        self.inner = outer
        if name == "variables":
            self._variables(body, base)
        elif name == "run":
            from runner.botfile.check_scripts import check_run
            check_run(self, body, base, shorthand)
        self._waited(name, body)
        skip = {c[1:] for c in nested if c[:1] == (name,)} | ({()} if name == "variables" else set())
        for rel, text in templates.template_strings(raw, skip=skip):
            self.checker.check_template(text, base + rel, self.scope(extra if rel and rel[0] in sees else None))
        for concrete in conditions:
            rel = concrete[1:] if shorthand and concrete[:1] == (entry.shorthand,) else concrete
            if base + rel not in self.checker.mistakes:
                self._condition(name, base + rel, rel, _get(body, concrete))
        compiled = self.checker.compile(body, base)
        if compiled is None:
            return None
        line, col = self.checker.doc.where(path)
        return ActionNode(name, compiled, MappingProxyType(nested), line, col, item.get(CONTINUE) is True)

    # -- wait.digit only after a wait that can receive a digit -----------------------------------------
    def _wait_digit(self, name: str, item: dict, base: tuple, entry) -> None:
        """A template of this action (not of its nested lists) that reads wait.digit when no wait
        before it in the run can receive one (it would always be empty)."""
        if self.digit_wait or "digit" not in repr(item[name]):  # repr: one C-speed look at the whole body
            return
        skip = {c[1:] for pattern in entry.nested for c in _expand(item, pattern) if c[:1] == (name,)}
        for rel, text in templates.template_strings(item[name], skip=skip):  # nested lists: checked when walked
            if "digit" not in text or "wait" not in text or not _reads_wait_digit(text):
                continue
            before = sorted(set(self.waited or ()))
            reason = (f"the wait before it in this run is for {', '.join(before)}, which has no digit" if before
                      else "no wait before it in this run can receive a digit")
            self.checker.report(base + rel, f"'wait.digit' is always empty here: {reason}",
                                "put 'collect_digits' or 'wait_for: {event: dtmf_event}' before it"
                                + (" (after a wait for speech or a message, use wait.text)" if before else ""))
            return

    def _waited(self, name: str, body: dict) -> None:
        """After this action: what the waits so far in the run can leave in `wait`."""
        if self.waited is None:
            return
        if name == "wait_for":
            self.waited.extend(waited_events(body))
        if can_yield_digit(name, body) or (name == "run" and _digit_wait_in(
                {"do": self._script_actions(body.get("script"))}, self._script_actions)):
            self.digit_wait = True

    def _script_actions(self, script) -> list:
        """The raw action list of a script of this file (for what its waits leave in `wait`)."""
        data = getattr(getattr(self.checker, "doc", None), "data", None)
        scripts = data.get("scripts") if isinstance(data, dict) else None
        found = scripts.get(script) if isinstance(scripts, dict) and isinstance(script, str) else None
        return found.get("do") if isinstance(found, dict) and isinstance(found.get("do"), list) else []

    def _variables(self, body: dict, base: tuple) -> None:
        """`variables:` values are rendered in order (each sees those before it); names never hide
        a built-in variable; later actions of the run see them."""
        reserved = set(self.variables) | set(RESERVED)
        for key, value in body.items():
            if not isinstance(key, str):
                continue
            if key in reserved and key not in self.local:
                self.checker.report(base + (key,), f"'{key}' is already a variable here: a 'variables' entry "
                                                   f"cannot hide it", f"choose another name, e.g. my_{key}", key=True)
                continue
            for rel, text in templates.template_strings(value):
                self.checker.check_template(text, base + (key,) + rel, self.scope())
            self.local[key] = templates.LEAF

    def _identify(self, item, path: tuple) -> str | None:
        """The action's name: exactly one registered action key in the item (else a located problem)."""
        report = self.checker.report
        if isinstance(item, str) and item in ACTIONS:
            report(path, f"action '{item}' needs a value", f"write '{item}: {{}}' or see 'lkrun actions'")
            return None
        if not isinstance(item, dict) or not item:
            report(path, f"an action must be written as 'name: value', got {humanize.describe(item)}",
                   "for example '- say: Hello' or '- send: {data: hi}'")
            return None
        names = [key for key in item if key in ACTIONS]
        if not names:
            key = next(iter(item))
            suggestion = did_you_mean(key, ACTIONS.names())
            report(path + (key,), f"unknown action '{key}'{suggestion}",
                   None if suggestion else "see 'lkrun actions' for the list", key=True)
            return None
        if len(names) > 1:
            report(path + (names[1],), f"two actions in one list item: '{names[0]}' and '{names[1]}'",
                   "start each action with its own '- ' (did you forget a dash or indentation?)", key=True)
            return None
        return names[0]

    def _keys_and_needs(self, name: str, entry, item: dict, path: tuple) -> None:
        """Keys beside the action key must be its companions; the bot must have what it needs."""
        report = self.checker.report
        allowed = [name, *entry.companions, CONTINUE]
        if CONTINUE in item and not isinstance(item[CONTINUE], bool):
            report(path + (CONTINUE,), f"'{CONTINUE}' of '{name}': expected true or false, got "
                                       f"{humanize.describe(item[CONTINUE])}",
                   "write continue_on_error: true (go on after a failure) or leave it out")
        for key in item:
            if key not in allowed:
                report(path + (key,), f"unknown key '{key}' in action '{name}'{did_you_mean(key, allowed)}",
                       f"'{name}' may have: {', '.join(allowed)}" if len(allowed) > 1 else None, key=True)
        if entry.needs and entry.needs not in self.checker.capabilities:
            report(path + (name,), f"'{name}' needs {NEEDS_TEXT.get(entry.needs, entry.needs)} in this bot",
                   NEEDS_HINT.get(entry.needs), key=True)
        self._after_leaving(name, entry, path)

    # -- events that run after the bot has left the room (EventDef.after_leaving: session_ended) --
    def _after_leaving(self, name: str, entry, path: tuple) -> None:
        from runner.botfile.events import EVENTS
        event = EVENTS.get(self.event)
        if event is not None and event.after_leaving and (entry.needs or name in NEEDS_ROOM):
            self.checker.report(path + (name,), f"'{name}' cannot run under '{self.event}': the bot has already "
                                                "left the room",
                                "use actions that need no room here (http, log, set, if), e.g. "
                                "http: {url: ..., method: POST, json: \"{{ session.summary }}\"}", key=True)

    def _validate_body(self, name: str, entry, body: dict, base: tuple, shorthand: bool, conditions) -> None:
        """The body against the action's own schema, then the registry's extra check."""
        report = self.checker.report
        where = f"action '{name}'"
        hide = (entry.shorthand,) if shorthand else ()
        fixed = {c for c in conditions if isinstance(_get(body, c), (bool, int, float))}  # no quote hint for these
        for rel, message, hint, at_key in _body_problems(entry, body, where, hide):
            if rel in fixed:
                continue  # true, false or a number as a condition: reported with its own hint
            if shorthand and rel[:1] == (entry.shorthand,):
                rel = rel[1:]
            report(base + rel, message, hint, key=at_key)
        keys = entry.body.get(EXACTLY_ONE)
        if keys:
            self._exactly_one(name, keys, body, base)
        if entry.check:
            try:
                entry.check(body, lambda rel, message, hint=None: report(base + rel, message, hint), self.context)
            except (ValueError, TypeError, LookupError) as exc:  # a registry check must never crash validate
                report(base, f"{where}: {exc}")

    def _exactly_one(self, name: str, keys: list, body: dict, base: tuple) -> None:
        given = [key for key in body if key in keys]
        options = ", ".join(f"{key}:" for key in keys)
        if not given:
            self.checker.report(base, f"action '{name}' needs one of {options}",
                                f"for example: {ACTIONS[name].example}" if ACTIONS[name].example else None)
        for key in given[1:]:
            self.checker.report(base + (key,), f"action '{name}' takes only one of {options} and this one "
                                               f"already has '{given[0]}:'", f"keep one of '{given[0]}:' and "
                                                                              f"'{key}:'", key=True)

    def _companions(self, name: str, entry, item: dict, path: tuple) -> None:
        """then:/else:/default: are action lists; an else without a then is a mistake."""
        report = self.checker.report
        for key in entry.companions:
            if key in item and not isinstance(item[key], list):
                report(path + (key,), f"'{key}' of '{name}': expected a list of actions, got "
                                      f"{humanize.describe(item[key])}", "start each action with '- '")
        if "else" in item and "then" in entry.companions and "then" not in item:
            report(path + ("else",), f"'{name}' has 'else:' but no 'then:'",
                   "add 'then:' with the actions for when the condition is true, or turn the condition "
                   "around ({{ not ... }}) and rename 'else:' to 'then:'", key=True)

    def _condition(self, name: str, path: tuple, rel: tuple, value) -> None:
        """A condition must be one {{ expression }}: plain text (or text around templates) is always true."""
        key = next((p for p in reversed(rel) if isinstance(p, str)), name)
        label = f"'{name}'" + "".join(f" entry {p + 1}" for p in rel if isinstance(p, int))
        example = f'write it as {key}: "{{{{ x == 1 }}}}"'
        if isinstance(value, str):
            if _one_expression(value):
                return  # exactly one {{ expression }}: it keeps its true/false value
            if templates.is_template(value):
                hint = f'put the whole condition inside one {{{{ }}}}, e.g. {key}: "{{{{ x == 1 and y == 2 }}}}"'
            else:
                hint = example
            self.checker.report(path, f"the condition of {label} is not one {{{{ expression }}}}: "
                                      f"a non-empty text is always true", hint)
        elif value is not None and not isinstance(value, (dict, list)):
            self.checker.report(path, f"the condition of {label} must be one {{{{ expression }}}}, not "
                                      f"{humanize.describe(value)}",
                                example)


@functools.cache
def _parser():
    """Parsing only: tells one {{ expression }} from text around templates (Jinja, imported when a
    template is more than a plain path)."""
    import jinja2
    return jinja2.Environment()


def _one_expression(text: str) -> bool:
    """Whether ``text`` is exactly one ``{{ expression }}``, the form that keeps its true/false value
    (the same test ``templates.Template`` uses to render natively)."""
    stripped = text.strip()
    if not (stripped.startswith("{{") and stripped.endswith("}}")):
        return False
    if plain_path(stripped) is not None:
        return True
    import jinja2
    from jinja2 import nodes
    try:
        body = _parser().parse(stripped).body
    except (jinja2.TemplateError, RecursionError, MemoryError, ValueError):
        return True  # a syntax error, too deep, a 5,000-digit number: already reported by the template check
    return (len(body) == 1 and isinstance(body[0], nodes.Output) and len(body[0].nodes) == 1
            and not isinstance(body[0].nodes[0], nodes.TemplateData))


def _reads_wait_digit(text: str) -> bool:
    """Whether a template reads ``wait.digit`` (or ``wait['digit']``)."""
    path = plain_path(text)
    if path is not None:
        return path[:2] == ("wait", "digit")
    import jinja2
    from jinja2 import nodes
    try:
        ast = _parser().parse(text)
    except (jinja2.TemplateError, RecursionError, MemoryError):
        return False  # reported by the template check
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        owner = node.node
        key = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", None)
        if isinstance(owner, nodes.Name) and owner.name == "wait" and key == "digit":
            return True
    return False


def _digit_wait_in(value, scripts, depth: int = 0) -> bool:
    """Whether a raw action item (or list) holds, at any depth, a wait that can receive a digit."""
    if depth > 64:
        return False
    if isinstance(value, list):
        return any(_digit_wait_in(v, scripts, depth + 1) for v in value)
    if not isinstance(value, dict):
        return False
    for key, body in value.items():
        if key in ACTIONS and can_yield_digit(key, body):
            return True
        if key == "run" and depth < 8:
            script = body.get("script") if isinstance(body, dict) else body
            if _digit_wait_in(scripts(script), scripts, depth + 8):
                return True
        if isinstance(body, (dict, list)) and _digit_wait_in(body, scripts, depth + 1):
            return True
    return False


def _takes_mapping(schema: dict) -> bool:
    """Whether a shorthand value may itself be a mapping (then a mapping body is still shorthand)."""
    options = schema.get("anyOf", [schema])
    return any(o.get("type") == "object" or "object" in (o.get("type") or ()) for o in options)


def _get(item, path):
    for key in path:
        item = item[key]
    return item


def _expand(item, pattern: tuple):
    """Concrete paths for a pattern such as ('choose', '*', 'do') that exist in ``item``."""
    paths = [()]
    for key in pattern:
        next_paths = []
        for prefix in paths:
            node = _get(item, prefix)
            if key == "*":
                if isinstance(node, list):
                    next_paths.extend(prefix + (i,) for i, v in enumerate(node) if isinstance(v, (dict, list)))
            elif isinstance(node, dict) and key in node:
                next_paths.append(prefix + (key,))
        paths = next_paths
    return paths


_BODY_PROBLEMS: dict = {}  # (action, repr of the body, where, hide) -> its schema problems
_BODY_CACHE_SIZE = 20000


def _body_problems(entry, body, where: str, hide: tuple) -> tuple:
    """``humanize.validate`` of an action body against its registered schema, remembered per body:
    a reload of a 1,000-action file where one line changed checks one body, not 1,000 (jsonschema
    was a quarter of it). ``repr`` keeps what the schema sees: key order, 1 vs '1' vs True."""
    key = (entry.name, repr(body), where, hide)
    cached = _BODY_PROBLEMS.get(key)
    if cached is not None and cached[0] is entry.body:  # the same schema (a test may register a name again)
        return cached[1]
    found = tuple(humanize.validate(entry.body, body, where, hide=hide))
    if len(_BODY_PROBLEMS) >= _BODY_CACHE_SIZE:
        _BODY_PROBLEMS.clear()
    _BODY_PROBLEMS[key] = (entry.body, found)
    return found


def clear_body_problems() -> None:
    """Forget the remembered bodies (the bench measures a file never seen before)."""
    _BODY_PROBLEMS.clear()

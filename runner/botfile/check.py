"""file -> load -> check -> BotSpec. Collects every problem in one pass, sorted by position."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

from runner.botfile import humanize, sections, stages, templates
from runner.botfile.check_actions import NEEDS_HINT, NEEDS_TEXT, ActionChecker
from runner.botfile.check_mistakes import check_values, mask_all
from runner.botfile.check_scripts import check_scripts, prepare_scripts
from runner.botfile.env import EnvResolver
from runner.botfile.errors import ConfigError, Problem, did_you_mean
from runner.botfile.events import EVENTS, MODES, common_variables, variables_for, where_available
from runner.botfile.spec import BotSpec, Handler, Trigger
from runner.botfile.yamlsafe import Document, load_file, text_digest

TOP_LEVEL = sections.SECTIONS.names()  # the built-ins; a registered section joins at check time
EVENT_ALIASES = {"client_connected": "participant_connected", "client_disconnected": "participant_disconnected"}


def vars_shape(value):
    if isinstance(value, dict):
        return {str(k): vars_shape(v) for k, v in value.items()}
    return templates.LEAF


class Checker:
    def __init__(self, doc: Document, environ=None, allow_missing_env=False, dotenv=None):
        self.doc = doc
        self.env = EnvResolver(doc, environ, dotenv, allow_missing_env)
        self.problems: list[Problem] = []
        self.sandbox = templates.Sandbox()
        self.capabilities: set[str] = set()
        self.elsewhere = where_available()
        self.bad_templates: set[str] = set()
        self._lines: list[str] | None = None
        self.mistakes: set[tuple] = set()  # paths already reported as typographic quotes / control chars

    def report(self, path, message, hint=None, *, key=False, severity="error"):
        path = tuple(path)
        if not key and any(path[:len(failed)] == failed for failed in self.env.failed):
            return  # an unset ${VAR} is reported once, not again as the empty value it left behind
        self.problems.append(self.doc.problem(tuple(path), message, hint, key=key, severity=severity))

    def check_template(self, text: str, path: tuple, variables: dict):
        line, col = self.doc.where(path)
        offset = 1 if self._char_at(line, col, path) in "\"'" else 0
        found = templates.check_template(text, variables, self.elsewhere)
        if found:
            self.bad_templates.add(text)
        file = self._file(path)
        for line_off, col_off, message in found:
            if line_off:
                self.problems.append(Problem(file, line + line_off, col_off + 1, message))
            else:
                self.problems.append(Problem(file, line, col + offset + col_off, message))

    def _file(self, path: tuple) -> str:
        """The file that holds ``path`` (a flow's checker spans several files)."""
        return self.doc.file

    def compile(self, value, path: tuple):
        """Compile the templates of a checked value; None when one cannot compile (already reported)."""
        try:
            return templates.compile_value(value, self.sandbox)
        except templates.TemplateError as exc:
            if not _strings(value) & self.bad_templates:
                self.report(path, exc.message)
            return None

    def _char_at(self, line: int, col: int, path: tuple = ()) -> str:
        lines = self._lines
        if lines is None:  # split once: once per template was quadratic in the file's size
            lines = self._lines = self.doc.text.splitlines()
        if 0 < line <= len(lines) and 0 < col <= len(lines[line - 1]):
            return lines[line - 1][col - 1]
        return ""

    def section(self, data: dict, key: str, schema: dict) -> dict:
        value = data.get(key)
        if value is None:
            return {}
        for rel, text in templates.template_strings(value):  # nothing renders livekit, params or session
            self.report((key,) + rel, f"{humanize.field_label(key, rel)}: templates ({{{{ }}}}) are not allowed here",
                        "write the value itself, or use ${VAR} for a value from the environment")
        for rel, message, hint, at_key in humanize.validate(schema, value, key):
            self.report((key,) + rel, message, hint, key=at_key)
        return value if isinstance(value, dict) else {}

    def run(self) -> BotSpec:
        """Every problem in one pass; a BotSpec when there is no error."""
        raw = self._file_shape()
        self.mistakes = check_values(self)
        data = self.env.resolve(raw)
        self.problems.extend(self.env.problems)
        for key in ("name", "description"):
            if key in data and not isinstance(data[key], str):
                self.report((key,), f"{key}: expected text, got {humanize.describe(data[key])}",
                            humanize.quote_hint(key, data[key]))
        name = data.get("name") if isinstance(data.get("name"), str) else Path(self.doc.file).stem
        livekit, params, session = self._room_settings(data, name)
        bot_vars = data.get("vars") or {}
        if not isinstance(bot_vars, dict):
            self.report(("vars",), "vars: expected a mapping of names to values")
            bot_vars = {}
        shape = vars_shape(bot_vars)
        _var_hosts(data, bot_vars)
        pipeline = stages.check_pipeline(self, data.get("pipeline"), common_variables(shape))
        self._audio_defaults(params, pipeline)
        self.capabilities = {s.kind for s in pipeline} | {
            c for c, k in (("audio_out", "audio_out_enabled"), ("audio_in", "audio_in_enabled")) if params.get(k)}
        prepare_scripts(self, data.get("scripts"))  # run: anywhere names them
        handlers = self._on(data.get("on"), shape)
        from runner.botfile.tools import check_tools
        tools = check_tools(self, data.get("tools"), common_variables(shape))
        flow = None
        if data.get("flow") is not None:  # the flow checks are 50 ms of imports a bot without one skips
            from runner.botfile.flows import check_flow
            flow = check_flow(self, data.get("flow"), common_variables(shape), [t.name for t in tools])
        extra = self._registered_sections(data, common_variables(shape))
        scripts = check_scripts(self, data.get("scripts"), common_variables(shape))
        self.problems = [_masked(p, self.env.secrets) for p in self.problems]
        if any(p.severity == "error" for p in self.problems):
            raise ConfigError(self.problems)
        return BotSpec(
            file=self.doc.file, name=name, description=data.get("description") or "",
            livekit={**livekit, "identity": livekit.get("identity") or name}, params=params, session=session,
            pipeline=tuple(pipeline), vars=bot_vars, on=MappingProxyType(handlers), tools=tools,
            secrets=frozenset(self.env.secrets), warnings=tuple(sorted(self.problems)), raw=data,
            sections=MappingProxyType(extra), scripts=scripts, text_hash=text_digest(self.doc.text), flow=flow)

    def _file_shape(self) -> dict:
        """A mapping with a version this lkrun reads and only known top-level keys."""
        raw = self.doc.data
        if raw is None:
            raise ConfigError(self.doc.problem((), "the file is empty; a bot file needs at least 'version: 1' "
                                                   "and 'livekit:'", "see 'lkrun new NAME' for a starter"))
        if not isinstance(raw, dict):
            raise ConfigError(self.doc.problem((), "a bot file must be a mapping of keys such as 'version:', "
                                                   "'livekit:' and 'on:'", "see 'lkrun new NAME' for a starter"))
        version = raw.get("version")
        if version is None and "initial_node" in raw and "nodes" in raw and "livekit" not in raw:
            raise ConfigError(self.doc.problem((), "this is a flow file (initial_node, nodes), not a bot file",
                                               "name it NAME.flow.yaml or put it in a folder such as flows/, and "
                                               "use it from a bot file with 'flow: FILE'"))
        if version is None:
            self.report((), "missing 'version: 1' at the top of the file", "add the line 'version: 1'")
        elif isinstance(version, bool) or not isinstance(version, (int, float)):
            self.report(("version",), f"version: expected the number {sections.VERSION}, got "
                                      f"{humanize.describe(version)}", f"write 'version: {sections.VERSION}'")
        elif version != sections.VERSION:
            self.report(("version",), f"this file is version {humanize.describe(version)}, but this lkrun "
                                      f"reads version {sections.VERSION}",
                        "upgrade lkrun (pip install -U lkrun), or write 'version: 1'")
            raise ConfigError(self.problems)
        top_level = sections.SECTIONS.names()
        for key in raw:
            if key not in top_level:
                self.report((key,), f"unknown top-level key '{key}'{did_you_mean(key, top_level)}",
                            None if did_you_mean(key, top_level) else "allowed: " + ", ".join(top_level), key=True)
        return raw

    def _room_settings(self, data: dict, name: str) -> tuple[dict, dict, dict]:
        """livekit:, params: and session: (none of them may hold templates)."""
        livekit = self.section(data, "livekit", sections.LIVEKIT)
        if data.get("livekit") is None:
            self.report(("livekit",) if "livekit" in data else (), "missing 'livekit:' section (at least 'room:')",
                        f"add 'livekit: {{room: lobby, identity: {name}}}'", key=True)
        params = dict(self.section(self._unsupported_params(data), "params", sections.params_schema()))
        session = {**sections.SESSION_DEFAULTS, **self.section(data, "session", sections.SESSION)}
        return livekit, params, session

    def _registered_sections(self, data: dict, variables: dict) -> dict:
        """Sections added to the registry (not built in): checked against their schema, templates
        compiled against the common variables when the entry allows them."""
        found = {}
        for entry in sections.SECTIONS:
            if entry.builtin:
                continue
            if entry.name not in data:
                found[entry.name] = entry.default
                continue
            value = data[entry.name]
            if not entry.templates:
                found[entry.name] = self.section(data, entry.name, entry.schema or {})
                continue
            for rel, message, hint, at_key in humanize.validate(entry.schema or {}, value, entry.name):
                self.report((entry.name,) + rel, message, hint, key=at_key)
            for rel, text in templates.template_strings(value):
                self.check_template(text, (entry.name,) + rel, variables)
            found[entry.name] = self.compile(value, (entry.name,))
        return found

    def _unsupported_params(self, data: dict) -> dict:
        """LiveKitParams fields that hold Python objects get their own message, not 'unknown key'."""
        params, unsupported = data.get("params"), sections.livekit_params()["unsupported"]
        if not isinstance(params, dict) or not set(params) & set(unsupported):
            return data
        for key in set(params) & set(unsupported):
            self.report(("params", key), f"params.{key} cannot be set in a bot file: it is {unsupported[key]}",
                        key=True)
        return {**data, "params": {k: v for k, v in params.items() if k not in unsupported}}

    def _audio_defaults(self, params: dict, pipeline) -> None:
        kinds = {s.kind for s in pipeline}
        for flag, needed_by in (("audio_in_enabled", kinds & {"vad", "stt"}), ("audio_out_enabled", kinds & {"tts"})):
            if not needed_by:
                continue
            if params.get(flag) is False:
                self.report(("params", flag), f"params.{flag} is false, but the pipeline has a "
                                              f"{'/'.join(sorted(needed_by))} stage that needs it",
                            f"set {flag}: true or remove the stage")
            params.setdefault(flag, True)

    def _on(self, on, shape) -> dict:
        handlers: dict[str, Handler] = {}
        if on is None:
            return handlers
        if not isinstance(on, dict):
            self.report(("on",), "on: expected a mapping of event names to action lists",
                        "put event names under 'on:', each with a list of actions (see 'lkrun events')")
            return handlers
        for event_name, value in on.items():
            path = ("on", event_name)
            event = EVENTS.get(event_name)
            if event is None:
                guess = EVENT_ALIASES.get(event_name) or (event_name[3:] if event_name.startswith("on_")
                                                          and event_name[3:] in EVENTS else None)
                suggestion = f" (did you mean '{guess}'?)" if guess else did_you_mean(event_name, EVENTS.names())
                self.report(path, f"unknown event '{event_name}'{suggestion}",
                            None if suggestion else "see 'lkrun events' for the list", key=True)
                continue
            if event.warning:
                self.report(path, event.warning, key=True, severity="warning")
            if event.needs and event.needs not in self.capabilities:
                self.report(path, f"event '{event_name}' needs {NEEDS_TEXT.get(event.needs, event.needs)} in this bot",
                            NEEDS_HINT.get(event.needs), key=True)
            mode, items, items_path = "queued", value, path
            if isinstance(value, dict) and {"mode", "do"} & set(value):  # else: a forgotten "- "
                for rel, message, hint, at_key in humanize.validate(sections.ON_EVENT_FORM, value, event_name):
                    self.report(path + rel, message, hint, key=at_key)
                mode = value.get("mode") if value.get("mode") in MODES else "queued"
                items, items_path = value.get("do"), path + ("do",)
            variables = variables_for(event, shape)
            line = self.doc.where(path, key=True)[0]
            if event.kind == "triggers":
                triggers = self._triggers(event, items, items_path, variables)
                handlers[event_name] = Handler(event_name, mode, triggers=triggers, line=line)
            else:
                actions = ActionChecker(self, variables, event_name).actions(items, items_path)
                handlers[event_name] = Handler(event_name, mode, actions=actions, line=line)
        return handlers

    def _triggers(self, event, items, path, variables) -> tuple:
        if not isinstance(items, list):
            self.report(path, f"'{event.name}' takes a list of triggers, got {humanize.describe(items)}",
                        "write each trigger as '- " + ("match: REGEX" if event.name == "user_said" else
                                                       "after: SECONDS") + "' with a 'do:' list of actions")
            return ()
        triggers = []
        for index, item in enumerate(items):
            where = path + (index,)
            if not isinstance(item, dict):
                self.report(where, f"a '{event.name}' trigger must be a mapping, got {humanize.describe(item)}")
                continue
            pattern, bad_pattern = None, False
            if isinstance(item.get("match"), str):
                try:
                    pattern = re.compile(item["match"])
                except re.error as exc:
                    bad_pattern = True
                    self.report(where + ("match",), f"invalid pattern: {exc.msg} (at position {exc.pos})",
                                "this is a Python regular expression: a literal ( ) [ ] . ? * + "
                                "needs a backslash before it")
            for rel, message, hint, at_key in humanize.validate(event.trigger, item, f"{event.name} trigger"):
                if not (bad_pattern and rel == ("match",)):
                    self.report(where + rel, message, hint, key=at_key)
            if event.name == "timer" and "every" not in item and "after" not in item:
                self.report(where, "a timer needs 'every: SECONDS' or 'after: SECONDS'")
            actions = ActionChecker(self, variables, event.name).actions(item.get("do"), where + ("do",))
            number = lambda key: item.get(key) if isinstance(item.get(key), (int, float)) else None  # noqa: E731
            triggers.append(Trigger(actions, self.doc.where(where)[0], pattern, item.get("continue") is True,
                                    number("after"), number("every")))
        return tuple(triggers)


_VAR_HOST = re.compile(r"^\{\{\s*vars\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def _var_hosts(data, bot_vars: dict) -> None:
    """An http url may start with ``{{ vars.NAME }}``: vars are the file's own constants, so the
    value is written in at load time and the host stays literal (never data from a caller)."""
    if isinstance(data, dict):
        body = data.get("http")
        if isinstance(body, dict) and isinstance(body.get("url"), str):
            match = _VAR_HOST.match(body["url"])
            if match and isinstance(bot_vars.get(match[1]), str):
                body["url"] = bot_vars[match[1]].rstrip("/") + body["url"][match.end():]
        for value in data.values():
            _var_hosts(value, bot_vars)
    elif isinstance(data, list):
        for value in data:
            _var_hosts(value, bot_vars)


def _masked(problem: Problem, secrets) -> Problem:
    if not secrets:
        return problem
    hint = mask_all(problem.hint, secrets) if problem.hint else problem.hint
    return replace(problem, message=mask_all(problem.message, secrets), hint=hint)


def _strings(value) -> set:
    if isinstance(value, dict):
        return set().union(*map(_strings, value.values()))
    if isinstance(value, list):
        return set().union(*map(_strings, value))
    return {value} if isinstance(value, str) else set()


def check_document(doc: Document, *, environ=None, allow_missing_env=False, dotenv=None) -> BotSpec:
    return Checker(doc, environ, allow_missing_env, dotenv).run()


def check_file(path, *, environ=None, allow_missing_env=False, display=None) -> BotSpec:
    """Load and check one bot file. Raises ConfigError with every problem found."""
    return check_document(load_file(path, display), environ=environ, allow_missing_env=allow_missing_env)

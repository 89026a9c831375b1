"""Bot-file templates: compiled once from the file, checked statically at validate time (the
static checks are in runner/botfile/template_check.py), rendered against event variables.

Participant names and data messages come from strangers, so event data is only ever a context
variable (never compiled), the sandbox is immutable, and size-amplifying operations are capped
(runner/botfile/template_sandbox.py). A template that is one plain path (``{{ participant.id }}``)
is looked up without Jinja, which is imported only for the first template that needs it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping

from runner.botfile.template_limits import MAX_NESTING, too_deep, too_many_tags  # noqa: F401
from runner.botfile.template_paths import plain_path

LEAF = object()  # a variable whose inner attributes are not checked (strings, numbers, free-form data)
ANY = LEAF
DATA = (str, int, float, bool, type(None), list, tuple, dict, Mapping)


class TemplateError(Exception):
    """A template failed at run time; ``message`` is for the user (no traceback)."""

    def __init__(self, message: str):
        self.message = message
        super().__init__(message)


def is_template(text: str) -> bool:
    """Plain strings stay plain: only text with Jinja markup is compiled."""
    # the commonest string has no brace at all: one scan, no generator (a reload's check calls this
    # for every string of the file; py-spy put the generator form at 17 % of a 1,000-action reload)
    return isinstance(text, str) and "{" in text and ("{{" in text or "{%" in text or "{#" in text)


_SLOW = object()


def _lookup(context: dict, path: tuple):
    """The sandbox's own rules for data (keys only, missing is null, null chains stay null);
    _SLOW sends anything else (a missing name, an attribute of a string) through Jinja."""
    if path[0] not in context:
        return _SLOW
    value = context[path[0]]
    for key in path[1:]:
        if value is None:
            return None
        if not isinstance(value, Mapping):
            return _SLOW
        try:
            value = value[key]
        except (LookupError, TypeError):
            return None
    return value if isinstance(value, (str, int, float, bool, type(None), dict, list)) else _SLOW


class Template:
    """One template string from the bot file; renders against event variables."""

    def __init__(self, compiler: _Compiler, source: str):
        self.source, self._limit, self._compiler = source, compiler.max_output, compiler
        self._path, self._jinja = plain_path(source), None
        if self._path is None:  # parsed now, so a syntax error is the check's, not the first event's
            self._jinja = compiler.jinja(source)
            self._path = self._jinja.path

    def __repr__(self) -> str:
        return f"Template({self.source!r})"

    def render(self, context: dict) -> object:
        """A lone ``{{ expression }}`` keeps its native type; anything else renders to a string."""
        if self._path is not None:  # `{{ participant.id }}`: the commonest template, looked up directly
            value = _lookup(context, self._path)
            if value is not _SLOW and (not isinstance(value, str) or len(value) <= self._limit):
                return value
        jinja = self._jinja or self._parsed()
        return jinja.render(context)

    def _parsed(self):
        """A plain path whose value needs Jinja's rules (a missing name, an attribute of a string)."""
        self._jinja = self._compiler.jinja(self.source)
        return self._jinja


class _Compiler:
    """The environment templates compile in: one per output cap, shared by every Sandbox (compiled
    templates are immutable and render against their own context), so a reload recompiles only
    the templates that changed. ``Sandbox.env`` stays each bot's own (callers may adjust it)."""

    def __init__(self, max_output: int):
        self.max_output = max_output
        self._env = None

    @property
    def env(self):
        if self._env is None:
            from runner.botfile.template_sandbox import Environment
            self._env = Environment(self.max_output)
        return self._env

    def jinja(self, source: str):
        from runner.botfile.template_sandbox import JinjaTemplate
        return JinjaTemplate(self.env, source, self.max_output)


_COMPILERS: dict[int, _Compiler] = {}
_COMPILED: OrderedDict = OrderedDict()  # (max_output, text) -> Template, least recently used first
_LOCK = threading.Lock()
MAX_COMPILED = 20000  # templates kept across reloads (a 256 KiB file holds at most a few thousand)


def clear_compiled() -> None:
    """Forget every compiled template (benchmarks measure a first compile with this)."""
    _COMPILED.clear()


class Sandbox(_Compiler):
    """One per bot: the sandboxed environment (made when first asked for) and the compiled
    templates it has asked for."""

    def __init__(self, max_output: int = 65536):
        super().__init__(max_output)
        self._cache: dict[str, Template] = {}

    def compile(self, text: str) -> Template:
        """Compile a template string from the bot file (never event data)."""
        found = self._cache.get(text)
        if found is None:
            found = self._cache[text] = _compile(self.max_output, text)
        return found


def _compile(max_output: int, text: str) -> Template:
    key = (max_output, text)
    with _LOCK:  # reloads check in a worker thread
        found = _COMPILED.get(key)
        if found is not None:
            _COMPILED.move_to_end(key)
            return found
    compiler = _COMPILERS.get(max_output) or _COMPILERS.setdefault(max_output, _Compiler(max_output))
    crowded = too_many_tags(text)
    if crowded:
        raise TemplateError(crowded)
    found = Template(compiler, text)  # a template that cannot compile raises TemplateError
    with _LOCK:
        _COMPILED[key] = found
        while len(_COMPILED) > MAX_COMPILED:
            _COMPILED.popitem(last=False)
    return found


def template_strings(value, rel: tuple = (), skip=frozenset()):
    """(relative path, text) of every template string inside a YAML value; `skip` prunes paths."""
    if rel in skip:
        return
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from template_strings(inner, rel + (key,), skip)
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from template_strings(inner, rel + (index,), skip)
    elif isinstance(value, str) and is_template(value):
        yield rel, value


def compile_value(value, sandbox: Sandbox) -> object:
    """Compile every template string inside a YAML value; everything else is left as is."""
    if isinstance(value, dict):
        return {k: compile_value(v, sandbox) for k, v in value.items()}
    if isinstance(value, list):
        return [compile_value(v, sandbox) for v in value]
    return sandbox.compile(value) if is_template(value) else value


def render_value(value, context: dict) -> object:
    """Render every Template inside a compiled value; the output is never rendered again."""
    if isinstance(value, dict):
        return {k: render_value(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, context) for v in value]
    return value.render(context) if isinstance(value, Template) else value


def check_template(text: str, variables: dict, elsewhere: dict[str, str] | None = None) -> list:
    """The validate-time check (runner/botfile/template_check.py): ``(line_offset, col_offset, message)`` problems."""
    from runner.botfile.template_check import check_template as check
    return check(text, variables, elsewhere)

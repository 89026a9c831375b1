"""Sandboxed Jinja2 for bot files: compiled once from the file, checked statically at validate time
(the static checks are in runner/botfile/template_check.py).

Participant names and data messages come from strangers, so event data is only ever a context
variable (never compiled), the sandbox is immutable, and size-amplifying operations are capped.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Mapping

from jinja2 import StrictUndefined, nodes
from jinja2.exceptions import SecurityError
from jinja2.exceptions import TemplateError as JinjaError
from jinja2.runtime import Undefined, new_context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from runner.botfile.template_limits import (MAX_NESTING,
                                                   deep_brackets,
                                                   deep_nodes,
                                                   number_message,
                                                   too_deep, too_many_tags)  # noqa: F401

LEAF = object()  # a variable whose inner attributes are not checked (strings, numbers, free-form data)
ANY = LEAF
MAX_BITS = 10000  # integers this big only come from abuse (10 ** 100000 would stall the bot)
MAX_EXPONENT = 1000
_PADDING = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})  # widths allocate up front
_DATA = (str, int, float, bool, type(None), list, tuple, dict, Mapping)


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


def _refuse_size(size: int, limit: int, what: str) -> None:
    if size > limit:
        raise SecurityError(f"{what} would be longer than {limit} characters")


class _Environment(ImmutableSandboxedEnvironment):
    """The immutable sandbox plus caps on the operations that turn a small input into a huge one."""

    intercepted_binops = frozenset({"*", "**"})

    def __init__(self, max_output: int):
        super().__init__(undefined=StrictUndefined, autoescape=False,
                         finalize=lambda v: "" if v is None else v)  # "Hi {{ x }}" never says "None"
        self.max_output = max_output
        for name in ("lipsum", "cycler", "joiner"):  # no use to a bot, and classic SSTI gadgets
            self.globals.pop(name, None)
        for name in ("center", "indent"):
            self.filters[name] = functools.partial(self._capped, name, self.filters[name])

    def _widths(self, name: str, args: tuple, kwargs: dict) -> None:
        """A padding width from data must not ask for gigabytes before the output cap can act."""
        widths = [a for a in (*args, *kwargs.values()) if isinstance(a, int)]
        _refuse_size(max(widths, default=0), self.max_output, f"'{name}' result")

    def _capped(self, name: str, func, value, *args, **kwargs):
        self._widths(name, args, kwargs)
        return func(value, *args, **kwargs)

    def call_binop(self, context, operator, left, right):
        ints = isinstance(left, int) and isinstance(right, int)
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int):
                    _refuse_size(len(seq) * n, self.max_output, "repetition")
            if ints and left.bit_length() + right.bit_length() > MAX_BITS:
                raise SecurityError(f"product would exceed {MAX_BITS} bits")
        elif operator == "**" and isinstance(left, (int, float)) and isinstance(right, (int, float)):
            if abs(right) > MAX_EXPONENT:
                raise SecurityError(f"exponent {right} is larger than {MAX_EXPONENT}")
            if ints and left.bit_length() * right > MAX_BITS:
                raise SecurityError(f"power would exceed {MAX_BITS} bits")
        return super().call_binop(context, operator, left, right)

    def _data(self, obj, key, fallback):
        """Mappings are data: keys only (no dict methods), a missing key is null, null chains stay null."""
        if isinstance(obj, Undefined):  # "'cycler' is undefined", not an unsafe-attribute puzzle
            obj._fail_with_undefined_error()
        if obj is None:
            return None
        if not isinstance(obj, Mapping):
            return fallback(obj, key)
        try:
            return obj[key]
        except (LookupError, TypeError):
            return None

    def getattr(self, obj, attribute):
        return self._data(obj, attribute, super().getattr)

    def getitem(self, obj, argument):
        return self._data(obj, argument, super().getitem)

    def call(self, context, obj, /, *args, **kwargs):
        if getattr(obj, "__name__", None) in _PADDING and isinstance(getattr(obj, "__self__", None), str):
            self._widths(obj.__name__, args, kwargs)
        return super().call(context, obj, *args, **kwargs)


def _failure(exc: Exception, source: str) -> TemplateError:
    """A user-facing message for any render failure, with the template line when it has several."""
    if isinstance(exc, TemplateError):
        return exc
    text = (f"not allowed in a template: {exc}" if isinstance(exc, SecurityError)
            else str(exc) if isinstance(exc, JinjaError) else f"{type(exc).__name__}: {exc}")
    line, tb = None, exc.__traceback__
    while tb is not None:  # jinja rewrites template frames to carry the template's own line
        line = tb.tb_lineno if tb.tb_frame.f_code.co_filename == "<template>" else line
        tb = tb.tb_next
    return TemplateError(f"line {line}: {text}" if line and "\n" in source.strip() else text)


_SLOW = object()


def _plain_path(expr) -> tuple | None:
    """('participant', 'id') for `participant.id`; None for anything that is not a plain path."""
    path = []
    while isinstance(expr, nodes.Getattr):
        path.append(expr.attr)
        expr = expr.node
    if not isinstance(expr, nodes.Name) or any(p.startswith("_") for p in [expr.name, *path]):
        return None
    return (expr.name, *reversed(path))


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


def _lone_expression(ast):
    """The expression of a template that is one ``{{ expression }}`` (whitespace around it aside), else None."""
    if len(ast.body) != 1 or not isinstance(ast.body[0], nodes.Output):
        return None
    inner = list(ast.body[0].nodes)
    for end in (0, -1):
        if inner and isinstance(inner[end], nodes.TemplateData) and not inner[end].data.strip():
            inner.pop(end)
    return inner[0] if len(inner) == 1 and not isinstance(inner[0], nodes.TemplateData) else None


def _new_context(template, context: dict):
    """jinja's ``new_context`` with the template's globals flattened once (the sandbox sets them
    before compiling): jinja merges them (a ChainMap, iterated in Python) into a new dict on
    every render, ~3 us of a 10 us render."""
    flat = template.__dict__.get("_lkrun_globals")
    if flat is None:
        flat = template._lkrun_globals = dict(template.globals)
    # the flat dict as the context's globals too: jinja would build a set from the ChainMap per render
    return new_context(template.environment, template.name, template.blocks, {**flat, **context}, True, flat)


def _generate(template, context: dict):
    """``Template.generate`` on ``_new_context`` (errors rewritten by jinja as generate does)."""
    ctx = _new_context(template, context)
    try:
        yield from template.root_render_func(ctx)
    except Exception:  # noqa: BLE001 - as jinja's own generate: it re-raises with the template's lines
        yield template.environment.handle_exception()


class Template:
    """One compiled template string from the bot file; renders against event variables."""

    def __init__(self, sandbox: Sandbox | _Compiler, source: str):
        self.source, self._limit, env = source, sandbox.max_output, sandbox.env
        self._template = self._expression = self._path = self._ast = None
        if deep_brackets(env, source) is not None:
            raise TemplateError(too_deep())
        ast = env.parse(source)  # once: a 100 KB template costs a second per parse
        if deep_nodes(ast) is not None:
            raise TemplateError(too_deep())
        stripped = source.strip()  # the rule check_actions uses too: starts with {{ and ends with }}
        expr = _lone_expression(ast) if stripped.startswith("{{") and stripped.endswith("}}") else None
        if expr is not None:  # as Environment.compile_expression does, from the parsed node
            self._env, self._expr = env, expr  # code is generated on the first render that needs it:
            self._path = _plain_path(expr)     # `{{ participant.id }}` is looked up, never compiled
        else:  # text with only {{ }} is compiled on its first render too; statements can fail Python's
            self._env, self._ast = env, ast  # own limits (20 nested blocks), so they compile here, now
            if "{%" in source:
                self._compile_text()

    def _compile_text(self):
        self._template = self._env.from_string(self._ast)
        self._ast = None
        return self._template

    def _compile_expression(self):
        assign = nodes.Assign(nodes.Name("result", "store", lineno=1), self._expr, lineno=1)
        self._expression = self._env.from_string(nodes.Template([assign], lineno=1))
        return self._expression

    def __repr__(self) -> str:
        return f"Template({self.source!r})"

    def render(self, context: dict) -> object:
        """A lone ``{{ expression }}`` keeps its native type; anything else renders to a string."""
        if self._path is not None:  # `{{ participant.id }}`: the commonest template, looked up directly
            value = _lookup(context, self._path)
            if value is not _SLOW and (not isinstance(value, str) or len(value) <= self._limit):
                return value
        try:
            return self._native(context) if self._ast is None and self._template is None else self._text(context)
        except Exception as exc:  # anything a template does wrong stops only this run
            raise _failure(exc, self.source) from None

    def _native(self, context: dict) -> object:
        expression = self._expression or self._compile_expression()
        ctx = _new_context(expression, context)
        for _ in expression.root_render_func(ctx):
            pass
        value = ctx.vars.get("result")
        if isinstance(value, Undefined):
            value._fail_with_undefined_error()
        value = list(value) if isinstance(value, range) else value
        value = value if isinstance(value, _DATA) else str(value)  # no jinja objects leak out
        if isinstance(value, str) and len(value) > self._limit:
            raise TemplateError(f"template output is longer than {self._limit} characters")
        return value

    def _text(self, context: dict) -> str:
        """Stream with generate() so an over-long output stops early instead of filling memory."""
        template = self._template or self._compile_text()
        parts, size, stream = [], 0, _generate(template, context)
        try:
            for chunk in stream:
                size += len(chunk)
                if size > self._limit:
                    raise TemplateError(f"template output is longer than {self._limit} characters")
                parts.append(chunk)
        finally:
            stream.close()
        return "".join(parts)


class _Compiler:
    """The environment templates compile in: one per output cap, shared by every Sandbox (compiled
    templates are immutable and render against their own context), so a reload recompiles only
    the templates that changed. ``Sandbox.env`` stays each bot's own (callers may adjust it)."""

    def __init__(self, max_output: int):
        self.max_output = max_output
        self.env = _Environment(max_output)


_COMPILERS: dict[int, _Compiler] = {}
_COMPILED: OrderedDict = OrderedDict()  # (max_output, text) -> Template, least recently used first
_LOCK = threading.Lock()
MAX_COMPILED = 20000  # templates kept across reloads (a 256 KiB file holds at most a few thousand)


def clear_compiled() -> None:
    """Forget every compiled template (benchmarks measure a first compile with this)."""
    _COMPILED.clear()


class Sandbox:
    """One per bot: the sandboxed environment and the compiled templates it has asked for."""

    def __init__(self, max_output: int = 65536):
        self.max_output = max_output
        self.env = _Environment(max_output)
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
    try:
        found = Template(compiler, text)
    except JinjaError as exc:
        raise TemplateError(f"template syntax error: {exc}") from None
    except (RecursionError, SyntaxError, MemoryError):  # Python's own nesting limits
        raise TemplateError(too_deep()) from None
    except ValueError as exc:  # {{ 1111... }} past Python's int-string limit
        raise TemplateError(number_message(exc)) from None
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

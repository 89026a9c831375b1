"""The Jinja side of bot-file templates: the immutable sandbox with caps on the operations that
turn a small input into a huge one. Imported only when a template is more than a plain path
(runner/botfile/template_paths.py), so a bot of plain paths never loads Jinja."""

from __future__ import annotations

import functools
from collections.abc import Mapping

from jinja2 import StrictUndefined, nodes
from jinja2.exceptions import SecurityError
from jinja2.exceptions import TemplateError as JinjaError
from jinja2.runtime import Undefined, new_context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from runner.botfile.template_limits import deep_brackets, deep_nodes, number_message, too_deep
from runner.botfile.templates import DATA, TemplateError

MAX_BITS = 10000  # integers this big only come from abuse (10 ** 100000 would stall the bot)
MAX_EXPONENT = 1000
_PADDING = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})  # widths allocate up front


def _refuse_size(size: int, limit: int, what: str) -> None:
    if size > limit:
        raise SecurityError(f"{what} would be longer than {limit} characters")


class Environment(ImmutableSandboxedEnvironment):
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


def failure(exc: Exception, source: str) -> TemplateError:
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


def _plain_path(expr) -> tuple | None:
    """('participant', 'id') for `participant.id`; None for anything that is not a plain path."""
    path = []
    while isinstance(expr, nodes.Getattr):
        path.append(expr.attr)
        expr = expr.node
    if not isinstance(expr, nodes.Name) or any(p.startswith("_") for p in [expr.name, *path]):
        return None
    return (expr.name, *reversed(path))


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


class JinjaTemplate:
    """One template string parsed (and, with statements, compiled) by the sandbox. ``path`` is set
    when it is one plain path written in a way template_paths does not recognise (``{{ a . b }}``)."""

    def __init__(self, env: Environment, source: str, limit: int):
        self.source, self._limit, self._env = source, limit, env
        self.path = self._template = self._expression = self._expr = self._ast = None
        try:
            self._parse()
        except JinjaError as exc:
            raise TemplateError(f"template syntax error: {exc}") from None
        except (RecursionError, SyntaxError, MemoryError):  # Python's own nesting limits
            raise TemplateError(too_deep()) from None
        except ValueError as exc:  # {{ 1111... }} past Python's int-string limit
            raise TemplateError(number_message(exc)) from None

    def _parse(self) -> None:
        env, source = self._env, self.source
        if deep_brackets(env, source) is not None:
            raise TemplateError(too_deep())
        ast = env.parse(source)  # once: a 100 KB template costs a second per parse
        if deep_nodes(ast) is not None:
            raise TemplateError(too_deep())
        stripped = source.strip()  # the rule check_actions uses too: starts with {{ and ends with }}
        expr = _lone_expression(ast) if stripped.startswith("{{") and stripped.endswith("}}") else None
        if expr is not None:  # as Environment.compile_expression does, from the parsed node;
            self._expr, self.path = expr, _plain_path(expr)  # code is generated on the first render
        else:  # text with only {{ }} is compiled on its first render too; statements can fail Python's
            self._ast = ast  # own limits (20 nested blocks), so they compile here, now
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

    def render(self, context: dict) -> object:
        """A lone ``{{ expression }}`` keeps its native type; anything else renders to a string."""
        try:
            return self._native(context) if self._expr is not None else self._text(context)
        except Exception as exc:  # anything a template does wrong stops only this run
            raise failure(exc, self.source) from None

    def _native(self, context: dict) -> object:
        expression = self._expression or self._compile_expression()
        ctx = _new_context(expression, context)
        for _ in expression.root_render_func(ctx):
            pass
        value = ctx.vars.get("result")
        if isinstance(value, Undefined):
            value._fail_with_undefined_error()
        value = list(value) if isinstance(value, range) else value
        value = value if isinstance(value, DATA) else str(value)  # no jinja objects leak out
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

"""Sandboxed Jinja2 for bot files: compiled once from the file, checked statically at validate time.

Participant names and data messages come from strangers, so event data is only ever a context
variable (never compiled), the sandbox is immutable, and size-amplifying operations are capped.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping

from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError, TemplateAssertionError
from jinja2.exceptions import TemplateError as JinjaError
from jinja2.runtime import Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from runner.errors import did_you_mean

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
    return isinstance(text, str) and any(m in text for m in ("{{", "{%", "{#"))


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


class Template:
    """One compiled template string from the bot file; renders against event variables."""

    def __init__(self, sandbox: Sandbox, source: str):
        self.source, self._limit, env = source, sandbox.max_output, sandbox.env
        self._template = self._expression = self._path = None
        stripped = source.strip()
        body = env.parse(stripped).body if stripped.startswith("{{") and stripped.endswith("}}") else ()
        if (len(body) == 1
                and isinstance(body[0], nodes.Output) and len(body[0].nodes) == 1
                and not isinstance(body[0].nodes[0], nodes.TemplateData)):
            expr = body[0].nodes[0]  # as Environment.compile_expression does, from the parsed node
            assign = nodes.Assign(nodes.Name("result", "store", lineno=1), expr, lineno=1)
            self._expression = env.from_string(nodes.Template([assign], lineno=1))
            self._path = _plain_path(expr)
        else:
            self._template = env.from_string(source)

    def __repr__(self) -> str:
        return f"Template({self.source!r})"

    def render(self, context: dict) -> object:
        """A lone ``{{ expression }}`` keeps its native type; anything else renders to a string."""
        if self._path is not None:  # `{{ participant.id }}`: the commonest template, looked up directly
            value = _lookup(context, self._path)
            if value is not _SLOW and (not isinstance(value, str) or len(value) <= self._limit):
                return value
        try:
            return self._native(context) if self._expression is not None else self._text(context)
        except Exception as exc:  # anything a template does wrong stops only this run
            raise _failure(exc, self.source) from None

    def _native(self, context: dict) -> object:
        ctx = self._expression.new_context(dict(context))
        for _ in self._expression.root_render_func(ctx):
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
        parts, size, stream = [], 0, self._template.generate(context)
        try:
            for chunk in stream:
                size += len(chunk)
                if size > self._limit:
                    raise TemplateError(f"template output is longer than {self._limit} characters")
                parts.append(chunk)
        finally:
            stream.close()
        return "".join(parts)


class Sandbox:
    """One per bot: the sandboxed environment and a cache of compiled templates."""

    def __init__(self, max_output: int = 65536):
        self.max_output = max_output
        self.env = _Environment(max_output)
        self._cache: dict[str, Template] = {}

    def compile(self, text: str) -> Template:
        """Compile a template string from the bot file (never event data)."""
        if text not in self._cache:
            try:
                self._cache[text] = Template(self, text)
            except JinjaError as exc:
                raise TemplateError(f"template syntax error: {exc}") from None
        return self._cache[text]


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


# ---- static checks (validate time) -----------------------------------------------------------

_checker = _Environment(65536)
_OPEN = re.compile(r"\{\{|\{%|\{#")


def _code_mask(text: str) -> list[bool]:
    """True for each character of template code outside string literals (jinja nodes have no column)."""
    mask, i, n = [False] * len(text), 0, len(text)
    while (m := _OPEN.search(text, i)) is not None:
        if m.group() == "{#":
            i = n if (end := text.find("#}", m.end())) < 0 else end + 2
            continue
        close, j, quote = ("}}" if m.group() == "{{" else "%}"), m.end(), None
        while j < n and (quote or not text.startswith(close, j)):
            c = text[j]
            if quote:
                j += c == "\\"  # skip the escaped character
                quote = None if c == quote else quote
            elif c in "'\"":
                quote = c
            else:
                mask[j] = True
            j += 1
        i = j + 2
    return mask


def _locate(text: str, mask: list[bool], lineno: int, root: str, path: tuple = ()) -> tuple[int, int]:
    """(line, col) of ``root`` as code on line ``lineno``, or of the last attribute of ``root.path``."""
    starts = [0] + [k + 1 for k, c in enumerate(text) if c == "\n"]
    begin, end = starts[min(lineno, len(starts)) - 1], (starts + [len(text)])[min(lineno, len(starts))]
    pattern = r"(?<![\w.])" + re.escape(root) + r"(?!\w)"
    for k, attr in enumerate(map(re.escape, path)):
        if k == len(path) - 1:
            pattern += rf"\s*(?:\.\s*(?P<a>{attr})(?!\w)|\[\s*(?P<q>['\"]){attr}(?P=q)\s*\])"
        else:
            pattern += rf"\s*(?:\.\s*{attr}(?!\w)|\[\s*(['\"]){attr}\{k + 1}\s*\])"
    for m in re.finditer(pattern, text):
        if begin <= m.start() < end and mask[m.start()]:
            pos = m.start() if not path else m.start("a") if m.group("a") else m.start("q")
            line = text.count("\n", 0, pos)
            return line, pos - starts[line]
    return lineno - 1, 0


def _chain(node) -> tuple[nodes.Name, tuple] | None:
    """The root Name and constant attribute path of ``a.b['c']``, or None for anything dynamic."""
    path = []
    while isinstance(node, (nodes.Getattr, nodes.Getitem)):
        if isinstance(node, nodes.Getattr):
            path.append(node.attr)
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            path.append(node.arg.value)
        else:
            return None
        node = node.node
    return (node, tuple(reversed(path))) if isinstance(node, nodes.Name) and path else None


def check_template(text: str, variables: dict,
                   elsewhere: dict[str, str] | None = None) -> list[tuple[int, int, str]]:
    """Validate-time check of one template against the variables of its event.

    Returns ``(line_offset, col_offset, message)`` problems, 0-based relative to ``text``.
    ``elsewhere`` maps names unavailable here to a phrase such as ``"only in data_received"``.
    """
    try:
        ast = _checker.parse(text)
    except TemplateSyntaxError as exc:
        return [((exc.lineno or 1) - 1, 0, f"template syntax error: {exc.message}")]
    mask, problems, elsewhere = _code_mask(text), set(), elsewhere or {}

    def report(lineno: int, name: str, message: str, path: tuple = ()) -> None:
        problems.add((*_locate(text, mask, lineno, name, path), message))

    for node in ast.find_all((nodes.Filter, nodes.Test)):
        is_filter = isinstance(node, nodes.Filter)
        kind, known = ("filter", _checker.filters) if is_filter else ("test", _checker.tests)
        if node.name not in known:  # jinja defers these to run time inside {% if %}: check them all now
            report(node.lineno, node.name, f"unknown {kind} '{node.name}'{did_you_mean(node.name, known)}")
            node.name = "string" if is_filter else "defined"  # so the checks below can run
    for node in ast.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)):
        tag = type(node).__name__.lower()
        problems.add((node.lineno - 1, 0, f"'{tag}' is not supported in bot templates"))
    try:  # statements can fail jinja's own compile-time checks; plain {{ }} expressions cannot
        if "{%" in text:
            _checker.compile(ast)
    except TemplateAssertionError as exc:
        problems.add(((exc.lineno or 1) - 1, 0, f"template error: {exc.message}"))
    undeclared = meta.find_undeclared_variables(ast)  # knows loop variables, {% set %}, macro args
    stored = {n.name for n in ast.find_all(nodes.Name) if n.ctx != "load"}
    for node in ast.find_all(nodes.Name):
        name = node.name
        if node.ctx == "load" and name in undeclared and name not in variables:
            report(node.lineno, name, f"variable '{name}' is not available here ({elsewhere[name]})"
                   if name in elsewhere else f"unknown variable '{name}'{did_you_mean(name, variables)}")
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        root, path = _chain(node) or (None, ())
        if root is None or root.name not in variables or root.name in stored or root.name not in undeclared:
            continue
        spec = variables[root.name]
        for k, attr in enumerate(path):
            if not isinstance(spec, dict):  # LEAF (or any non-dict description) stops checking
                break
            if attr not in spec:
                owner = ".".join((root.name, *path[:k]))
                message = f"unknown attribute '{attr}' of '{owner}'{did_you_mean(attr, spec)}"
                report(root.lineno, root.name, message, path[: k + 1])
                break
            spec = spec[attr]
    return sorted(problems)

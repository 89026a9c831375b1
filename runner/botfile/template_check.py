"""Validate-time checks of bot-file templates: unknown variables, attributes, filters and tests,
each located at its line and column, and templates too deep for Jinja or Python to compile.

Every failure is returned as a problem; nothing a bot file can contain raises from here.
"""

from __future__ import annotations

import re
import threading
from bisect import bisect_left, bisect_right

from collections import OrderedDict

from jinja2 import TemplateSyntaxError, meta, nodes
from jinja2.exceptions import TemplateAssertionError

from runner.botfile.errors import did_you_mean
from runner.botfile.template_limits import deep_brackets, deep_nodes, number_message, too_deep, too_many_tags
from runner.botfile.templates import _Environment

_checker = _Environment(65536)
_OPEN = re.compile(r"\{\{|\{%|\{#")
_ROOT = re.compile(r"(?<![\w.])\w+")
_STEP = re.compile(r"\s*(?:\.\s*(\w+)|\[\s*(['\"])(.{0,200}?)\2\s*\])")
_MAX_PATH = 64  # attribute steps indexed after a name (templates nest at most MAX_NESTING levels)


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


class _Locator:
    """Columns for names and attribute paths: one pass over the text indexes every ``name.a['b']``
    written as code, so locating each of thousands of problems is a dictionary lookup."""

    def __init__(self, text: str):
        mask = _code_mask(text)
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.index: dict[tuple, list[tuple[int, int]]] = {}
        for m in _ROOT.finditer(text):
            if not mask[m.start()]:
                continue
            chain, pos = (m.group(),), m.end()
            self.index.setdefault(chain, []).append((m.start(), m.start()))
            while len(chain) <= _MAX_PATH and (step := _STEP.match(text, pos)) is not None:
                attr, at = (step.group(1), step.start(1)) if step.group(1) else (step.group(3), step.start(2))
                chain, pos = chain + (attr,), step.end()
                self.index.setdefault(chain, []).append((m.start(), at))

    def where(self, lineno: int, root: str, path: tuple = ()) -> tuple[int, int]:
        """(line, col), 0-based, of ``root`` written on line ``lineno`` (or of the last attribute of the path)."""
        found = self.index.get((root, *path), ())
        line = min(max(lineno, 1), len(self.starts)) - 1
        begin = self.starts[line]
        end = self.starts[line + 1] if line + 1 < len(self.starts) else float("inf")
        k = bisect_left(found, (begin, -1))
        if k < len(found) and found[k][0] < end:
            pos = found[k][1]
            at = bisect_right(self.starts, pos) - 1
            return at, pos - self.starts[at]
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


def _parse(text: str):
    """-> (ast, None) or (None, problem): syntax errors and every nesting limit become problems."""
    try:
        if (line := deep_brackets(_checker, text)) is not None:
            return None, (line - 1, 0, too_deep())
        ast = _checker.parse(text)
        if (line := deep_nodes(ast)) is not None:
            return None, (line - 1, 0, too_deep())
    except TemplateSyntaxError as exc:
        return None, ((exc.lineno or 1) - 1, 0, f"template syntax error: {exc.message}")
    except (RecursionError, MemoryError):
        return None, (0, 0, too_deep())
    except ValueError as exc:
        return None, (0, 0, number_message(exc))
    return ast, None


class _Facts:
    """What a template's parse says independently of its event's variables, worked out once per
    distinct text (a 1,000-action file repeats many templates; a reload repeats all of them)."""

    __slots__ = ("failed", "fixed", "names", "undeclared", "stored", "chains", "_text", "_locator", "volatile")

    def __init__(self, text: str):
        self._text, self._locator = text, None
        self.volatile = False  # a failure that depends on the caller's stack: never cached
        self.fixed: list = []  # (lineno, name, message) or (line, col, message) problems of the text alone
        self.names: list = []  # (lineno, name) of every loaded name
        self.chains: list = []  # (lineno, root, path) of every constant attribute path
        self.undeclared, self.stored = frozenset(), frozenset()
        crowded = too_many_tags(text)
        if crowded:
            self.failed = (0, 0, crowded)
            return
        ast, self.failed = _parse(text)
        if self.failed:
            self.volatile = self.failed[2] == too_deep() and deep_brackets(_checker, text) is None
            return
        for node in ast.find_all((nodes.Filter, nodes.Test)):
            is_filter = isinstance(node, nodes.Filter)
            kind, known = ("filter", _checker.filters) if is_filter else ("test", _checker.tests)
            if node.name not in known:  # jinja defers these to run time inside {% if %}: check them all now
                self.fixed.append((node.lineno, node.name,
                                   f"unknown {kind} '{node.name}'{did_you_mean(node.name, known)}"))
                node.name = "string" if is_filter else "defined"  # so the checks below can run
        for node in ast.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)):
            tag = type(node).__name__.lower()
            self.fixed.append((None, node.lineno - 1, f"'{tag}' is not supported in bot templates"))
        try:  # statements can fail jinja's own compile-time checks; plain {{ }} expressions cannot
            if "{%" in text:
                _checker.compile(ast)
        except TemplateAssertionError as exc:
            self.fixed.append((None, (exc.lineno or 1) - 1, f"template error: {exc.message}"))
        except (RecursionError, SyntaxError, MemoryError):  # Python's limits: ~20 nested {% for %}, ...
            self.failed, self.volatile = (0, 0, too_deep()), True
            return
        names = list(ast.find_all(nodes.Name))
        self.stored = frozenset(n.name for n in names if n.ctx != "load")
        if "{%" in text:  # knows loop variables, {% set %}, macro args (only statements declare names)
            self.undeclared = frozenset(meta.find_undeclared_variables(ast))
        else:
            self.undeclared = frozenset(n.name for n in names if n.ctx == "load" and n.name not in _checker.globals)
        self.names = [(n.lineno, n.name) for n in names if n.ctx == "load" and n.name in self.undeclared]
        for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
            root, path = _chain(node) or (None, ())
            if root is not None and root.name not in self.stored and root.name in self.undeclared:
                self.chains.append((root.lineno, root.name, path))

    @property
    def locator(self) -> _Locator:
        if self._locator is None:
            self._locator = _Locator(self._text)
        return self._locator


_FACTS: OrderedDict = OrderedDict()
_FACTS_LOCK = threading.Lock()
MAX_FACTS = 20000


def _facts(text: str) -> _Facts:
    with _FACTS_LOCK:
        found = _FACTS.get(text)
        if found is not None:
            _FACTS.move_to_end(text)
            return found
    found = _Facts(text)
    if found.volatile:
        return found
    with _FACTS_LOCK:
        _FACTS[text] = found
        while len(_FACTS) > MAX_FACTS:
            _FACTS.popitem(last=False)
    return found


def clear_facts() -> None:
    """Forget every parsed template (benchmarks measure a first check with this)."""
    with _FACTS_LOCK:
        _FACTS.clear()


def check_template(text: str, variables: dict,
                   elsewhere: dict[str, str] | None = None) -> list[tuple[int, int, str]]:
    """Validate-time check of one template against the variables of its event.

    Returns ``(line_offset, col_offset, message)`` problems, 0-based relative to ``text``.
    ``elsewhere`` maps names unavailable here to a phrase such as ``"only in data_received"``.
    """
    facts = _facts(text)
    if facts.failed:
        return [facts.failed]
    problems, elsewhere = set(), elsewhere or {}

    def report(lineno: int, name: str, message: str, path: tuple = ()) -> None:
        problems.add((*facts.locator.where(lineno, name, path), message))

    for lineno, name, message in facts.fixed:
        if lineno is None:
            problems.add((name, 0, message))
        else:
            report(lineno, name, message)
    for lineno, name in facts.names:
        if name not in variables:
            report(lineno, name, f"variable '{name}' is not available here ({elsewhere[name]})"
                   if name in elsewhere else f"unknown variable '{name}'{did_you_mean(name, variables)}")
    for lineno, root, path in facts.chains:
        if root not in variables:
            continue
        spec = variables[root]
        for k, attr in enumerate(path):
            if not isinstance(spec, dict):  # LEAF (or any non-dict description) stops checking
                break
            if attr not in spec:
                owner = ".".join((root, *path[:k]))
                message = f"unknown attribute '{attr}' of '{owner}'{did_you_mean(attr, spec)}"
                report(lineno, root, message, path[: k + 1])
                break
            spec = spec[attr]
    return sorted(problems)

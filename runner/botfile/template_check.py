"""Validate-time checks of bot-file templates: unknown variables, attributes, filters and tests,
each located at its line and column, and templates too deep for Jinja or Python to compile.

Every failure is returned as a problem; nothing a bot file can contain raises from here.
"""

from __future__ import annotations

import re
import threading
from bisect import bisect_left, bisect_right

from collections import OrderedDict

from runner.botfile.errors import did_you_mean
from runner.botfile.template_paths import plain_path

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


class KnownFacts:
    """What check_template needs to know of a template text, whatever worked it out."""

    __slots__ = ("failed", "fixed", "names", "chains", "volatile", "_text", "_locator")

    def __init__(self, text: str):
        self._text, self._locator = text, None
        self.failed = None  # (line, col, message): the text cannot be checked further
        self.volatile = False  # a failure that depends on the caller's stack: never cached
        self.fixed: list = []  # (lineno, name, message) or (line, col, message) problems of the text alone
        self.names: list = []  # (lineno, name) of every loaded name
        self.chains: list = []  # (lineno, root, path) of every constant attribute path

    @property
    def locator(self) -> _Locator:
        if self._locator is None:
            self._locator = _Locator(self._text)
        return self._locator


class _PathFacts(KnownFacts):
    """`{{ a.b.c }}`: one loaded name and its paths, as Jinja's parse lists them (outermost first)."""

    __slots__ = ()

    def __init__(self, text: str, path: tuple):
        super().__init__(text)
        line = text.count("\n", 0, text.index("{{")) + 1
        self.names = [(line, path[0])]
        self.chains = [(line, path[0], path[1:end]) for end in range(len(path), 1, -1)]


_FACTS: OrderedDict = OrderedDict()
_FACTS_LOCK = threading.Lock()
MAX_FACTS = 20000


def _facts(text: str) -> KnownFacts:
    with _FACTS_LOCK:
        found = _FACTS.get(text)
        if found is not None:
            _FACTS.move_to_end(text)
            return found
    path = plain_path(text)
    if path is not None:
        found = _PathFacts(text, path)
    else:
        from runner.botfile.template_facts import Facts
        found = Facts(text)
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

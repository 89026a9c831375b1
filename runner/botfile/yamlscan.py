"""Reading a broken or hostile YAML file well: a linear nesting pre-scan, and what went wrong in
words a bot author can act on (pointing at where a quote or bracket was opened, not where the
parser gave up)."""

from __future__ import annotations

import re

import yaml

from runner.botfile.errors import ConfigError, Problem


class _Scanner(yaml.reader.Reader, yaml.scanner.Scanner):
    """Tokens only: enough to see which value swallowed the lines after it."""

    def __init__(self, stream):
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)


_SPECIAL = re.compile(r"[\[\]{}\"'#]")
_DOUBLE_REST = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*"', re.S)  # unrolled loops: linear, no backtracking blow-up
_SINGLE_REST = re.compile(r"[^']*(?:''[^']*)*'")


def _starts_scalar(text: str, i: int) -> bool:
    """Whether a quote at ``i`` opens a quoted scalar (not an apostrophe inside plain text)."""
    j = i - 1
    while j >= 0 and text[j] in " \t":
        j -= 1
    if j < 0 or text[j] == "\n":
        return True
    return text[j] in "[{," or (text[j] in ":-?" and j < i - 1)


def check_flow_depth(text: str, file: str, max_depth: int) -> None:
    """The pure scanner reads a whole flow collection before composing it; refuse deep ones early.

    Brackets inside quoted values and comments do not nest anything, so they are skipped; one
    pass, linear in the size of the file."""
    if text.count("[") + text.count("{") <= max_depth:
        return
    depth, pos = 0, 0
    while True:
        match = _SPECIAL.search(text, pos)
        if match is None:
            return
        char, start = match.group(), match.start()
        pos = start + 1
        if char == "#":
            if start == 0 or text[start - 1] in " \t\n":
                pos = text.find("\n", start)
                if pos == -1:
                    return
            continue
        if char in "\"'":
            if _starts_scalar(text, start):
                rest = (_DOUBLE_REST if char == '"' else _SINGLE_REST).match(text, pos)
                if rest is None:
                    return  # an unclosed quote: the parser reports it where it starts
                pos = rest.end()
            continue
        depth += 1 if char in "[{" else -1
        if depth > max_depth:
            line = text.count("\n", 0, start) + 1
            col = start - (text.rfind("\n", 0, start) + 1) + 1
            raise ConfigError(Problem(file, line, col, f"the file nests deeper than {max_depth} levels",
                                      "a bot file never needs this much nesting; check the brackets"))
        depth = max(depth, 0)


_STRUCTURE = re.compile(r"\n[ \t]*(?:-[ \t]|[\w.-]+:(?:[ \t]|$))", re.M)


def runaway_quote(text: str, mark):
    """The quoted scalar that swallowed the next lines when its closing quote was deleted.

    ``say: "Welcome`` followed by more keys is valid YAML up to the next quote in the file, which
    closes it; the parser then fails *there*. When the token just before the failure is a quoted
    value spanning lines that look like keys or list items, that value is the real mistake."""
    scanner, last = _Scanner(text), None
    try:
        while scanner.check_token():
            if scanner.peek_token().start_mark.pointer >= mark.pointer:
                break
            last = scanner.get_token()
    except Exception:  # noqa: BLE001 - only a better message is at stake; the original error stands
        return None
    if not isinstance(last, yaml.ScalarToken) or last.style not in ("'", '"') or \
            last.end_mark.line != mark.line or last.start_mark.line == last.end_mark.line:
        return None
    return last if _STRUCTURE.search(text, last.start_mark.pointer, last.end_mark.pointer) else None


_YAML_MESSAGES = [
    (re.compile(r"found character '\\t' that cannot start any token"),
     "a tab character is used for indentation", "YAML needs spaces, not tabs: replace the tab with spaces"),
    (re.compile(r"mapping values are not allowed here"),
     "a ':' is in an unexpected place",
     "check the indentation of this line, or put quotes around a value that contains ': '"),
    (re.compile(r"expected <block end>, but found"),
     "this line's indentation does not match the lines above it",
     "line it up with the other keys at the same level (use spaces)"),
    (re.compile(r"did not find expected key"),
     "this line's indentation does not match the lines above it",
     "line it up with the other keys at the same level (use spaces)"),
    (re.compile(r"found unhashable key|found unacceptable key"),
     "a key must be plain text", "quote the key or fix the indentation"),
    (re.compile(r"found undefined alias|found undefined tag handle"),
     "aliases and tags are not allowed in bot files", None),
    (re.compile(r"expected ',' or '[\]}]', but got"),
     "unexpected text inside [ ] or { }",
     "put quotes around text that contains , : ? # [ ] { } (for example say: \"Are you there?\")"),
    (re.compile(r"found unknown escape character '(.)'"),
     "in double quotes a backslash starts an escape, and '\\{0}' is not one",
     "use single quotes around the value instead of double quotes, or write two backslashes: \\\\{0}"),
    (re.compile(r"while scanning a quoted scalar"),
     "a quoted value is not closed", "add the closing quote"),
    (re.compile(r"found character '(.)' that cannot start any token"),
     "the character '{0}' cannot start a value", "put quotes around the value"),
]


START_CONTEXTS = ("while scanning a quoted scalar",)
UNCLOSED = {"while parsing a flow mapping": "{}", "while parsing a flow sequence": "[]"}


def explain_yaml(exc: yaml.MarkedYAMLError) -> tuple[str, str | None]:
    raw = f"{exc.context or ''} {exc.problem or ''}".strip() or str(exc)
    for pattern, message, hint in _YAML_MESSAGES:
        match = pattern.search(raw)
        if match:
            if match.groups():
                return message.format(*match.groups()), hint and hint.format(*match.groups())
            return message, hint
    return f"invalid YAML: {exc.problem or raw}", None

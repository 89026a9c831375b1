"""The commonest template, one plain path such as ``{{ participant.id }}``, recognised without Jinja.

A bot whose templates are all plain paths (the data bots, most ``send`` and ``to`` fields) then
checks, compiles and renders without importing Jinja at all: ~20 ms of every start (issue 19).
Anything this module does not recognise goes through Jinja as before, so it only has to be right
about what it accepts: tests/test_template_paths.py compares it with Jinja's own parse.
"""

from __future__ import annotations

import keyword
import re

MAX_STEPS = 8  # `a.b.c...`: longer paths go through Jinja's own nesting checks

_NAME = r"[A-Za-z][A-Za-z0-9_]*"  # no leading underscore: the sandbox refuses those
_PATH = re.compile(rf"\{{\{{[ \t]*({_NAME}(?:\.{_NAME}){{0,{MAX_STEPS}}})[ \t]*\}}\}}")
# names Jinja does not read from the context: its constants and keywords, the sandbox's globals
# (range, dict, namespace) and the names its compiler binds itself (self, loop, caller, ...)
NOT_PLAIN = frozenset({*keyword.kwlist, "true", "false", "none", "range", "dict", "namespace", "lipsum",
                       "cycler", "joiner", "self", "loop", "caller", "varargs", "kwargs"})


def plain_path(text: str) -> tuple[str, ...] | None:
    """``('participant', 'id')`` for a template that is exactly ``{{ participant.id }}`` (whitespace
    around it aside); None for anything else, which Jinja parses."""
    match = _PATH.fullmatch(text.strip())
    if match is None:
        return None
    path = tuple(match.group(1).split("."))
    return None if path[0] in NOT_PLAIN else path

"""Mistakes that are valid YAML and valid against the schema, but never what the author meant.

* typographic quotes (“ ” „ « » ‘ ’) wrapping a value: YAML keeps them as part of the text, so
  ``say: “Welcome”`` speaks the quotes, ``if: “{{ x }}”`` is always true, ``match: “bye”`` never matches;
* control characters made by escapes in double quotes (``"\\b(bye)\\b"`` is a backspace, not a
  word boundary);
* masking secrets in messages whose values were cut short (``'abc...'``).
"""

from __future__ import annotations

from runner.botfile.env import MASK, mask
from runner.botfile.events import EVENTS

DOUBLE = "“”„‟«»＂"  # straight-quote look-alikes a word processor or phone keyboard types
SINGLE = "‘’‚‛‹›"
_ESCAPES = {"\x00": "\\0", "\x07": "\\a", "\x08": "\\b", "\x0b": "\\v", "\x0c": "\\f", "\x1b": "\\e",
            "\x85": "\\N", "\u2028": "\\L", "\u2029": "\\P"}
_NAMES = {"\x00": "a NUL character", "\x07": "a bell character", "\x08": "a backspace character",
          "\x0b": "a vertical tab", "\x0c": "a form feed", "\x1b": "an escape character",
          "\x85": "a next-line character", "\u2028": "a line separator", "\u2029": "a paragraph separator"}


def typographic_quotes(text: str) -> tuple[str, str] | None:
    """(how, quotes) when ``text`` is wrapped in, starts or ends with a stray typographic quote.

    A quote used inside a sentence (``He said “hi”``, ``“Hi,” she said``) is fine: only a value
    that is wrapped in them, or has a lone one at its very start or end, is a mistake. Single
    curly quotes count only when they wrap the whole value (``’`` also ends ``the players’``).
    """
    text = text.strip()
    if not text:
        return None
    first, last = text[0], text[-1]
    for kind in (DOUBLE, SINGLE):
        if len(text) >= 2 and first in kind and last in kind and not any(c in kind for c in text[1:-1]):
            return "wrapped", f"{first} {last}"
    if sum(c in DOUBLE for c in text) == 1:
        if first in DOUBLE:
            return "starts", first
        if last in DOUBLE:
            return "ends", last
    return None


def control_chars(text: str) -> list[str]:
    """Characters no bot file value means to hold; YAML makes them from escapes in double quotes."""
    return sorted({c for c in text if (ord(c) < 32 and c not in "\t\n\r") or c in "\x7f\x85\u2028\u2029"})


def _field(path: tuple) -> str:
    return next((str(p) for p in reversed(path) if isinstance(p, str)), "this value")


def _is_regex_field(path: tuple) -> bool:
    """A trigger field the registry declares as a regular expression (user_said's match)."""
    if len(path) < 4 or path[0] != "on" or not isinstance(path[-1], str) or not isinstance(path[-2], int):
        return False
    event = EVENTS.get(path[1]) if isinstance(path[1], str) else None
    if event is None or event.kind != "triggers" or not event.trigger or path[2:-2] not in ((), ("do",)):
        return False
    return (event.trigger.get("properties", {}).get(path[-1]) or {}).get("format") == "regex"


def _escaped(text: str) -> str:
    return "".join(_ESCAPES.get(c, f"\\x{ord(c):02x}") if control_chars(c) else c for c in text)


def _strings(value, path=()):
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _strings(inner, path + (key,))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from _strings(inner, path + (index,))
    elif isinstance(value, str):
        yield path, value


def check_values(checker) -> set:
    """Report typographic quotes and control characters in every value of the file (as written,
    before ``${VAR}`` substitution); returns the paths reported, so later checks skip them."""
    reported = set()
    for path, text in _strings(checker.doc.data):
        name = _field(path)
        found = typographic_quotes(text)
        if found:
            how, quotes = found
            what = {"wrapped": f"is in typographic quotes {quotes}",
                    "starts": f"starts with a typographic quote {quotes}",
                    "ends": f"ends with a typographic quote {quotes}"}[how]
            checker.report(path, f"the value of '{name}' {what}, which YAML keeps as part of the text",
                           f"replace the typographic quotes {quotes} with straight quotes \" or remove them"
                           if " " in quotes else
                           f"replace the typographic quote {quotes} with a straight quote \" or remove it")
            reported.add(path)
            continue
        bad = control_chars(text)
        if not bad:
            continue
        char = bad[0]
        label = _NAMES.get(char, f"the control character U+{ord(char):04X}")
        escape = _ESCAPES.get(char, f"\\x{ord(char):02x}")
        said = f"in double quotes {escape} is {label}"
        if _is_regex_field(path):
            meant = _escaped(text)
            single = meant.replace("'", "''")
            example = f"'{single}'" if len(single) <= 60 else "'...'"
            checker.report(path, f"the pattern of '{name}' contains {label} (U+{ord(char):04X}), "
                                 f"so it never matches what people say",
                           f"{said}: use single quotes {example} or write \\{escape}")
        else:
            checker.report(path, f"the value of '{name}' contains {label} (U+{ord(char):04X})",
                           f"{said}: write \\{escape} for a backslash, use single quotes, or remove it")
        reported.add(path)
    return reported


def mask_all(text: str, secrets, window: int = 8) -> str:
    """``env.mask``, plus pieces of a secret: a message may show a value cut short (``'abc...'``),
    and a cut secret no longer matches in full. Any run of ``window`` characters of a secret, and a
    secret's beginning just before a ``...`` cut, are masked too. Linear in the text per secret."""
    text = mask(text, secrets)
    for secret in (s for s in secrets if isinstance(s, str) and len(s) >= 3):
        if len(secret) >= window:
            pieces = {secret[i:i + window] for i in range(len(secret) - window + 1)}
            covered = [False] * len(text)
            for i in range(len(text) - window + 1):
                if text[i:i + window] in pieces:
                    covered[i:i + window] = [True] * window
            if any(covered):
                out, i = [], 0
                while i < len(text):
                    if covered[i]:
                        while i < len(text) and covered[i]:
                            i += 1
                        out.append(MASK)
                    else:
                        out.append(text[i])
                        i += 1
                text = "".join(out)
        start = text.find("...")
        while start != -1:
            head = text[:start]
            cut = next((n for n in range(min(len(secret), len(head)), 3, -1) if head.endswith(secret[:n])), 0)
            if cut:
                text = head[:-cut] + MASK + text[start:]
                start += len(MASK) - cut
            start = text.find("...", start + 3)
    return text

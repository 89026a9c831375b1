"""Hardened YAML -> plain data, with the source position of every node.

Bot files are edited by non-programmers and reloaded inside a process that hosts
live calls, so the loader is strict and boring on purpose:

* libyaml's C parser for the events when PyYAML has it, composed by the guarded Python composer
  below (libyaml's own composer recurses without a limit and segfaults on deep nesting); a file
  the C path does not read cleanly is read again by the pure-Python parser, so every error
  message and position is the pure-Python one; no unsafe loader anywhere;
* only ``true``/``false`` are booleans (``on:``, ``no``, ``off``, ``yes`` stay strings),
  no octal, sexagesimal or timestamp surprises;
* anchors, aliases and custom tags are refused (billion-laughs, code execution);
* duplicate keys are errors naming both lines;
* size and depth are capped, and every failure becomes a ``ConfigError``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from runner.botfile.errors import ConfigError, Problem
from runner.botfile.yamlscan import (START_CONTEXTS,
                                            UNCLOSED,
                                            check_flow_depth,
                                            explain_yaml,
                                            runaway_quote)

MAX_BYTES = 256 * 1024
MAX_DEPTH = 64

Path = tuple  # of str | int: the JSON-pointer-like path of a node


@dataclass
class Document:
    """Plain data plus where each value (and each mapping key) sits in the file."""

    file: str
    data: object
    text: str = ""
    values: dict = field(default_factory=dict)  # path -> (line, col), 1-based
    keys: dict = field(default_factory=dict)  # path -> (line, col) of the key itself

    def where(self, path: Path, key: bool = False) -> tuple[int, int]:
        """Position of ``path``, falling back to the nearest ancestor that has one."""
        path = tuple(path)
        table = self.keys if key else self.values
        while path:
            if path in table:
                return table[path]
            if path in self.values:
                return self.values[path]
            path = path[:-1]
        return self.values.get((), (1, 1))

    def problem(self, path: Path, message: str, hint: str | None = None, *, key: bool = False,
                severity: str = "error") -> Problem:
        line, col = self.where(path, key=key)
        return Problem(self.file, line, col, message, hint, severity)


class _StrictResolver(yaml.resolver.BaseResolver):
    """YAML 1.2-style core schema: no yes/no/on/off booleans, no octal or 22:22 numbers."""


_StrictResolver.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|false)$"), list("tf"))
_StrictResolver.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?(?:0|[1-9][0-9]*))$"), list("-+0123456789"))
_StrictResolver.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:0|[1-9][0-9]*)(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|[-+]?\.[0-9]+(?:[eE][-+]?[0-9]+)?"
               r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))
_StrictResolver.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])


class _BotLoader(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser, yaml.composer.Composer,
                 yaml.constructor.SafeConstructor, _StrictResolver):
    """Pure-Python composer that refuses anchors, aliases and deep nesting."""

    allowed_tags: frozenset = frozenset()  # flow files allow !include (runner/botfile/flow_load.py)

    def __init__(self, stream):
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        _StrictResolver.__init__(self)
        self._depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(event.start_mark, "aliases ('*name') are not allowed in bot files",
                           "write the value out in full; anchors and aliases are refused for safety")
        if getattr(event, "anchor", None):
            raise _Refused(event.start_mark, f"anchors ('&{event.anchor}') are not allowed in bot files",
                           "write the value out in full; anchors and aliases are refused for safety")
        tag = getattr(event, "tag", None)
        if tag and tag != "!" and tag not in _PLAIN_TAGS and tag not in self.allowed_tags:
            shown = "!!" + tag[len(_YAML_TAG):] if tag.startswith(_YAML_TAG) else tag
            raise _Refused(event.start_mark, f"YAML tag '{shown}' is not allowed in bot files",
                           "remove the '!' tag; use ${VAR} for environment values")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(event.start_mark, f"the file nests deeper than {MAX_DEPTH} levels",
                               "a bot file never needs this much nesting; check the indentation")
            return yaml.composer.Composer.compose_node(self, parent, index)
        finally:
            self._depth -= 1


try:
    from yaml._yaml import CParser as _CParser
except ImportError:  # PyYAML built without libyaml: the pure-Python loader does everything
    _CParser = None

if _CParser is not None:
    class _CBotLoader(yaml.composer.Composer, _CParser, yaml.constructor.SafeConstructor, _StrictResolver):
        """libyaml's events (the scanner and parser are most of the pure-Python cost), composed in
        Python by the same guarded composer: libyaml's parser is iterative, nothing recurses there."""

        allowed_tags: frozenset = frozenset()
        compose_node = _BotLoader.compose_node

        def __init__(self, stream):
            _CParser.__init__(self, stream)
            yaml.composer.Composer.__init__(self)
            yaml.constructor.SafeConstructor.__init__(self)
            _StrictResolver.__init__(self)
            self._depth = 0
else:
    _CBotLoader = None


_YAML_TAG = "tag:yaml.org,2002:"
_PLAIN_TAGS = {f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "map", "seq")}


class _Refused(Exception):
    def __init__(self, mark, message, hint=None):
        self.mark, self.message, self.hint = mark, message, hint


def text_digest(text: str) -> str:
    """Identity of a bot file's content (reload skips a save that changed nothing)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def load_text(text: str, file: str, loader_class=None) -> Document:
    """Parse ``text`` into a ``Document``; every failure is a ``ConfigError``."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise ConfigError(Problem(file, 1, 1, f"the file is larger than {MAX_BYTES // 1024} KiB",
                                  "split it into several bot files"))
    bad = yaml.reader.Reader.NON_PRINTABLE.search(text)
    if bad:
        line = text.count("\n", 0, bad.start()) + 1
        col = bad.start() - (text.rfind("\n", 0, bad.start()) + 1) + 1
        what = "a NUL byte; it is not a text file" if bad.group() == "\x00" else \
            f"the control character U+{ord(bad.group()):04X}, which YAML does not allow"
        raise ConfigError(Problem(file, line, col, f"the file contains {what}",
                                  None if bad.group() == "\x00" else "delete it (it is often invisible)"))
    check_flow_depth(text, file, MAX_DEPTH)
    # a subclass differs only in the tags it allows, and a text with a tag never takes the fast path
    if _CBotLoader is not None and (loader_class is None or issubclass(loader_class, _BotLoader)) \
            and not _C_DIFFERS.search(text):
        doc = _fast(text, file)
        if doc is not None:
            return doc
    loader = (loader_class or _BotLoader)(text)
    doc = Document(file=file, data=None, text=text)
    try:
        node = loader.get_single_node()
        if node is not None:
            doc.data = _build(node, (), doc, loader)
    except _Refused as exc:
        raise ConfigError(Problem(file, exc.mark.line + 1, exc.mark.column + 1, exc.message, exc.hint)) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message, hint = explain_yaml(exc)
        unclosed = UNCLOSED.get(exc.context or "") if "<stream end>" in (exc.problem or "") else None
        if unclosed and exc.context_mark:
            message, hint = f"a '{unclosed[0]}' is not closed", f"add the closing '{unclosed[1]}'"
        if (unclosed or exc.context in START_CONTEXTS) and exc.context_mark:
            mark = exc.context_mark  # an unclosed quote or bracket: point at where it was opened
        elif exc.problem_mark and (runaway := runaway_quote(text, exc.problem_mark)) is not None:
            mark, quote = runaway.start_mark, runaway.style
            message = "a quoted value is not closed"
            hint = (f"add the closing {quote} at the end of this value; without it, the value runs on "
                    f"to the {quote} on line {runaway.end_mark.line + 1}")
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise ConfigError(Problem(file, line, col, message, hint)) from None
    except ConfigError:
        raise
    except (yaml.YAMLError, RecursionError, ValueError, OverflowError, TypeError,
            UnicodeError, MemoryError) as exc:
        raise ConfigError(Problem(file, 1, 1, f"cannot read this file as YAML: {type(exc).__name__}")) from None
    finally:
        loader.dispose()
    return doc


# Where libyaml and the pure-Python reader disagree, the reference reader decides: tabs (libyaml
# allows more of them), a BOM inside the text, unusual line breaks, explicit '? ' keys (the empty
# value's position differs), '!' tags and, found after parsing, plain scalars inside [ ] or { } that are
# empty or hold an indicator (libyaml reads `{a: b?c}` and places `{a: }` one column on).
_C_DIFFERS = re.compile("[\t\ufeff\x85\u2028\u2029]|(?:\\A|(?<=[\\s\\[{,]))(?:\\?(?=\\s|\\Z)|!)"
                        "|[|>][-+0-9]*#")  # and a block scalar header glued to a comment ('>#')
_FLOW_INDICATORS = frozenset(",?[]{}:#")


def _flow_plain_differs(root) -> bool:
    stack = [(root, False)]
    while stack:
        node, flow = stack.pop()
        if isinstance(node, ScalarNode):
            if flow and not node.style and (not node.value or not _FLOW_INDICATORS.isdisjoint(node.value)):
                return True
            continue
        flow = flow or bool(node.flow_style)
        if isinstance(node, MappingNode):
            for key, value in node.value:
                stack.append((key, flow))
                stack.append((value, flow))
        else:
            stack.extend((item, flow) for item in node.value)
    return False


def _fast(text: str, file: str) -> Document | None:
    """The document through libyaml's parser, or None for anything it does not read cleanly: the
    pure-Python path then reads the file again and reports the problem in its own words."""
    loader = _CBotLoader(text)
    doc = Document(file=file, data=None, text=text)
    try:
        node = loader.get_single_node()
        if node is not None:
            if _flow_plain_differs(node):
                return None
            doc.data = _build(node, (), doc, loader)
    except Exception:  # noqa: BLE001 - every failure is explained by the reference path
        return None
    finally:
        loader.dispose()
    return doc


def load_bytes(raw: bytes, file: str) -> Document:
    if len(raw) > MAX_BYTES:
        raise ConfigError(Problem(file, 1, 1, f"the file is larger than {MAX_BYTES // 1024} KiB",
                                  "split it into several bot files"))
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(Problem(file, line, col, "the file is not valid UTF-8 text",
                                  "save it as UTF-8 in your editor")) from None
    return load_text(text, file)


def load_file(path, display: str | None = None) -> Document:
    display = display or str(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(Problem(display, 1, 1, "file not found")) from None
    except IsADirectoryError:
        raise ConfigError(Problem(display, 1, 1, "this is a folder, not a bot file")) from None
    except OSError as exc:
        raise ConfigError(Problem(display, 1, 1, f"cannot read the file: {exc.strerror}")) from None
    return load_bytes(raw, display)


def _pos(node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _build(node, path: Path, doc: Document, loader: _BotLoader):
    doc.values[path] = _pos(node)
    if isinstance(node, MappingNode):
        result: dict = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or (
                    isinstance(key_node, ScalarNode) and key_node.value == "<<" and not key_node.style):
                raise _Refused(key_node.start_mark, "merge keys ('<<') are not allowed in bot files",
                               "write the keys out in full")
            if not isinstance(key_node, ScalarNode):
                if node.flow_style and node.start_mark.buffer and \
                        node.start_mark.buffer[node.start_mark.pointer:node.start_mark.pointer + 2] == "{{":
                    raise _Refused(node.start_mark, "a value that starts with '{{' must be in quotes",
                                   "write it as \"{{ ... }}\" (YAML reads an unquoted { as a mapping)")
                raise _Refused(key_node.start_mark, "a key must be plain text, not a list or mapping",
                               "check the indentation of this line")
            key = loader.construct_object(key_node)
            if not isinstance(key, str):
                key = key_node.value  # keys are names: '1' and 'true' stay text
            if key in result:
                first = doc.keys[path + (key,)]
                raise ConfigError(Problem(
                    doc.file, *_pos(key_node),
                    f"duplicate key '{key}' (first defined at line {first[0]})",
                    "remove one of them; YAML would silently keep only the last"))
            doc.keys[path + (key,)] = _pos(key_node)
            result[key] = _build(value_node, path + (key,), doc, loader)
        return result
    if isinstance(node, SequenceNode):
        return [_build(item, path + (i,), doc, loader) for i, item in enumerate(node.value)]
    value = loader.construct_object(node)
    if isinstance(value, float) and value != value:  # NaN is never what a bot author meant
        return node.value
    return value

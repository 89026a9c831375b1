"""Where a `flow:` comes from: inline in the bot file, or a flow file with `!include`s.

Pipecat Flows files use `!include FILE`; lkrun allows it in flow files only, confined to the bot
file's folder and without loops. Every value keeps its file, line and column, so a problem deep
in an included file is reported there. Paths are relative to the flow's root (`("nodes",
"greet", "functions", 0)`), whichever file holds them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from runner.botfile.errors import ConfigError, Problem
from runner.botfile.yamlsafe import Document, _BotLoader, load_bytes, MAX_BYTES

INCLUDE_TAG = "!include"
MAX_INCLUDES = 64


@dataclass(frozen=True)
class Include:
    target: object
    line: int
    col: int


class _FlowLoader(_BotLoader):
    allowed_tags = frozenset({INCLUDE_TAG})


_FlowLoader.add_constructor(
    INCLUDE_TAG, lambda loader, node: Include(node.value if isinstance(node, yaml.ScalarNode) else None,
                                              node.start_mark.line + 1, node.start_mark.column + 1))


class FlowDocument(Document):
    """A view of the flow's data: positions looked up in the file that holds each path.

    ``parts`` are (prefix, document, doc_prefix): paths under ``prefix`` live in ``document`` at
    ``doc_prefix + rest``; the longest prefix wins (an include inside a flow file)."""

    def __init__(self, data, parts: list, failed=()):
        super().__init__(file=parts[0][1].file, data=data, text=parts[0][1].text)
        self.parts = parts
        self.failed = tuple(failed)  # paths whose !include failed (reported once, not again as missing values)

    def _part(self, path: tuple, key: bool = False):
        """The part holding ``path``; for a key, the part that wrote the key (the including file)."""
        path = tuple(path)
        best = self.parts[0]
        for part in self.parts:
            prefix = part[0]
            inside = len(prefix) < len(path) if key else True
            if inside and len(prefix) >= len(best[0]) and path[:len(prefix)] == prefix:
                best = part
        return best, path[len(best[0]):]

    def where(self, path, key: bool = False) -> tuple[int, int]:
        (prefix, doc, doc_prefix), rest = self._part(path, key)
        return doc.where(doc_prefix + rest, key=key)

    def file_of(self, path, key: bool = False) -> str:
        return self._part(path, key)[0][1].file

    def text_of(self, path) -> str:
        return self._part(path)[0][1].text

    def problem(self, path, message, hint=None, *, key=False, severity="error") -> Problem:
        line, col = self.where(path, key=key)
        return Problem(self.file_of(path, key), line, col, message, hint, severity)

    def files(self) -> tuple:
        return tuple(dict.fromkeys(doc.file for _, doc, _ in self.parts))


def inline(doc: Document, data) -> FlowDocument:
    """The flow written in the bot file itself, under `flow:`."""
    return FlowDocument(data, [((), doc, ("flow",))])


def from_file(doc: Document, reference, at: tuple, problems: list) -> FlowDocument | None:
    """`flow: FILE` / `flow: {file: FILE}`: the file, its includes resolved. Problems (with the
    position of the reference in the bot file) go to ``problems``; None when it cannot be read."""
    root = Path(doc.file).resolve().parent
    bot_dir = Path(doc.file).parent
    ref_line, ref_col = doc.where(at)
    path = _confined(bot_dir, root, reference)
    if path is None:
        problems.append(Problem(doc.file, ref_line, ref_col,
                                f"the flow file '{reference}' is outside the bot file's folder",
                                "keep flow files in the bot's folder or a folder inside it (e.g. flows/intake.yaml)"))
        return None
    flow_doc = _read(path, doc.file, ref_line, ref_col, problems, str(reference))
    if flow_doc is None:
        return None
    parts, failed = [((), flow_doc, ())], []
    flow_doc.data = _resolve(flow_doc.data, (), (), flow_doc, (bot_dir, root, path.parent), parts,
                             (problems, failed), seen=(path.resolve(),))
    return FlowDocument(flow_doc.data, parts, failed)


def _confined(bot_dir: Path, root: Path, reference, base: Path | None = None) -> Path | None:
    if not isinstance(reference, str) or not reference.strip():
        return None
    candidate = ((base or bot_dir) / reference)
    try:
        resolved = candidate.resolve()
    except (OSError, RuntimeError):
        return None
    if resolved != root and root not in resolved.parents:
        return None
    return candidate


def _read(path: Path, file: str, line: int, col: int, problems: list, shown: str) -> Document | None:
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        problems.append(Problem(file, line, col, f"flow file '{shown}' not found",
                                "the path is relative to the bot file's folder"))
        return None
    except OSError as exc:
        problems.append(Problem(file, line, col, f"cannot read the flow file '{shown}': {exc.strerror or exc}"))
        return None
    try:
        return _load(raw, str(path))
    except ConfigError as exc:
        problems.extend(exc.problems)
        return None


def _load(raw: bytes, file: str) -> Document:
    """lkrun's hardened loader (size, control characters, no anchors or tags), plus !include."""
    from runner.botfile.yamlsafe import load_text
    if len(raw) > MAX_BYTES:
        return load_bytes(raw, file)  # reports the size
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return load_bytes(raw, file)  # reports the position of the bad byte
    return load_text(text, file, loader_class=_FlowLoader)


def _resolve(value, at: tuple, path: tuple, doc: Document, dirs: tuple, parts: list, found: tuple,
             seen: tuple):
    """Replace every Include in ``value`` with the included file's data (recorded in ``parts``).

    ``at`` is where ``doc`` sits in the flow, ``path`` the value's path inside ``doc``; include
    paths resolve against the top flow file's folder (as pipecat's include loader does)."""
    bot_dir, root, base = dirs
    if isinstance(value, dict):
        return {k: _resolve(v, at, path + (k,), doc, dirs, parts, found, seen) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, at, path + (i,), doc, dirs, parts, found, seen) for i, v in enumerate(value)]
    if not isinstance(value, Include):
        return value
    problems, failed = found
    failed.append(at + path)  # until the include is read
    if not isinstance(value.target, str) or not value.target.strip():
        problems.append(Problem(doc.file, value.line, value.col, "!include needs a file path",
                                "for example: task_messages: !include prompts/greet.yaml"))
        return None
    target = _confined(bot_dir, root, value.target, base)
    if target is None:
        problems.append(Problem(doc.file, value.line, value.col,
                                f"!include '{value.target}' is outside the bot file's folder",
                                "included files must be in the bot's folder or a folder inside it"))
        return None
    if target.resolve() in seen:
        problems.append(Problem(doc.file, value.line, value.col,
                                f"!include '{value.target}' includes itself (a loop through "
                                f"{' -> '.join(p.name for p in seen)})", "remove the !include that closes the loop"))
        return None
    if len(parts) > MAX_INCLUDES:
        problems.append(Problem(doc.file, value.line, value.col, f"more than {MAX_INCLUDES} !include files"))
        return None
    included = _read(target, doc.file, value.line, value.col, problems, value.target)
    if included is None:
        return None
    failed.pop()
    parts.append((at + path, included, ()))
    return _resolve(included.data, at + path, (), included, dirs, parts, found, seen + (target.resolve(),))

"""``${VAR}`` / ``${VAR:-default}`` resolution, secret fields, and masking.

Substitution happens after parsing, so a value that is exactly one reference keeps a
type (``${RATE:-24000}`` is a number). The process environment wins over a ``.env``
file beside the bot file (python-dotenv's syntax). Secret values are collected so every output can mask them.
"""

from __future__ import annotations

import io
import logging
import os
import re
from pathlib import Path

import yaml

from runner.botfile.errors import Problem
from runner.botfile.yamlsafe import Document, _StrictResolver

_REF = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MASK = "***"


def is_secret_path(path: tuple) -> bool:
    """Fields that may only hold ``${...}`` references and are masked everywhere."""
    if path[:1] == ("livekit",) and len(path) == 2 and path[1] in ("api_key", "api_secret", "token"):
        return True
    if path[:1] == ("pipeline",) and len(path) == 4 and path[3] == "api_key":
        return True
    return False


def is_env_secret_path(path: tuple) -> bool:
    """Fields masked when they came from the environment (literals are allowed there)."""
    return "headers" in path and path[:1] == ("on",)


DOTENV_MAX_BYTES = 1024 * 1024  # a .env larger than this is not a .env


class _Unparsed(logging.Filter):
    """Collects python-dotenv's "could not parse statement starting at line N" instead of
    letting it reach stderr as a bare logging line: lkrun reports it as a located warning."""

    def __init__(self):
        super().__init__()
        self.lines: list[int] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith("python-dotenv could not parse") and record.args:
            self.lines.append(int(record.args[0]))
            return False
        return True


def read_dotenv(path: Path, unparsed: list[int] | None = None) -> dict[str, str]:
    """The .env file's values (python-dotenv's syntax: ``export``, quotes, escapes in double
    quotes, multi-line quoted values, ``#`` comments), taken literally: no ``${VAR}``
    expansion inside the file. An unreadable file reads as empty; the line numbers of
    statements dotenv could not parse are appended to ``unparsed`` (they are skipped)."""
    try:
        if not path.is_file() or path.stat().st_size > DOTENV_MAX_BYTES:  # never block on a FIFO
            return {}
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    from dotenv import dotenv_values  # only when a .env exists: most starts have none (~4 ms of imports)
    quiet = _Unparsed()
    dotenv_logger = logging.getLogger("dotenv.main")
    dotenv_logger.addFilter(quiet)
    try:
        found = dotenv_values(stream=io.StringIO(text), interpolate=False)
    finally:
        dotenv_logger.removeFilter(quiet)
    if unparsed is not None:
        unparsed.extend(quiet.lines)
    return {key: value for key, value in found.items() if value is not None and _NAME.match(key)}


def _typed(text: str):
    """Type a substituted value the way YAML would type it in place (the loader's rules:
    ``.inf`` is infinity, ``.nan`` stays text). Raises ValueError past Python's 4300-digit limit."""
    tag = _StrictResolver().resolve(yaml.ScalarNode, text, (True, False))
    if tag.endswith(":int"):
        return int(text)
    if tag.endswith(":float"):
        special = text.lower().lstrip("+")
        if special.endswith(".nan"):
            return text  # NaN is never what a bot author meant
        if special.endswith(".inf"):
            return float("-inf") if special.startswith("-") else float("inf")
        return float(text)
    if tag.endswith(":bool"):
        return text == "true"
    if tag.endswith(":null") and text:
        return None
    return text


class EnvResolver:
    """Resolves references in a loaded document, collecting problems and secret values."""

    def __init__(self, doc: Document, environ: dict | None = None, dotenv: dict | None = None,
                 allow_missing: bool = False):
        self.doc = doc
        self.environ = os.environ if environ is None else environ
        self.problems: list[Problem] = []
        if dotenv is None:
            dotenv = self._read_dotenv(Path(doc.file).parent / ".env")
        self.dotenv = dotenv
        self.allow_missing = allow_missing
        self.secrets: set[str] = set()
        self.referenced: set[str] = set()
        self.failed: set[tuple] = set()  # paths whose ${VAR} is unset (their empty value is not re-reported)

    def _read_dotenv(self, path: Path) -> dict[str, str]:
        unparsed: list[int] = []
        values = read_dotenv(path.resolve(), unparsed)
        for line in unparsed:
            self.problems.append(Problem(
                str(path), line, 1, "this .env line is not KEY=VALUE; it is ignored",
                "write NAME=value (quote values with spaces: NAME=\"two words\")", severity="warning"))
        return values

    def lookup(self, name: str) -> str | None:
        if name in self.environ:
            return self.environ[name]
        return self.dotenv.get(name)

    def resolve(self, value, path: tuple = ()):
        if is_secret_path(path):
            return self._secret(value, path)
        if isinstance(value, dict):
            resolved = {k: self.resolve(v, path + (k,)) for k, v in value.items()}
            return {k: v for k, v in resolved.items() if v is not None or not is_secret_path(path + (k,))}
        if isinstance(value, list):
            return [self.resolve(v, path + (i,)) for i, v in enumerate(value)]
        if isinstance(value, str) and "$" in value:
            result = self._substitute(value, path)
            if is_env_secret_path(path) and result != value and isinstance(result, str):
                self.secrets.add(result)
            return result
        return value

    def _secret(self, value, path):
        field = ".".join(str(p) for p in path if not isinstance(p, int))
        if value is None:
            return None
        if not isinstance(value, str) or not re.fullmatch(r"\$\{[^}]*\}", value.strip()):
            self.problems.append(self.doc.problem(
                path, f"'{field}' is a secret and must come from the environment, not be written in the file",
                f"write it as ${{MY_SECRET}} and set MY_SECRET in the environment or in a .env file "
                f"beside the bot (the value was not printed)"))
            return None
        result = self._substitute(value.strip(), path)
        if isinstance(result, str) and result:
            self.secrets.add(result)
        return None if result is None else str(result)

    def _substitute(self, text: str, path: tuple):
        pieces: list[str] = []
        position = 0
        whole = None
        for match in _REF.finditer(text):
            pieces.append(text[position:match.start()])
            position = match.end()
            token = match.group()
            if token == "$${":
                pieces.append("${")
                continue
            if match.group(1) is None:
                self.problems.append(self.doc.problem(path, "'${' is not closed with '}'",
                                                      "write ${NAME}, or $${ for a literal '${'"))
                return text
            body = match.group(1)
            name, sep, default = body.partition(":-")
            name = name.strip()
            if not _NAME.match(name):
                self.problems.append(self.doc.problem(
                    path, f"'${{{body}}}' is not a valid variable reference",
                    "names use letters, digits and '_' (like ${OPENAI_API_KEY} or ${ROOM:-lobby})"))
                return text
            self.referenced.add(name)
            found = self.lookup(name)
            if found is None and sep:
                found = default
            if found is None:
                severity = "warning" if self.allow_missing else "error"
                self.failed.add(tuple(path))
                self.problems.append(self.doc.problem(
                    path, f"environment variable '{name}' is not set",
                    f"set {name} in the environment or in a .env file beside the bot, "
                    f"or give a default: ${{{name}:-value}}", severity=severity))
                found = ""
            if found and (is_secret_path(path) or is_env_secret_path(path)):
                self.secrets.add(found)  # the variable's own value, wherever else it is printed
            pieces.append(found)
            if match.start() == 0 and match.end() == len(text):
                whole = found
        pieces.append(text[position:])
        if whole is not None and not is_secret_path(path):
            try:
                return _typed(whole)
            except ValueError:  # only a number longer than Python's 4300-digit limit gets here
                self.failed.add(tuple(path))  # (its empty value is not reported again)
                self.problems.append(self.doc.problem(
                    path, f"'${{{name}}}' gives a number with more than 4300 digits",
                    "no setting needs a number this long; check the value (it was not printed)"))
                return None
        return "".join(pieces)


def mask(text: str, secrets) -> str:
    """Replace every known secret value in ``text``; longest first so prefixes cannot leak."""
    for secret in sorted((s for s in secrets if s and len(s) >= 3), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text

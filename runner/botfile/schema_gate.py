"""A quick yes for the parts of a bot file that are right; jsonschema says what is wrong.

Importing jsonschema (attrs, referencing, its meta-schemas) was ~40 % of a cold
``lkrun validate``, and most files people run are valid. fastjsonschema turns a schema into
plain Python; that code is kept in lkrun's cache folder (like ``__pycache__``: keyed by the
schema, fastjsonschema's version and the Python version), so a later process checks a valid
file without either library's set-up.

The gate only ever says "valid". A value it rejects, and every schema that fastjsonschema
(Draft 7) could read differently from jsonschema's Draft 2020-12 (a ``$ref`` with siblings, a
keyword outside the list below, a format other than ``regex``), goes to jsonschema, which has
the last word and the words for the error. tests/test_schema_gate.py checks the gate never
accepts what jsonschema rejects, on every schema the checker uses.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import sys
import threading
from pathlib import Path

# validation keywords that mean the same in Draft 7 (fastjsonschema) and Draft 2020-12
_SAME = frozenset({
    "type", "properties", "additionalProperties", "required", "const", "enum", "items", "pattern",
    "anyOf", "allOf", "oneOf", "not", "$ref", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "propertyNames", "minLength", "maxLength", "minItems", "maxItems",
    "minProperties", "maxProperties", "format", "uniqueItems",
})
_ANNOTATIONS = frozenset({"$defs", "description", "title", "default", "deprecated", "examples",
                          "markdownDescription", "$comment", "readOnly", "writeOnly"})
_SUBSCHEMA_LISTS = ("anyOf", "allOf", "oneOf")
_SUBSCHEMA = ("items", "not", "additionalProperties", "propertyNames")
_OPTIONS = "use_default=False"  # how the code is generated: part of the cache key
_MISSING = object()
_checks: dict[str, object] = {}  # schema text -> its compiled check, or None (jsonschema only)


def accepts(text: str, schema: dict, instance) -> bool:
    """True only when ``instance`` is valid against ``schema`` (``text``: its canonical JSON)."""
    check = _checks.get(text, _MISSING)
    if check is _MISSING:
        check = _checks[text] = _load(text, schema) if gateable(schema) else None
    if check is None:
        return False
    try:
        check(instance)
    except Exception:  # a rejection (or anything odd): jsonschema decides and explains
        return False
    return True


def gateable(schema) -> bool:
    """Whether fastjsonschema reads every keyword of ``schema`` the way Draft 2020-12 does."""
    if isinstance(schema, bool):
        return True
    if not isinstance(schema, dict):
        return False
    keys = set(schema)
    if "$ref" in keys and keys - _ANNOTATIONS - {"$ref"}:
        return False  # Draft 7 ignores a $ref's siblings; 2020-12 applies them
    for key in keys - _ANNOTATIONS:
        if key not in _SAME and not key.startswith("x-"):
            return False
    if "format" in keys and schema["format"] != "regex":
        return False
    if "$ref" in keys and not str(schema["$ref"]).startswith("#/$defs/"):
        return False
    if "items" in keys and not isinstance(schema["items"], (dict, bool)):
        return False  # an items list is a tuple in Draft 7 and an error in 2020-12
    children = [*(schema.get("properties") or {}).values(), *(schema.get("$defs") or {}).values()]
    children += [schema[k] for k in _SUBSCHEMA if k in schema]
    for key in _SUBSCHEMA_LISTS:
        if key in schema:
            if not isinstance(schema[key], list):
                return False
            children += schema[key]
    return all(gateable(child) for child in children)


def _load(text: str, schema: dict):
    """The compiled check: from the cache folder, else generated now (and cached)."""
    try:
        import fastjsonschema
    except ImportError:
        return None
    digest = hashlib.sha256(f"{_OPTIONS}\n{text}".encode()).hexdigest()[:40]
    stored = _folder(fastjsonschema.VERSION) / f"{digest}.marshal"
    code = None
    try:
        code = marshal.loads(stored.read_bytes())
    except (OSError, ValueError, EOFError, TypeError):
        pass
    if code is None:
        try:
            source = fastjsonschema.compile_to_code(schema, use_default=False)
        except Exception:  # a schema fastjsonschema cannot compile: jsonschema only
            return None
        code = compile(source, f"<lkrun schema {digest[:12]}>", "exec")
        write_atomically(stored, marshal.dumps(code))
    import re
    from decimal import Decimal
    # fastjsonschema 2.22's code for a schema with `format: regex` lacks its Decimal import
    namespace: dict = {"__name__": f"lkrun_schema_{digest[:12]}", "Decimal": Decimal, "re": re}
    try:
        exec(code, namespace)  # noqa: S102 (code fastjsonschema generated from lkrun's own schema)
    except Exception:
        return None
    return namespace.get("validate")


def cache_folder() -> Path:
    """``$LKRUN_CACHE_DIR``, else ``$XDG_CACHE_HOME/lkrun``, else ``~/.cache/lkrun``."""
    if os.environ.get("LKRUN_CACHE_DIR"):
        return Path(os.environ["LKRUN_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lkrun"


def _folder(version: str) -> Path:
    return cache_folder() / f"schemas-fastjsonschema{version}-{sys.implementation.cache_tag}"


def write_atomically(path: Path, data: bytes) -> bool:
    """A cache file atomically, or not at all: one that cannot be written (read-only, full) only
    costs time. True when it was written."""
    temporary = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_bytes(data)
        os.replace(temporary, path)
    except OSError:
        try:
            temporary.unlink(missing_ok=True)
        except OSError:
            pass
        return False
    return True

"""The methods ``@dataclass`` writes, compiled once per machine instead of once per start.

For every class, ``dataclasses`` writes ``__init__``, ``__repr__``, ``__eq__`` and the rest as
source text and compiles it with ``exec`` while the module imports. pipecat's frames, pydantic's
and lkrun's own spec are ~800 such methods per bot process, and their compiling was ~20 % of a
bot's start-up (py-spy, bench/BASELINE.md). ``install()`` gives the ``dataclasses`` module an
``exec`` that looks the compiled code up by its exact text in lkrun's cache folder (like
``__pycache__``: one file per Python version and optimisation level), so a later start only runs
each ``def``. The text, its globals and its namespace stay dataclasses' own: only the compile
step is skipped, and any text not seen before is compiled as ``exec`` would have.
"""

from __future__ import annotations

import builtins
import marshal
import os
import sys
import threading
from types import CodeType

MAX_ENTRIES = 10_000  # ~1 KB each; a bot process writes ~900, so past this (upgrades piling up) start over

_codes: dict[str, CodeType] = {}
_fresh = 0  # texts compiled by this process and not yet saved
_lock = threading.Lock()


def _exec(source, globals=None, locals=None, /):
    """``exec`` for the dataclasses module: the same call, with the compile step cached."""
    global _fresh
    if globals is None:  # never from dataclasses; exec in the caller's frame as the builtin does
        frame = sys._getframe(1)
        return builtins.exec(source, frame.f_globals, frame.f_locals if locals is None else locals)
    if type(source) is str:
        code = _codes.get(source)
        if code is None:
            code = compile(source, "<string>", "exec", dont_inherit=True)  # as exec compiles it there
            with _lock:
                _codes[source] = code
                _fresh += 1
        source = code
    return builtins.exec(source, globals, locals)


def install() -> bool:
    """Give ``dataclasses`` the caching ``exec`` (once; before the first bot-side import)."""
    import dataclasses
    current = vars(dataclasses).get("exec")
    if current is _exec:
        return True
    if current is not None:  # somebody else's: leave it alone
        return False
    _codes.update(_read(cache_file()))
    dataclasses.exec = _exec
    return True


def cache_file():
    from importlib.util import MAGIC_NUMBER

    from runner.botfile.schema_gate import cache_folder
    name = f"dataclass-code-{sys.implementation.cache_tag}-{MAGIC_NUMBER.hex()}-O{sys.flags.optimize}.marshal"
    return cache_folder() / name


def _read(path) -> dict:
    """What an earlier process saved; anything unreadable is an empty cache, never an error."""
    try:
        data = marshal.loads(path.read_bytes())
    except (OSError, ValueError, EOFError, TypeError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {text: code for text, code in data.items() if type(text) is str and type(code) is CodeType}


def save() -> bool:
    """Write what this process compiled beside what is saved already (another process's work too).
    Atomic or not at all: a cache that cannot be written (read-only, full) only costs time."""
    global _fresh
    with _lock:
        if not _fresh:
            return False
        fresh, _fresh = _fresh, 0
        codes = dict(_codes)
    path = cache_file()
    merged = {**_read(path), **codes}
    if len(merged) > MAX_ENTRIES:
        merged = codes
    from runner.botfile.schema_gate import write_atomically
    if not write_atomically(path, marshal.dumps(merged)):
        with _lock:
            _fresh += fresh  # try again at the next save
        return False
    return True


def save_in_background() -> None:
    """save() off the event loop's way (a disk can be slow), when there is anything to save."""
    if _fresh:
        threading.Thread(target=save, name="dataclass code cache", daemon=True).start()

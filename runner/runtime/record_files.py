"""Writing session records: atomic files, the folder check, pruning old records, and a failure
as the bot's ``error`` event (never a crash)."""

from __future__ import annotations

import os
import re
import time
import uuid
from pathlib import Path

from loguru import logger


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "bot"


def reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def report_error(bot, message: str) -> None:
    """A record that cannot be written is the bot's `error` event (and a log line), never a crash."""
    logger.error(f"[{bot.spec.name}] {message}")
    bot.dispatcher.fire("error", None, extra={"error": {"message": message, "event": None, "action": None,
                                                        "line": None, "file": bot.spec.file}})


# -- files ------------------------------------------------------------------------------------------
def write_atomically(path: Path, text: str) -> None:
    """Write ``path`` so that readers see the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        unlink(temp)
        raise


def check_folder(folder: Path) -> None:
    """Raise OSError when records cannot be written into ``folder`` (made if missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    probe = folder / f".lkrun-write-check-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    probe.write_bytes(b"")
    probe.unlink()


def prune(folder: Path, bot_name: str, keep_days: float | None, max_files: int | None, now: float | None = None) -> list[str]:
    """Delete this bot's records (and their audio) older than keep_days, then all but the newest
    max_files; returns the names deleted. Other files in the folder are never touched."""
    if not keep_days and not max_files:
        return []
    pattern = re.compile(rf"^(\d{{8}}T\d{{6}}Z-{re.escape(safe_name(bot_name))}-[0-9a-f]{{8}})\.json$")
    records = sorted((m.group(1), p) for p in folder.iterdir() if (m := pattern.match(p.name)))
    now = time.time() if now is None else now
    doomed = []
    for stem, path in records:
        try:
            if keep_days and now - path.stat().st_mtime > keep_days * 86400:
                doomed.append(stem)
        except OSError:
            continue
    kept = [stem for stem, _ in records if stem not in doomed]
    if max_files and len(kept) > max_files:
        doomed += kept[:len(kept) - max_files]
    for stem in doomed:
        for suffix in (".json", ".wav"):
            unlink(folder / f"{stem}{suffix}")
    return doomed

"""Hot reload: watch the bot files' folders, check the new version, then swap it in.

Editors save by rename, so folders are watched, not files. After each batch the
*current* content is read (events are not replayed); unchanged content is skipped. An
invalid edit keeps the running version (like nginx -s reload, mkdocs serve).
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from pathlib import Path

import click
from loguru import logger

from runner.botfile.files import is_bot_file
from runner.botfile.errors import ConfigError
from runner.botfile.yamlsafe import text_digest
from runner.runtime.interpreter import off_loop



# the diff and its tiers live with the bot that applies them (runner.runtime.changes)
from runner.runtime.changes import describe, diff  # noqa: E402,F401  (re-exported for callers)


CHECK_BUDGET = 10.0  # seconds: a check that takes longer is reported, not waited for


def _resolve(path: Path) -> Path:
    """Path.resolve() raises on a symlink loop; the folder's resolution plus the name is close enough."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        try:
            return path.parent.resolve() / path.name
        except (OSError, RuntimeError):
            return path.absolute()


def _check(raw: bytes, key: str):
    from runner.botfile.check import check_document
    from runner.botfile.yamlsafe import load_bytes
    doc = load_bytes(raw, key)
    return doc, check_document(doc)


@dataclass
class FileChange:
    """What the watcher saw happen to one bot file; the host decides what to do about it."""

    key: str
    spec: object = None  # a new valid version (BotSpec)
    gone: str | None = None  # why the file is no longer a bot file ("deleted", ...)
    error: str | None = None  # why the new content cannot run (rendered problems)
    doc: object = None  # the loaded document of a valid version (positions for a duplicate)


class ReloadHost:
    """The host side of hot reload: what a bot file's change means for the running bots.

    Needs ``bots`` (key -> running bot), ``add_spec``, ``stop_bot`` and ``notice``."""

    bots: dict

    def keeps(self, key: str) -> str:
        return "still running the previous version" if key in self.bots else "not started: waiting for a fix"

    async def file_changed(self, change: FileChange) -> None:
        key = change.key
        if change.gone is not None:
            click.echo(f"{key}: {change.gone}, stopping its bot", err=True)
            await self.stop_bot(key)
            return
        if change.error is None:
            problem = self._duplicate(key, change)
            change.error = problem.render() if problem is not None else None
        if change.error is not None:
            click.echo(change.error, err=True)
            click.echo(f"{key}: {self.keeps(key)}", err=True)
            self.notice(key, "error", change.error)
            return
        for warning in change.spec.warnings:
            click.echo(warning.render(), err=True)
        bot = self.bots.get(key)
        if bot is None:
            await self.add_spec(key, change.spec)
            click.echo(f"{key}: started", err=True)
            return
        applied = await bot.apply(change.spec)
        message = f"reloaded {Path(key).name}: {describe(applied)}"
        logger.info(message)
        self.notice(key, "reload", message)

    def _duplicate(self, key: str, change: FileChange):
        """Two bots with the same room and identity, also when the second one comes through reload."""
        from runner.botfile.files import duplicate_problem, identity_key
        others = {identity_key(bot.spec): other for other, bot in self.bots.items() if other != key}
        other = others.get(identity_key(change.spec))
        return duplicate_problem(change.spec, change.doc, other) if other is not None else None


class Watcher:
    """Tracks each bot file's last content; reports changes to the host (it never drives the bots)."""

    def __init__(self, supervisor):
        self.supervisor = supervisor
        self.hashes: dict[str, str] = {}
        for spec in supervisor.specs:
            self.hashes[supervisor.key_for(spec.file)] = spec.text_hash
        self.folders = {_resolve(Path(f)).parent for f in supervisor.files} | set(supervisor.folders)
        self.bot_folders = {_resolve(Path(d)) for d in supervisor.folders}  # folder mode: any new file
        self.uses: dict[str, set[str]] = {}  # a flow file (or an include) -> keys of the bot files that use it
        for spec in supervisor.specs:
            self.used_by(supervisor.key_for(spec.file), spec)

    def used_by(self, key: str, spec) -> None:
        """Remember the flow files ``spec`` reads, so an edit to one of them reloads its bot."""
        for files in self.uses.values():
            files.discard(key)
        flow = getattr(spec, "flow", None)
        for file in (flow.files if flow is not None else ()):
            resolved = _resolve(Path(file))
            self.uses.setdefault(str(resolved), set()).add(key)
            self.folders.add(resolved.parent)

    def tracked(self, path: Path) -> bool:
        if str(_resolve(path)) in self.uses and self.uses[str(_resolve(path))]:
            return True
        if not is_bot_file(path):
            return False
        resolved = _resolve(path)
        return str(resolved) in self.supervisor.file_keys or resolved.parent in self.bot_folders

    def key(self, path: Path) -> str:
        try:
            return self.supervisor.key_for(path)
        except (OSError, RuntimeError):  # a symlink loop: the name it was known by, if any
            return self.supervisor.file_keys.get(str(_resolve(path)), str(path))

    def _known(self, key: str) -> bool:
        return key in self.supervisor.bots or key in self.hashes

    async def handle(self, path: Path) -> None:
        users = sorted(self.uses.get(str(_resolve(path)), ()))
        if users and str(_resolve(path)) not in self.supervisor.file_keys:
            for key in users:  # a flow file changed: check each bot file that uses it again
                self.hashes.pop(key, None)
                await self.handle(Path(key))
            return
        change = await self.look(path)
        if change is not None:
            if change.spec is not None:
                self.used_by(change.key, change.spec)
            await self.supervisor.file_changed(change)

    async def look(self, path: Path) -> FileChange | None:
        """What happened to this file, or None when nothing did (same content, unknown folder)."""
        key = self.key(path)
        if path.is_dir() or not path.exists():  # a folder in its place is a deletion of the bot file
            if not self._known(key):
                return None
            self.hashes.pop(key, None)
            return FileChange(key, gone="is now a folder, not a bot file" if path.is_dir() else "deleted")
        try:
            raw = path.read_bytes()
        except OSError as exc:
            self.hashes.pop(key, None)  # read again on the next change
            return FileChange(key, error=f"{key}: cannot read the file "
                                         f"({(exc.strerror or type(exc).__name__).lower()})")
        try:  # the same digest as BotSpec.text_hash (load_bytes decodes utf-8-sig too)
            digest = text_digest(raw.decode("utf-8-sig"))
        except UnicodeDecodeError:
            digest = hashlib.sha256(raw).hexdigest()
        if self.hashes.get(key) == digest:
            return None
        self.hashes[key] = digest
        try:  # in a thread: live calls keep running while a big file is checked
            doc, spec = await asyncio.wait_for(off_loop(_check, raw, key), CHECK_BUDGET)
        except asyncio.TimeoutError:
            return FileChange(key, error=f"{key}: checking took longer than {CHECK_BUDGET:g} s")
        except ConfigError as exc:
            return FileChange(key, error=exc.render())
        return FileChange(key, spec=spec, doc=doc)


async def watch_task(supervisor, *, debounce_ms: int = 1600, step_ms: int = 30) -> None:
    import watchfiles
    watcher = Watcher(supervisor)
    supervisor.watcher = watcher
    while not supervisor.stop_event.is_set():
        folders = sorted(str(f) for f in watcher.folders if f.is_dir())
        try:
            async for changes in watchfiles.awatch(*folders, debounce=debounce_ms, step=step_ms,
                                                   stop_event=supervisor.stop_event, recursive=False):
                for path in sorted({Path(p) for _, p in changes}):
                    await _one(watcher, path)
                await asyncio.sleep(0)
                if sorted(str(f) for f in watcher.folders if f.is_dir()) != folders:
                    break  # a bot now uses a flow file in another folder: watch that one too
            else:
                return
            continue
        except Exception as exc:  # the watch itself failed (a folder removed, ...): say so, try again
            click.echo(f"hot reload: watching {', '.join(folders)} failed ({type(exc).__name__}: {exc}); "
                       f"retrying in 2 s", err=True)
            await asyncio.sleep(2)


async def _one(watcher: Watcher, path: Path) -> None:
    try:
        if watcher.tracked(path):
            await watcher.handle(path)
    except Exception as exc:  # the watcher must survive anything a file can do (logs mask the traceback)
        logger.opt(exception=exc).error(f"reload of {path} failed: internal error ({type(exc).__name__}); "
                                        f"hot reload goes on")

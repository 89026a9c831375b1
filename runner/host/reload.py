"""Hot reload: watch the bot files' folders, check the new version, then swap it in.

Editors save by rename, so folders are watched, not files. After each batch the
*current* content is read (events are not replayed); unchanged content is skipped. An
invalid edit keeps the running version (like nginx -s reload, mkdocs serve).
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import click
from loguru import logger

from runner.botfile.files import BOT_SUFFIXES
from runner.botfile.errors import ConfigError
from runner.botfile import sections
from runner.botfile.yamlsafe import text_digest



def diff(old, new) -> dict:
    """-> {"tier": "live" | "settings" | "generation", "changes": [...], "settings": {index: delta}}

    Settings are compared as rendered, so editing a var that a system_instruction uses
    updates the LLM live too.
    """
    changed = sorted(k for k in set(old.raw) | set(new.raw) if old.raw.get(k) != new.raw.get(k))
    if old.identity != new.identity:
        changed = sorted(set(changed) | {"livekit"})
    result = {"tier": "live", "changes": changed, "settings": {}}
    live = sections.live_keys()
    rest = [k for k in changed if k not in live]
    if rest and rest != ["pipeline"] or not _same_shape(old, new):
        result["tier"] = "generation"
        return result
    for index, (a, b) in enumerate(zip(old.pipeline, new.pipeline)):
        sa, sb = _rendered_settings(a, old), _rendered_settings(b, new)
        if [k for k in sa if k not in sb] or _without_settings(a.body) != _without_settings(b.body):
            result["tier"] = "generation"
            return result
        delta = {k: v for k, v in sb.items() if sa.get(k) != v}
        if delta:
            result["settings"][index] = delta
    if result["settings"]:
        result["tier"] = "settings"
    elif rest:
        result["tier"] = "generation"
    return result


def _rendered_settings(stage, spec) -> dict:
    from runner.voice.services import stage_context
    from runner.botfile.templates import TemplateError, render_value
    try:
        return dict(render_value(dict(stage.body.get("settings") or {}), stage_context(spec)))
    except TemplateError:
        return {k: _source(v) for k, v in dict(stage.body.get("settings") or {}).items()}


def _source(value):
    return getattr(value, "source", value)


def _without_settings(body) -> dict:
    return {k: _source(v) for k, v in dict(body).items() if k != "settings"}


def _same_shape(old, new) -> bool:
    return [(s.kind, s.type) for s in old.pipeline] == [(s.kind, s.type) for s in new.pipeline]


def describe(change: dict) -> str:
    keys = ", ".join(change["changes"]) or "nothing"
    how = {"live": "applied live", "settings": "service settings updated live",
           "generation": "rejoined with a new pipeline"}[change["tier"]]
    return f"{keys} changed, {how}"


async def apply(bot, new_spec) -> dict:
    """Swap a checked spec into a running bot; returns the change description."""
    change = diff(bot.spec, new_spec)
    if change["tier"] == "settings":
        await _push_settings(bot, new_spec, change["settings"])
    bot.swap_spec(new_spec)
    if change["tier"] == "generation":
        bot.new_generation()
    bot.dispatcher.fire("reloaded", None, extra={"changes": change["changes"]})
    return change


async def _push_settings(bot, spec, deltas: dict) -> None:
    from runner.voice.services import settings_delta
    gen = bot.generation
    if gen is None or gen.worker is None:
        return
    for index, delta in deltas.items():
        frame = settings_delta(spec.pipeline[index], delta)
        if frame is not None:
            await gen.worker.queue_frame(frame)


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
    return check_document(load_bytes(raw, key))


class Watcher:
    """Tracks each bot file's last content and last good spec."""

    def __init__(self, supervisor):
        self.supervisor = supervisor
        self.hashes: dict[str, str] = {}
        for spec in supervisor.specs:
            self.hashes[supervisor.key_for(spec.file)] = spec.text_hash
        self.folders = {_resolve(Path(f)).parent for f in supervisor.files} | set(supervisor.folders)
        self.bot_folders = {_resolve(Path(d)) for d in supervisor.folders}  # folder mode: any new file

    def tracked(self, path: Path) -> bool:
        if path.suffix not in BOT_SUFFIXES or path.name.startswith("."):
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

    async def _gone(self, key: str, why: str) -> None:
        self.hashes.pop(key, None)
        click.echo(f"{key}: {why}, stopping its bot", err=True)
        await self.supervisor.stop_bot(key)

    def _keeps(self, key: str) -> str:
        return "still running the previous version" if key in self.supervisor.bots else "not started: waiting for a fix"

    async def handle(self, path: Path) -> None:
        key = self.key(path)
        if path.is_dir():  # the file was replaced by a folder: the bot file is gone, like a deletion
            if self._known(key):
                await self._gone(key, "is now a folder, not a bot file")
            return
        if not path.exists():
            if self._known(key):
                await self._gone(key, "deleted")
            return
        try:
            raw = path.read_bytes()
        except OSError as exc:
            self.hashes.pop(key, None)  # read again on the next change
            click.echo(f"{key}: cannot read the file ({(exc.strerror or type(exc).__name__).lower()}); "
                       f"{self._keeps(key)}", err=True)
            return
        try:  # the same digest as BotSpec.text_hash (load_bytes decodes utf-8-sig too)
            digest = text_digest(raw.decode("utf-8-sig"))
        except UnicodeDecodeError:
            digest = hashlib.sha256(raw).hexdigest()
        if self.hashes.get(key) == digest:
            return
        self.hashes[key] = digest
        try:  # in a thread: live calls keep running while a big file is checked
            spec = await asyncio.wait_for(asyncio.to_thread(_check, raw, key), CHECK_BUDGET)
        except asyncio.TimeoutError:
            message = f"{key}: checking took longer than {CHECK_BUDGET:g} s; {self._keeps(key)}"
            click.echo(message, err=True)
            self.supervisor.notice(key, "error", message)
            return
        except ConfigError as exc:
            click.echo(exc.render(), err=True)
            click.echo(f"{key}: {self._keeps(key)}", err=True)
            self.supervisor.notice(key, "error", exc.render())
            return
        for warning in spec.warnings:
            click.echo(warning.render(), err=True)
        bot = self.supervisor.bots.get(key)
        if bot is None:
            await self.supervisor.add_spec(key, spec)
            click.echo(f"{key}: started", err=True)
            return
        change = await apply(bot, spec)
        message = f"reloaded {Path(key).name}: {describe(change)}"
        logger.info(message)
        self.supervisor.notice(key, "reload", message)


async def watch_task(supervisor, *, debounce_ms: int = 1600, step_ms: int = 30) -> None:
    import watchfiles
    watcher = Watcher(supervisor)
    supervisor.watcher = watcher
    folders = sorted(str(f) for f in watcher.folders)
    while not supervisor.stop_event.is_set():
        try:
            async for changes in watchfiles.awatch(*folders, debounce=debounce_ms, step=step_ms,
                                                   stop_event=supervisor.stop_event, recursive=False):
                for path in sorted({Path(p) for _, p in changes}):
                    await _one(watcher, path)
                await asyncio.sleep(0)
            return
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

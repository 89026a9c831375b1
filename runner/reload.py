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

from .commands import BOT_SUFFIXES
from .errors import ConfigError
from .yamlsafe import text_digest

LIVE_KEYS = {"on", "vars", "name", "description"}


def diff(old, new) -> dict:
    """-> {"tier": "live" | "settings" | "generation", "changes": [...], "settings": {index: delta}}

    Settings are compared as rendered, so editing a var that a system_instruction uses
    updates the LLM live too.
    """
    changed = sorted(k for k in set(old.raw) | set(new.raw) if old.raw.get(k) != new.raw.get(k))
    if old.identity != new.identity:
        changed = sorted(set(changed) | {"livekit"})
    result = {"tier": "live", "changes": changed, "settings": {}}
    rest = [k for k in changed if k not in LIVE_KEYS]
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
    from .services import stage_context
    from .templates import TemplateError, render_value
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
    from .services import settings_delta
    gen = bot.generation
    if gen is None or gen.worker is None:
        return
    for index, delta in deltas.items():
        frame = settings_delta(spec.pipeline[index], delta)
        if frame is not None:
            await gen.worker.queue_frame(frame)


class Watcher:
    """Tracks each bot file's last content and last good spec."""

    def __init__(self, supervisor):
        self.supervisor = supervisor
        self.hashes: dict[str, str] = {}
        for spec in supervisor.specs:
            self.hashes[supervisor.key_for(spec.file)] = spec.text_hash
        self.folders = {Path(f).resolve().parent for f in supervisor.files} | set(supervisor.folders)
        self.bot_folders = {Path(d).resolve() for d in supervisor.folders}  # folder mode: any new file

    def tracked(self, path: Path) -> bool:
        if path.suffix not in BOT_SUFFIXES or path.name.startswith("."):
            return False
        resolved = path.resolve()
        return str(resolved) in self.supervisor.file_keys or resolved.parent in self.bot_folders

    async def handle(self, path: Path) -> None:
        key = self.supervisor.key_for(path)
        if not path.exists():
            if key in self.supervisor.bots or key in self.hashes:
                self.hashes.pop(key, None)
                click.echo(f"{key}: deleted, stopping its bot", err=True)
                await self.supervisor.stop_bot(key)
            return
        try:
            raw = path.read_bytes()
        except OSError:
            return
        try:  # the same digest as BotSpec.text_hash (load_bytes decodes utf-8-sig too)
            digest = text_digest(raw.decode("utf-8-sig"))
        except UnicodeDecodeError:
            digest = hashlib.sha256(raw).hexdigest()
        if self.hashes.get(key) == digest:
            return
        self.hashes[key] = digest
        from .check import check_document
        from .yamlsafe import load_bytes
        try:
            spec = check_document(load_bytes(raw, key))
        except ConfigError as exc:
            click.echo(exc.render(), err=True)
            running = key in self.supervisor.bots
            click.echo(f"{key}: " + ("still running the previous version" if running
                                     else "not started: waiting for a fix"), err=True)
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
    async for changes in watchfiles.awatch(*folders, debounce=debounce_ms, step=step_ms,
                                           stop_event=supervisor.stop_event, recursive=False):
        paths = {Path(p) for _, p in changes}
        for path in sorted(paths):
            if watcher.tracked(path):
                try:
                    await watcher.handle(path)
                except Exception as exc:  # the watcher must survive anything a file can do
                    logger.opt(exception=exc).error(f"reload of {path} failed: {exc}")
        await asyncio.sleep(0)

"""What changed between two versions of a bot file, and how a running bot takes it in.

Three tiers: ``live`` (on, vars and other live sections: swapped in place), ``settings``
(service settings pipecat can change live: pushed as update frames) and ``generation``
(anything else: the bot rejoins with a new pipeline, state kept).
"""

from __future__ import annotations

from runner.botfile import sections


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
    if old.flow is not None and new.flow is not None:
        live = live | {"flow"}  # a running flow takes its new version in (runtime/flow_reload.py)
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
           "generation": "rejoined with a new pipeline",
           "refused": "refused (pipecat's flow validation), still running the previous version"}[change["tier"]]
    return f"{keys} changed, {how}"


async def push_settings(bot, spec, deltas: dict) -> None:
    from runner.voice.services import settings_delta
    gen = bot.generation
    if gen is None or gen.worker is None:
        return
    for index, delta in deltas.items():
        frame = settings_delta(spec.pipeline[index], delta)
        if frame is not None:
            await gen.worker.queue_frame(frame)

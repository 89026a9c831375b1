"""``lkrun events``, ``lkrun actions``, ``lkrun stages``: what a bot file can name, from the registries."""

from __future__ import annotations


def describe_events() -> str:
    from runner.botfile.events import COMMON_DOC, EVENTS
    lines = ["Events (under on:). Every event has: " + ", ".join(f"{k} ({v})" for k, v in COMMON_DOC.items()), ""]
    width = max(len(name) for name in EVENTS.names()) + 2
    for event in EVENTS:
        extra = ", ".join(_flatten(event.variables)) or "-"
        form = " [triggers]" if event.kind == "triggers" else ""
        needs = f" (needs {event.needs})" if event.needs else ""
        lines.append(f"  {event.name:{width}}{event.doc}{form}{needs}\n  {'':{width}}variables: {extra}")
    return "\n".join(lines)


def _flatten(shape: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in shape.items():
        out.extend(_flatten(value, f"{prefix}{key}.") if isinstance(value, dict) else [f"{prefix}{key}"])
    return out


def describe_actions() -> str:
    from runner.botfile.actions import ACTIONS
    lines = ["Actions (in an event's list, one per '- '):", ""]
    width = max(len(name) for name in ACTIONS.names()) + 2
    for entry in ACTIONS:
        fields = ", ".join(entry.body.get("properties", {}))
        needs = f" (needs {entry.needs})" if entry.needs else ""
        lines.append(f"  {entry.name:{width}}{entry.doc}{needs}\n  {'':{width}}fields: {fields or '-'}"
                     f"\n  {'':{width}}e.g. {entry.example.splitlines()[0] if entry.example else ''}")
    return "\n".join(lines)


def describe_stages(kind: str | None) -> str:
    from runner.botfile import catalog
    from runner.botfile.stages import KINDS
    lines = []
    for name in ([kind] if kind else list(KINDS)):
        lines.append(f"{name}: {KINDS[name]}")
        for value in catalog.stage_types(name):
            entry = catalog.stage_entry(value)
            lines.append(f"  {value:28}{entry.get('label', '')}  [{catalog.install_hint(value)}]")
        lines.append(f"  {'python':28}your own: factory: package.module:function")
    return "\n".join(lines)

"""The flow as a graph: reachability, dead ends, and Mermaid text (`lkrun graph`, the playground)."""

from __future__ import annotations

import re


def _nodes(config) -> dict:
    nodes = config.get("nodes") if isinstance(config, dict) else None
    return {k: v for k, v in nodes.items() if isinstance(v, dict)} if isinstance(nodes, dict) else {}


def _list(value) -> list:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def edges(config: dict) -> list[tuple[str, str, str]]:
    """(from node, function name, to node) for every transition; global functions at every node."""
    def targets(function: dict) -> list[tuple[str, str]]:
        to = function.get("transition_to") if isinstance(function, dict) else None
        if isinstance(to, str):
            return [("", to)]
        if isinstance(to, dict):
            cases = to.get("cases") if isinstance(to.get("cases"), dict) else {}
            found = [(str(value), node) for value, node in cases.items() if isinstance(node, str)]
            if isinstance(to.get("default"), str):
                found.append(("default", to["default"]))
            return found
        return []

    shared = _list(config.get("global_functions"))
    found = []
    for name, node in _nodes(config).items():
        for function in _list(node.get("functions")) + shared:
            for case, target in targets(function):
                label = f"{function.get('name', '?')}" + (f" = {case}" if case else "")
                found.append((name, label, target))
    return found


def ends(config: dict) -> set[str]:
    return {name for name, node in _nodes(config).items() if any(
        a.get("type") == "end_conversation" for a in _list(node.get("pre_actions")) + _list(node.get("post_actions")))}


def reachable(config: dict) -> set[str]:
    start = config.get("initial_node")
    out: dict[str, set[str]] = {}
    for source, _, target in edges(config):
        out.setdefault(source, set()).add(target)
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node in seen or node is None:
            continue
        seen.add(node)
        todo.extend(out.get(node, ()))
    return seen


def dead_ends(config: dict) -> list[str]:
    """Nodes the conversation can neither leave nor end in."""
    leaving = {source for source, _, target in edges(config) if target != source}
    finished = ends(config)
    return [name for name in _nodes(config) if name not in leaving and name not in finished]


def _id(name: str) -> str:
    return "n_" + re.sub(r"[^A-Za-z0-9_]", "_", name)


def _label(text: str) -> str:
    return text.replace('"', "'").replace("\n", " ")


def mermaid(config, current: str | None = None) -> str:
    """Mermaid flowchart text: the start marked, end nodes rounded, ``current`` highlighted.

    ``config`` is a FlowSpec or its pipecat-shaped ``config`` dict."""
    config = getattr(config, "config", config)
    lines = ["flowchart TD", "  start((start))"]
    nodes = _nodes(config)
    finished = ends(config)
    for name in nodes:
        shape = f'(["{_label(name)}"])' if name in finished else f'["{_label(name)}"]'
        lines.append(f"  {_id(name)}{shape}")
    if config.get("initial_node") in nodes:
        lines.append(f"  start --> {_id(config['initial_node'])}")
    for source, label, target in edges(config):
        if target in nodes:
            lines.append(f'  {_id(source)} -->|"{_label(label)}"| {_id(target)}')
    if current in nodes:
        lines.append("  classDef current fill:#ffd54f,stroke:#e65100,stroke-width:3px")
        lines.append(f"  class {_id(current)} current")
    return "\n".join(lines) + "\n"

"""What test steps ask of a bot's `flow:`, checked and explained without pipecat.

- Check time (``lkrun test`` before any case runs): ``expect: {node: NAME}`` must name a node of
  the flow (did-you-mean), and ``llm: {call: {function}}`` / ``expect: {llm_called: {function}}``
  may name the flow's functions as well as the bot's tools.
- Run time: ``expect: {node: NAME}`` holds when the flow's current node (the one pipecat's
  FlowManager entered last, ``bot.flow.node``) is NAME; a mismatch names both nodes and the bot
  file line of the node the flow is in.
"""

from __future__ import annotations

from runner.botfile.errors import Problem, did_you_mean


def function_names(spec) -> list[str]:
    """The LLM functions of a bot's flow (every node's and the global ones), in file order."""
    flow = getattr(spec, "flow", None)
    if flow is None:
        return []
    names = [f.get("name") for node in flow.config["nodes"].values() for f in node.get("functions", [])]
    names += [f.get("name") for f in flow.config.get("global_functions", [])]
    return [n for n in dict.fromkeys(names) if isinstance(n, str)]


def check_steps(test, spec) -> list[Problem]:
    """Problems of ``expect: {node: ...}`` steps (an unknown node, a bot with no flow)."""
    doc, problems = test.doc, []
    flow = getattr(spec, "flow", None)
    nodes = list(flow.config["nodes"]) if flow is not None else []
    for case in test.cases:
        for step in case.steps:
            if step.kind != "expect" or not isinstance(step.body, dict) or "node" not in step.body:
                continue
            name = step.body["node"]
            where = step.path + ("expect", "node")
            if flow is None:
                problems.append(doc.problem(where, f"{test.bot_shown} has no flow: section, so it has no nodes",
                                            "'expect: {node: NAME}' is for bots with a flow"))
            elif name not in nodes:
                problems.append(doc.problem(where, f"the flow has no node '{name}'{did_you_mean(str(name), nodes)}",
                                            "its nodes: " + ", ".join(nodes)))
    return problems


def current_node(bot) -> str | None:
    session = getattr(bot, "flow", None)
    return getattr(session, "node", None)


def node_matches(bot, name) -> bool:
    return current_node(bot) == name


def explain_node(bot, name, failure) -> None:
    """Fill a Failure for ``expect: {node: NAME}``: the actual node and where it is in the bot file."""
    actual = current_node(bot)
    session = getattr(bot, "flow", None)
    failure.expected = f"node {name}"
    if actual is None:
        failure.actual = ["the flow has not started (it starts when the first person joins)"
                          if not getattr(session, "started", False) else "the flow is in no node"]
        return
    previous = getattr(session, "previous", None)
    failure.actual = [f"node {actual}" + (f" (entered from {previous})" if previous else " (the first node)")]
    path = getattr(bot, "path", None)
    if path and len(path) > 1:
        failure.actual.append("(the flow went: " + " -> ".join(path) + ")")
    if getattr(session, "ended", False):
        failure.actual.append("(the flow has ended)")
    failure.actual += [f"(also: {r.show()})" for r in bot.effects.records if r.kind == "error" and not r.used][-3:]
    definition = (getattr(bot.spec.flow, "nodes", {}) or {}).get(actual)
    if definition is not None and definition.line:
        failure.bot_line = f"{definition.file or bot.spec.file}:{definition.line}"


def explain_state(bot, value: dict, failure) -> None:
    """A state expectation failed on a key nothing in the case `set`: when its value is the flow's
    initial one (``flow: {state: ...}``), point at that line of the bot file instead."""
    flow = getattr(bot.spec, "flow", None)
    if flow is None or not flow.state:
        return
    from runner.testing.expect import subset
    written = {k for r in bot.effects.records if r.kind == "set" for k in (r.fields.get("values") or {})}
    for key, expected in (value.get("room") or {}).items():
        if key in flow.state and key not in written and not subset(expected, bot.state.room.get(key)):
            line = _line(bot.spec.file, ("flow", "state", key))
            if line:
                failure.bot_line = f"{bot.spec.file}:{line}"
                failure.actual.append(f"({key} is the flow's initial value, from flow: state:)")
            return


def _line(file: str, path: tuple) -> int | None:
    from runner.botfile.errors import ConfigError
    from runner.botfile.yamlsafe import load_file
    try:
        return load_file(file).where(path)[0]
    except (ConfigError, OSError):
        return None

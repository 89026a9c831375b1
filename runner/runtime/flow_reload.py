"""Hot reload of a running flow: what changed, and taking the new version in during a call.

Edits to other nodes apply the next time they are entered (transitions resolve by name in the
newest version); an edit of the current node's messages re-renders it now (the next LLM request
carries the new text, the node is kept); a deleted current node keeps the definition it was
entered with until the flow leaves it. The current node and the flow state (room state) survive.
"""

from __future__ import annotations

from loguru import logger


def _shape(value):
    """A comparable form of compiled values: templates by source, actions by what they say (no lines)."""
    from runner.botfile.spec import ActionNode
    from runner.botfile.templates import Template
    if isinstance(value, Template):
        return ("template", value.source)
    if isinstance(value, ActionNode):
        return ("action", value.name, _shape(value.body), _shape(dict(value.nested)), value.continue_on_error)
    if isinstance(value, dict) or hasattr(value, "items"):
        return tuple(sorted((repr(k), _shape(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_shape(v) for v in value)
    return value


def _node_shape(flow_spec, name: str):
    node = flow_spec.nodes.get(name)
    lk = None if node is None else (_shape(node.role_message), _shape(node.task_messages), _shape(node.tts_say),
                                    _shape(node.on_enter), _shape(node.on_exit))
    return flow_spec.config["nodes"].get(name), lk


def _handler_shape(handler):
    return (handler.description, _shape(handler.parameters), _shape(handler.actions), _shape(handler.result),
            handler.python)


def changed_nodes(old, new) -> list[str]:
    """Nodes added, removed or edited between two versions of a flow (a handler's edit counts for
    every node that offers it)."""
    if old is None or new is None:
        return sorted(set(getattr(old, "nodes", {}) or {}) | set(getattr(new, "nodes", {}) or {}))
    names = set(old.config["nodes"]) | set(new.config["nodes"])
    changed = {n for n in names if _node_shape(old, n) != _node_shape(new, n)}
    handlers = {h for h in set(old.handlers) | set(new.handlers)
                if (h in old.handlers) != (h in new.handlers)
                or (h in old.handlers and _handler_shape(old.handlers[h]) != _handler_shape(new.handlers[h]))}
    if old.config.get("global_functions") != new.config.get("global_functions") or \
            handlers & {f["name"] for f in new.config.get("global_functions", [])}:
        return sorted(names)
    for name, node in new.config["nodes"].items():
        uses = {f["name"] for f in node.get("functions", [])} | \
            {a.get("handler") for key in ("pre_actions", "post_actions") for a in node.get(key, [])}
        if handlers & uses:
            changed.add(name)
    return sorted(changed)


async def take_in(run, flow_spec, changed: list[str]) -> None:
    """A FlowRun takes in a new version: later transitions use it; the current node re-renders if edited."""
    try:
        run.load(flow_spec)
    except Exception as exc:  # pipecat's own validation refused it: keep running the previous version
        from runner.runtime.flow_handlers import report
        report(run.bot, "reloaded", message=f"{run.bot.spec.file}: the new flow was refused, "
                                            f"still running the previous version: {exc}")
        return
    node = run.session.node
    if node is None or node not in changed or node not in flow_spec.nodes or run.manager is None:
        return  # not started, not edited, or deleted (kept as entered until the flow leaves it)
    await rerender(run, node)


async def rerender(run, node: str) -> None:
    """Render the current node again and swap its messages in the LLM context (no new LLM turn)."""
    from pipecat.frames.frames import LLMMessagesTransformFrame, LLMUpdateSettingsFrame
    from pipecat.services.settings import LLMSettings
    old = run.rendered
    definition = run.node_def(node)
    run.session.entered[node] = (definition, run.flow.node(node))
    fresh = run.new_run(f"flow:{node}", run._participant(), run._speaker())
    run.render(definition, run.flow.node(node), fresh)
    new = run.rendered
    frames = []
    if new.get("role_message") and new.get("role_message") != old.get("role_message"):
        frames.append(LLMUpdateSettingsFrame(delta=LLMSettings(system_instruction=new["role_message"])))
    if new["task_messages"] != old.get("task_messages"):
        frames.append(LLMMessagesTransformFrame(transform=replacer(old.get("task_messages") or [],
                                                                   new["task_messages"]), run_llm=False))
    if frames:
        logger.info(f"[{run.bot.spec.name}] flow: node '{node}' edited during the call; re-rendered")
        await run.gen.worker.queue_frames(frames)


def replacer(old: list[dict], new: list[dict]):
    """A context transform: the last run of the node's old task messages becomes the new ones."""
    def same(message, want) -> bool:
        return isinstance(message, dict) and message.get("role") == want["role"] \
            and message.get("content") == want["content"]

    def transform(messages):
        messages = list(messages)
        width = len(old)
        for start in range(len(messages) - width, -1, -1) if width else ():
            if all(same(messages[start + k], want) for k, want in enumerate(old)):
                return messages[:start] + [dict(m) for m in new] + messages[start + width:]
        return messages + [dict(m) for m in new]
    return transform

"""`lkrun simulate BOT node_entered --node NAME`: the node as the LLM would get it, without a room.

The node's on_enter actions run first (an `http` lookup there feeds the prompt), then its
messages are rendered the way a live flow renders them (bare names: the room state, then vars),
then the bot's own `node_entered` actions run.
"""

from __future__ import annotations

from runner.botfile.templates import TemplateError, render_value
from runner.runtime.engine import Run
from runner.runtime.state import SessionState


async def simulate_node(spec, node: str, effects, *, participant=None, name=None, previous=None,
                        others=(), state: SessionState | None = None):
    state = state or SessionState()
    flow = spec.flow
    definition = flow.nodes[node]
    where = {"flow": {"node": node, "previous": previous}}
    who = {"participant": {"id": participant, "name": name or participant, "metadata": "", "kind": None,
                           "attributes": {}, "state": {}}} if participant else {}
    people = list(dict.fromkeys(p for p in [participant, *others] if p))
    if definition.on_enter:
        effects._out(f"{node}.on_enter:")
        effects.prefix = "  "
        entry = await Run(spec, state, effects, "node_entered", {**where, **who}, participant,
                          people).execute(definition.on_enter)
        effects.prefix = ""
        if entry.error:
            effects.errors += 1
            effects._out(entry.error, err=True)
    run = Run(spec, state, effects, "node_entered", {**where, **who}, participant, people)
    context = {**spec.vars, **state.room, **run.context()}
    config = flow.config["nodes"][node]

    def text(template) -> str:
        try:
            return str(render_value(template, context))
        except TemplateError as exc:
            effects.errors += 1
            return f"<error: {exc.message}>"

    effects._out(f"node {node} ({definition.file}:{definition.line})")
    if definition.role_message is not None:
        effects._out(f"  role_message: {text(definition.role_message)}")
    for role, template in definition.task_messages:
        effects._out(f"  {role}: {text(template)}")
    if config.get("context_strategy"):
        effects._out(f"  context_strategy: {config['context_strategy']}")
    functions = list(config.get("functions", [])) + list(flow.config.get("global_functions", []))
    for function in functions:
        handler = flow.handlers.get(function["name"])
        to = function.get("transition_to")
        goes = f" -> {to}" if isinstance(to, str) else (
            f" -> by {to['field']}: " + ", ".join(f"{k} -> {v}" for k, v in to["cases"].items()) if to else "")
        schema = handler.parameters.get("properties") if handler is not None else None
        args = f"({', '.join(schema)})" if schema else "()"
        effects._out(f"  function {function['name']}{args}{goes}")
    for key in ("pre_actions", "post_actions"):
        for index, action in enumerate(config.get(key, [])):
            said = definition.tts_say.get((key, index))
            shown = f": {text(said)}" if said is not None else (f" {action['handler']}" if action.get("handler") else "")
            effects._out(f"  {key[:-8]} {action['type']}{shown}")
    handler = spec.on.get("node_entered")
    if handler is not None and handler.actions:
        effects._out("on node_entered:")
        effects.prefix = "  "
        entry = await run.execute(handler.actions)
        effects.prefix = ""
        if entry.error:
            effects.errors += 1
            effects._out(entry.error, err=True)
    return effects

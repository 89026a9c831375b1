"""A bot's `flow:` at run time: pipecat's FlowManager running the graph, lkrun rendering and handling.

One flow per session, shared by everyone in the room: it starts when the session's first person
joins (never in an empty room), its state is the session's room ``state``, and ``end`` resets it.
A new generation (reconnect, a reload that rejoins) resumes at the node the session is in.
The pipecat internals this relies on are wrapped in ``flow_hooks`` (with a canary test).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from loguru import logger

from runner.botfile.templates import TemplateError, render_value
from runner.runtime.flow_handlers import Handlers, global_tools, report


@dataclass
class FlowSession:
    """What survives generations and reloads within a session: where the flow is."""

    started: bool = False
    node: str | None = None
    previous: str | None = None
    ended: bool = False
    entered: dict = field(default_factory=dict)  # node -> the FlowNode it was entered with (deleted nodes)
    rendered: dict = field(default_factory=dict)  # the current node's text as it reached the LLM

    def reset(self) -> None:
        self.started, self.node, self.previous, self.ended = False, None, None, False
        self.entered.clear()
        self.rendered = {}


def build_flow(flow_spec, handlers: dict):
    """pipecat's Flow for a checked flow (its own validation is the second net) with exact tool schemas."""
    from pipecat.flows import Flow, FlowConfig
    from runner.runtime.flow_hooks import exact
    flow = Flow(FlowConfig.model_validate(flow_spec.config), handlers=handlers)

    def exactly(schema):
        definition = flow_spec.handlers.get(schema.name)
        if definition is None or (definition.python and not definition.actions and _default(definition.parameters)):
            return schema  # transition_only, or a Python handler that describes itself
        return exact(schema, definition.description, dict(definition.parameters))
    for name in flow_spec.config["nodes"]:
        node = flow.node(name)
        if node.get("functions"):
            node["functions"] = [exactly(s) for s in node["functions"]]
    return flow, [exactly(s) for s in flow.global_functions]


def pipecat_problems(flow_spec) -> list[str]:
    """pipecat's own validation of a checked flow (the second net in run and reload), each problem
    as file:line:col (empty when pipecat accepts it)."""
    from pydantic import ValidationError
    try:
        build_flow(flow_spec, Handlers(None, flow_spec).namespace())
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(error.get("loc") or ())
            file, line, col = flow_spec.where(loc)
            at = ".".join(str(p) for p in loc)
            problems.append(f"{file}:{line}:{col}: error: {at}: {error.get('msg')} (pipecat's FlowConfig)")
        return problems
    except Exception as exc:  # FlowReferenceError (every problem at once), a Python handler that will not import
        problems = []
        for problem in getattr(exc, "problems", None) or [exc]:
            node, function = getattr(problem, "node", None), getattr(problem, "function", None)
            file, line, col = flow_spec.where(("nodes", node) if node else ())
            problems.append(f"{file}:{line}:{col}: error: {getattr(problem, 'message', problem)}"
                            + (f" (function {function})" if function else ""))
        return problems
    return []


def _default(parameters) -> bool:
    return not (parameters or {}).get("properties")


class FlowRun:
    """The flow of one generation: its FlowManager and the hooks pipecat calls on each node."""

    def __init__(self, gen):
        self.gen, self.bot = gen, gen.bot
        self.session: FlowSession = self.bot.flow
        self.manager = None
        self.version = None  # the FlowSpec the pipecat Flow below was built from
        self.flow = None
        self.resuming = False
        self.pending = None  # the node whose node_entered has not fired yet
        self.load(self.bot.spec.flow)

    def load(self, flow_spec) -> None:
        """(Re)build pipecat's Flow for a version of the flow: later transitions resolve against it."""
        self.version = flow_spec
        self.handlers = Handlers(self, flow_spec)
        self.flow, self.globals = build_flow(flow_spec, self.handlers.namespace())

    def attach(self) -> None:
        from runner.runtime.flow_hooks import HookedFlowManager
        bot, gen = self.bot, self.gen
        self.manager = HookedFlowManager(hooks=self, state=bot.state.room, llm=bot.services["llm"],
                                         context_aggregator=bot.context_aggregator, worker=gen.worker,
                                         transport=gen.transport, global_functions=self.globals + global_tools(bot))
        self.manager.register_action("end_conversation", self.end_conversation)  # = lkrun's end: {}
        gen.transport.add_event_handler("on_first_participant_joined", self.first_join)

    async def first_join(self, _transport, pid) -> None:
        if pid == self.bot.spec.identity or self.manager is None or self.session.ended:
            return
        try:
            await self.start()
        except Exception as exc:  # pipecat's FlowError: an error event, never a crash of the transport
            report(self.bot, "flow", message=f"{self.bot.spec.file}: the flow could not start: {exc}")

    async def start(self) -> None:
        session, state = self.session, self.bot.state.room
        if self.manager.current_node is not None or self.resuming:
            return  # pipecat says "first participant" again when someone joins an emptied room
        if session.started and session.node is not None:  # a new generation: carry on where the session is
            self.resuming = True
            self.manager.set_current(session.previous)
            await self.manager.initialize(self._node_config(session.node))
            return
        session.started = True
        for key, value in (self.version.state or {}).items():
            state.setdefault(key, value)
        await self.manager.initialize(self.flow.node(self.version.initial_node))

    def _node_config(self, name: str):
        try:
            return self.flow.node(name)
        except Exception:  # deleted meanwhile: the definition it was entered with
            return self.session.entered[name][1]

    def node_def(self, name: str | None):
        """The lkrun side (FlowNode) of a node: the current version's, else the one it was entered with."""
        current = getattr(self.bot.spec.flow, "nodes", {}) or {}
        if name in current:
            return current[name]
        return self.session.entered.get(name, (None, None))[0]

    def new_run(self, event: str, variables: dict, speaker: str | None):
        from runner.runtime.engine import Run
        bot, session = self.bot, self.session
        variables = {**variables, "flow": {"node": session.node, "previous": session.previous}}
        return Run(bot.spec, bot.state, bot.effects, event, variables, speaker, bot.participants(), bot.trace)

    # -- the hooks (flow_hooks.HookedFlowManager calls these around pipecat's _set_node) ----------------
    async def before_node(self, node_id: str, node_config, current: str | None):
        session, resuming = self.session, self.resuming
        try:
            node_config = self.flow.node(node_id)  # transitions resolve against the newest version
        except Exception:
            pass  # a node deleted by a reload: the definition the transition was built with
        if current is not None and not resuming:
            await self._hook(self.node_def(current), "on_exit", current)
        session.previous, session.node = (session.previous if resuming else current), node_id
        definition = self.node_def(node_id)
        session.entered[node_id] = (definition, node_config)
        run = self.new_run(f"flow:{node_id}", self._participant(), self._speaker())
        if definition is not None and definition.on_enter and not resuming:
            await self._execute(run, definition.on_enter, f"flow:{node_id}:on_enter")
        self.pending = node_id  # node_entered is owed once pipecat has set the node up
        if resuming and session.rendered.get("node") == node_id:  # a new generation: the same text again,
            return node_id, self.resumed(node_config), session.previous  # no actions replayed
        return node_id, self.render(definition, node_config, run), session.previous

    async def after_node(self, node_id: str, previous: str | None) -> None:
        if self.resuming:
            self.resuming = False
            return
        pending, self.pending = self.pending, None
        if pending is None:  # already announced (an end_conversation in the node's own actions)
            return
        logger.debug(f"[{self.bot.spec.name}] flow: entered node '{node_id}'"
                    + (f" from '{previous}'" if previous else ""))
        self.bot.dispatcher.fire("node_entered", None, extra={"flow": {"node": node_id, "previous": previous}})

    async def _hook(self, definition, which: str, node: str) -> None:
        actions = getattr(definition, which, ()) if definition is not None else ()
        if actions:
            run = self.new_run(f"flow:{node}:{which}", self._participant(), self._speaker())
            await self._execute(run, actions, f"flow:{node}:{which}")

    async def _execute(self, run, actions, event: str) -> None:
        entry = await run.execute(actions)
        if entry.error:
            report(self.bot, event, entry)

    def _speaker(self):
        return getattr(self.bot, "last_speaker", None)

    def _participant(self) -> dict:
        from runner.runtime.tools import speaker_variables
        return {"participant": speaker_variables(self.bot)[1]}

    # -- one rendering ------------------------------------------------------------------------------------
    def context(self, run) -> dict:
        """Bare state keys (vars as fallback) under the usual variables, which they never shadow."""
        return {**self.bot.spec.vars, **self.bot.state.room, **run.context()}

    @property
    def rendered(self) -> dict:
        """The current node's text as it reached the LLM (plain; live edits and new generations use it)."""
        return self.session.rendered

    def resumed(self, node_config: dict) -> dict:
        from runner.runtime.flow_hooks import escape
        plain, out = self.session.rendered, dict(node_config)
        if plain.get("role_message"):
            out["role_message"] = escape(plain["role_message"])
        out["task_messages"] = [{**m, "content": escape(m["content"])} for m in plain["task_messages"]]
        out.pop("pre_actions", None)
        out.pop("post_actions", None)
        return out

    def render(self, definition, node_config: dict, run) -> dict:
        """The node as pipecat gets it: rendered by lkrun's sandbox, escaped so pipecat fills nothing in.

        ``session.rendered`` keeps the plain text (what reaches the LLM), for live edits of this node."""
        from runner.runtime.flow_hooks import escape
        context, out = self.context(run), dict(node_config)
        name = node_config.get("name")

        def text(template, fallback) -> str:
            try:
                value = render_value(template, context)
            except TemplateError as exc:
                where = f"{definition.file}:{definition.line}" if definition is not None else self.bot.spec.file
                report(self.bot, f"flow:{name}", message=f"{where}: node {name}: {exc.message}")
                value = getattr(template, "source", fallback)
            return "" if value is None else str(value)

        role = out.get("role_message")
        if definition is not None and definition.role_message is not None:
            role = text(definition.role_message, role)
        messages = list(node_config.get("task_messages", []))
        compiled = list(definition.task_messages) if definition is not None else []
        if len(compiled) == len(messages):
            plain = [{"role": r, "content": text(tpl, m.get("content"))} for (r, tpl), m in zip(compiled, messages)]
        else:
            plain = [{**m, "content": str(m.get("content", ""))} for m in messages]
        self.session.rendered = {"node": name, "role_message": role, "task_messages": plain}
        if role:
            out["role_message"] = escape(role)
        out["task_messages"] = [{**m, "content": escape(m["content"])} for m in plain]
        for key in ("pre_actions", "post_actions"):
            if out.get(key):
                actions = [dict(a) for a in out[key]]
                for index, action in enumerate(actions):
                    template = definition.tts_say.get((key, index)) if definition is not None else None
                    if template is not None or isinstance(action.get("text"), str):
                        said = text(template, action.get("text")) if template is not None else action["text"]
                        action["text"] = escape(said) if action.get("type") == "tts_say" else said
                out[key] = actions
        return out

    # -- the end -------------------------------------------------------------------------------------------
    async def end_conversation(self, action, _flow_manager) -> None:
        """pipecat's end_conversation is lkrun's `end: {}`: queued speech finishes, the session ends."""
        session, dispatcher = self.session, self.bot.dispatcher
        session.ended = True
        where = {"flow": {"node": session.node, "previous": session.previous}}
        if self.pending is not None:  # the end node's own actions: node_entered comes first
            self.pending = None
            await dispatcher.run_now("node_entered", extra=where)
        if action.get("text") and "tts" in self.bot.services:
            await self.bot.effects.say(action["text"])
        await dispatcher.run_now("flow_ended", extra=where)  # its actions finish before the session ends
        await self.bot.end_session()


def attach(gen) -> FlowRun | None:
    """Give a generation its flow (a bot with `flow:` and an llm stage)."""
    bot = gen.bot
    if getattr(bot.spec, "flow", None) is None or "llm" not in bot.services:
        return None
    run = FlowRun(gen)
    run.attach()
    gen.flow = run
    return run

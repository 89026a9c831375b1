"""What pipecat calls during a flow: generated handler callables that run lkrun action lists.

A function handler is a Flows direct function (``async def name(flow_manager, **args)``) handed
to pipecat's ``Flow``, which resolves it by name and decides the transition from the config
(``TRANSITION_IN_YAML``); its tool schema is replaced by the file's ``parameters``
(flow_hooks.exact). Action handlers serve ``function`` and custom action types. Every handler
looks its definition up in the bot's *current* spec when called, so a reload swaps behaviour.
"""

from __future__ import annotations

import importlib

from loguru import logger

from runner.botfile.templates import TemplateError, render_value


class HandlerFailed(Exception):
    """An action-list handler failed: `error` has fired; pipecat tells the LLM and stays on the node."""


def python_handler(path: str):
    """``package.module:function`` -> the callable (programmers' handlers)."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def report(bot, event: str, entry=None, message: str | None = None) -> None:
    """A failed flow run: logged with its file:line and the `error` event fired (pipecat would hide it)."""
    text = message or entry.error
    logger.error(f"[{bot.spec.name}] {text}")
    bot.dispatcher.fire("error", None, extra={"error": {
        "message": text, "event": event, "action": getattr(entry, "action", None),
        "line": getattr(entry, "line", None), "file": bot.spec.file}})


def used_names(config: dict) -> tuple[set, set]:
    """(function handler names, action handler names) the config refers to."""
    functions = [f for node in config["nodes"].values() for f in node.get("functions", [])]
    functions += list(config.get("global_functions", []))
    actions = [a for node in config["nodes"].values() for key in ("pre_actions", "post_actions")
               for a in node.get(key, [])]
    return ({f["name"] for f in functions if not f.get("transition_only")},
            {a["handler"] for a in actions if a.get("handler")})


class Handlers:
    """The handler namespace of one flow version, bound to a running flow (runtime.flows.FlowRun)."""

    def __init__(self, run, flow_spec):
        self.run, self.bot, self.built = run, getattr(run, "bot", None), flow_spec

    def definition(self, name: str):
        current = getattr(self.bot.spec.flow, "handlers", {}) or {}
        return current.get(name) or self.built.handlers.get(name)

    def namespace(self) -> dict:
        functions, actions = used_names(self.built.config)
        names = {}
        for name in functions:
            handler = self.built.handlers.get(name)
            names[name] = python_handler(handler.python) if handler is not None and handler.python \
                else self.function(name)
        for name in actions:
            handler = self.built.handlers.get(name)
            names[name] = python_handler(handler.python) if handler is not None and handler.python \
                else self.action(name)
        return names

    def function(self, name: str):
        async def handler(flow_manager, **args):
            from pipecat.flows.types import TRANSITION_IN_YAML
            return await self.call(name, args), TRANSITION_IN_YAML
        handler.__name__ = name
        return handler

    def action(self, name: str):
        async def handler(action, flow_manager):
            details = {k: v for k, v in dict(action).items() if k != "handler"}
            await self.act(name, details)
        handler.__name__ = name
        return handler

    async def call(self, name: str, args: dict):
        from runner.runtime.tools import run_owned, speaker_variables
        definition = self.definition(name)
        if definition is None:
            raise HandlerFailed(f"handler {name} no longer exists")
        speaker, participant = speaker_variables(self.bot)
        run = self.run.new_run(f"flow:{name}", {"args": args, "participant": participant}, speaker)
        entry = await run_owned(self.bot, run, definition.actions, speaker)
        if entry is None:
            raise HandlerFailed("the caller left")
        if entry.error:
            report(self.bot, f"flow:{name}", entry)
            raise HandlerFailed(f"{entry.action}: {entry.message}")
        try:
            result = render_value(definition.result, {**run.context(), "args": args})
        except TemplateError as exc:
            report(self.bot, f"flow:{name}", message=f"{definition.file}:{definition.line}: handler {name}: "
                                                      f"result: {exc.message}")
            raise HandlerFailed(exc.message) from None
        return result if isinstance(result, dict) else {"result": result}

    async def act(self, name: str, action: dict) -> None:
        from runner.runtime.tools import speaker_variables
        definition = self.definition(name)
        if definition is None:
            return
        speaker, participant = speaker_variables(self.bot)
        run = self.run.new_run(f"flow:{name}", {"action": action, "participant": participant}, speaker)
        entry = await run.execute(definition.actions)
        if entry.error:
            report(self.bot, f"flow:{name}", entry)


def global_tools(bot) -> list:
    """The bot's `tools:` as flow global functions (pipecat replaces the LLM's tools on every node)."""
    from runner.runtime.flow_hooks import ExactFlowsFunction
    from runner.runtime.tools import run_tool

    def handler(name):
        async def call(args, flow_manager):
            return await run_tool(bot, name, dict(args))  # not a tuple: the flow stays on its node
        return call
    return [ExactFlowsFunction(name=t.name, description=t.description or t.name,
                               properties=dict(t.parameters.get("properties") or {}),
                               required=list(t.parameters.get("required") or []), handler=handler(t.name),
                               parameters=dict(t.parameters)) for t in bot.spec.tools]

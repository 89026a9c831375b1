"""Tool calls at run time: each LLM function call runs its actions in the bot's engine."""

from __future__ import annotations

import asyncio


def register_tools(llm, bot) -> None:
    """Each tool call runs its actions in the bot's engine and returns the rendered result."""
    from runner.runtime.engine import Run
    from runner.botfile.templates import TemplateError, render_value

    for tool in bot.spec.tools:
        async def handler(params, _name=tool.name):
            current = next((t for t in bot.spec.tools if t.name == _name), None)  # reload-safe
            args = dict(params.arguments or {})
            if current is None:
                await params.result_callback({"error": f"tool {_name} no longer exists"})
                return
            speaker = getattr(bot, "last_speaker", None)
            info = bot.state.names.get(speaker, {}) if speaker else {}
            variables = {"args": args, "participant": {"id": speaker, "name": info.get("name"),
                                                       "metadata": info.get("metadata")}}
            run = Run(bot.spec, bot.state, bot.effects, f"tool:{_name}", variables, speaker,
                      bot.participants(), bot.trace)
            # the run belongs to the caller: if they leave, it stops and the LLM hears why
            task = bot.dispatcher.own(speaker, asyncio.ensure_future(run.execute(current.actions)))
            try:
                entry = await asyncio.shield(task)
            except asyncio.CancelledError:
                if not task.cancelled():
                    task.cancel()
                    raise
                await params.result_callback({"error": "the caller left"})
                return
            if entry.error:
                await params.result_callback({"error": f"{entry.action}: {entry.message}"})
                return
            try:
                context = {**run.context(), "args": args}
                result = render_value(current.result, context)
            except TemplateError as exc:
                result = {"error": str(exc)}
            await params.result_callback(result if isinstance(result, (dict, list)) else {"result": result})
        llm.register_function(tool.name, handler)

"""Tool calls at run time: each LLM function call runs its actions in the bot's engine."""

from __future__ import annotations

import asyncio


def speaker_variables(bot) -> tuple[str | None, dict]:
    """The last speaker (tool and flow handler runs belong to them) and their `participant` variable."""
    speaker = getattr(bot, "last_speaker", None)
    info = bot.state.names.get(speaker, {}) if speaker else {}
    return speaker, {"id": speaker, "name": info.get("name"), "metadata": info.get("metadata")}


async def run_owned(bot, run, actions, speaker):
    """Run actions as the speaker's, in the calling task (pipecat's function call): if they leave,
    the run stops and None is returned. Inline, not in a task of its own: two event-loop hops per
    call were most of a flow transition's cost on a busy loop."""
    from runner.runtime.scheduler import LEFT
    if speaker is None:
        return await run.execute(actions)
    task = asyncio.current_task()
    bot.dispatcher.own(speaker, task)
    try:
        return await run.execute(actions)
    except asyncio.CancelledError as exc:
        if not exc.args or exc.args[0] != LEFT:
            raise  # pipecat's own cancellation (an interruption, a timeout, the pipeline stopping)
        task.uncancel()
        return None
    finally:
        bot.dispatcher.disown(speaker, task)


async def run_tool(bot, name: str, args: dict):
    """One call of a `tools:` entry: its actions, then its rendered result (what the LLM receives)."""
    from runner.runtime.engine import Run
    from runner.botfile.templates import TemplateError, render_value

    current = next((t for t in bot.spec.tools if t.name == name), None)  # reload-safe
    if current is None:
        return {"error": f"tool {name} no longer exists"}
    speaker, participant = speaker_variables(bot)
    run = Run(bot.spec, bot.state, bot.effects, f"tool:{name}", {"args": args, "participant": participant},
              speaker, bot.participants(), bot.trace)
    entry = await run_owned(bot, run, current.actions, speaker)
    if entry is None:
        return {"error": "the caller left"}
    if entry.error:
        return {"error": f"{entry.action}: {entry.message}"}
    try:
        result = render_value(current.result, {**run.context(), "args": args})
    except TemplateError as exc:
        result = {"error": str(exc)}
    return result if isinstance(result, (dict, list)) else {"result": result}


def register_tools(llm, bot) -> None:
    """Each tool call runs its actions in the bot's engine and returns the rendered result."""
    for tool in bot.spec.tools:
        async def handler(params, _name=tool.name):
            await params.result_callback(await run_tool(bot, _name, dict(params.arguments or {})))
        llm.register_function(tool.name, handler)

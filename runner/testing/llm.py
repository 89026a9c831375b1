"""The scripted LLM of offline tests: ``llm:`` steps answer the next LLM requests, in order.

A reply is spoken (a bot with tts) like pipecat's LLM -> TTS; a call runs the bot's ``tools:``
entry the way ``runner.runtime.tools`` does live (in the engine, owned by the last speaker),
then the LLM is asked again with the result (pipecat's follow-up) when another answer is scripted.
"""

from __future__ import annotations

import asyncio

from runner.botfile.templates import TemplateError, render_value
from runner.runtime.engine import Run


async def llm_request(bot, why: str) -> None:
    """One LLM request (a user turn nothing matched, or an llm action with run: true)."""
    if not bot.answers:
        bot.effects.add("llm_request", None, why, answered=False)
        return
    answer, where = bot.answers.popleft()
    bot.effects.add("llm_request", None, why, answered=True)
    if "reply" in answer:
        text = str(answer["reply"])
        bot.context.append({"role": "assistant", "content": text})
        kind = "say" if bot.spec.stage("tts") else "reply"
        bot.effects.add(kind, None, f"the scripted LLM reply ({where})", text=text)
        bot.idle.touch()
        return
    call = answer["call"]
    name, args = call["function"], dict(call.get("args") or {})
    record = bot.effects.add("llm_called", None, f"the scripted LLM call ({where})", function=name, args=args)
    result = await call_tool(bot, name, args)
    record.fields["result"] = result
    record.fields["result_at"] = _result_line(bot.spec, name)
    bot.effects.add("tool_result", None, f"tool '{name}'", function=name, result=result)
    bot.context.append({"role": "tool", "content": str(result)})
    if bot.ending is None and bot.answers:
        await llm_request(bot, f"the LLM's follow-up after tool '{name}'")


async def call_tool(bot, name: str, args: dict):
    """runtime/tools.py's handler without pipecat: run the tool's actions, render its result."""
    tool = next((t for t in bot.spec.tools if t.name == name), None)
    if tool is None:
        return {"error": f"tool {name} does not exist"}
    speaker = bot.last_speaker
    info = bot.state.names.get(speaker, {}) if speaker else {}
    variables = {"args": args, "participant": {"id": speaker, "name": info.get("name"),
                                               "metadata": info.get("metadata")}}
    run = Run(bot.spec, bot.state, bot.effects, f"tool:{name}", variables, speaker, bot.participants(), bot.trace)
    task = bot.dispatcher.own(speaker, asyncio.ensure_future(run.execute(tool.actions)))
    try:
        entry = await asyncio.shield(task)
    except asyncio.CancelledError:
        if not task.cancelled():
            task.cancel()
            raise
        return {"error": "the caller left"}
    if entry.error:
        return {"error": f"{entry.action}: {entry.message}"}
    try:
        result = render_value(tool.result, {**run.context(), "args": args})
    except TemplateError as exc:
        result = {"error": str(exc)}
    return result if isinstance(result, (dict, list)) else {"result": result}


def _result_line(spec, name: str) -> str:
    """bot file:line of a tool's result template (the spec keeps no line for it: read the file)."""
    from runner.botfile.errors import ConfigError
    from runner.botfile.yamlsafe import load_file
    try:
        doc = load_file(spec.file)
    except (ConfigError, OSError):
        return spec.file
    tools = (doc.data or {}).get("tools") or []
    for index, tool in enumerate(tools):
        if isinstance(tool, dict) and tool.get("name") == name:
            key = "result" if "result" in tool else "name"
            return f"{spec.file}:{doc.where(('tools', index, key))[0]}"
    return spec.file

"""The scripted LLM of offline tests: ``llm:`` steps answer the next LLM requests, in order.

A reply is spoken (a bot with tts) like pipecat's LLM -> TTS; a call runs the bot's ``tools:``
entry the way ``runner.runtime.tools`` does live (in the engine, owned by the last speaker),
then the LLM is asked again with the result (pipecat's follow-up) when another answer is scripted.

With ``lkrun test --llm-url URL`` a request that no ``llm:`` step answers goes to any server that
speaks OpenAI's chat-completions protocol (``URL/chat/completions``: a local model server, a
stand-in, the real API): it gets the bot's system instruction, the conversation so far and the
bot's tools, and its reply or tool call is handled exactly like a scripted one. The request is
real I/O in a thread; the offline runner waits for it in real time (``OfflineBot.settle``).
"""

from __future__ import annotations

import asyncio
import json
import os

from runner.botfile.templates import TemplateError, render_value
from runner.runtime.engine import Run


FOLLOW_UPS = 8  # tool calls in a row without a reply before a server's answers are taken as a loop


async def llm_request(bot, why: str, depth: int = 0) -> None:
    """One LLM request (a user turn nothing matched, or an llm action with run: true)."""
    if bot.answers:
        answer, where = bot.answers.popleft()
        source = f"the scripted LLM {'reply' if 'reply' in answer else 'call'} ({where})"
    elif getattr(bot, "llm_url", None):
        try:
            answer = await bot.outside(ask_server, bot.llm_url, request_body(bot))
        except (OSError, ValueError) as exc:
            bot.effects.add("error", None, f"the LLM at {bot.llm_url}", message=f"the LLM request failed: {exc}")
            return
        source = f"the LLM at {bot.llm_url}"
    else:
        bot.effects.add("llm_request", None, why, answered=False)
        return
    bot.effects.add("llm_request", None, why, answered=True)
    if "reply" in answer:
        text = str(answer["reply"])
        bot.context.append({"role": "assistant", "content": text})
        kind = "say" if bot.spec.stage("tts") else "reply"
        bot.effects.add(kind, None, source, text=text)
        bot.idle.touch()
        return
    call = answer["call"]
    name, args = call["function"], dict(call.get("args") or {})
    call_id = call.get("id") or f"call_{len(bot.context)}"
    record = bot.effects.add("llm_called", None, source, function=name, args=args)
    bot.context.append({"role": "assistant", "content": None, "tool_calls": [{
        "id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}]})
    result = await call_tool(bot, name, args)
    record.fields["result"] = result
    record.fields["result_at"] = _result_line(bot.spec, name)
    bot.effects.add("tool_result", None, f"tool '{name}'", function=name, result=result)
    bot.context.append({"role": "tool", "tool_call_id": call_id, "content": json.dumps(result, ensure_ascii=False)
                        if not isinstance(result, str) else result})
    asks_again = bot.answers or (getattr(bot, "llm_url", None) and depth < FOLLOW_UPS)
    if bot.ending is None and asks_again:
        await llm_request(bot, f"the LLM's follow-up after tool '{name}'", depth + 1)


def request_body(bot) -> dict:
    """What pipecat's OpenAI service would send: model, system instruction, the context, the tools."""
    stage = bot.spec.stage("llm")
    settings = dict((stage.body.get("settings") if stage is not None else None) or {})
    messages = []
    instruction = settings.get("system_instruction")
    if instruction:
        try:
            instruction = render_value(instruction, {"vars": bot.spec.vars, "bot": {
                "name": bot.spec.name, "identity": bot.spec.identity, "room": bot.spec.room}})
        except TemplateError:
            pass
        messages.append({"role": "system", "content": str(instruction)})
    messages += [dict(m) for m in bot.context]
    body = {"model": str(settings.get("model") or "lkrun-test"), "messages": messages, "stream": False}
    tools = [{"type": "function", "function": {"name": t.name, "description": t.description,
                                               "parameters": dict(t.parameters or {"type": "object",
                                                                                   "properties": {}})}}
             for t in bot.spec.tools]
    if tools:
        body["tools"] = tools
    return body


def ask_server(url: str, body: dict, timeout: float = 60.0) -> dict:
    """POST URL/chat/completions (blocking; run in a thread) -> {reply: TEXT} or {call: {...}}.

    Reads a plain JSON answer or a streamed one (server-sent events), whichever the server sends."""
    import urllib.error
    import urllib.request
    request = urllib.request.Request(url.rstrip("/") + "/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json",
                                              "Authorization": "Bearer " + os.environ.get("OPENAI_API_KEY",
                                                                                          "lkrun-test")})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - the user's own URL
            kind = response.headers.get("Content-Type", "")
            raw = response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        raise ValueError(f"{url} answered {exc.code}: {exc.read().decode('utf-8', 'replace')[:200]}") from None
    if "event-stream" in kind or raw.lstrip().startswith("data:"):
        message: dict = {"content": "", "tool_calls": {}}
        for line in raw.splitlines():
            if not line.startswith("data:") or line[5:].strip() == "[DONE]":
                continue
            for choice in json.loads(line[5:]).get("choices") or []:
                delta = choice.get("delta") or {}
                message["content"] += delta.get("content") or ""
                for call in delta.get("tool_calls") or []:
                    slot = message["tool_calls"].setdefault(call.get("index", 0), {"id": None, "name": "",
                                                                                    "arguments": ""})
                    slot["id"] = call.get("id") or slot["id"]
                    function = call.get("function") or {}
                    slot["name"] += function.get("name") or ""
                    slot["arguments"] += function.get("arguments") or ""
        calls = [message["tool_calls"][k] for k in sorted(message["tool_calls"])]
        text = message["content"]
    else:
        choice = (json.loads(raw).get("choices") or [{}])[0].get("message") or {}
        calls = [{"id": c.get("id"), **(c.get("function") or {})} for c in choice.get("tool_calls") or []]
        text = choice.get("content") or ""
    if calls:
        call = calls[0]
        try:
            args = json.loads(call.get("arguments") or "{}")
        except ValueError:
            raise ValueError(f"the LLM called {call.get('name')} with arguments that are not JSON") from None
        return {"call": {"function": call.get("name"), "args": args if isinstance(args, dict) else {},
                         "id": call.get("id")}}
    return {"reply": text.strip()}


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

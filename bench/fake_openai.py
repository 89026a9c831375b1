"""A loopback server speaking the OpenAI chat-completions streaming protocol, deterministically.

Not a mock of lkrun: it stands in for a paid cloud API (which cannot run here) so that
pipecat's real OpenAILLMService, streaming, aggregators and tool calls are exercised.
Replies "You said: <last user text>"; when the user text contains a registered trigger
word and the request offers that tool, it answers with a tool call instead, and after the
tool's result it replies "Tool result: <content>".

For conversation flows (`flow:`) it can also follow the node it is in: ``instruction_triggers``
maps a phrase of the latest system/developer message (a node's task message) to a tool call,
made once per such message while the request offers that tool. Arguments may be a function of
the user text (``lambda text: {...}``). ``events`` records when each request arrived and when
each answer was finished (loop time), for latency measurements.
"""

from __future__ import annotations

import json
import time

from aiohttp import web


class FakeOpenAI:
    def __init__(self, tool_triggers: dict[str, tuple[str, dict]] | None = None,
                 instruction_triggers: dict[str, tuple[str, dict]] | None = None):
        self.tool_triggers = tool_triggers or {}  # word -> (tool name, arguments)
        self.instruction_triggers = instruction_triggers or {}  # task-message phrase -> (tool name, arguments)
        self.requests: list[dict] = []
        self.events: list[tuple[str, float, str]] = []  # ("request" | "answered", loop time, tool or text)
        self.runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> "FakeOpenAI":
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.completions)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.runner:
            await self.runner.cleanup()

    async def pace(self, body: dict) -> None:
        """Called between a request's arrival and its answer: a benchmark holds answers here to
        take turns between the systems it compares (A B A B ...). Answers at once by default."""

    def _reply(self, body: dict):
        messages = body.get("messages", [])
        last = messages[-1] if messages else {}
        if last.get("role") == "tool":
            return "text", f"Tool result: {last.get('content')}"
        text = ""
        for message in reversed(messages):
            if message.get("role") == "user":
                content = message.get("content")
                text = content if isinstance(content, str) else " ".join(
                    part.get("text", "") for part in content or [] if isinstance(part, dict))
                break
        offered = {t.get("function", {}).get("name") for t in body.get("tools") or []}
        for word, (name, arguments) in self.tool_triggers.items():
            if word in text.lower() and name in offered:
                return "tool", (name, arguments(text) if callable(arguments) else arguments)
        instruction = next((m for m in reversed(messages) if m.get("role") in ("system", "developer")
                            or m.get("role") == "tool"), None)
        if instruction is not None and instruction.get("role") != "tool":  # no call made since it
            content = str(instruction.get("content") or "")
            for phrase, (name, arguments) in self.instruction_triggers.items():
                if phrase in content and name in offered:
                    return "tool", (name, arguments(text) if callable(arguments) else arguments)
        return "text", f"You said: {text}"

    async def completions(self, request: web.Request) -> web.StreamResponse:
        import asyncio
        loop = asyncio.get_running_loop()
        body = await request.json()
        self.requests.append(body)
        self.events.append(("request", loop.time(), ""))
        await self.pace(body)
        kind, value = self._reply(body)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        async def chunk(delta: dict, finish=None):
            payload = {"id": "chatcmpl-lkrun", "object": "chat.completion.chunk", "created": int(time.time()),
                       "model": body.get("model", "fake"),
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            await response.write(f"data: {json.dumps(payload)}\n\n".encode())

        if kind == "tool":
            name, arguments = value
            await chunk({"role": "assistant", "tool_calls": [{"index": 0, "id": f"call_{len(self.requests)}",
                         "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}]})
            await chunk({}, "tool_calls")
        else:
            await chunk({"role": "assistant", "content": ""})
            for word in value.split(" "):
                await chunk({"content": word + " "})
            await chunk({}, "stop")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        self.events.append(("answered", loop.time(), value[0] if kind == "tool" else "text"))
        return response

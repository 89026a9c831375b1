"""The playground's live trace: every running bot's trace entries and the reload notices,
masked, kept for newly opened pages, and streamed as Server-Sent Events (``/api/trace``)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import deque

from aiohttp import web

from runner.botfile.env import mask

HISTORY = 500  # trace entries and notices a newly opened page receives
KEEPALIVE = 15.0  # seconds between SSE comments on a quiet stream
SYNC_INTERVAL = 0.5  # how often new bots' traces are picked up


class TraceHub:
    """Hooks the traces of ``bots()`` (key -> bot with ``.spec`` and ``.trace``), keeps the
    last HISTORY items and hands them to the open streams."""

    def __init__(self, bots, secrets):
        self._bots, self._secrets = bots, secrets  # callables: the current bots, the values to mask
        self.history: deque = deque(maxlen=HISTORY)
        self.seq = 0
        self.clients: set[asyncio.Queue] = set()
        self.hooked: dict[str, tuple] = {}  # key -> (trace, listener)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        self._sync_task: asyncio.Task | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self.sync()
        self._sync_task = asyncio.ensure_future(self._sync_loop())

    async def stop(self) -> None:
        if self._sync_task is not None:
            self._sync_task.cancel()
            await asyncio.gather(self._sync_task, return_exceptions=True)
            self._sync_task = None
        for key in list(self.hooked):
            self._unhook(key)
        for queue in list(self.clients):
            queue.put_nowait(None)

    async def _sync_loop(self) -> None:
        while True:
            await asyncio.sleep(SYNC_INTERVAL)
            try:
                self.sync()
            except Exception:  # a half-built bot must not stop the playground
                pass

    def sync(self) -> None:
        """Hook the trace of every running bot (bots come and go with reloads)."""
        bots = self._bots()
        for key in list(self.hooked):
            trace = self.hooked[key][0]
            bot = bots.get(key)
            if bot is None or getattr(bot, "trace", None) is not trace:
                self._unhook(key)
        for key, bot in bots.items():
            trace = getattr(bot, "trace", None)
            if trace is None or key in self.hooked:
                continue

            def listener(entry, key=key):
                try:
                    self.publish(entry_json(key, entry))
                except Exception:  # the engine's run must never fail because of the page
                    pass
            for entry in list(trace.entries):
                listener(entry)
            trace.listeners.append(listener)
            self.hooked[key] = (trace, listener)

    def _unhook(self, key: str) -> None:
        trace, listener = self.hooked.pop(key)
        try:
            trace.listeners.remove(listener)
        except ValueError:
            pass

    def publish(self, item: dict) -> None:
        """Thread-safe: the trace listeners may be called from any thread."""
        if self._loop is None or self._loop.is_closed():
            return
        if threading.get_ident() != self._thread:
            self._loop.call_soon_threadsafe(self.publish, item)
            return
        self.seq += 1
        item = masked(dict(item, seq=self.seq), self._secrets())
        self.history.append(item)
        for queue in list(self.clients):
            if queue.qsize() < 1000:  # a stalled page loses entries, never memory
                queue.put_nowait(item)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """GET /api/trace: what the page missed (``Last-Event-ID`` / ``?since=``), then live."""
        self.sync()
        try:
            last = int(request.headers.get("Last-Event-ID") or request.query.get("since") or 0)
        except ValueError:
            last = 0
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                               "X-Accel-Buffering": "no"})
        await response.prepare(request)
        queue: asyncio.Queue = asyncio.Queue()
        for item in list(self.history):
            if item["seq"] > last:
                queue.put_nowait(item)
        self.clients.add(queue)
        try:
            await response.write(b"retry: 1000\n\n")
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), KEEPALIVE)
                except asyncio.TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if item is None:
                    break
                data = json.dumps(item, separators=(",", ":"), default=str)
                await response.write(f"id: {item['seq']}\ndata: {data}\n\n".encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.clients.discard(queue)
        return response


def entry_json(key: str, entry) -> dict:
    steps = []
    for step in entry.steps:
        action, line, value, ms = (list(step) + [None] * 4)[:4]
        steps.append({"action": action, "line": line, "value": value, "ms": ms})
    item = {"type": "trace", "file": key, "bot": entry.bot, "time": entry.time, "event": entry.event,
            "participant": entry.participant, "outcome": entry.outcome, "error": entry.error,
            "ms": entry.ms, "steps": steps, "note": getattr(entry, "note", None),
            "dropped": getattr(entry, "dropped", 0)}
    detail = getattr(entry, "detail", None)  # what triggered the run (a transcript), when recorded
    if detail is not None:
        item["detail"] = detail if isinstance(detail, (str, int, float, bool, dict, list)) else str(detail)
    return item


def masked(value, secrets: set):
    if isinstance(value, str):
        return mask(value, secrets) if secrets else value
    if isinstance(value, dict):
        return {k: masked(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [masked(v, secrets) for v in value]
    return value

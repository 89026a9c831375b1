"""One case, offline: the bot's real scheduler and engine, a recorder for effects, virtual time.

Every event a step causes goes through ``runtime.scheduler.Dispatcher.fire`` exactly as the live
wiring fires it (so ordering, modes, ownership, join dedupe, rate limits and waiting runs behave
as in a room); ``expect`` steps poll the recorder while virtual time moves to the next due thing.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque

from runner.runtime.scheduler import Dispatcher
from runner.runtime.state import SessionState
from runner.runtime.trace import Trace
from runner.testing import clock
from runner.testing.load import DEFAULT_TIMEOUT
from runner.testing.llm import llm_request
from runner.testing.recorder import RecordingEffects, record_run_end


class StepFailed(Exception):
    """A step that cannot be done (someone who is not in the room sends a message)."""


class OfflineBot:
    """What ``Dispatcher`` needs of a bot (.spec .state .trace .idle .effects .participants()), offline."""

    def __init__(self, spec, llm_url: str | None = None):
        self.loop = clock.loop()
        self.born = self.loop.time()  # the case's start: {{ now }} is recorder.EPOCH then
        self.spec = spec
        self.llm_url = llm_url  # lkrun test --llm-url: requests no llm: step answers go to this server
        self.pending: set[asyncio.Future] = set()  # real I/O in threads (the --llm-url requests)
        self.state = SessionState()
        self.trace = Trace(size=100000)
        self.runs: list = []  # every finished run (TraceEntry), for failure reports
        self.trace.listeners.append(self._traced)
        self.idle = clock.VirtualIdle(self.loop)
        self.effects = RecordingEffects(self)
        self.present: list[str] = []
        self.last_speaker: str | None = None
        self.context: list[dict] = []  # what the LLM would have seen
        self.answers: deque = deque()  # scripted llm answers: (body, "test.yaml:12")
        self.http_answers: deque = deque()
        self.tasks: set[asyncio.Task] = set()
        self.ending: bool | None = None  # None, or hangup (an end is waiting to be carried out)
        self.sessions = 1
        self.dispatcher = self._dispatcher()
        self.clocks = clock.SessionClocks(self, self.loop.time())

    def _dispatcher(self) -> Dispatcher:
        dispatcher = Dispatcher(self)
        session = self.spec.session
        dispatcher.limiter = clock.VirtualRateLimiter(self.loop, float(session.get("rate_limit") or 10),
                                                      session.get("rate_burst"))
        return dispatcher

    def participants(self) -> list[str]:
        return sorted(self.present)

    def _traced(self, entry) -> None:
        self.runs.append(entry)
        record_run_end(self.effects, entry, self.spec.file)

    def spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def llm_request(self, why: str) -> None:
        await llm_request(self, why)

    def end_session(self, hangup: bool = False, reason: str = "end", record=None) -> None:
        if record is None:
            self.effects.add("ended", None, reason, now=False, hangup=hangup, reason=reason)
        if self.ending is None or hangup:
            self.ending = hangup

    def expect_timeout(self, body: dict) -> float:
        """How long an expect step without its own timeout waits (virtual seconds: free)."""
        return DEFAULT_TIMEOUT if body else 0.0

    async def outside(self, function, *args):
        """Run blocking real I/O in a thread; ``settle`` waits for it in real time (virtual time stands still)."""
        future = self.loop.run_in_executor(None, function, *args)
        self.pending.add(future)
        try:
            return await future
        finally:
            self.pending.discard(future)

    async def settle(self) -> None:
        await clock.settle()
        while self.pending or self.ending is not None:
            if self.pending:
                await asyncio.wait(set(self.pending))
            else:
                await self._finish_session()
            await clock.settle()

    async def _finish_session(self) -> None:
        """As BotRuntime does after `end`: runs stop, state resets, people still here are carried over."""
        hangup, self.ending = self.ending, None
        await drive(self.dispatcher.stop())
        for task in list(self.tasks):
            task.cancel()
        if hangup:
            self.present.clear()
        self.state.reset(carried=self.participants())
        self.dispatcher = self._dispatcher()
        self.clocks = clock.SessionClocks(self, self.loop.time())
        self.idle.activity()
        self.context.clear()
        self.sessions += 1

    async def close(self) -> None:
        await drive(self.dispatcher.stop())
        for task in list(self.tasks):
            task.cancel()
        await drive(asyncio.sleep(0))

    def next_due(self) -> float | None:
        times = [t for t in (clock.next_timer(self.loop), self.clocks.due()) if t is not None]
        return min(times) if times else None

    async def advance_until(self, deadline: float, done=lambda: False) -> bool:
        """Move virtual time towards ``deadline``, one due thing at a time, until ``done()``."""
        stuck = 0
        while True:
            await self.settle()
            if done():
                return True
            due = self.next_due()
            if due is None or due > deadline:
                break
            stuck = stuck + 1 if due <= self.loop.virtual else 0
            if stuck > 1000:
                raise clock.BusyBot("something in the bot is due again and again without time passing")
            self.loop.virtual = max(self.loop.virtual, due)
            self.clocks.fire(self.loop.virtual)
        self.loop.virtual = max(self.loop.virtual, deadline)
        await self.settle()
        return done()

    # -- what people do (the live wiring's order: runtime/wiring.py, runtime/inbox.py) ------------
    def _sender(self, who: str, what: str) -> str:
        if who not in self.present:
            raise StepFailed(f"{who} {what} but is not in the room; add '- join: {{id: {who}}}' before this step")
        return who

    async def join(self, body) -> None:
        body = {"id": body} if isinstance(body, str) else body
        who = body["id"]
        if who in self.present:
            raise StepFailed(f"{who} is already in the room")
        if not self.present:
            self.idle.activity()  # an empty room's idle clock starts when someone arrives
        self.present.append(who)
        self.state.names[who] = {"name": body.get("name"), "metadata": body.get("metadata")}
        self.dispatcher.fire("participant_connected", who)
        self.dispatcher.fire("first_participant_joined", who)

    async def leave(self, body) -> None:
        body = {"id": body} if isinstance(body, str) else body
        who = body["id"]
        if who not in self.present:
            raise StepFailed(f"{who} leaves but is not in the room")
        self.present.remove(who)
        self.dispatcher.fire("participant_disconnected", who)
        self.dispatcher.fire("participant_left", who, extra={"reason": body.get("reason") or "CLIENT_INITIATED"})

    async def send(self, body) -> None:
        who = self._sender(body["from"], "sends data")
        data = body["data"]
        payload = json.dumps(data, ensure_ascii=False) if isinstance(data, dict) else str(data)
        self.dispatcher.fire("data_received", who, payload=payload.encode("utf-8"))
        if isinstance(data, dict) and "app_message" in self.spec.on:
            self.dispatcher.fire("app_message", who, message=data)

    async def chat(self, body) -> None:
        self.dispatcher.fire("chat_received", self._sender(body["from"], "writes in the chat"), text=body["text"])

    async def press(self, body) -> None:
        who = self._sender(body["from"], "presses keys")
        for digit in body["digits"]:
            self.dispatcher.fire("dtmf_event", who, digit=digit)
            await self.settle()

    async def say(self, body, where: str) -> None:
        """A user turn's final transcript: user_said (first match wins) or else the LLM."""
        who, text = self._sender(body["from"], "speaks"), body["text"]
        self.last_speaker = who
        self.dispatcher.fire("user_turn_started", who)
        self.dispatcher.fire("user_turn_stopped", who, text=text)
        waits = getattr(self.dispatcher, "waits", None)
        if waits is not None and waits.offer("user_said", who, {"text": text}):
            self.idle.activity()  # a run asked and waited for this answer: not for triggers or the LLM
            return
        handler = self.spec.on.get("user_said")
        for trigger in handler.triggers if handler else ():
            match = trigger.pattern.search(text) if trigger.pattern else None
            if match:
                self.dispatcher.fire("user_said", who, text=text, groups=list(match.groups()),
                                     _nodes=trigger.actions)
                if not trigger.cont:
                    return
                break
        else:
            patterns = ", ".join(f"{self.spec.file}:{t.line}" for t in (handler.triggers if handler else ()))
            self.effects.add("heard", None, f"patterns at {patterns}" if patterns else "", text=text)
        if self.spec.stage("llm"):
            self.context.append({"role": "user", "content": text})
            self.spawn(self.llm_request(f"{who}'s turn at {where}"))


async def drive(coro):
    """Await ``coro`` while moving virtual time to each due timer (nothing else moves it meanwhile)."""
    task = asyncio.ensure_future(coro)
    current = clock.loop()
    for _ in range(10000):
        await clock.settle()
        if task.done():
            return task.result()
        due = clock.next_timer(current)
        if due is None:
            break
        current.virtual = max(current.virtual, due)
    task.cancel()
    return None

"""Event -> runs: ordering per participant, modes, rate limits, join dedupe, error events.

Runs of the same event for the same participant are queued; different events and
participants run concurrently. Handlers are looked up in the bot's *current* spec at
fire time, so a reload swaps behaviour without touching running tasks.
"""

from __future__ import annotations

import asyncio
import time

from loguru import logger

from .engine import Run, SessionState, Trace, event_variables

JOIN_EVENTS = {"participant_connected"}  # once per identity; first_participant_joined: once per session
# Events carrying what other people send. A packet can come with no sender (a server API,
# or a person the bot has not been told about yet): those share one rate-limit bucket.
UNTRUSTED_EVENTS = {"data_received", "app_message", "chat_received", "dtmf_event"}
# a person did something: idle steps start over; the bot speaking only pauses the idle clock
ACTIVITY_EVENTS = {"data_received", "app_message", "chat_received", "dtmf_event", "user_turn_started",
                   "user_turn_stopped", "user_said"}
BOT_SPEECH_EVENTS = {"bot_started_speaking", "bot_stopped_speaking"}


class _Lane:
    """Serialises runs for one (event, participant) key."""

    def __init__(self):
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=256)
        self.task: asyncio.Task | None = None
        self.current: asyncio.Task | None = None  # only for mode: restart (it may be cancelled)
        self.busy = False
        self.mode = "queued"


class RateLimiter:
    """A token bucket per participant: a flood from one person cannot starve the others."""

    def __init__(self, per_second: float, burst: float | None = None):
        self.rate = per_second
        self.burst = burst or max(1.0, per_second * 2)
        self.buckets: dict[str, tuple[float, float]] = {}

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        tokens, last = self.buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1:
            self.buckets[key] = (tokens, now)
            return False
        self.buckets[key] = (tokens - 1, now)
        return True


class Dispatcher:
    def __init__(self, bot):
        self.bot = bot  # needs .spec, .state, .effects, .trace, .participants()
        self.lanes: dict[tuple, _Lane] = {}
        self.tasks: set[asyncio.Task] = set()
        self.limiter = RateLimiter(float(bot.spec.session.get("rate_limit") or 10))
        self.dropped = 0

    @property
    def state(self) -> SessionState:
        return self.bot.state

    def fire(self, event: str, participant: str | None = None, **variables) -> None:
        """Schedule the event's actions; never blocks and never raises."""
        spec = self.bot.spec
        if getattr(self.bot, "idle", None) is not None:
            if event in ACTIVITY_EVENTS:
                self.bot.idle.activity()
            elif event in BOT_SPEECH_EVENTS:
                self.bot.idle.touch()
        if event in JOIN_EVENTS and participant is not None:
            key = (event, participant)
            if key in self.state.joined:
                return
            self.state.joined.add(key)
        if event == "first_participant_joined":
            if ("first_participant_joined", None) in self.state.joined:
                return
            self.state.joined.add(("first_participant_joined", None))
        handler = spec.on.get(event)
        if handler is None:
            return
        if (participant is not None or event in UNTRUSTED_EVENTS) and not self.limiter.allow(participant or ""):
            self.dropped += 1
            logger.warning(f"[{spec.name}] {participant} is sending too fast: dropped a '{event}' run")
            return
        nodes = self._select(handler, variables)
        if nodes is None:
            return
        info = self.state.names.get(participant, {}) if participant else {}
        variables = event_variables(event, participant, name=info.get("name"), metadata=info.get("metadata"),
                                    **variables)
        self._schedule(handler.mode, (event, participant), event, participant, nodes, variables)

    def _select(self, handler, variables):
        if handler.triggers:  # user_said: the matching trigger was chosen by the caller
            return variables.pop("_nodes", None)
        return handler.actions

    def _schedule(self, mode, key, event, participant, nodes, variables):
        coro_factory = lambda: self._run(event, participant, nodes, variables)  # noqa: E731
        if mode == "parallel":
            self._spawn(coro_factory())
            return
        lane = self.lanes.setdefault(key, _Lane())
        lane.mode = mode
        if mode == "single" and (lane.busy or not lane.queue.empty()):
            return
        if mode == "restart" and lane.current is not None and not lane.current.done():
            lane.current.cancel()
            while not lane.queue.empty():
                lane.queue.get_nowait()
        try:
            lane.queue.put_nowait(coro_factory)
        except asyncio.QueueFull:
            logger.warning(f"[{self.bot.spec.name}] too many queued '{event}' runs; dropped one")
            return
        if lane.task is None or lane.task.done():
            lane.task = self._spawn(self._drain(lane))

    async def _drain(self, lane: _Lane) -> None:
        while not lane.queue.empty():
            factory = lane.queue.get_nowait()
            if lane.mode != "restart":  # run in this task: no extra task per event
                lane.busy = True
                try:
                    await factory()
                finally:
                    lane.busy = False
                continue
            lane.current = asyncio.ensure_future(factory())
            try:
                await lane.current
            except asyncio.CancelledError:
                if asyncio.current_task().cancelling():
                    raise
            lane.current = None

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _run(self, event, participant, nodes, variables) -> None:
        bot = self.bot
        run = Run(bot.spec, self.state, bot.effects, event, variables, participant, bot.participants(), bot.trace)
        entry = await run.execute(nodes)
        # lazy: formatting every trace for a disabled debug level was a measurable part of a run
        logger.opt(lazy=True).debug("[{}] {} ({}) {} in {} ms: {}", lambda: bot.spec.name, lambda: event,
                                    lambda: participant or "-", lambda: entry.outcome, lambda: entry.ms,
                                    lambda: entry.steps)
        if entry.error:
            logger.error(entry.error)
            if event != "error":
                line = entry.error.split(":", 3)
                self.fire("error", None, extra={"error": {
                    "message": entry.error, "event": event, "action": entry.steps[-1][0] if entry.steps else None,
                    "line": int(line[1]) if len(line) > 2 and line[1].isdigit() else None}})

    async def stop(self) -> None:
        tasks = [t for t in self.tasks if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
        self.lanes.clear()


__all__ = ["Dispatcher", "RateLimiter", "Trace"]

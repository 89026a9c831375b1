"""Event -> runs: ordering per participant, modes, ownership, rate limits, join dedupe, error events.

Runs of the same event for the same participant are queued; different events and
participants run concurrently. Handlers are looked up in the bot's *current* spec at
fire time, so a reload swaps behaviour without touching running tasks.

A run started by a person's event belongs to that person: when they leave, their queued and
running runs are cancelled (the runs of the leave events themselves are exempt).
"""

from __future__ import annotations

import asyncio
import time

from loguru import logger

from runner.botfile.events import EVENTS
from runner.botfile.registry import EventDef
from runner.runtime.engine import Run, event_variables
from runner.runtime.state import SessionState
from runner.runtime.trace import RunOutcome, Trace, TraceEntry
from runner.runtime.waits import Waits

NO_EVENT = EventDef(name="", doc="", variables={})  # an unregistered name: no special treatment


def _def(event: str) -> EventDef:
    """How an event is treated comes from its registry entry (untrusted, activity, once, leave)."""
    return EVENTS.get(event) or NO_EVENT


def is_leave(event: str) -> bool:
    return _def(event).leave


LEFT = "the caller left"  # the cancel message of a person's runs when they leave
DROP_SUMMARY_EVERY = 10.0  # seconds between "dropped N runs" log lines (never one line per drop)


class _Lane:
    """Serialises runs for one (event, participant) key."""

    def __init__(self):
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=256)
        self.task: asyncio.Task | None = None
        self.current: asyncio.Task | None = None  # only for mode: restart (it may be cancelled)
        self.busy = False
        self.mode = "queued"


class RateLimiter:
    """A token bucket per participant: a flood from one person cannot starve the others.

    ``burst`` runs may arrive at once; after that, ``per_second`` runs per second."""

    def __init__(self, per_second: float, burst: float | None = None, clock=time.monotonic):
        self.rate = per_second
        self.burst = float(burst or max(1.0, per_second * 2))
        self.buckets: dict[str, tuple[float, float]] = {}
        self.clock = clock  # lkrun test passes its virtual clock

    def over(self, key: str) -> bool:
        """Whether ``key`` has no run left right now (nothing is taken)."""
        tokens, last = self.buckets.get(key, (self.burst, self.clock()))
        return min(self.burst, tokens + (self.clock() - last) * self.rate) < 1

    PRUNE_AT = 1024  # people with a bucket before full ones are forgotten (a full bucket = no bucket)

    def allow(self, key: str) -> bool:
        now = self.clock()
        if key not in self.buckets and len(self.buckets) >= self.PRUNE_AT:
            self._forget_full(now)
        tokens, last = self.buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1:
            self.buckets[key] = (tokens, now)
            return False
        self.buckets[key] = (tokens - 1, now)
        return True

    def _forget_full(self, now: float) -> None:
        """A bot that runs for weeks meets many people: keep only the buckets still short of full."""
        self.buckets = {key: (tokens, last) for key, (tokens, last) in self.buckets.items()
                        if tokens + (now - last) * self.rate < self.burst}


class DropCounter:
    """Dropped runs: counted per participant; one trace entry per second of a flood that says how
    many, and one log line per interval (a flood of 2,000 is not 2,000 lines)."""

    def __init__(self, bot_name: str, trace: Trace):
        self.bot_name, self.trace = bot_name, trace
        self.total = 0
        self.pending: dict[str, int] = {}  # for the next log line
        self.entries: dict[tuple, TraceEntry] = {}  # for the next trace publish
        self.last_log = 0.0
        self._publish: asyncio.TimerHandle | None = None

    def add(self, event: str, participant: str | None, why: str) -> None:
        from runner.runtime import metrics
        metrics.run_dropped(self.bot_name)
        self.total += 1
        who = participant or "(no sender)"
        self.pending[who] = self.pending.get(who, 0) + 1
        entry = self.entries.get((event, participant))
        if entry is None:
            entry = self.entries[(event, participant)] = TraceEntry(
                time.time(), self.bot_name, event, participant, outcome=RunOutcome.DROPPED)
        entry.dropped += 1
        entry.error = f"{entry.dropped} '{event}' run{'s' if entry.dropped > 1 else ''} dropped: {why}"
        if self._publish is None:
            self._publish = asyncio.get_running_loop().call_later(1.0, self.publish)
        now = time.monotonic()
        if now - self.last_log >= DROP_SUMMARY_EVERY:
            self.flush(now)

    def publish(self) -> None:
        """Put the counted drops into the trace (and so the playground)."""
        if self._publish is not None:
            self._publish.cancel()
            self._publish = None
        for entry in self.entries.values():
            self.trace.add(entry)
        self.entries.clear()

    def flush(self, now: float | None = None) -> None:
        if self.pending:
            counts = ", ".join(f"{n} from {who}" for who, n in sorted(self.pending.items()))
            logger.warning(f"[{self.bot_name}] dropped runs (sending too fast or too many queued): {counts}")
            self.pending.clear()
        self.last_log = time.monotonic() if now is None else now


class Dispatcher:
    def __init__(self, bot):
        self.bot = bot  # needs .spec, .state, .effects, .trace, .participants(), .idle
        self.lanes: dict[tuple, _Lane] = {}
        self.tasks: set[asyncio.Task] = set()
        self.owned: dict[str, set[asyncio.Task]] = {}  # participant -> their parallel runs and tool runs
        session = bot.spec.session
        self.limiter = RateLimiter(float(session.get("rate_limit") or 10), session.get("rate_burst"))
        self.drops = DropCounter(bot.spec.name, bot.trace)
        self.waits = Waits()  # runs waiting for input (wait_for, collect_digits)

    @property
    def state(self) -> SessionState:
        return self.bot.state

    @property
    def dropped(self) -> int:
        return self.drops.total

    def fire(self, event: str, participant: str | None = None, *, note: str | None = None, **variables) -> None:
        """Schedule the event's actions; never blocks and never raises."""
        spec = self.bot.spec
        idle = self.bot.idle
        entry = _def(event)
        if entry.activity:
            idle.activity()
        elif entry.bot_speech:
            idle.touch()
            self.waits.speech.event(event)
        if participant is not None and entry.leave:
            self.cancel_runs_of(participant)
        if entry.once is not None:
            key = (event, participant if entry.once == "participant" else None)
            if entry.once == "participant" and participant is None:
                key = None
            if key is not None:
                if key in self.state.joined:
                    return
                self.state.joined.add(key)
        if self.waits.waiters and self._taken_by_a_waiting_run(event, participant, variables):
            return
        handler = spec.on.get(event)
        if handler is None:
            return
        if (participant is not None or entry.untrusted) and not self.limiter.allow(participant or ""):
            self.drops.add(event, participant, "the sender is over session.rate_limit")
            return
        nodes = self._select(handler, variables)
        if nodes is None:
            return
        info = self.state.names.get(participant, {}) if participant else {}
        variables = event_variables(event, participant, name=info.get("name"), metadata=info.get("metadata"),
                                    kind=info.get("kind"), attributes=info.get("attributes"), **variables)
        self._schedule(handler.mode, (event, participant), event, participant, nodes, variables, note)

    async def run_now(self, event: str, participant: str | None = None, **variables) -> None:
        """Run the event's actions here and wait for them (the flow's node_entered and flow_ended,
        whose actions must finish before the session the flow ends is over); never raises."""
        handler = self.bot.spec.on.get(event)
        if handler is None or not handler.actions:
            return
        variables = event_variables(event, participant, **variables)
        await self._run(event, participant, handler.actions, variables)

    def _taken_by_a_waiting_run(self, event, participant, variables) -> bool:
        """A run that waits for this input gets it (and `on:` handlers do not)."""
        seen = event_variables(event, participant, **{k: v for k, v in variables.items() if k != "_nodes"})
        return self.waits.offer(event, participant, seen)

    def _select(self, handler, variables):
        if handler.triggers:  # user_said: the matching trigger was chosen by the caller
            return variables.pop("_nodes", None)
        return handler.actions

    def cancel_runs_of(self, participant: str) -> None:
        """The person left: their queued and running runs stop (not the leave events' own runs)."""
        for key in [k for k in self.lanes if k[1] == participant and not is_leave(k[0])]:
            lane = self.lanes.pop(key)
            if lane.task is not None:
                lane.task.cancel()
        for task in self.owned.pop(participant, ()):
            task.cancel(LEFT)

    def own(self, participant: str | None, task: asyncio.Task) -> asyncio.Task:
        """Register a task (a parallel run, a tool run) as belonging to a person."""
        if participant is not None:
            tasks = self.owned.setdefault(participant, set())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        return task

    def disown(self, participant: str | None, task: asyncio.Task) -> None:
        """A task that ran a person's actions inline goes on without them (runtime.tools.run_owned)."""
        self.owned.get(participant, set()).discard(task)

    def _schedule(self, mode, key, event, participant, nodes, variables, note=None):
        coro_factory = lambda: self._run(event, participant, nodes, variables, note)  # noqa: E731
        if mode == "parallel":
            task = self._spawn(coro_factory())
            if not is_leave(event):
                self.own(participant, task)
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
            self.drops.add(event, participant, "256 runs already queued for this event")
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

    def participants_for(self, event: str, participant: str | None) -> list[str]:
        """room.participants for a run: the leave events never see the person who left."""
        people = self.bot.participants()
        if participant is not None and is_leave(event):
            return [p for p in people if p != participant]
        return people

    async def _run(self, event, participant, nodes, variables, note=None) -> None:
        bot = self.bot
        run = Run(bot.spec, self.state, bot.effects, event, variables, participant,
                  self.participants_for(event, participant), bot.trace)
        run.waits = self.waits
        run.trace_entry.note = note
        entry = await run.execute(nodes)
        from runner.runtime import metrics
        metrics.run_finished(bot.spec.name, event, entry.outcome, entry.ms / 1000)
        # lazy: formatting every trace for a disabled debug level was a measurable part of a run
        logger.opt(lazy=True).debug("[{}] {} ({}) {} in {} ms: {}", lambda: bot.spec.name, lambda: event,
                                    lambda: participant or "-", lambda: entry.outcome, lambda: entry.ms,
                                    lambda: entry.steps)
        if entry.outcome is RunOutcome.ERROR:
            logger.error(entry.error)
            if event != "error":
                self.fire("error", None, extra={"error": {
                    "message": entry.error, "event": event, "action": entry.action, "line": entry.line,
                    "file": bot.spec.file}})

    async def stop(self) -> None:
        tasks = [t for t in self.tasks if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
        self.lanes.clear()
        self.owned.clear()
        self.drops.publish()
        self.drops.flush()


__all__ = ["Dispatcher", "RateLimiter", "Trace"]

"""Virtual time for offline tests: an event loop whose clock only moves when the runner says so.

Everything that waits on the loop's clock (``asyncio.sleep`` in ``effects.wait``, timeouts of
waiting actions, the scheduler's drop counter) waits in virtual time, so ``wait: 30`` in a case
takes microseconds. The runner moves time forward to the next thing that is due, lets every
runnable task finish (``settle``), and repeats.
"""

from __future__ import annotations

import asyncio

from runner.runtime.scheduler import RateLimiter
from runner.runtime.timers import IdleClock

MAX_SETTLE = 20000  # loop passes before "the bot never stops working" (a run that loops without waiting)


class VirtualLoop(asyncio.SelectorEventLoop):
    """An asyncio loop whose ``time()`` is virtual: call_later/sleep fire when the runner advances it."""

    def __init__(self):
        super().__init__()
        self.virtual = 0.0

    def time(self) -> float:
        return self.virtual


class BusyBot(Exception):
    """The bot's runs did not stop working (no await on anything but other work)."""


def loop() -> VirtualLoop:
    current = asyncio.get_running_loop()
    if not isinstance(current, VirtualLoop):
        raise RuntimeError("offline tests run in a VirtualLoop (runner.testing.clock)")
    return current


def next_timer(current: VirtualLoop) -> float | None:
    """When the earliest pending loop timer is due (sleeping runs, timeouts), or None."""
    pending = [h.when() for h in current._scheduled if not h.cancelled()]  # noqa: SLF001 - CPython's heap
    return min(pending) if pending else None


async def settle() -> None:
    """Let every runnable task run until none is left (nothing due at the current virtual time)."""
    current = loop()
    for _ in range(MAX_SETTLE):
        await asyncio.sleep(0)
        if not current._ready and not _due(current):  # noqa: SLF001
            return
    raise BusyBot("the bot's actions kept running without pause (a loop with no wait?)")


def _due(current: VirtualLoop) -> bool:
    now = current.time()
    return any(h.when() <= now and not h.cancelled() for h in current._scheduled)  # noqa: SLF001


class VirtualIdle(IdleClock):
    """runtime.timers.IdleClock on the virtual clock (the dispatcher calls activity/touch)."""

    def __init__(self, current: VirtualLoop):
        self.loop = current
        super().__init__(clock=current.time)


class VirtualRateLimiter(RateLimiter):
    """session.rate_limit on the virtual clock: messages a case sends seconds apart are not a flood."""

    def __init__(self, current: VirtualLoop, per_second: float, burst: float | None = None):
        super().__init__(per_second, burst, clock=current.time)


class SessionClocks:
    """`timer` triggers, `idle` steps, session.idle_timeout and max_duration, as runtime/timers.py
    runs them live, but computed: ``due()`` says when the next one fires, ``fire(now)`` fires it."""

    def __init__(self, bot, started: float):
        self.bot, self.started = bot, started
        self.next_timer: dict[int, float] = {}

    def _timers(self):
        handler = self.bot.spec.on.get("timer")
        return list(enumerate(handler.triggers)) if handler else []

    def _idle_steps(self):
        handler = self.bot.spec.on.get("idle")
        return list(enumerate(sorted(handler.triggers, key=lambda t: t.after))) if handler else []

    def _timer_due(self, index, trigger) -> float:
        return self.next_timer.setdefault(index, self.started + (trigger.after if trigger.after is not None
                                                                 else trigger.every))

    def due(self) -> float | None:
        times = [self._timer_due(i, t) for i, t in self._timers()]
        session = self.bot.spec.session
        if session.get("max_duration"):
            times.append(self.started + float(session["max_duration"]))
        waits = getattr(self.bot.dispatcher, "waits", None)
        if waits is not None and waits.active:  # a run waits for an answer it asked for: idle is paused
            self.bot.idle.touch()
        elif self.bot.participants():  # idle counts only while someone is in the room
            idle = self.bot.idle
            times += [idle.last + t.after for i, t in self._idle_steps() if i not in idle.fired]
            if session.get("idle_timeout"):
                times.append(idle.last + float(session["idle_timeout"]))
        times = [t for t in times if t != float("inf")]
        return min(times) if times else None

    def fire(self, now: float) -> None:
        bot = self.bot
        for index, trigger in self._timers():
            if now >= self._timer_due(index, trigger):
                bot.dispatcher.fire("timer", None, _nodes=trigger.actions)
                self.next_timer[index] = now + trigger.every if trigger.every else float("inf")
        session = bot.spec.session
        if session.get("max_duration") and now >= self.started + float(session["max_duration"]):
            bot.end_session(reason="session.max_duration")
            return
        if not bot.participants():
            bot.idle.activity()
            return
        idle = bot.idle
        waits = getattr(bot.dispatcher, "waits", None)
        if waits is not None and waits.active:
            idle.touch()
            return
        quiet = now - idle.last
        for index, trigger in self._idle_steps():
            if quiet >= trigger.after and index not in idle.fired:
                idle.fired.add(index)
                bot.dispatcher.fire("idle", None, _nodes=trigger.actions)
        if session.get("idle_timeout") and quiet >= float(session["idle_timeout"]):
            bot.end_session(reason="session.idle_timeout")
            idle.activity()

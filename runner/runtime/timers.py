"""Session clocks: `timer` triggers, `idle` steps and `session.max_duration`.

Activity (speech, data, chat) resets the idle steps; they escalate in order of `after`.
"""

from __future__ import annotations

import asyncio
import time

from loguru import logger


class IdleClock:
    def __init__(self, clock=time.monotonic):
        self.clock = clock  # lkrun test passes its virtual clock
        self.last = clock()
        self.fired: set[int] = set()

    def activity(self) -> None:
        """A person spoke or sent something: the steps start over."""
        self.last = self.clock()
        self.fired.clear()

    def touch(self) -> None:
        """The bot spoke (perhaps an idle prompt): quiet time restarts, the escalation does not."""
        self.last = self.clock()


class SpecSwaps:
    """A swap of the bot file (a reload): the session's timers sleep on it while the file has
    nothing for them to count."""

    def __init__(self):
        self._event = asyncio.Event()

    def swapped(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait(self) -> None:
        await self._event.wait()


def session_tasks(bot) -> list[asyncio.Task]:
    tasks = [asyncio.ensure_future(_timers(bot)), asyncio.ensure_future(_idle(bot))]
    if bot.spec.session.get("max_duration"):
        tasks.append(asyncio.ensure_future(_max_duration(bot)))
    return tasks


def _wants_idle(spec) -> bool:
    return "idle" in spec.on or bool(spec.session.get("idle_timeout"))


async def _timers(bot) -> None:
    started = time.monotonic()
    next_due: dict[int, float] = {}
    while True:
        handler = bot.spec.on.get("timer")
        if handler is None:  # nothing to count (a hundred data bots would wake 1,000 times a second)
            await bot.swaps.wait()
            continue
        now = time.monotonic()
        for index, trigger in enumerate(handler.triggers):
            due = next_due.setdefault(index, started + (trigger.after if trigger.after is not None
                                                        else trigger.every))
            if now >= due:
                bot.dispatcher.fire("timer", None, _nodes=trigger.actions)
                next_due[index] = now + trigger.every if trigger.every else float("inf")
        await asyncio.sleep(0.1)


async def _idle(bot) -> None:
    """Idle counts only while someone is in the room; each session starts it over. A bot with no
    idle steps and no idle_timeout counts nothing until a reload gives it some."""
    clock = bot.idle
    clock.activity()
    while True:
        if not _wants_idle(bot.spec):  # no idle steps and no idle_timeout: nothing to count
            await bot.swaps.wait()
            clock.touch()  # steps a reload adds count quiet time from the reload
            continue
        if not bot.participants():  # an empty room is not quiet, it is empty: nobody to prompt
            clock.activity()
            await asyncio.sleep(0.1)
            continue
        waits = bot.dispatcher.waits
        if waits.active or waits.speech.busy():  # a run waits for an answer, or the bot is talking
            clock.touch()
        handler = bot.spec.on.get("idle")
        quiet = time.monotonic() - clock.last
        for index, trigger in enumerate(sorted(handler.triggers, key=lambda t: t.after) if handler else ()):
            if quiet >= trigger.after and index not in clock.fired:
                clock.fired.add(index)
                bot.dispatcher.fire("idle", None, _nodes=trigger.actions)
        timeout = bot.spec.session.get("idle_timeout")
        if timeout and quiet >= timeout:
            logger.info(f"[{bot.name}] no activity for {timeout:g} s: ending the session")
            await bot.end_session(now=False)
            clock.activity()
        await asyncio.sleep(0.1)


async def _max_duration(bot) -> None:
    await asyncio.sleep(float(bot.spec.session["max_duration"]))
    logger.info(f"[{bot.name}] session reached max_duration: ending it")
    await bot.end_session(now=False)

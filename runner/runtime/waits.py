"""Runs that wait for input: `wait_for` and `collect_digits`.

A waiting run registers what it waits for; the scheduler offers every event to the waiting runs
first, and an event a run was waiting for goes to that run only (not to `on:` handlers). The
timeout starts once the speech the bot queued has finished playing; input that arrives while
it plays already counts. A wait ends with its run: when the person leaves, at `end`.
"""

from __future__ import annotations

import asyncio
import re
import time

# what each awaitable event offers to `match:` (a regular expression searched in it)
MATCHED_TEXT = {"user_said": "text", "chat_received": "text", "data_received": "data", "dtmf_event": "digit",
                "participant_connected": "participant", "participant_left": "participant"}
WAITABLE = tuple(MATCHED_TEXT)
ANYONE_BY_DEFAULT = {"participant_connected"}  # the run's own person has joined already
SPEECH_START_CAP = 10.0  # seconds: speech that never starts (a TTS failure) does not hold a wait forever
SPEECH_CAP = 120.0


class Speech:
    """Whether the speech the bot queued has finished playing (from bot_started/stopped_speaking)."""

    def __init__(self):
        self.last_queued: float | None = None
        self.speaking = False
        self.started_at = 0.0
        self.stopped_at = 0.0
        self._changed = asyncio.Event()

    def queued(self) -> None:
        self.last_queued = time.monotonic()

    def event(self, name: str) -> None:
        now = time.monotonic()
        if name == "bot_started_speaking":
            self.speaking, self.started_at = True, now
        elif name == "bot_stopped_speaking":
            self.speaking, self.stopped_at = False, now
        self._changed.set()
        self._changed = asyncio.Event()

    def busy(self) -> bool:
        """Speech is playing, or queued and not yet started (a slow TTS): the bot is not quiet."""
        if self.speaking:
            return True
        queued = self.last_queued
        return queued is not None and self.started_at < queued and time.monotonic() - queued <= SPEECH_START_CAP

    async def finished(self) -> None:
        queued = self.last_queued
        if queued is None:
            return
        while True:
            now = time.monotonic()
            if not self.speaking and self.stopped_at >= queued and self.stopped_at >= self.started_at:
                return
            never_started = not self.speaking and self.started_at < queued and now - queued > SPEECH_START_CAP
            if never_started or now - queued > SPEECH_CAP:
                return
            try:
                await asyncio.wait_for(self._changed.wait(), 0.1)
            except asyncio.TimeoutError:
                pass


class Waiter:
    """One run waiting for one of several (event, pattern, sender) matches."""

    def __init__(self, matchers: list[tuple[str, re.Pattern | None, str | None]]):
        self.matchers = matchers
        self.future: asyncio.Future = asyncio.get_running_loop().create_future()

    def takes(self, event: str, participant: str | None, variables: dict) -> bool:
        for wanted, pattern, sender in self.matchers:
            if wanted != event or (sender is not None and sender != participant):
                continue
            text = variables.get(MATCHED_TEXT[event]) if MATCHED_TEXT[event] != "participant" else participant
            if pattern is None or pattern.search("" if text is None else str(text)):
                return True
        return False


class Waits:
    def __init__(self):
        self.waiters: list[Waiter] = []
        self.speech = Speech()

    @property
    def active(self) -> bool:
        return bool(self.waiters)

    def offer(self, event: str, participant: str | None, variables: dict) -> bool:
        """Give the event to the first run waiting for it; True when one took it."""
        for waiter in list(self.waiters):
            if not waiter.future.done() and waiter.takes(event, participant, variables):
                self.waiters.remove(waiter)
                waiter.future.set_result(_seen(event, participant, variables))
                return True
        return False

    async def wait(self, matchers, timeout: float | None, effects) -> dict | None:
        """The event's variables, or None on timeout (counted from the end of the bot's speech)."""
        waiter = Waiter(matchers)
        self.waiters.append(waiter)
        try:
            await effects.speech_finished()  # input arriving meanwhile is already caught
            if waiter.future.done() or timeout is None:
                return await waiter.future
            sleeper = asyncio.ensure_future(effects.wait(timeout))
            try:
                await asyncio.wait({waiter.future, sleeper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
            return waiter.future.result() if waiter.future.done() else None
        finally:
            if waiter in self.waiters:
                self.waiters.remove(waiter)
            if not waiter.future.done():
                waiter.future.cancel()


def _seen(event: str, participant: str | None, variables: dict) -> dict:
    return {"event": event, "participant": participant, "text": variables.get("text", variables.get("data")),
            "digit": variables.get("digit"), "message": variables.get("message") or {}, "timed_out": False}

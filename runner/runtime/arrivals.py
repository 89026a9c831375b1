"""First messages: what a person sends before the bot has been told they joined.

livekit-server announces people who publish no track on a 3 s ticker, and their first data
packet, chat or DTMF usually arrives first. Such input is held (bounded, in order, per
identity) until the announcement, so the join event runs first and a reply to the sender has
someone to go to; it is never dropped for being early and never broadcast.

Chat streams carry their sender's identity. A data packet from an unannounced person does not
(livekit 1.2.1 drops it before Python sees the packet), so lkrun asks the server who is in the
room: when exactly one person is not announced yet, the packet is theirs; when nobody is, it
came from a server API (those have no sender and are not held). lkrun also asks the server to
announce the waiting people at once (an attribute update that changes nothing: the server
sends attribute updates immediately, not on its ticker), so the next person's first message
finds them all announced. Packets from several people who are all still unannounced at the
same moment cannot be told apart: they run without a sender, and the trace says why.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Awaitable, Callable

from loguru import logger

HOLD_SECONDS = 5.0  # longer than the server's 3 s announcement ticker
PER_PERSON = 64
PEOPLE = 256

Run = Callable[[str | None, str | None], None]  # (identity, note) -> fire the event
Lookup = Callable[[], Awaitable[dict | None]]  # -> {identity: {"name", "metadata"}} from the server
Announce = Callable[[list], Awaitable[None]]  # ask the server to announce these people now


class Arrivals:
    def __init__(self, bot_name: str, lookup: Lookup | None = None, hold_for_joins: bool = True,
                 announce: Announce | None = None):
        self.bot_name = bot_name
        self.lookup = lookup
        self.announce_now = announce
        self.hold_for_joins = hold_for_joins  # without a join handler there is nothing to wait for
        self.announced: set[str] = set()
        self.held: dict[str, deque] = {}
        self.server_info: dict[str, dict] = {}  # what the server told us about unannounced people
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._anonymous: deque = deque(maxlen=PER_PERSON)
        self._resolving: asyncio.Task | None = None

    def deliver(self, identity: str | None, run: Run) -> None:
        """Run now when the sender is known; hold it when they are not announced yet."""
        if identity is None:
            if self.lookup is None:
                run(None, None)
            else:
                self._anonymous.append((time.monotonic(), run))
                if self._resolving is None or self._resolving.done():
                    self._resolving = asyncio.ensure_future(self._resolve())
            return
        if identity in self.announced:
            run(identity, None)
            return
        if not self.hold_for_joins:
            run(identity, f"arrived before {identity} was announced; run at once (no join handler)")
            return
        self._hold(identity, (time.monotonic(), run))

    def _hold(self, identity: str, item) -> None:
        queue = self.held.get(identity)
        if queue is None:
            if len(self.held) >= PEOPLE:
                logger.warning(f"[{self.bot_name}] input from {PEOPLE} unannounced people is waiting; "
                               f"running {identity}'s at once")
                self._run_one(identity, item, "; not held: too many waiting")
                return
            queue = self.held[identity] = deque()
            self._timers[identity] = asyncio.get_running_loop().call_later(
                HOLD_SECONDS, self._release, identity, f"; not announced within {HOLD_SECONDS:g} s, run anyway")
        if len(queue) >= PER_PERSON:
            self._run_one(identity, queue.popleft(), "; the hold was full")
        queue.append(item)

    async def _resolve(self) -> None:
        """Whose are the packets without a sender? Ask the server once per burst."""
        try:
            people = await asyncio.wait_for(self.lookup(), 3.0)
        except Exception as exc:  # a server that cannot answer: the packets run without a sender
            logger.debug(f"[{self.bot_name}] could not list the room's participants: {exc}")
            people = None
        waiting = [p for p in (people or {}) if p not in self.announced]
        if waiting and self.announce_now is not None:
            asyncio.ensure_future(self._announce(waiting))
        items = list(self._anonymous)
        self._anonymous.clear()
        if len(waiting) == 1:
            identity = waiting[0]
            self.server_info[identity] = people[identity]
            for item in items:
                if identity in self.announced or not self.hold_for_joins:
                    self._run_one(identity, item, "; its sender was found through the server")
                else:
                    self._hold(identity, item)
            return
        why = ("it came from the server" if people is not None and not waiting else
               f"{len(waiting)} people were not announced yet, so it cannot be told whose it is"
               if waiting else "the server could not be asked who sent it")
        for _arrived, run in items:
            run(None, f"a data packet without a sender: {why}")

    async def _announce(self, identities: list) -> None:
        try:
            await asyncio.wait_for(self.announce_now(identities), 3.0)
        except Exception as exc:
            logger.debug(f"[{self.bot_name}] could not ask the server to announce {identities}: {exc}")

    def announce(self, identity: str) -> None:
        """The join arrived: held input runs now, in order, after the join event was fired."""
        self.announced.add(identity)
        self.server_info.pop(identity, None)
        self._release(identity, "")

    def left(self, identity: str) -> None:
        self.announced.discard(identity)
        self.held.pop(identity, None)
        timer = self._timers.pop(identity, None)
        if timer is not None:
            timer.cancel()

    def _release(self, identity: str, how: str) -> None:
        timer = self._timers.pop(identity, None)
        if timer is not None:
            timer.cancel()
        for item in self.held.pop(identity, ()):
            self._run_one(identity, item, how)

    @staticmethod
    def _run_one(identity: str, item, how: str) -> None:
        arrived, run = item
        early = (time.monotonic() - arrived) * 1000
        run(identity, f"held {early:.0f} ms: it arrived before {identity} was announced{how}")

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self.held.clear()
        if self._resolving is not None:
            self._resolving.cancel()

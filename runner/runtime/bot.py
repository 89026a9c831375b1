"""One running bot: its current spec, session state, dispatcher and generations.

The spec can be swapped by reload at any time; state (room, participants, who has been
greeted) lives here so it survives reconnects, reloads and new generations.
"""

from __future__ import annotations

import asyncio
import time

from loguru import logger

from runner.runtime import dataclass_code, interpreter, records
from runner.runtime.scheduler import Dispatcher
from runner.runtime.effects import LiveEffects
from runner.runtime.state import SessionState
from runner.runtime.trace import Trace
from runner.runtime.generation import Generation, Outcome
from runner.botfile.spec import BotSpec
from runner.runtime.timers import IdleClock, SpecSwaps
from runner.runtime.flows import FlowSession

BACKOFF = (0.5, 1.0, 2.0, 3.0)


class BotFatal(Exception):
    """The bot cannot run (first connect refused, duplicate identity, removed)."""


class BotRuntime:
    def __init__(self, spec: BotSpec, server, *, once: bool = False, trace: Trace | None = None):
        self.spec = spec
        self.server = server
        self.once = once
        self.state = SessionState()
        self.trace = trace or Trace()
        self.idle = IdleClock()
        self.last_speaker: str | None = None  # who spoke last (tool runs belong to them)
        self.services: dict = {}  # the built pipecat services of the current generation, by kind
        self.effects = LiveEffects(self)
        self.dispatcher = Dispatcher(self)
        self.generation: Generation | None = None
        self.connected_once = False
        self.in_room = asyncio.Event()  # set at the first connect (the start-up banner waits for it)
        self.stopping = False
        self.generations = 0
        self._session_tasks: list[asyncio.Task] = []
        self.swaps = SpecSwaps()  # wakes the session's timers, which sleep while the file has none
        self._carry: set[str] = set()  # who was in the room when `end` ran
        self.flow = FlowSession()  # where the session's `flow:` is (reset by `end`)
        self.context_aggregator = None  # the LLM context aggregator pair of the current generation

    @property
    def name(self) -> str:
        return self.spec.name

    def participants(self) -> list[str]:
        gen = self.generation
        if gen is None or gen.room is None:
            return []
        return sorted(p for p in gen.room.remote_participants if p != self.spec.identity)

    async def run(self, *, fatal_first_connect: bool = False) -> str:
        """Keep the bot in its room until stopped. Returns why it finished."""
        failures = 0
        older: list[Generation] = []  # recent generations: their connections are this bot's own
        while not self.stopping:
            for old in [g for g in older if g.holds_identity()]:  # none may join over the next one
                await old.release(timeout=5.0)
            self.generations += 1
            gen = Generation(self, self.generations)
            self.generation = gen
            older = [*older[-7:], gen]
            try:
                outcome = await gen.run()
            finally:
                self.generation = None
                gen.abandoned = True  # a connect of its that lands later leaves at once
            if self.stopping or outcome.kind == "stopped":
                return "stopped"
            await gen.release()
            if outcome.kind == "duplicate" and await gen.replaced_by_own(older):
                logger.warning(f"[{self.name}] an older connection of this bot took its place; rejoining")
                outcome.kind, outcome.message = "lost", "replaced by its own older connection"
            if outcome.kind == "build_failed":  # a stage cannot start here: retrying will not help
                raise BotFatal(outcome.message)
            if outcome.kind == "connect_failed":
                if fatal_first_connect and not self.connected_once:
                    raise BotFatal(outcome.message)
                failures += 1
                logger.warning(f"[{self.name}] {outcome.message}; retrying")
                await self._sleep(BACKOFF[min(failures, len(BACKOFF) - 1)])
                continue
            failures = 0 if outcome.connected else failures + 1
            if outcome.kind in ("duplicate", "removed"):
                reason = ("another participant joined with the same identity "
                          f"'{self.spec.identity}'" if outcome.kind == "duplicate" else "the bot was removed from the room")
                logger.error(f"[{self.name}] left the room: {reason}; not rejoining")
                raise BotFatal(reason)
            if outcome.kind == "reload":  # a new generation with the new spec, state kept
                continue
            if outcome.kind == "ended":
                await self._end_session_state()
                if self.once:
                    return "ended"
                logger.info(f"[{self.name}] session ended; rejoining to wait for the next person")
                continue
            logger.warning(f"[{self.name}] lost the connection ({outcome.message}); rejoining")
            await self._sleep(BACKOFF[min(failures, len(BACKOFF) - 1)])
        return "stopped"

    async def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < end:
            await asyncio.sleep(min(0.1, end - time.monotonic()))

    async def end_session(self, now: bool = False, hangup: bool = False) -> None:
        """The `end` action: leave the room (after queued speech unless now) and reset state.

        People still in the room are carried over to the next session (not greeted again);
        with hangup the room is deleted, so everyone's line drops."""
        gen = self.generation
        if gen is None:
            return
        self._carry = set() if hangup else set(self.participants())
        gen.finish("ended", "end action", now=now or hangup or not gen.has_audio_out)
        if hangup:  # after finish: the ROOM_DELETED that follows is this session's end, not a removal
            await self._delete_room()

    async def _delete_room(self) -> None:
        from livekit import api
        client = self.server.api(self.spec)
        if client is None:
            raise ValueError("end: {hangup: true} needs the LiveKit API key and secret (a token is not enough)")
        async with client as lkapi:
            await lkapi.room.delete_room(api.DeleteRoomRequest(room=self.spec.room))

    def session_connected(self, present) -> None:
        """A generation joined: carried-over people who left meanwhile are new again."""
        self.state.prune_carried(present)
        self.connected_once = True
        self.in_room.set()
        if interpreter.freeze_long_lived():  # full collections skip the modules and what the bot built to join
            dataclass_code.save_in_background()  # start-up's imports are done: keep their compiled methods
        records.session_connected(self)  # the session's record starts (or follows the new room)

    async def _end_session_state(self) -> None:
        await self.dispatcher.stop()
        self._cancel_session_tasks()
        await records.session_ended(self)  # write the record, fire session_ended (the bot has left)
        self.state.reset(carried=self._carry)
        self.flow.reset()
        self._carry = set()

    def _cancel_session_tasks(self) -> None:
        for task in self._session_tasks:
            task.cancel()
        self._session_tasks.clear()

    def pipeline_started(self, gen: Generation) -> None:
        """Session timers start with the first generation of a session."""
        if self._session_tasks:
            return
        from runner.runtime.timers import session_tasks
        self._session_tasks = session_tasks(self)

    async def stop(self) -> None:
        """Leave the room now (SIGINT/SIGTERM, a deleted bot file)."""
        self.stopping = True
        await self.dispatcher.stop()
        self._cancel_session_tasks()
        gen = self.generation
        if gen is not None:
            gen.finish("stopped")
            if gen._finish_task is not None:
                try:
                    await asyncio.wait_for(asyncio.shield(gen._finish_task), timeout=2.5)
                except (asyncio.TimeoutError, Exception):
                    pass
            gen.release_soon()  # a connect still in flight, or a leave pipecat got stuck in
        await records.session_stopped(self)  # a session cut short still gets its record (worker too)

    def swap_spec(self, spec: BotSpec) -> None:
        self.spec = spec
        self.swaps.swapped()

    async def apply(self, spec: BotSpec) -> dict:
        """Take in a new checked version of the bot file (hot reload); returns what changed.

        on/vars swap in place, live service settings are pushed as frames, anything else
        rejoins with a new generation; state is kept in every case."""
        from runner.runtime.changes import diff, push_settings
        from runner.runtime.flow_reload import changed_nodes, take_in
        change = diff(self.spec, spec)
        nodes = changed_nodes(self.spec.flow, spec.flow) if "flow" in change["changes"] else []
        if nodes and spec.flow is not None:
            from runner.runtime.flows import pipecat_problems
            problems = pipecat_problems(spec.flow)
            if problems:  # pipecat's own validation refused the new flow: the old version keeps running
                logger.error(f"[{self.name}] " + "\n".join(problems) + "\nstill running the previous version")
                return {"tier": "refused", "changes": [], "settings": {}, "problems": problems}
        change["changes"] = [*change["changes"], *(f"flow.nodes.{n}" for n in nodes)]
        if self.flow.started and not self.flow.ended:  # the current node's role_message is the instruction now
            for delta in change["settings"].values():
                delta.pop("system_instruction", None)
            change["settings"] = {index: delta for index, delta in change["settings"].items() if delta}
        if change["tier"] == "settings":
            await push_settings(self, spec, change["settings"])
        self.swap_spec(spec)
        if change["tier"] == "generation":
            self.new_generation()
        elif nodes and self.generation is not None and getattr(self.generation, "flow", None) is not None:
            await take_in(self.generation.flow, spec.flow, nodes)
        self.dispatcher.fire("reloaded", None, extra={"changes": change["changes"]})
        return change

    def new_generation(self) -> None:
        """Reload changed the transport or pipeline: leave and rejoin with the current spec."""
        gen = self.generation
        if gen is not None:
            gen.finish("reload", "the bot file changed")


__all__ = ["BotRuntime", "BotFatal", "Outcome"]

"""One dispatched job: the bot file, in the job's room, with the token LiveKit minted for it.

Two ways to run it, chosen per worker: inside the worker's own process (``InProcessJob``
here; lkrun already hosts many bots per process, so a job costs a few MB) or in a child
process (``children.ChildJob``, ``--process-per-job``; a crash or a leak stays in one
call). Both end with ``(ok, error)`` so the pool reports JS_SUCCESS or JS_FAILED alike.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace

from loguru import logger

from runner.connect.endpoint import Server

STOP_GRACE = 3.0  # a stopped job leaves within this, then it is cancelled / killed


@dataclass
class JobServer(Server):
    """A ``Server`` whose token is the one the LiveKit server minted for this job.

    The worker's URL is used because OSS livekit-server leaves ``JobAssignment.url`` empty.
    The token is never re-minted: the server refreshes it for reconnects.
    """

    job_token: str = field(default="", repr=False)

    def token_for(self, spec) -> str:
        return self.job_token


@dataclass
class JobInfo:
    """What the pool knows about an accepted job."""

    id: str
    room: str
    identity: str
    agent_name: str
    file: str
    token: str = field(repr=False)
    url: str = ""
    room_sid: str = ""
    assigned_at: float = field(default_factory=time.monotonic)
    joined_at: float | None = None


def preload() -> None:
    """Import what a job needs (pipecat, the LiveKit transport) before the first job arrives."""
    from runner.runtime import generation, wiring  # noqa: F401
    from runner.runtime.generation import preload_pipecat
    preload_pipecat()


def job_spec(spec, room: str, identity: str):
    """The bot's spec pointed at the job's room under the identity we answered with."""
    livekit = {k: v for k, v in spec.livekit.items() if k not in ("token", "url", "api_key", "api_secret")}
    return replace(spec, livekit={**livekit, "room": room, "identity": identity})


def job_identity(spec, job_id: str) -> str:
    """Unique per job (two dispatches of one bot into one room must not evict each other)."""
    return f"{spec.identity}-{job_id}"


async def room_replaced(bot, expected_sid: str) -> bool:
    """True when the bot got into a *new* room of the same name: the job's room was closed while
    the bot was still connecting, and LiveKit's SDK, retrying, created it again. The call is over."""
    gen = bot.generation
    room = gen.room if gen is not None else None
    if not expected_sid or room is None:
        return False
    try:
        sid = await asyncio.wait_for(room.sid, 5)
    except Exception:
        return False
    return sid != expected_sid


async def joined_or_gone(bot, info: "JobInfo") -> bool:
    """Wait for the bot's first join. False (and the bot is stopped) when its room was already gone."""
    while not bot.connected_once:
        await asyncio.sleep(0.02)
    if await room_replaced(bot, info.room_sid):
        logger.info(f"[{bot.name}] job {info.id}: room '{info.room}' closed before the bot got in; leaving")
        await bot.stop()
        return False
    return True


async def run_bot(bot) -> tuple[bool, str]:
    """Run a BotRuntime to its end; map how it ended to (success, error)."""
    from runner.runtime.bot import BotFatal
    try:
        await bot.run(fatal_first_connect=True)
        return True, ""
    except BotFatal as exc:
        # The room closing (everyone left, dispatch or room deleted) ends a job normally: its
        # session too (the record, session_ended, the session's span), as when the bot sees
        # everyone leave before the room closes.
        if "removed" in str(exc) and bot.connected_once:
            from runner.runtime import records
            if records.current(bot) is not None:
                await bot.dispatcher.stop()
                await records.session_ended(bot)
            return True, ""
        return False, str(exc)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a bug or a broken stage: this job fails, the worker lives on
        logger.opt(exception=exc).error(f"[{bot.name}] crashed: {type(exc).__name__}: {exc}")
        return False, f"crashed: {type(exc).__name__}: {exc}"


class InProcessJob:
    """A BotRuntime in the worker's event loop (once=True: the job ends with the session)."""

    def __init__(self, info: JobInfo, spec, on_joined, on_event_ms):
        from runner.runtime.bot import BotRuntime
        from runner.runtime.trace import Trace
        trace = Trace(size=20)
        trace.listeners.append(lambda entry: on_event_ms(entry.ms))
        self.info = info
        self.bot = BotRuntime(job_spec(spec, info.room, info.identity), JobServer(info.url, job_token=info.token),
                              once=True, trace=trace)
        self._on_joined = on_joined

    async def run(self) -> tuple[bool, str]:
        watch = asyncio.ensure_future(self._watch_join())
        try:
            return await run_bot(self.bot)
        finally:
            watch.cancel()

    async def _watch_join(self) -> None:
        if await joined_or_gone(self.bot, self.info):
            self._on_joined()

    async def stop(self) -> None:
        await self.bot.stop()

"""One generation of a running bot: a token, a LiveKitTransport, a pipeline, a worker.

A generation lives from one connect to one disconnect. Reconnects and reloads that
change the transport build a new generation; state lives on the BotRuntime.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from loguru import logger

from runner.connect.probe import ConnectFailed, probe
from runner.runtime.interpreter import off_loop
from runner.runtime.join_gate import join_slot

# LiveKit's SDK resumes a dropped connection by itself for ~20 s, but one of its attempts
# can hang on a server that accepts and never answers (seen around a server restart):
# past this grace lkrun drops the generation and rejoins itself, with a fresh token.
RECONNECT_GRACE = 6.0
# A cancelled pipeline whose transport is stuck inside the SDK must not keep the bot out
# of its room: after this long the generation is abandoned.
STOP_GRACE = 3.0
# The SDK cannot stop a connect it has started: on an unreachable server it goes on retrying
# for ~32 s and may then join with the bot's identity. A new generation waits this long for
# an abandoned one's connect to land (it is then disconnected at once) before joining anyway.
RELEASE_GRACE = 45.0
DISCONNECT_GRACE = 5.0


@dataclass
class Outcome:
    kind: str  # stopped | ended | lost | duplicate | removed | connect_failed
    message: str = ""
    connected: bool = False


def preload_pipecat() -> None:
    """The first import of pipecat takes ~0.3 s of CPU."""
    import pipecat.pipeline.worker  # noqa: F401
    import pipecat.transports.livekit.transport  # noqa: F401
    import pipecat.workers.runner  # noqa: F401
    from runner.runtime import sdk_events
    sdk_events.install()  # before the first room starts the SDK's core


async def _import_pipecat() -> None:
    """Off the event loop (other bots keep answering while a bot starts)."""
    await off_loop(preload_pipecat)


class Generation:
    def __init__(self, bot, number: int):
        self.bot = bot
        self.number = number
        self.transport = None
        self.worker = None
        self.room = None
        self.muted: set[str] = set()
        self.arrivals = None  # transport_events.Arrivals: first messages held until their sender is announced
        self.outcome: Outcome | None = None
        self.connected = asyncio.Event()
        self.has_audio_out = bool(bot.spec.params.get("audio_out_enabled"))
        self.out_sample_rate = bot.spec.params.get("audio_out_sample_rate") or 24000
        self._finish_task: asyncio.Task | None = None
        self._runner_task: asyncio.Task | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        # the room's own connections (participant SIDs), kept after the generation ends: a
        # DUPLICATE_IDENTITY from one of them is lkrun's own doing, not another client's
        self.sids: set[str] = set()
        self.abandoned = False  # run() is over: whatever this generation's room still does is unwanted
        self.landed_late: float | None = None  # when a connect landed after it was given up
        self._rtc = None  # pipecat's rtc.Room, kept past run() until release() has closed it
        self._connect_task: asyncio.Task | None = None
        self._orphaned = False  # pipecat stopped waiting for a connect the SDK still runs
        self._release_task: asyncio.Task | None = None
        self.flow = None  # runtime.flows.FlowRun when the bot has `flow:`

    def _own_room(self, room) -> None:
        """Keep pipecat's rtc.Room and run each of its connects to the end (see _connect)."""
        self._rtc = room
        original = room.connect

        async def connect(*args, **kwargs):
            task = self._connect_task = asyncio.ensure_future(self._connect(room, original, args, kwargs))
            try:
                return await asyncio.shield(task)
            except asyncio.CancelledError:
                # pipecat's setup timeout or a stop cancelled the connect: the SDK's goes on
                self._orphaned = True
                if task.done() and not task.cancelled() and task.exception() is None:
                    asyncio.ensure_future(self._drop(room))
                raise

        room.connect = connect

    async def _connect(self, room, original, args, kwargs) -> None:
        """One SDK connect, never cut off halfway. A cancelled ``Room.connect`` leaves the SDK
        connecting with nobody to take the room it makes: it joins with the bot's identity,
        replaces the next generation's connection (DUPLICATE_IDENTITY) and, unclaimed, brings
        the process down ("timed out waiting for ReadyForRoomEventRequest")."""
        await original(*args, **kwargs)
        from runner.runtime.room_hooks import route_room_events
        try:
            route_room_events(room)  # this room's events only: N bots in a process are not N-fold work
        except Exception as exc:  # an SDK that changed shape: slower with many bots, never broken
            logger.warning(f"[{self.bot.spec.name}] could not route the room's events: {type(exc).__name__}: {exc}")
        self._remember_sid(room)
        if self.abandoned or self._orphaned:
            self.landed_late = time.monotonic()
            logger.info(f"[{self.bot.spec.name}] an abandoned connection attempt (generation {self.number}) "
                        "joined after all; leaving with it")
            await self._drop(room)

    def _remember_sid(self, room) -> None:
        try:
            sid = room.local_participant.sid
        except Exception:  # not connected (yet)
            return
        if sid:
            self.sids.add(sid)

    async def _drop(self, room) -> None:
        """Disconnect a room nobody uses any more, without a word to the dispatcher."""
        room._events.clear()  # no greeting or event from a generation that is over
        try:
            await asyncio.wait_for(room.disconnect(), DISCONNECT_GRACE)
        except (asyncio.TimeoutError, Exception) as exc:
            logger.warning(f"[{self.bot.spec.name}] could not close generation {self.number}'s connection: "
                           f"{exc or type(exc).__name__}")

    def holds_identity(self) -> bool:
        """This generation's room may still be in the room as the bot (connecting or connected)."""
        task, room = self._connect_task, self._rtc
        return bool((task is not None and not task.done()) or (room is not None and room.isconnected()))

    async def release(self, timeout: float = RELEASE_GRACE) -> bool:
        """After run(): make sure this generation's room no longer holds the bot's identity
        before another generation connects. True when it is closed."""
        self.abandoned = True
        task = self._connect_task
        if task is not None and not task.done():
            logger.info(f"[{self.bot.spec.name}] waiting for the previous connection attempt to finish "
                        "before rejoining")
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while not task.done() and not self.bot.stopping and loop.time() < deadline:
                await asyncio.wait({task}, timeout=0.1)
        room = self._rtc
        if room is not None and room.isconnected() and (task is None or task.done()):
            await self._drop(room)
        closed = not self.holds_identity()
        if not closed and not self.bot.stopping:
            logger.warning(f"[{self.bot.spec.name}] generation {self.number}'s connection is still open; "
                           "joining anyway")
        return closed

    def release_soon(self) -> None:
        """release() in the background (a stopping bot does not wait for the SDK)."""
        self.abandoned = True
        if self.holds_identity() and self._release_task is None:
            self._release_task = asyncio.ensure_future(self.release())

    async def replaced_by_own(self, older) -> bool:
        """A DUPLICATE_IDENTITY: is the participant now holding the identity one of this bot's own
        connections (an older generation's late connect or resume), rather than another client?"""
        ours = set().union(*(g.sids for g in older if g is not self))
        holders = await _identity_holders(self.bot)
        if holders is None:  # no API credentials: did one of our own rooms join meanwhile?
            now = time.monotonic()
            return any(g.holds_identity() or (g.landed_late is not None and now - g.landed_late < 10)
                       for g in older if g is not self)
        if holders and not set(holders) <= ours:
            logger.debug(f"[{self.bot.spec.name}] identity held by {holders}, not one of ours ({sorted(ours)})")
            return False
        return True  # ours, or nobody holds it any more

    def sdk_reconnecting(self) -> None:
        """LiveKit's SDK lost the signal connection and is resuming it by itself."""
        logger.warning(f"[{self.bot.spec.name}] connection to LiveKit interrupted; reconnecting")
        if self._watchdog is None:
            self._watchdog = asyncio.get_running_loop().call_later(RECONNECT_GRACE, self._reconnect_timed_out)

    def sdk_reconnected(self) -> None:
        logger.info(f"[{self.bot.spec.name}] reconnected to LiveKit")
        if self.room is not None:  # a full reconnect joins as a new participant
            self._remember_sid(self.room)
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def _reconnect_timed_out(self) -> None:
        self._watchdog = None
        if self.outcome is None:
            self.finish("lost", f"LiveKit did not reconnect within {RECONNECT_GRACE:g} s")

    def finish(self, kind: str, message: str = "", now: bool = True) -> None:
        """Record why this generation ends and stop its worker (idempotent)."""
        if self.outcome is None:
            self.outcome = Outcome(kind, message)
        if self.worker is not None and self._finish_task is None:
            self._finish_task = asyncio.ensure_future(self._stop_worker(now))

    async def _stop_worker(self, now: bool) -> None:
        from pipecat.frames.frames import CancelFrame, EndFrame
        worker = self.worker
        if not now:
            await worker.queue_frame(EndFrame())
            return
        try:
            await asyncio.wait_for(worker.cancel(reason=self.outcome.kind), timeout=2.0)
        except (asyncio.TimeoutError, Exception):  # a stuck EndFrame blocks cancel: last resort
            await worker.pipeline.queue_frame(CancelFrame(reason=self.outcome.kind))
        task = self._runner_task
        if task is not None and not (await asyncio.wait({task}, timeout=STOP_GRACE))[0]:
            logger.warning(f"[{self.bot.spec.name}] the pipeline did not stop within {STOP_GRACE:g} s; "
                           "abandoning it")
            task.cancel()

    async def run(self) -> Outcome:
        bot, spec = self.bot, self.bot.spec
        token = bot.server.token_for(spec)
        checking = asyncio.ensure_future(probe(bot.server.url, token))
        await _import_pipecat()  # in a thread, while the probe waits for the server
        try:
            await checking
        except ConnectFailed as exc:
            return Outcome("connect_failed", str(exc))
        if self.outcome is not None:  # stopped while probing: do not join at all
            return self.outcome
        release_slot = await join_slot(self.connected)  # a folder of bots joins a few at a time
        try:
            if self.outcome is not None:  # stopped while waiting for its turn
                return self.outcome
            return await self._join_and_run(token)
        finally:
            release_slot()

    async def _join_and_run(self, token: str) -> Outcome:
        bot, spec = self.bot, self.bot.spec
        from pipecat.pipeline.pipeline import Pipeline
        from pipecat.pipeline.worker import PipelineParams, PipelineWorker, ProcessorUnusablePolicy
        from pipecat.transports.livekit.transport import LiveKitParams, LiveKitTransport
        from pipecat.workers.runner import WorkerRunner

        from runner.runtime import telemetry
        from runner.runtime.room_hooks import when_room_created
        from runner.runtime.wiring import wire_events

        params = {"audio_out_end_silence_secs": 0, **spec.params}
        self.transport = LiveKitTransport(bot.server.url, token, spec.room, params=LiveKitParams(**params))
        when_room_created(self.transport, self._own_room)
        try:
            processors = await build_processors(spec, self.transport, bot)
        except Exception as exc:
            from runner.voice.services import StageBuildError
            if isinstance(exc, StageBuildError):
                return Outcome("build_failed", str(exc))
            raise
        if self.outcome is not None:  # stopped while the stages loaded (seconds for local models)
            return self.outcome
        self.worker = PipelineWorker(
            Pipeline(processors),
            params=PipelineParams(enable_metrics=bool(spec.session.get("metrics")),
                                  audio_out_sample_rate=self.out_sample_rate),
            enable_rtvi=bool(spec.session.get("rtvi")),
            idle_timeout_secs=None, cancel_on_idle_timeout=False,
            # a stage that keeps failing (an LLM answering 401) is an `error` event, not a reason to
            # leave the room and come back on every turn; a failed transport ends the generation itself
            processor_unusable_policy=ProcessorUnusablePolicy.CONTINUE,
            name=f"{spec.name}#{self.number}",
            # pipecat's own spans (conversation, turn, stt/llm/tts) when OTEL_* asks for traces:
            # lkrun's event runs join them (runtime/telemetry.py)
            enable_tracing=telemetry.enabled(), conversation_id=telemetry.conversation_id(bot),
            additional_span_attributes={"lkrun.bot": spec.name},
        )
        wire_events(self)
        from runner.runtime.logs import quiet_third_party
        quiet_third_party()
        if spec.flow is not None:
            from runner.runtime.flows import attach, pipecat_problems
            problems = pipecat_problems(spec.flow)
            if problems:  # pipecat's own validation, the second net behind lkrun's checks
                return Outcome("build_failed", "pipecat refused the flow:\n" + "\n".join(problems))
            attach(self)
        runner = WorkerRunner(handle_sigint=False, handle_sigterm=False)
        await runner.add_workers(self.worker)
        self._runner_task = asyncio.ensure_future(runner.run())
        try:
            await self._runner_task
        except asyncio.CancelledError:
            if asyncio.current_task().cancelling():
                self.outcome = self.outcome or Outcome("stopped")
                raise
            # only the runner was cancelled (abandoned by _stop_worker): carry on
        finally:
            self.room = None
            if self.arrivals is not None:
                self.arrivals.close()
            if self._watchdog is not None:
                self._watchdog.cancel()
        outcome = self.outcome or Outcome("lost", "the pipeline stopped")
        outcome.connected = self.connected.is_set()
        logger.debug(f"[{spec.name}] generation {self.number} finished: {outcome}")
        return outcome


async def _identity_holders(bot) -> list[str] | None:
    """The SIDs of the participants holding the bot's identity, as the server sees them (a
    moment after a DUPLICATE_IDENTITY, the newcomer may not be listed yet); None without API
    credentials or when the server does not answer."""
    spec = bot.spec
    client = bot.server.api(spec)
    if client is None:
        return None
    from livekit import api
    holders: list[str] = []
    try:
        async with client as lkapi:
            for _ in range(4):
                answer = await asyncio.wait_for(lkapi.room.list_participants(
                    api.ListParticipantsRequest(room=spec.room)), 5)
                holders = [p.sid for p in answer.participants if p.identity == spec.identity]
                if holders:
                    break
                await asyncio.sleep(0.5)
    except Exception as exc:
        logger.debug(f"[{spec.name}] could not list the room's participants: {exc}")
        return None
    return holders


async def build_processors(spec, transport, bot) -> list:
    """The pipecat processors for a spec: transport in/out around the user's stages.

    A data-only bot is just the transport's input and output (the output must be in the
    pipeline for pipecat to set it up). Voice stages are built by the voice package; the
    LLM's tools are registered here, since running their actions is the runtime's job.
    """
    if not spec.pipeline:
        return [transport.input(), transport.output()]
    from runner.voice.pipeline import build_voice_processors
    processors = await build_voice_processors(spec, transport, bot)
    if spec.tools and "llm" in bot.services and spec.flow is None:  # a flow offers them as global functions
        from runner.runtime.tools import register_tools
        register_tools(bot.services["llm"], bot)
    return processors

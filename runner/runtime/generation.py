"""One generation of a running bot: a token, a LiveKitTransport, a pipeline, a worker.

A generation lives from one connect to one disconnect. Reconnects and reloads that
change the transport build a new generation; state lives on the BotRuntime.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from loguru import logger

from runner.connect.probe import ConnectFailed, probe

# LiveKit's SDK resumes a dropped connection by itself for ~20 s, but one of its attempts
# can hang on a server that accepts and never answers (seen around a server restart):
# past this grace lkrun drops the generation and rejoins itself, with a fresh token.
RECONNECT_GRACE = 6.0
# A cancelled pipeline whose transport is stuck inside the SDK must not keep the bot out
# of its room: after this long the generation is abandoned.
STOP_GRACE = 3.0


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


async def _import_pipecat() -> None:
    """Off the event loop (other bots keep answering while a bot starts)."""
    await asyncio.to_thread(preload_pipecat)


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

    def sdk_reconnecting(self) -> None:
        """LiveKit's SDK lost the signal connection and is resuming it by itself."""
        logger.warning(f"[{self.bot.spec.name}] connection to LiveKit interrupted; reconnecting")
        if self._watchdog is None:
            self._watchdog = asyncio.get_running_loop().call_later(RECONNECT_GRACE, self._reconnect_timed_out)

    def sdk_reconnected(self) -> None:
        logger.info(f"[{self.bot.spec.name}] reconnected to LiveKit")
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
        from pipecat.pipeline.pipeline import Pipeline
        from pipecat.pipeline.worker import PipelineParams, PipelineWorker, ProcessorUnusablePolicy
        from pipecat.transports.livekit.transport import LiveKitParams, LiveKitTransport
        from pipecat.workers.runner import WorkerRunner

        from runner.runtime.wiring import wire_events

        params = {"audio_out_end_silence_secs": 0, **spec.params}
        self.transport = LiveKitTransport(bot.server.url, token, spec.room, params=LiveKitParams(**params))
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
        )
        wire_events(self)
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
    if spec.tools and "llm" in bot.services:
        from runner.runtime.tools import register_tools
        register_tools(bot.services["llm"], bot)
    return processors

"""One generation of a running bot: a token, a LiveKitTransport, a pipeline, a worker.

A generation lives from one connect to one disconnect. Reconnects and reloads that
change the transport build a new generation; state lives on the BotRuntime.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from loguru import logger

from .probe import ConnectFailed, probe

STOP_REASONS = {"DUPLICATE_IDENTITY": "duplicate", "PARTICIPANT_REMOVED": "removed", "ROOM_DELETED": "removed"}


@dataclass
class Outcome:
    kind: str  # stopped | ended | lost | duplicate | removed | connect_failed
    message: str = ""
    connected: bool = False


class Generation:
    def __init__(self, bot, number: int):
        self.bot = bot
        self.number = number
        self.transport = None
        self.worker = None
        self.room = None
        self.muted: set[str] = set()
        self.outcome: Outcome | None = None
        self.connected = asyncio.Event()
        self.has_audio_out = bool(bot.spec.params.get("audio_out_enabled"))
        self.out_sample_rate = bot.spec.params.get("audio_out_sample_rate") or 24000
        self._finish_task: asyncio.Task | None = None

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

    async def run(self) -> Outcome:
        bot, spec = self.bot, self.bot.spec
        token = bot.server.token_for(spec)
        try:
            await probe(bot.server.url, token)
        except ConnectFailed as exc:
            return Outcome("connect_failed", str(exc))
        from pipecat.pipeline.pipeline import Pipeline
        from pipecat.pipeline.worker import PipelineParams, PipelineWorker, ProcessorUnusablePolicy
        from pipecat.transports.livekit.transport import LiveKitParams, LiveKitTransport
        from pipecat.workers.runner import WorkerRunner

        from .pipeline_build import build_processors
        from .transport_events import wire_events

        params = {"audio_out_end_silence_secs": 0, **spec.params}
        self.transport = LiveKitTransport(bot.server.url, token, spec.room, params=LiveKitParams(**params))
        try:
            processors = await build_processors(spec, self.transport, bot)
        except Exception as exc:
            from .services import StageBuildError
            if isinstance(exc, StageBuildError):
                return Outcome("build_failed", str(exc))
            raise
        self.worker = PipelineWorker(
            Pipeline(processors),
            params=PipelineParams(enable_metrics=bool(spec.session.get("metrics")),
                                  audio_out_sample_rate=self.out_sample_rate),
            enable_rtvi=bool(spec.session.get("rtvi")),
            idle_timeout_secs=None, cancel_on_idle_timeout=False,
            processor_unusable_policy=ProcessorUnusablePolicy.CANCEL,
            name=f"{spec.name}#{self.number}",
        )
        wire_events(self)
        runner = WorkerRunner(handle_sigint=False, handle_sigterm=False)
        await runner.add_workers(self.worker)
        try:
            await runner.run()
        except asyncio.CancelledError:
            self.outcome = self.outcome or Outcome("stopped")
            raise
        finally:
            if self.room is not None:
                self.room = None
        outcome = self.outcome or Outcome("lost", "the pipeline stopped")
        outcome.connected = self.connected.is_set()
        logger.debug(f"[{spec.name}] generation {self.number} finished: {outcome}")
        return outcome

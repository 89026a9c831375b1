"""An espeak-ng TTS service for pipecat: robotic, but ~100x cheaper than Piper.

Used for load tests and as the voice with many voices (``en-us``, ``en-gb``, variants
like ``en-us+f3``), so voice changes can be applied live. Needs the Debian package
``espeak-ng`` (GPL; see README "Licences"). pipecat ships no espeak service.
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass, field
from typing import Any, AsyncGenerator, ClassVar

from pipecat.frames.frames import ErrorFrame, Frame
from pipecat.services.settings import NOT_GIVEN, TTSSettings
from pipecat.services.tts_service import TTSService

ESPEAK_RATE = 22050


@dataclass
class EspeakTTSSettings(TTSSettings):
    rate: int | None = field(default_factory=lambda: NOT_GIVEN)
    pitch: int | None = field(default_factory=lambda: NOT_GIVEN)
    _aliases: ClassVar[dict[str, str]] = {"voice_id": "voice"}


class EspeakTTSService(TTSService):
    Settings = EspeakTTSSettings
    _settings: EspeakTTSSettings

    def __init__(self, *, settings: EspeakTTSSettings | None = None, **kwargs):
        binary = shutil.which("espeak-ng") or shutil.which("espeak")
        if binary is None:
            raise RuntimeError("the espeak_tts stage needs the espeak-ng program: apt-get install espeak-ng")
        self._binary = binary
        defaults = EspeakTTSSettings(model=None, voice="en-us", language=None, rate=175, pitch=50)
        if settings is not None:
            defaults.apply_update(settings)
        super().__init__(push_start_frame=True, push_stop_frames=True, settings=defaults, **kwargs)

    def can_generate_metrics(self) -> bool:
        return True

    async def _update_settings(self, delta) -> dict[str, Any]:
        return await super()._update_settings(delta)  # read on every utterance: applies live

    async def _synthesize(self, text: str) -> bytes:
        settings = self._settings
        process = await asyncio.create_subprocess_exec(
            self._binary, "--stdout", "-v", str(settings.voice or "en-us"), "-s", str(settings.rate or 175),
            "-p", str(settings.pitch if settings.pitch is not None else 50), "--", text,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        audio, error = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"espeak-ng failed: {error.decode(errors='replace').strip()[:200]}")
        return audio[44:]  # espeak writes a WAV header with bogus sizes: strip it, trust the rate

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame, None]:
        try:
            await self.start_tts_usage_metrics(text)
            pcm = await self._synthesize(text)

            async def chunks():
                step = ESPEAK_RATE * 2 // 10  # 100 ms
                for start in range(0, len(pcm), step):
                    yield pcm[start:start + step]

            async for frame in self._stream_audio_frames_from_iterator(
                    chunks(), in_sample_rate=ESPEAK_RATE, context_id=context_id):
                await self.stop_ttfb_metrics()
                yield frame
        except Exception as exc:
            yield ErrorFrame(error=f"espeak: {exc}")

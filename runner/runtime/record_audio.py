"""A session's stereo WAV (caller left, bot right) on the call's own timeline.

Its first sample is the session's start (the record's ``started_at``) and its last the session's
end (``ended_at``): silence until the recorder's first sample (it starts with the first audio
anyone sends), where a new generation's recorder starts later than the file has reached, and
from the recorder's last sample to the end; audio placed after the end (the bot's speech still
queued when it left, never heard) is cut off. Written as ``.NAME.wav.part`` and renamed at the end.
"""

from __future__ import annotations

import os
import struct
import time
import wave
from pathlib import Path

from loguru import logger

from runner.runtime.record_files import reason, report_error, unlink


class SessionAudio:
    """The WAV of one ``SessionRecord`` (its bot, settings, name and start)."""

    def __init__(self, record):
        self.record = record
        self.file: Path | None = None  # the WAV being written (a temp name until the end)
        self._wav = None
        self._format: tuple | None = None
        self._frames = 0  # frames written so far: the file's position on the call's timeline
        self._next_at: float | None = None  # wall clock of the recorder's next sample, when told
        self.failed = False

    def started_at(self, at: float) -> None:
        """A recorder's first sample is the sound at ``at`` (wall clock)."""
        self._next_at = at

    def write(self, pcm: bytes, sample_rate: int, channels: int) -> None:
        if self.record.conf is None or not self.record.conf["audio"] or self.failed:
            return
        try:
            if self._wav is None:
                folder = self.record.conf["dir"]
                folder.mkdir(parents=True, exist_ok=True)
                self.file = folder / f".{self.record.name}.wav.part"
                self._wav = wave.open(str(self.file), "wb")
                self._wav.setnchannels(channels)
                self._wav.setsampwidth(2)
                self._wav.setframerate(sample_rate)
                self._format = (sample_rate, channels)
            if (sample_rate, channels) == self._format:
                at = self._next_at
                self._next_at = None
                if at is None and self._frames == 0:  # not told: this piece ends now
                    at = time.time() - len(pcm) / (2 * channels * sample_rate)
                if at is not None:
                    self._silence_until(at - self.record.started)
                self._wav.writeframes(pcm)
                self._frames += len(pcm) // (2 * channels)
        except OSError as exc:
            self.failed = True
            self._close()
            report_error(self.record.bot, f"session record: cannot write the audio to {self.record.conf['dir']}: {reason(exc)}")

    def _silence_until(self, offset: float) -> None:
        """Silence from the file's position to ``offset`` seconds into the session."""
        rate, channels = self._format
        missing = int(round(offset * rate)) - self._frames
        while missing > 0:
            frames = min(missing, rate)
            self._wav.writeframes(bytes(2 * channels * frames))
            self._frames += frames
            missing -= frames

    def _close(self) -> None:
        wav, self._wav = self._wav, None
        if wav is not None:
            try:
                wav.close()
            except OSError:
                self.failed = True

    def finish(self, ended: float | None = None) -> str | None:
        """Close the WAV, ``ended`` its last sample (silence added up to it, or what lies beyond
        it cut off), and give it its final name; None without audio."""
        length = None
        if self._wav is not None and ended is not None and not self.failed:
            try:
                self._silence_until(ended - self.record.started)
            except OSError as exc:
                self.failed = True
                report_error(self.record.bot, f"session record: cannot write the audio to {self.record.conf['dir']}: {reason(exc)}")
            length = int(round((ended - self.record.started) * self._format[0]))
        self._close()
        if length is not None and self._frames > length and not self.failed:
            try:
                cut_wav(self.file, length)
                self._frames = length
            except (OSError, EOFError, wave.Error) as exc:
                logger.warning(f"[{self.record.bot.spec.name}] could not cut the session's audio at its end: {exc}")
        part = self.file
        if part is None:
            return None
        if self.failed:
            unlink(part)
            return None
        final = part.with_name(f"{self.record.name}.wav")
        try:
            os.replace(part, final)
        except OSError as exc:
            unlink(part)
            report_error(self.record.bot, f"session record: cannot write the audio to {final.parent}: {reason(exc)}")
            return None
        return final.name


def cut_wav(path: Path, frames: int) -> None:
    """Keep the first ``frames`` frames of a PCM WAV that the wave module wrote (44-byte header)."""
    with wave.open(str(path), "rb") as wav:
        block = wav.getnchannels() * wav.getsampwidth()
    data = frames * block
    with open(path, "r+b") as handle:
        handle.truncate(44 + data)
        handle.seek(4)
        handle.write(struct.pack("<I", 36 + data))
        handle.seek(40)
        handle.write(struct.pack("<I", data))
        handle.flush()
        os.fsync(handle.fileno())

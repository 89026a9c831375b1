"""`play`: a WAV/OGG file from the bot's folder, as pipecat output audio frames."""

from __future__ import annotations

from pathlib import Path

MAX_SECONDS = 600
CHUNK_MS = 40


def file_frames(path: Path, sample_rate: int) -> list:
    """Decode, downmix and resample once; frames are queued behind any speech already queued."""
    import numpy as np
    import soundfile
    import soxr
    from pipecat.frames.frames import OutputAudioRawFrame

    try:
        info = soundfile.info(str(path))
    except RuntimeError as exc:
        raise ValueError(f"play: cannot read {path.name}: {exc}") from None
    if info.duration > MAX_SECONDS:
        raise ValueError(f"play: {path.name} is longer than {MAX_SECONDS // 60} minutes")
    data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    mono = data.mean(axis=1)
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate)
    pcm = (np.clip(mono, -1.0, 1.0) * 32767).astype(np.int16).tobytes()
    step = sample_rate * CHUNK_MS // 1000 * 2
    return [OutputAudioRawFrame(audio=pcm[i:i + step], sample_rate=sample_rate, num_channels=1)
            for i in range(0, len(pcm), step)]

"""Pipeline taps for what was said: the people's transcripts, the bot's spoken text, its state.

They only observe frames (every frame goes on unchanged) and tell the bot's conversation sink,
``bot.conversation`` (``runtime/transcripts.py``'s ``Conversation``), which publishes on the
room (``lk.transcription``, ``lk.agent.state``) and feeds the session record. The voice layer
never touches the room itself: the sink is looked up at each frame and may be absent (then
nothing is published or recorded).
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from pipecat.frames.frames import (BotStartedSpeakingFrame, BotStoppedSpeakingFrame, InputAudioRawFrame,
                                   InterimTranscriptionFrame, InterruptionFrame, LLMFullResponseStartFrame,
                                   OutputAudioRawFrame, TranscriptionFrame, TTSTextFrame, VADUserStoppedSpeakingFrame)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor


class ConversationSink(Protocol):
    """What the taps report; none of these may block or raise."""

    def user_text(self, identity: str | None, text: str, final: bool) -> None:
        """A person's transcript (interim, or the final one of a segment)."""

    def user_turn(self, started: bool, identity: str | None) -> None:
        """A user turn began (``started``) or ended."""

    def user_stopped_speaking(self, at: float) -> None:
        """The VAD heard the voice end; ``at`` is when it did (wall clock, its stop_secs taken off)."""

    def llm_started(self) -> None:
        """The LLM began an answer."""

    def bot_text(self, text: str, spaced: bool) -> None:
        """Text the bot is speaking now (in step with its audio); ``spaced``: spaces included."""

    def bot_speaking(self, speaking: bool) -> None:
        """The bot's audio started or stopped."""

    def bot_audible(self, at: float) -> None:
        """The bot's first audible sound of an utterance leaves it at ``at`` (wall clock)."""

    def bot_interrupted(self) -> None:
        """The bot's speech was cut off."""

    def audio_started(self, at: float) -> None:
        """The recorder's first sample is the sound at ``at`` (wall clock)."""

    def audio(self, pcm: bytes, sample_rate: int, channels: int) -> None:
        """A piece of the call's audio for the record (stereo: caller left, bot right), the
        pieces back to back from ``audio_started``'s time."""


def sink_of(bot) -> ConversationSink | None:
    return getattr(bot, "conversation", None)


class _Tap(FrameProcessor):
    def __init__(self, bot):
        super().__init__()
        self.bot = bot

    async def process_frame(self, frame, direction):
        await super().process_frame(frame, direction)
        if direction == FrameDirection.DOWNSTREAM:
            sink = sink_of(self.bot)
            if sink is not None:
                try:
                    self.observe(sink, frame)
                except Exception:  # an observer never breaks the pipeline
                    pass
        await self.push_frame(frame, direction)

    def observe(self, sink: ConversationSink, frame) -> None:
        raise NotImplementedError


class UserTranscriptTap(_Tap):
    """After the STT: each person's interim and final transcripts, and where their speech ended
    (the VAD stage before the STT sends its stop downstream, past this tap)."""

    def observe(self, sink, frame) -> None:
        if isinstance(frame, VADUserStoppedSpeakingFrame):  # as pipecat's UserBotLatencyObserver reads it
            sink.user_stopped_speaking(frame.timestamp - frame.stop_secs)
        elif isinstance(frame, TranscriptionFrame) and (frame.text or "").strip():
            sink.user_text(getattr(frame, "user_id", None) or None, frame.text, True)
        elif isinstance(frame, InterimTranscriptionFrame) and (frame.text or "").strip():
            sink.user_text(getattr(frame, "user_id", None) or None, frame.text, False)


class LLMStateTap(_Tap):
    """After the LLM: an answer is being generated (the agent is thinking)."""

    def observe(self, sink, frame) -> None:
        if isinstance(frame, LLMFullResponseStartFrame):
            sink.llm_started()


AUDIBLE_RMS = 500.0  # int16 RMS of a frame that is heard (about -36 dBFS)


def rms(pcm: bytes) -> float:
    import numpy as np
    samples = np.frombuffer(pcm[:len(pcm) // 2 * 2], dtype=np.int16)
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if samples.size else 0.0


class BotTranscriptTap(_Tap):
    """After the output transport, where the bot's text frames arrive as their audio plays.

    Audio frames come here once the transport has handed them to LiveKit's audio source, which
    plays its queue back to back: a frame leaves the bot when the one before it has played, or
    when it was handed over if the queue had run dry. The first frame of an utterance louder than
    AUDIBLE_RMS is when the bot is heard (its TTS's leading silence and the queue taken into
    account), told to the sink as ``bot_audible``."""

    def __init__(self, bot):
        super().__init__(bot)
        self._listening_for_sound = False
        self._played_until = 0.0  # wall clock when the audio handed over so far has played

    def observe(self, sink, frame) -> None:
        if isinstance(frame, OutputAudioRawFrame):
            now = time.time()
            starts = max(self._played_until, now)
            rate = frame.sample_rate or 16000
            self._played_until = starts + len(frame.audio) / (2 * max(1, frame.num_channels) * rate)
            if self._listening_for_sound and rms(frame.audio) > AUDIBLE_RMS:
                self._listening_for_sound = False
                sink.bot_audible(starts)
        elif isinstance(frame, TTSTextFrame) and frame.text:
            sink.bot_text(frame.text, bool(getattr(frame, "includes_inter_frame_spaces", False)))
        elif isinstance(frame, BotStartedSpeakingFrame):
            self._listening_for_sound = True
            sink.bot_speaking(True)
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._listening_for_sound = False
            sink.bot_speaking(False)
        elif isinstance(frame, InterruptionFrame):
            sink.bot_interrupted()


INPUT_LIVE = 0.5  # seconds: the caller's audio keeps coming (LiveKit sends a subscribed track's silence too)


def audio_recorder(bot, sample_rate: int = 16000, seconds: float = 5.0):
    """pipecat's AudioBufferProcessor, stereo (caller left, bot right), its audio handed to the
    sink every few seconds (a long call is never held in memory) and when the pipeline ends.

    Its timeline is the call's: the sink is told the wall-clock time of the first sample
    (``audio_started``) and each piece follows the one before. Three of the processor's ways are
    changed so that a second of the file is a second of the call:

    - it hears the caller where the audio enters, from the tap ``recorder.input_tap()`` placed
      right after the input transport, not at the end of the pipeline: there the caller's frames
      arrive late and in bursts (an STT that transcribes holds them back for seconds), and the
      processor, which pads a track with silence for a wall-clock gap between its frames, would
      add each hold-up to the file on top of the audio that was held up;
    - while the caller's audio keeps coming it keeps time: the bot's frames come here as they are
      queued on LiveKit's audio source, up to its queue (1 s) ahead of when they are heard, and the
      processor pads the caller's track to the bot's position at every bot frame, which would add
      that lead to the file at each utterance;
    - a piece handed over mid-call is only what both tracks have reached (the rest starts the next
      piece), where the processor pads the shorter track to the longer one's length.
    """
    from pipecat.processors.audio.audio_buffer_processor import AudioBufferProcessor

    class CallRecorder(AudioBufferProcessor):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self._input_at: float | None = None  # monotonic time of the caller's last audio
            self._bot_frame = False
            self._began = False
            self._carry = (b"", b"")  # what one track had beyond the other at the last piece
            self._last_piece = False
            self._hearing = False
            self._lock = asyncio.Lock()

        def input_tap(self) -> FrameProcessor:
            return _RecorderInput(self)

        async def hear(self, frame) -> None:
            """The caller's audio as it enters the pipeline (from the input tap)."""
            async with self._lock:
                if self._recording:
                    self._hearing = True
                    try:
                        await self._record(frame)
                    finally:
                        self._hearing = False

        async def _process_recording(self, frame):
            if isinstance(frame, InputAudioRawFrame) and not self._hearing:
                return  # heard at the input already
            if self._hearing:
                await self._record(frame)
                return
            async with self._lock:
                await self._record(frame)

        async def _record(self, frame):
            audio = getattr(frame, "audio", None) if isinstance(frame, (InputAudioRawFrame, OutputAudioRawFrame)) else None
            if audio and not self._began:
                self._began = True
                at = time.time()
                if isinstance(frame, InputAudioRawFrame):  # it arrives once it has been heard
                    at -= len(audio) / (2 * max(1, frame.num_channels) * (frame.sample_rate or sample_rate))
                tell(bot, "audio_started", at)
            self._bot_frame = bool(audio) and isinstance(frame, OutputAudioRawFrame)
            try:
                await super()._process_recording(frame)
            finally:
                self._bot_frame = False
            if audio and isinstance(frame, InputAudioRawFrame):
                self._input_at = time.monotonic()

        def _sync_buffer_to_position(self, buffer, target_position):
            if self._bot_frame and buffer is self._user_audio_buffer and self._input_at is not None \
                    and time.monotonic() - self._input_at < INPUT_LIVE:
                return  # the caller's track keeps time; the bot's may run ahead of it
            super()._sync_buffer_to_position(buffer, target_position)

        def _reset_primary_audio_buffers(self):
            super()._reset_primary_audio_buffers()
            user, bot_side = self._carry
            self._carry = (b"", b"")
            self._user_audio_buffer.extend(user)
            self._bot_audio_buffer.extend(bot_side)

        async def _call_on_audio_data_handler(self):
            if not self._last_piece:
                both = min(len(self._user_audio_buffer), len(self._bot_audio_buffer))
                both -= both % 2
                if both and max(len(self._user_audio_buffer), len(self._bot_audio_buffer)) - both \
                        < self._sample_rate * 2 * 2:  # one ahead by more than 2 s: align as pipecat does
                    self._carry = (bytes(self._user_audio_buffer[both:]), bytes(self._bot_audio_buffer[both:]))
                    del self._user_audio_buffer[both:]
                    del self._bot_audio_buffer[both:]
            await super()._call_on_audio_data_handler()

        async def stop_recording(self):
            async with self._lock:
                self._last_piece = True
                try:
                    await super().stop_recording()
                finally:
                    self._last_piece = False
                    self._carry = (b"", b"")

    recorder = CallRecorder(sample_rate=sample_rate, num_channels=2, auto_start_recording=True,
                            buffer_size=int(sample_rate * 2 * seconds))

    @recorder.event_handler("on_audio_data")
    async def _audio(_processor, audio, rate, channels):
        sink = sink_of(bot)
        if sink is not None and audio:
            sink.audio(bytes(audio), rate, channels)

    return recorder


class _RecorderInput(FrameProcessor):
    """Right after the input transport: hands the caller's audio to the recorder as it comes."""

    def __init__(self, recorder):
        super().__init__()
        self._recorder = recorder

    async def process_frame(self, frame, direction):
        await super().process_frame(frame, direction)
        if direction == FrameDirection.DOWNSTREAM and isinstance(frame, InputAudioRawFrame):
            try:
                await self._recorder.hear(frame)
            except Exception:  # the recording never breaks the pipeline
                pass
        await self.push_frame(frame, direction)


def tell(bot, what: str, *args) -> None:
    """Call the bot's conversation sink, if it has one; the sink never breaks the pipeline."""
    sink = sink_of(bot)
    if sink is not None:
        try:
            getattr(sink, what)(*args)
        except Exception:  # an observer never breaks the pipeline
            pass

"""Pipeline taps for what was said: the people's transcripts, the bot's spoken text, its state.

They only observe frames (every frame goes on unchanged) and tell the bot's conversation sink,
``bot.conversation`` (``runtime/transcripts.py``'s ``Conversation``), which publishes on the
room (``lk.transcription``, ``lk.agent.state``) and feeds the session record. The voice layer
never touches the room itself: the sink is looked up at each frame and may be absent (then
nothing is published or recorded).
"""

from __future__ import annotations

from typing import Protocol

from pipecat.frames.frames import (BotStartedSpeakingFrame, BotStoppedSpeakingFrame, InterimTranscriptionFrame,
                                   InterruptionFrame, LLMFullResponseStartFrame, TranscriptionFrame, TTSTextFrame,
                                   VADUserStoppedSpeakingFrame)
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

    def bot_interrupted(self) -> None:
        """The bot's speech was cut off."""

    def audio(self, pcm: bytes, sample_rate: int, channels: int) -> None:
        """A piece of the call's audio for the record (stereo: caller left, bot right)."""


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
    """After the STT: each person's interim and final transcripts, and where their speech ended."""

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


class BotTranscriptTap(_Tap):
    """After the output transport, where the bot's text frames arrive as their audio plays."""

    def observe(self, sink, frame) -> None:
        if isinstance(frame, TTSTextFrame) and frame.text:
            sink.bot_text(frame.text, bool(getattr(frame, "includes_inter_frame_spaces", False)))
        elif isinstance(frame, BotStartedSpeakingFrame):
            sink.bot_speaking(True)
        elif isinstance(frame, BotStoppedSpeakingFrame):
            sink.bot_speaking(False)
        elif isinstance(frame, InterruptionFrame):
            sink.bot_interrupted()


def audio_recorder(bot, sample_rate: int = 16000, seconds: float = 5.0):
    """pipecat's AudioBufferProcessor, stereo (caller left, bot right), its audio handed to the
    sink every few seconds (a long call is never held in memory) and when the pipeline ends."""
    from pipecat.processors.audio.audio_buffer_processor import AudioBufferProcessor
    recorder = AudioBufferProcessor(sample_rate=sample_rate, num_channels=2, auto_start_recording=True,
                                    buffer_size=int(sample_rate * 2 * seconds))

    @recorder.event_handler("on_audio_data")
    async def _audio(_processor, audio, rate, channels):
        sink = sink_of(bot)
        if sink is not None and audio:
            sink.audio(bytes(audio), rate, channels)

    return recorder

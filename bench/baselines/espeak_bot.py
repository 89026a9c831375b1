"""Hand-written pipecat speaking bot: says "Pong N" (espeak-ng) on each data message.

The process-per-call baseline for the voice scale scenario, doing the same work as
``bench/bots/espeak_say.yaml``: LiveKitParams(audio_out_enabled=True), a pipeline of
input -> TTS -> output, and a ``TTSSpeakFrame`` queued on the worker per data message.
pipecat ships no espeak service, so this uses the same ``EspeakTTSService`` class lkrun's
``espeak_tts`` stage builds. RTVI and the idle timeout are off, as in lkrun.

    LIVEKIT_URL=... LIVEKIT_API_KEY=... LIVEKIT_API_SECRET=... python espeak_bot.py -r ROOM -i IDENTITY
"""

import argparse
import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for runner.voice.espeak_tts

from loguru import logger
from pipecat.frames.frames import TTSSpeakFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.runner.livekit import generate_token_with_agent, livekit_credentials
from pipecat.transports.livekit.transport import LiveKitParams, LiveKitTransport
from pipecat.workers.runner import WorkerRunner

from runner.voice.espeak_tts import EspeakTTSService

logger.remove(0)
logger.add(sys.stderr, level="WARNING")


async def main(room: str, identity: str):
    url, api_key, api_secret = livekit_credentials()
    token = generate_token_with_agent(room, identity, api_key, api_secret)
    transport = LiveKitTransport(url, token, room, params=LiveKitParams(audio_out_enabled=True))
    tts = EspeakTTSService()

    pipeline = Pipeline([transport.input(), tts, transport.output()])
    worker = PipelineWorker(pipeline, params=PipelineParams(), enable_rtvi=False, idle_timeout_secs=None)

    @transport.event_handler("on_data_received")
    async def on_data_received(transport, data, participant_id):
        try:
            message = json.loads(data)
        except ValueError:
            message = {}
        seq = message.get("seq") if isinstance(message, dict) else None
        await worker.queue_frame(TTSSpeakFrame(f"Pong {seq}"))

    runner = WorkerRunner(handle_sigint=True, handle_sigterm=True)
    await runner.add_workers(worker)
    await runner.run()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="hand-written pipecat espeak bot")
    parser.add_argument("-r", "--room", required=True)
    parser.add_argument("-i", "--identity", default="bench-bot")
    args = parser.parse_args()
    asyncio.run(main(args.room, args.identity))

"""Hand-written pipecat data bot: answers each data message with a data message (same seq).

Written the way pipecat's LiveKit examples are (LiveKitTransport, Pipeline, PipelineWorker,
WorkerRunner, a token from pipecat.runner.livekit's helper), doing the same work as
``bench/bots/data_echo.yaml``: parse the JSON payload, reply ``{"text": "pong", "seq": N}``
to the sender with ``transport.send_message``. RTVI is off and the idle timeout is off, as in
lkrun; LiveKitParams are the defaults (no audio in or out), as in the YAML file.
Logging is at WARNING: lkrun shows pipecat's errors only, so neither pays for debug lines.

    LIVEKIT_URL=... LIVEKIT_API_KEY=... LIVEKIT_API_SECRET=... python data_bot.py -r ROOM -i IDENTITY
"""

import argparse
import asyncio
import json
import sys

from loguru import logger
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.runner.livekit import generate_token_with_agent, livekit_credentials
from pipecat.transports.livekit.transport import LiveKitParams, LiveKitTransport
from pipecat.workers.runner import WorkerRunner

logger.remove(0)
logger.add(sys.stderr, level="WARNING")


async def main(room: str, identity: str, audio_out: bool):
    url, api_key, api_secret = livekit_credentials()
    token = generate_token_with_agent(room, identity, api_key, api_secret)
    transport = LiveKitTransport(url, token, room, params=LiveKitParams(audio_out_enabled=audio_out))

    pipeline = Pipeline([transport.input(), transport.output()])
    worker = PipelineWorker(pipeline, params=PipelineParams(), enable_rtvi=False, idle_timeout_secs=None)

    @transport.event_handler("on_data_received")
    async def on_data_received(transport, data, participant_id):
        try:
            message = json.loads(data)
        except ValueError:
            message = {}
        seq = message.get("seq") if isinstance(message, dict) else None
        await transport.send_message({"text": "pong", "seq": seq}, participant_id)

    runner = WorkerRunner(handle_sigint=True, handle_sigterm=True)
    await runner.add_workers(worker)
    await runner.run()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="hand-written pipecat data bot")
    parser.add_argument("-r", "--room", required=True)
    parser.add_argument("-i", "--identity", default="bench-bot")
    parser.add_argument("--audio-out", action="store_true", help="publish an audio track (LiveKitParams)")
    args = parser.parse_args()
    asyncio.run(main(args.room, args.identity, args.audio_out))

"""Hand-written pipecat Flows bot: the four-node loop of ``bench/bots/flow_loop.yaml`` in Python.

Written the way pipecat's own Flows examples are: NodeConfig dicts built by functions,
FlowsFunctionSchema tools whose Python handlers update ``flow_manager.state`` and return the
next node, a FlowManager over the LLM, its context aggregator and the worker, started when the
first participant joins. Same work as the YAML bot: the same prompts (the counter filled in
from state by pipecat's ``{{ step }}`` placeholder), the same tool schemas, context reset on
every node, the loopback OpenAI-protocol LLM that BENCH_OPENAI_URL points at, no audio.

    LIVEKIT_URL=... LIVEKIT_API_KEY=... LIVEKIT_API_SECRET=... python flow_bot.py -r ROOM -i IDENTITY
"""

import argparse
import asyncio
import os
import sys

from loguru import logger
from pipecat.flows import ContextStrategy, ContextStrategyConfig, FlowManager, FlowsFunctionSchema, NodeConfig
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair
from pipecat.runner.livekit import generate_token_with_agent, livekit_credentials
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.transports.livekit.transport import LiveKitParams, LiveKitTransport
from pipecat.workers.runner import WorkerRunner

logger.remove(0)
logger.add(sys.stderr, level="WARNING")

NODES = 4


def node(index: int) -> NodeConfig:
    async def advance(args, flow_manager):
        flow_manager.state["step"] = flow_manager.state.get("step", 0) + args["by"]
        return {"step": flow_manager.state["step"]}, node((index + 1) % NODES)

    return {
        "name": f"n{index}",
        "role_message": "You move a counter forward.",
        "task_messages": [{"role": "developer", "content": f"The counter is at {{{{ step }}}}. Call advance_{index}."}],
        "functions": [FlowsFunctionSchema(name=f"advance_{index}", description="Move the counter forward",
                                          properties={"by": {"type": "integer"}}, required=["by"], handler=advance)],
        "context_strategy": ContextStrategyConfig(strategy=ContextStrategy.RESET),
    }


async def main(room: str, identity: str):
    url, api_key, api_secret = livekit_credentials()
    token = generate_token_with_agent(room, identity, api_key, api_secret)
    transport = LiveKitTransport(url, token, room, params=LiveKitParams())
    llm = OpenAILLMService(api_key=os.environ["BENCH_OPENAI_KEY"], base_url=os.environ["BENCH_OPENAI_URL"],
                           settings=OpenAILLMService.Settings(model="gpt-4o-mini"))
    context_aggregator = LLMContextAggregatorPair(LLMContext())
    user, assistant = context_aggregator
    pipeline = Pipeline([transport.input(), user, llm, transport.output(), assistant])
    worker = PipelineWorker(pipeline, params=PipelineParams(), enable_rtvi=False, idle_timeout_secs=None)
    flow_manager = FlowManager(llm=llm, context_aggregator=context_aggregator, worker=worker, transport=transport)
    flow_manager.state["step"] = 0

    @transport.event_handler("on_first_participant_joined")
    async def on_first_participant_joined(transport, participant_id):
        await flow_manager.initialize(node(0))

    runner = WorkerRunner(handle_sigint=True, handle_sigterm=True)
    await runner.add_workers(worker)
    await runner.run()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="hand-written pipecat Flows bot")
    parser.add_argument("-r", "--room", required=True)
    parser.add_argument("-i", "--identity", default="bench-bot")
    args = parser.parse_args()
    asyncio.run(main(args.room, args.identity))

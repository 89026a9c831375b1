"""Flow node transition: the LLM's function call answered -> the next node's LLM request sent.

lkrun runs ``bench/bots/flow_loop.yaml`` (four nodes in a loop, each function's handler an
action list: a `set` on the flow state, a mapping result, a transition); the hand-written bot
``baselines/flow_bot.py`` builds the same nodes in Python with pipecat's FlowManager and Python
handlers. Each has its own loopback OpenAI-protocol server (the same script: call the node's
function), which holds every answer until it is that system's turn, so transitions alternate
(A B A B ...) and one is in flight at a time. A sample is the time from the end of the streamed
tool-call answer to the arrival of the next request (handler, result, node set-up, reset, tools).
"""

from __future__ import annotations

import asyncio

from .. import botfiles
from ..clients import Peer, join_all, leave_all
from ..fake_openai import FakeOpenAI
from ..procs import baseline_cmd, lkrun_cmd
from ..harness import say
from ..stats import summary

NAME = "flow_transition"
TITLE = "flow node transition: function call answered -> next LLM request"
TIME_LIMIT = 120
SYSTEMS = ("lkrun", "hand-written pipecat")


class TurnTakingLLM(FakeOpenAI):
    """The scripted LLM, answering only when the benchmark lets it (one answer per turn)."""

    def __init__(self):
        super().__init__(instruction_triggers={f"Call advance_{i}.": (f"advance_{i}", {"by": 1}) for i in range(4)})
        self.go = asyncio.Event()
        self.arrived = asyncio.Event()
        self.closing = False

    async def pace(self, body: dict) -> None:
        self.arrived.set()
        await self.go.wait()
        if not self.closing:
            self.go.clear()

    async def stop(self) -> None:
        self.closing = True  # the request still held is answered, so the server can close
        self.go.set()
        await super().stop()


def transitions(llm: FakeOpenAI) -> list[float]:
    """ms from each tool-call answer to the request that followed it."""
    samples, answered = [], None
    for kind, at, what in llm.events:
        if kind == "answered":
            answered = at if what != "text" else None
        elif kind == "request" and answered is not None:
            samples.append((at - answered) * 1000)
            answered = None
    return samples


async def step(llm: TurnTakingLLM, timeout: float = 10.0) -> None:
    """Let the system's pending request be answered; wait for the request its transition sends."""
    llm.arrived.clear()
    llm.go.set()
    await asyncio.wait_for(llm.arrived.wait(), timeout)


async def run(ctx, report):
    count = 12 if ctx.quick else 1000  # at 200 the p50 ratio moved 0.97-1.06 between runs; 1,000 take ~10 s
    warm = 2 if ctx.quick else 50
    llms = {system: await TurnTakingLLM().start() for system in SYSTEMS}
    rooms = {system: ctx.room(f"flow{i}") for i, system in enumerate(SYSTEMS)}
    peers = {system: Peer(ctx.server, rooms[system]) for system in SYSTEMS}
    try:
        async with ctx.procs(BENCH_OPENAI_KEY="sk-bench") as procs:
            try:
                path = botfiles.render("flow_loop", ctx.folder("flow_transition"), rooms["lkrun"])
                bots = {"lkrun": procs.spawn(lkrun_cmd(path), "flow-lkrun",
                                             BENCH_OPENAI_URL=llms["lkrun"].base_url),
                        "hand-written pipecat": procs.spawn(
                            baseline_cmd("flow_bot", "-r", rooms["hand-written pipecat"], "-i", botfiles.BOT_IDENTITY),
                            "flow-pipecat", BENCH_OPENAI_URL=llms["hand-written pipecat"].base_url)}
                await join_all(list(peers.values()))
                for system in SYSTEMS:  # the flow starts when the person joins: the first node's request
                    try:
                        await peers[system].wait_joined(botfiles.BOT_IDENTITY, timeout=60)
                        await asyncio.wait_for(llms[system].arrived.wait(), 60)
                    except asyncio.TimeoutError:
                        bots[system].check_alive()
                        raise
                say(f"  [{NAME}] both flows started")
                for i in range(warm + count):
                    for system in (SYSTEMS if i % 2 == 0 else tuple(reversed(SYSTEMS))):
                        if i == warm:
                            llms[system].events.clear()  # what came before is warm-up
                        try:
                            await step(llms[system])
                        except asyncio.TimeoutError:
                            bots[system].check_alive()
                            raise RuntimeError(f"{system}: no next-node request within 10 s") from None
                for bot in bots.values():
                    bot.check_alive()
            finally:
                await leave_all(list(peers.values()))
    finally:
        for llm in llms.values():
            await llm.stop()
    samples = {system: transitions(llms[system]) for system in SYSTEMS}
    for system in SYSTEMS:
        s = summary(samples[system])
        report.row("function call answered -> next LLM request", system, s["p50"], "ms", p95=s["p95"],
                   max=s["max"], n=s["n"])
    report.ratio("node transition p50 lkrun / hand-written", "lkrun", samples["lkrun"], "hand-written pipecat",
                 samples["hand-written pipecat"], target=1.05)
    report.note(f"{count} transitions per system after {warm} warm-up ones; four nodes in a loop, context reset "
                "on each, one transition in flight at a time (the systems take turns)")

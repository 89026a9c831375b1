"""Event -> action: a person sends a data message, the bot answers with one (closed loop).

Three bots run at once, each in its own room with its own person: lkrun
(``bench/bots/data_echo.yaml``), the hand-written pipecat bot (``baselines/data_bot.py``)
and the floor (``baselines/floor_echo.py``, the plain livekit SDK). Messages go round-robin
(A B C A B C ...), one at a time, so the three share the same moment-to-moment machine noise.
"""

from __future__ import annotations

import asyncio

from .. import botfiles
from ..clients import Peer, join_all, leave_all
from ..procs import baseline_cmd, lkrun_cmd
from ..stats import summary

NAME = "event_action"
TITLE = "event -> action: data message -> reply at the person"
TIME_LIMIT = 180
SYSTEMS = ("lkrun", "hand-written pipecat", "floor (livekit SDK)")


async def run(ctx, report):
    count = 30 if ctx.quick else 2000  # 500 gave a 95% interval of +-4%, wider than the 3% target
    warm = 5 if ctx.quick else 30
    rooms = {system: ctx.room(f"ea{i}") for i, system in enumerate(SYSTEMS)}
    peers = {system: Peer(ctx.server, rooms[system]) for system in SYSTEMS}
    async with ctx.procs() as procs:
        try:
            path = botfiles.render("data_echo", ctx.folder("event_action"), rooms["lkrun"])
            bots = {
                "lkrun": procs.spawn(lkrun_cmd(path), "ea-lkrun"),
                "hand-written pipecat": procs.spawn(
                    baseline_cmd("data_bot", "-r", rooms["hand-written pipecat"], "-i", botfiles.BOT_IDENTITY),
                    "ea-pipecat"),
                "floor (livekit SDK)": procs.spawn(
                    baseline_cmd("floor_echo", "-r", rooms["floor (livekit SDK)"], "-i", botfiles.BOT_IDENTITY),
                    "ea-floor"),
            }
            await join_all(list(peers.values()))
            for system in SYSTEMS:
                try:
                    await peers[system].wait_joined(botfiles.BOT_IDENTITY, timeout=30)
                    await peers[system].warm_up()
                except (asyncio.TimeoutError, RuntimeError):
                    bots[system].check_alive()
                    raise
            for _ in range(warm):
                for system in SYSTEMS:
                    await peers[system].ping()
            samples = {system: [] for system in SYSTEMS}
            lost = {system: 0 for system in SYSTEMS}
            for i in range(count):
                order = SYSTEMS if i % 2 == 0 else tuple(reversed(SYSTEMS))
                for system in order:
                    try:
                        samples[system].append(await peers[system].ping(timeout=5))
                    except asyncio.TimeoutError:
                        lost[system] += 1
            for system in SYSTEMS:
                bots[system].check_alive()
        finally:
            await leave_all(list(peers.values()))
    for system in SYSTEMS:
        s = summary(samples[system])
        report.row("data -> reply", system, s["p50"], "ms", p95=s["p95"], p99=s["p99"], max=s["max"], n=s["n"],
                   lost=lost[system])
    lk, hand, floor = (samples[s] for s in SYSTEMS)
    report.ratio("event->action p50 lkrun / hand-written", "lkrun", lk, "hand-written pipecat", hand, target=1.03)
    report.ratio("event->action p99 lkrun / hand-written", "lkrun", lk, "hand-written pipecat", hand, stat="p99",
                 target=1.05)
    report.ratio("event->action p50 lkrun / floor", "lkrun", lk, "floor", floor)
    report.ratio("event->action p99 lkrun / floor", "lkrun", lk, "floor", floor, stat="p99")
    report.ratio("event->action p50 hand-written / floor", "hand-written pipecat", hand, "floor", floor)
    report.note(f"{count} messages per system after {warm} warm-up rounds; one message in flight at a time")

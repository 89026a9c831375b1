"""Start-up: process spawn -> the bot is in the room (a person there sees it join).

A person joins a fresh room first; then the bot process is spawned and the time until
the person's ``participant_connected`` for the bot's identity is measured. lkrun runs
``bench/bots/data_echo.yaml``; the hand-written bot is ``bench/baselines/data_bot.py``
with the same LiveKitParams. Runs alternate (A B A B ...). Stop time (SIGTERM -> exit)
is recorded too.
"""

from __future__ import annotations

import time

from .. import botfiles
from ..clients import Peer
from ..procs import baseline_cmd, lkrun_cmd

NAME = "startup"
TITLE = "start-up: process spawn -> bot seen in the room"
TIME_LIMIT = 180


async def one(ctx, system: str) -> tuple[float, float]:
    room = ctx.room("start")
    peer = Peer(ctx.server, room)
    async with ctx.procs() as procs:
        try:
            await peer.join()
            if system == "lkrun":
                path = botfiles.render("data_echo", ctx.folder("startup"), room)
                proc = procs.spawn(lkrun_cmd(path), "startup-lkrun")
            else:
                proc = procs.spawn(baseline_cmd("data_bot", "-r", room, "-i", botfiles.BOT_IDENTITY),
                                   "startup-pipecat")
            try:
                seen = await peer.wait_joined(botfiles.BOT_IDENTITY, timeout=30)
            except TimeoutError:
                proc.check_alive()
                raise
            started = (seen - proc.spawned) * 1000
            t0 = time.monotonic()
            await proc.stop()
            stopped = (time.monotonic() - t0) * 1000
            return started, stopped
        finally:
            await peer.leave()


async def run(ctx, report):
    repeats = 2 if ctx.quick else 10
    results = {"lkrun": ([], []), "hand-written pipecat": ([], [])}
    for i in range(repeats):
        for system in (("lkrun", "hand-written pipecat") if i % 2 == 0 else ("hand-written pipecat", "lkrun")):
            started, stopped = await one(ctx, system)
            results[system][0].append(started)
            results[system][1].append(stopped)
    from ..stats import summary
    for system, (starts, stops) in results.items():
        s = summary(starts)
        report.row("spawn -> seen in room", system, s["p50"], "ms", min=s["min"], max=s["max"], n=s["n"],
                   stop_p50_ms=summary(stops)["p50"])
    report.ratio("start-up lkrun / hand-written", "lkrun", results["lkrun"][0], "hand-written pipecat",
                 results["hand-written pipecat"][0], target=1.05)  # issue 19: start-up within 5% of hand-written
    report.note("order alternates per pair (A B, B A, ...); stop = SIGTERM -> process exit")

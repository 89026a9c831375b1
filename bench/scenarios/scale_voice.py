"""Scale (voice bots): N espeak-speaking bots in ONE lkrun process vs a process per call.

Each bot (``bench/bots/espeak_say.yaml`` / ``baselines/espeak_bot.py``) says "Pong N" on each
data message; its person sends one, measures the time to the first audible reply chunk,
waits for the reply to end, and sends the next. Memory and CPU as in scale_data.
"""

from __future__ import annotations

import asyncio

from ..fleet import run_fleet
from ..stats import summary

NAME = "scale_voice"
TITLE = "scale: N espeak voice bots in one lkrun process vs a process per call"
TIME_LIMIT = 420


def levels(quick: bool) -> list[int]:
    return [1] if quick else [1, 5, 10]


async def run(ctx, report):
    iterations = 2 if ctx.quick else 5
    found = {}
    for n in levels(ctx.quick):
        for system in ("lkrun", "process-per-call"):  # interleaved per N
            try:
                result = await run_fleet(ctx, "voice", system, n, window=60.0, period=0.0, iterations=iterations)
            except (RuntimeError, OSError, asyncio.TimeoutError) as exc:
                report.fail(f"N={n} espeak voice bots", system, exc)
                continue
            found[(system, n)] = result
            s = summary(result["samples"])
            report.row(f"N={n} espeak voice bots", system, result["rss_per_bot_mb"], "MB RSS/bot",
                       pss_per_bot_mb=result["pss_per_bot_mb"], rss_total_mb=result["rss_total_mb"],
                       cpu_s=result["cpu_s"], cpu_pct=result["cpu_pct"], cpu_pct_per_bot=result["cpu_pct"] / n, p50_ms=s["p50"], p99_ms=s["p99"],
                       replies=s["n"], lost=result["lost"], procs=result["processes"], ready_s=result["ready_s"],
                   server_cpu_pct=result["server_cpu_pct"], driver_cpu_pct=result["driver_cpu_pct"])
    for n in levels(ctx.quick):
        if ("lkrun", n) not in found or ("process-per-call", n) not in found:
            continue
        lk, ppc = found[("lkrun", n)], found[("process-per-call", n)]
        report.ratio(f"p50 data->audio at N={n}: lkrun / process-per-call", "lkrun", lk["samples"],
                     "process-per-call", ppc["samples"])
        report.ratio(f"RSS per bot at N={n}: lkrun / process-per-call", "lkrun", [lk["rss_per_bot_mb"]],
                     "process-per-call (each process)", ppc["rss_each_mb"], stat="mean")
    report.note("latency = data message sent -> first 10 ms chunk of the bot's audio louder than RMS 500 at the "
                "person; memory ratios: the interval resamples the per-process RSS of process-per-call only (lkrun is one process)")

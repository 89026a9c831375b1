"""Scale (data bots): N bots in ONE lkrun process vs process-per-call hand-written pipecat bots.

Each bot is in its own room with a person pinging it (one message in flight, one every
250 ms). Memory: ``rss_per_bot`` = VmRSS of the process(es) / N, so at N = 1 it is the whole
process; ``marginal`` = (RSS(N) - RSS(1)) / (N - 1) for lkrun, the cost of one more bot
(no empty-process baseline is subtracted anywhere). PSS splits shared library pages
between processes, the fairer per-process figure for process-per-call.
"""

from __future__ import annotations

import asyncio

from ..fleet import run_fleet
from ..stats import summary

NAME = "scale_data"
TITLE = "scale: N data bots in one lkrun process vs a process per call"
TIME_LIMIT = 420


FLOOR = "floor, one process"
FLOOR_AUDIO = "floor+audio, one process"


def plan(quick: bool) -> list[tuple[str, int]]:
    """Interleaved: lkrun at each N, then the systems compared with it at the same N.

    The floors are N plain livekit clients in ONE process: they separate what one process
    (one LiveKit SDK runtime for every room) and pipecat's always-published audio track cost
    from what lkrun itself adds.
    """
    if quick:
        return [("lkrun", 1), ("process-per-call", 1), ("lkrun", 3), (FLOOR_AUDIO, 3)]
    return [("lkrun", 1), ("process-per-call", 1), ("lkrun", 10), ("process-per-call", 10), (FLOOR, 10),
            (FLOOR_AUDIO, 10), ("lkrun", 25), ("lkrun", 50), (FLOOR, 50), (FLOOR_AUDIO, 50), ("lkrun", 100),
            (FLOOR, 100), (FLOOR_AUDIO, 100)]


async def run(ctx, report):
    window = 2.0 if ctx.quick else 8.0
    found = {}
    for system, n in plan(ctx.quick):
        try:
            result = await run_fleet(ctx, "data", system, n, window=window, period=0.25, iterations=10_000)
        except (RuntimeError, OSError, asyncio.TimeoutError) as exc:
            report.fail(f"N={n} data bots", system, exc)
            continue
        found[(system, n)] = result
        s = summary(result["samples"])
        extra = {}
        if system == "lkrun" and n > 1 and ("lkrun", 1) in found:
            extra["marginal_mb"] = (result["rss_total_mb"] - found[("lkrun", 1)]["rss_total_mb"]) / (n - 1)
        report.row(f"N={n} data bots", system, result["rss_per_bot_mb"], "MB RSS/bot",
                   pss_per_bot_mb=result["pss_per_bot_mb"], rss_total_mb=result["rss_total_mb"], **extra,
                   cpu_s=result["cpu_s"], cpu_pct=result["cpu_pct"], cpu_pct_per_bot=result["cpu_pct"] / n,
                   p50_ms=s["p50"], p99_ms=s["p99"],
                   msgs=s["n"], lost=result["lost"], procs=result["processes"], ready_s=result["ready_s"],
                   server_cpu_pct=result["server_cpu_pct"], driver_cpu_pct=result["driver_cpu_pct"])
        found[(system, n)]["latency"] = s
    tops = [n for system, n in found if system == "lkrun"]
    ppc = [r for (system, _), r in found.items() if system == "process-per-call"]
    if tops and ppc:
        top = max(tops)
        per_process = [x for r in ppc for x in r["rss_each_mb"]]
        per_process_pss = [r["pss_per_bot_mb"] for r in ppc]
        lk = found[("lkrun", top)]
        report.row(f"headline: memory per bot at N={top}", "lkrun (one process)", lk["rss_per_bot_mb"], "MB RSS/bot",
                   pss_per_bot_mb=lk["pss_per_bot_mb"])
        report.row("headline: memory per bot", "process-per-call", sum(per_process) / len(per_process), "MB RSS/bot",
                   pss_per_bot_mb=sum(per_process_pss) / len(per_process_pss), measured_at="N=" + ",".join(
                       str(r["n"]) for r in ppc))
        report.ratio(f"RSS per bot: lkrun N={top} / process-per-call", f"lkrun N={top}", [lk["rss_per_bot_mb"]],
                     "process-per-call (each process)", per_process, stat="mean")
    for (system, n) in list(found):
        if system == "lkrun" or ("lkrun", n) not in found:
            continue
        for stat in ("p50", "p99"):
            report.ratio(f"{stat} latency at N={n}: lkrun / {system}", "lkrun", found[("lkrun", n)]["samples"], system,
                         found[(system, n)]["samples"], stat=stat)
    report.note("rss_per_bot = VmRSS / N (no empty baseline subtracted); marginal_mb = (RSS(N) - RSS(1)) / (N - 1); "
                "process-per-call RSS per bot = mean RSS of one bot process; the memory ratio's interval resamples "
                "the process-per-call processes only (lkrun is one process)")

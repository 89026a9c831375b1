"""What an operator watches: Prometheus metrics, a loopback health endpoint, JSON logs.

Why no prometheus_client: it would be a new dependency for four metric types' worth of
text format. The HTTP server binds 127.0.0.1 by default because /metrics and /healthz
reveal room names and load; expose them through a scraper on the same host or a proxy.
"""

from __future__ import annotations

import bisect
import json
import sys

from aiohttp import web

LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Histogram:
    def __init__(self, buckets=LATENCY_BUCKETS):
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1

    def lines(self, name: str) -> list[str]:
        out, total = [], 0
        for bound, n in zip(self.buckets, self.counts):
            total += n
            out.append(f'{name}_bucket{{le="{bound:g}"}} {total}')
        out.append(f'{name}_bucket{{le="+Inf"}} {self.count}')
        return out + [f"{name}_sum {self.sum:.6f}", f"{name}_count {self.count}"]


class Metrics:
    """Counters the pool bumps; gauges are read from the worker when scraped."""

    def __init__(self):
        self.accepted = 0
        self.declined = 0
        self.succeeded = 0
        self.failed = 0
        self.event_run = Histogram()
        self.join = Histogram((0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0))

    def render(self, worker) -> str:
        pool = worker.pool
        rows = [
            ("lkrun_worker_jobs_running", "gauge", "Jobs whose bot is running now.", len(pool.jobs)),
            ("lkrun_worker_jobs_accepted_total", "counter", "Jobs assigned to this worker.", self.accepted),
            ("lkrun_worker_jobs_declined_total", "counter", "Job offers answered 'not available'.", self.declined),
            ("lkrun_worker_jobs_succeeded_total", "counter", "Jobs that ended normally.", self.succeeded),
            ("lkrun_worker_jobs_failed_total", "counter", "Jobs that failed (reported JS_FAILED).", self.failed),
            ("lkrun_worker_load", "gauge", "Load reported to LiveKit (target_load x used / max).", pool.load()),
            ("lkrun_worker_max_jobs", "gauge", "Capacity (--max-jobs).", pool.max_jobs),
            ("lkrun_worker_draining", "gauge", "1 while draining after SIGTERM.", int(pool.draining)),
        ]
        out = []
        for name, kind, text, value in rows:
            out += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", f"{name} {value:g}"]
        out += ["# HELP lkrun_worker_registered 1 while registered with LiveKit, per agent name.",
                "# TYPE lkrun_worker_registered gauge"]
        for reg in worker.registrations:
            out.append(f'lkrun_worker_registered{{agent_name="{_label(reg.agent_name)}"}} {int(reg.registered)}')
        for name, hist, text in (
                ("lkrun_worker_event_run_seconds", self.event_run, "Time to run one event's actions."),
                ("lkrun_worker_job_join_seconds", self.join, "Job assignment -> bot in the room.")):
            out += [f"# HELP {name} {text}", f"# TYPE {name} histogram", *hist.lines(name)]
        return "\n".join(out) + "\n"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def health(worker) -> tuple[int, dict]:
    """200 when every registration is connected (or we are draining on purpose), else 503."""
    regs = {r.agent_name: {"registered": r.registered, "worker_id": r.worker_id} for r in worker.registrations}
    ok = all(r["registered"] for r in regs.values()) or worker.pool.draining
    body = {"status": "ok" if ok else "unregistered", "draining": worker.pool.draining,
            "jobs": len(worker.pool.jobs), "max_jobs": worker.pool.max_jobs, "load": round(worker.pool.load(), 4),
            "registrations": regs,
            "rooms": sorted({job.info.room for job in worker.pool.jobs.values()})}
    return (200 if ok else 503), body


async def serve(worker, host: str, port: int) -> web.AppRunner:
    """Start /healthz and /metrics; returns the runner (``await runner.cleanup()`` to stop)."""
    async def healthz(_request):
        status, body = health(worker)
        return web.json_response(body, status=status)

    async def metrics(_request):
        return web.Response(text=worker.metrics.render(worker), content_type="text/plain", charset="utf-8",
                            headers={"X-Content-Type-Options": "nosniff"})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def setup_logging(verbose: bool, json_logs: bool) -> None:
    """lkrun's log setup (secrets masked, no locals in tracebacks); JSON lines for log shippers."""
    from loguru import logger

    from runner.runtime import logs
    logs.setup(verbose)
    if json_logs:
        logger.remove()
        keep = logs._filter(verbose)
        logger.add(lambda message: _json_line(message.record), level="DEBUG" if verbose else "INFO",
                   diagnose=False, backtrace=False, filter=keep, format="{message}")


def _json_line(record) -> None:
    entry = {"time": record["time"].isoformat(), "level": record["level"].name, "message": record["message"],
             "module": record["name"]}
    entry.update({k: v for k, v in record["extra"].items() if isinstance(v, (str, int, float, bool))})
    if record["exception"] is not None:
        entry["exception"] = repr(record["exception"].value)
    sys.stderr.write(json.dumps(entry) + "\n")

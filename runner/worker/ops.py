"""What an operator watches: Prometheus metrics, a loopback health endpoint, JSON logs.

Metrics are prometheus_client's: each Worker has its own CollectorRegistry (tests run
several in one process). Counters are plain ints the pool bumps, and gauges are read from
the worker, both when scraped; the bots' run metrics (``runner.runtime.metrics``) are
appended. The HTTP server binds 127.0.0.1 by default because /metrics and /healthz reveal
room names and load; expose them through a scraper on the same host or a proxy.
"""

from __future__ import annotations

import json
import sys

from aiohttp import web
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from runner.runtime import metrics as run_metrics

LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
JOIN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


class Metrics:
    """Counters the pool bumps (``metrics.accepted += 1``), two histograms it observes; the
    gauges are read from the worker given to ``render`` when scraped."""

    def __init__(self):
        self.accepted = 0
        self.declined = 0
        self.succeeded = 0
        self.failed = 0
        self.worker = None  # set by render(): the gauges' source
        self.registry = CollectorRegistry(auto_describe=True)
        self.event_run = Histogram("lkrun_worker_event_run_seconds", "Time to run one event's actions.",
                                   buckets=LATENCY_BUCKETS, registry=self.registry)
        self.join = Histogram("lkrun_worker_job_join_seconds", "Job assignment -> bot in the room.",
                              buckets=JOIN_BUCKETS, registry=self.registry)
        self.registry.register(_WorkerCollector(self))
        self.registry.register(_RunMetrics())

    def render(self, worker) -> str:
        self.worker = worker
        return generate_latest(self.registry).decode("utf-8")


class _WorkerCollector:
    """The counters and gauges, read at scrape time."""

    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    def describe(self):
        return []  # names are only known per scrape; nothing else in the registry uses them

    def collect(self):
        m = self.metrics
        for name, text, value in (
                ("lkrun_worker_jobs_accepted", "Jobs assigned to this worker.", m.accepted),
                ("lkrun_worker_jobs_declined", "Job offers answered 'not available'.", m.declined),
                ("lkrun_worker_jobs_succeeded", "Jobs that ended normally.", m.succeeded),
                ("lkrun_worker_jobs_failed", "Jobs that failed (reported JS_FAILED).", m.failed)):
            yield CounterMetricFamily(name, text, value=value)
        worker = m.worker
        if worker is None:
            return
        pool = worker.pool
        for name, text, value in (
                ("lkrun_worker_jobs_running", "Jobs whose bot is running now.", len(pool.jobs)),
                ("lkrun_worker_load", "Load reported to LiveKit (target_load x used / max).", pool.load()),
                ("lkrun_worker_max_jobs", "Capacity (--max-jobs).", pool.max_jobs),
                ("lkrun_worker_draining", "1 while draining after SIGTERM.", int(pool.draining))):
            yield GaugeMetricFamily(name, text, value=value)
        registered = GaugeMetricFamily("lkrun_worker_registered",
                                       "1 while registered with LiveKit, per agent name.", labels=["agent_name"])
        for reg in worker.registrations:
            registered.add_metric([reg.agent_name], int(reg.registered))
        yield registered


class _RunMetrics:
    """The bots' run metrics of this process (jobs run in-process; see docs/worker.md)."""

    def describe(self):
        return []

    def collect(self):
        return run_metrics.REGISTRY.collect()


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
        return web.Response(body=worker.metrics.render(worker).encode("utf-8"),
                            headers={"Content-Type": run_metrics.CONTENT_TYPE, "X-Content-Type-Options": "nosniff"})

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

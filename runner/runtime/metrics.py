"""Per-bot run metrics (Prometheus), the same in run mode and worker mode.

One registry per process (``REGISTRY``): run mode serves it on the playground's
``/metrics``, ``lkrun worker`` adds it to its own ``/metrics``. The scheduler calls
``run_finished`` after every event run and ``run_dropped`` for every dropped one.
Labels stay bounded: bot names and event names come from files, outcomes from the engine
(ok, error, cancelled).
"""

from __future__ import annotations

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, disable_created_metrics,
                               generate_latest)

# no `<name>_created` series next to every counter and histogram: lkrun's metrics never had
# them and nothing reads them (process-wide; lkrun owns the process)
disable_created_metrics()

RUN_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST

REGISTRY = CollectorRegistry(auto_describe=True)
EVENT_RUNS = Counter("lkrun_event_runs", "Event runs finished, by bot, event and outcome (ok, error, cancelled).",
                     ["bot", "event", "outcome"], registry=REGISTRY)
EVENT_RUN_SECONDS = Histogram("lkrun_event_run_seconds", "Time to run one event's actions.", ["bot"],
                              buckets=RUN_BUCKETS, registry=REGISTRY)
RUNS_DROPPED = Counter("lkrun_runs_dropped", "Runs dropped (over session.rate_limit, or too many queued).",
                       ["bot"], registry=REGISTRY)


_CHILDREN: dict = {}  # (bot, event, outcome) -> its counter and histogram (labels are bounded)


def run_finished(bot: str, event: str, outcome: str, seconds: float) -> None:
    # prometheus_client's labels() checks and converts every value on each call: a py-spy
    # profile of a data bot put 10 % of its busy time there, so each label set is looked up once
    key = (bot, event, outcome)
    children = _CHILDREN.get(key)
    if children is None:
        children = _CHILDREN[key] = (EVENT_RUNS.labels(bot=bot, event=event, outcome=outcome),
                                     EVENT_RUN_SECONDS.labels(bot=bot))
    children[0].inc()
    children[1].observe(max(0.0, seconds))


def run_dropped(bot: str) -> None:
    RUNS_DROPPED.labels(bot=bot).inc()


def render() -> bytes:
    """The Prometheus text format of the run metrics."""
    return generate_latest(REGISTRY)


def value(name: str, **labels) -> float:
    """One sample's current value (0 when it has not been recorded yet), e.g.
    ``value("lkrun_runs_dropped_total", bot="echo")``."""
    return REGISTRY.get_sample_value(name, labels) or 0.0

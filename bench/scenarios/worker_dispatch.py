"""Worker dispatch: dispatch -> bot in room (p50/p95) and memory per job, in-process vs a process per job.

The measurement lives in bench/worker_bench.py (also runnable alone: python -m bench.worker_bench).
"""
from ..worker_bench import NAME, TIME_LIMIT, TITLE, run  # noqa: F401

IMPLEMENTED = True

"""The click commands ``lkrun worker`` and ``lkrun dispatch`` (thin: options -> plain function -> exit code).

They live here so runner/cli/main.py only needs ``main.add_command(...)`` for each, and so
``python -m runner.worker worker|dispatch ...`` works on its own. Only click is imported
at module level.
"""

from __future__ import annotations

import sys

import click


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--url", default=None, help="LiveKit server URL (default: LIVEKIT_URL).")
@click.option("--auto", is_flag=True, help="Also take every new room (automatic dispatch); one bot file only.")
@click.option("--max-jobs", type=click.IntRange(min=1), default=4, show_default=True,
              help="Jobs this worker runs at once; it reports WS_FULL at this number.")
@click.option("--process-per-job", is_flag=True, help="Run each job in its own process (isolation; more memory).")
@click.option("--drain-timeout", type=float, default=300.0, show_default=True,
              help="Seconds running calls get to finish after SIGTERM.")
@click.option("--target-load", type=click.FloatRange(0.01, 1.0), default=0.7, show_default=True,
              help="The server's agents.target_load: the load this worker reports when full.")
@click.option("--http-port", type=int, default=None, help="Serve /healthz and /metrics on this port.")
@click.option("--http-host", default="127.0.0.1", show_default=True, help="Address for /healthz and /metrics.")
@click.option("--json-logs", is_flag=True, help="One JSON object per log line (for log shippers).")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def worker(paths, url, auto, max_jobs, process_per_job, drain_timeout, target_load, http_port, http_host,
           json_logs, verbose):
    """Register bot files with LiveKit's agent dispatch and run the jobs it assigns."""
    from runner.worker.main import run_worker
    sys.exit(run_worker(list(paths), url=url, auto=auto, max_jobs=max_jobs, process_per_job=process_per_job,
                        drain_timeout=drain_timeout, target_load=target_load, http_port=http_port,
                        http_host=http_host, json_logs=json_logs, verbose=verbose))


@click.command()
@click.argument("bot", required=False)
@click.option("--room", required=True, help="The room (created when it does not exist).")
@click.option("--metadata", default=None, help="Job metadata passed to the worker.")
@click.option("--list", "list_only", is_flag=True, help="List the room's dispatches and which worker runs each.")
@click.option("--delete", default=None, metavar="DISPATCH_ID", help="Delete a dispatch: its bot leaves the room.")
@click.option("--url", default=None, help="LiveKit server URL (default: LIVEKIT_URL).")
def dispatch(bot, room, metadata, list_only, delete, url):
    """Send a bot (file or agent name) into a room through LiveKit's agent dispatch."""
    from runner.worker.dispatch import dispatch_cli
    sys.exit(dispatch_cli(bot, room, metadata=metadata, delete=delete, list_only=list_only, url=url))


@click.group()
def _standalone():
    """lkrun worker commands (also available as ``lkrun worker`` / ``lkrun dispatch``)."""


_standalone.add_command(worker)
_standalone.add_command(dispatch)

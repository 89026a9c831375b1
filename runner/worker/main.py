"""``lkrun worker``: register bot files with LiveKit's agent dispatch and run the jobs it hands out.

Why LiveKit schedules and not us: the server already tracks every worker's load, picks
one per job (weighted by spare capacity, across nodes with Redis) and mints each job's
token, so a fleet is just "start more workers". Signals follow the run command: the
first SIGTERM/SIGINT drains (no new jobs, running calls finish, bounded by
``--drain-timeout``, exit 0); a second one makes every bot leave at once.
"""

from __future__ import annotations

import asyncio
import os
import signal

import click
from loguru import logger

from runner.runtime import logs, telemetry
from runner.worker.jobs import preload
from runner.worker.ops import Metrics, serve, setup_logging
from runner.worker.pool import JobPool
from runner.worker.registration import Registration

FORCED_STOP = 2.0  # after a second signal, bots get this long to leave their rooms


class Worker:
    def __init__(self, specs, *, url: str, api_key: str, api_secret: str, max_jobs: int = 4, auto: bool = False,
                 process_per_job: bool = False, drain_timeout: float = 300.0, target_load: float = 0.7,
                 http_host: str = "127.0.0.1", http_port: int | None = None, verbose: bool = False,
                 json_logs: bool = False):
        from importlib.metadata import version
        self.url, self.api_key, self.api_secret = url, api_key, api_secret
        self.version = f"lkrun {version('lkrun')}"
        self.drain_timeout = drain_timeout
        self.http_host, self.http_port = http_host, http_port
        self.process_per_job = process_per_job
        self.metrics = Metrics()
        self.pool = JobPool(self, max_jobs=max_jobs, target_load=target_load, process_per_job=process_per_job,
                            verbose=verbose, json_logs=json_logs)
        self.registrations = [Registration(self, spec, spec.name) for spec in specs]
        if auto:
            self.registrations.append(Registration(self, specs[0], ""))
        self.stop_event = asyncio.Event()
        self.signals = 0
        self.exit_code = 0
        self._tasks: list[asyncio.Task] = []

    def status_changed(self) -> None:
        for reg in self.registrations:
            reg.status_changed()

    def handle_signal(self, sig) -> None:
        self.signals += 1
        if self.signals == 1:
            logger.info(f"{signal.Signals(sig).name}: draining (no new jobs; "
                        f"{len(self.pool.jobs)} running; a second signal stops them now)")
            self.exit_code = 0
            self.stop_event.set()
        elif self.signals == 2:
            logger.warning("second signal: stopping every job now")
            self.exit_code = 130 if sig == signal.SIGINT else 143
            self.pool.idle.set()  # ends the drain wait

    async def main(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.handle_signal, sig)
        http = None
        if self.http_port is not None:
            http = await serve(self, self.http_host, self.http_port)
            logger.info(f"health and metrics on http://{self.http_host}:{self.http_port}/healthz and /metrics")
        if self.process_per_job:
            await asyncio.shield(self.pool.spares.start())  # the first job gets a warm process too
        else:
            await asyncio.to_thread(preload)  # the first job should not pay for importing pipecat
        self._tasks = [asyncio.ensure_future(reg.run()) for reg in self.registrations]
        try:
            await self.stop_event.wait()
            finished = await self.pool.drain(self.drain_timeout)
            if not finished and self.signals < 2:
                logger.warning(f"drain timeout ({self.drain_timeout:g} s): stopping {len(self.pool.jobs)} job(s)")
            await asyncio.wait_for(self.pool.stop_all(), None if self.signals < 2 else FORCED_STOP + 1)
        except asyncio.TimeoutError:
            pass
        finally:
            for reg in self.registrations:
                await reg.close()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self.pool.spares.close()
            if http is not None:
                await http.cleanup()
            await asyncio.to_thread(telemetry.shutdown)  # the jobs' spans still queued in the batch
        logger.info("worker stopped")
        return self.exit_code


def load_specs(paths) -> tuple[list, list]:
    """Check every bot file -> (specs, problems). Bot names are agent names: unique per worker."""
    from runner.botfile.files import check_many, expand
    files, problems = expand(list(paths))
    specs, found = check_many(files, unique_names=True)
    return specs, sorted(problems + found)


def run_worker(paths, *, url: str | None = None, auto: bool = False, max_jobs: int = 4,
               process_per_job: bool = False, drain_timeout: float = 300.0, target_load: float = 0.7,
               http_host: str = "127.0.0.1", http_port: int | None = None, json_logs: bool = False,
               verbose: bool = False, environ=os.environ) -> int:
    """The ``lkrun worker`` command. Returns the exit code."""
    from runner.connect.tokens import CredentialsError, resolve_credentials
    specs, problems = load_specs(paths)
    for problem in problems:
        click.echo(problem.render(), err=True)
    if any(p.severity == "error" for p in problems) or not specs:
        if not specs:
            click.echo("error: no bot files to run", err=True)
        return 1
    url = url or environ.get("LIVEKIT_URL")
    if not url:
        click.echo("error: lkrun worker needs a LiveKit server: set LIVEKIT_URL (or --url), LIVEKIT_API_KEY "
                   "and LIVEKIT_API_SECRET", err=True)
        return 1
    if auto and len(specs) != 1:
        click.echo("error: --auto sends every new room to one bot: give exactly one bot file", err=True)
        return 1
    try:
        key, secret = resolve_credentials(env=environ)
    except CredentialsError as exc:
        click.echo(f"error: {exc}", err=True)
        return 1
    setup_logging(verbose, json_logs)
    logs.register_secrets([secret])
    for spec in specs:
        logs.register_secrets(spec.secrets)
        if spec.livekit.get("url") or spec.livekit.get("token"):
            logger.warning(f"[{spec.name}] livekit.url/token in the bot file are ignored by the worker: "
                           "jobs use the worker's server and the token LiveKit mints per job")
    worker = Worker(specs, url=url, api_key=key, api_secret=secret, max_jobs=max_jobs, auto=auto,
                    process_per_job=process_per_job, drain_timeout=drain_timeout, target_load=target_load,
                    http_host=http_host, http_port=http_port, verbose=verbose, json_logs=json_logs)
    logger.info(f"worker for {', '.join(s.name for s in specs)}{' (+ automatic dispatch)' if auto else ''} on "
                f"{url}: up to {worker.pool.max_jobs} job(s), "
                f"{'a process per job' if process_per_job else 'in this process'}")
    return asyncio.run(worker.main())

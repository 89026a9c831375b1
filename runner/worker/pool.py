"""Capacity, load and the running jobs of one worker process (shared by all its registrations).

Why ``load = target_load x used / max`` and not ``used / max``: livekit-server only offers
a job to a node whose workers report load below its ``agents.target_load`` (0.7 by
default); if every worker reported its true fraction, a fleet at 70 % would silently drop
every new job. Scaled this way, a worker reaches target_load exactly when it is full,
and says WS_FULL then (and while draining) so the server never picks it.
"""

from __future__ import annotations

import asyncio
import time

from livekit.protocol import agent as pa
from loguru import logger

from runner.worker.children import ChildJob, Spares
from runner.worker.jobs import STOP_GRACE, InProcessJob, JobInfo, job_identity

RESERVE_SECONDS = 10.0  # the server waits at most 10 s between our "available" and the assignment


class JobPool:
    def __init__(self, worker, *, max_jobs: int, target_load: float, process_per_job: bool, verbose: bool = False,
                 json_logs: bool = False):
        self.worker = worker
        self.max_jobs = max(1, max_jobs)
        self.target_load = target_load
        self.process_per_job = process_per_job
        self.jobs: dict[str, InProcessJob | ChildJob] = {}
        self.tasks: dict[str, asyncio.Task] = {}
        self.reserved: dict[str, float] = {}  # job id -> deadline for its assignment
        self.spares = Spares(verbose, json_logs)
        self.draining = False
        self.idle = asyncio.Event()
        self.idle.set()

    @property
    def used(self) -> int:
        now = time.monotonic()
        for job_id in [j for j, deadline in self.reserved.items() if deadline < now]:
            del self.reserved[job_id]
        return len(self.jobs) + len(self.reserved)

    def load(self) -> float:
        return self.target_load * min(self.used, self.max_jobs) / self.max_jobs

    def full(self) -> bool:
        return self.draining or self.used >= self.max_jobs

    def offer(self, job) -> bool:
        """An AvailabilityRequest: say yes only with a free slot, and hold that slot for the assignment."""
        if self.full() or job.id in self.jobs:
            self.worker.metrics.declined += 1
            return False
        self.reserved[job.id] = time.monotonic() + RESERVE_SECONDS
        self.worker.status_changed()
        return True

    def assign(self, registration, assignment) -> None:
        """Start the job's bot (a slot promised earlier is honoured even while draining)."""
        job = assignment.job
        self.reserved.pop(job.id, None)
        if job.id in self.jobs:
            logger.warning(f"job {job.id} was assigned twice; ignoring the second assignment")
            return
        spec = registration.spec
        info = JobInfo(id=job.id, room=job.room.name, identity=job.state.participant_identity
                       or job_identity(spec, job.id), agent_name=registration.agent_name, file=spec.file,
                       token=assignment.token, url=assignment.url or self.worker.url, room_sid=job.room.sid)
        metrics = self.worker.metrics

        def joined():
            info.joined_at = time.monotonic()
            metrics.join.observe(info.joined_at - info.assigned_at)
            logger.info(f"[{spec.name}] job {job.id}: in room '{info.room}' as '{info.identity}' "
                        f"({(info.joined_at - info.assigned_at) * 1000:.0f} ms after assignment)")

        def event_ms(ms: float):
            metrics.event_run.observe(ms / 1000)

        if self.process_per_job:
            runner = ChildJob(info, self.spares.take(refill=not self.draining), joined, event_ms)
        else:
            runner = InProcessJob(info, spec, joined, event_ms)
        self.jobs[job.id] = runner
        metrics.accepted += 1
        self.idle.clear()
        self.tasks[job.id] = asyncio.ensure_future(self._run(registration, runner))
        self.worker.status_changed()
        logger.info(f"[{spec.name}] job {job.id}: room '{info.room}' (dispatch {job.dispatch_id or '-'})")

    async def _run(self, registration, runner) -> None:
        info = runner.info
        await registration.job_status(info.id, pa.JS_RUNNING)
        try:
            ok, error = await runner.run()
        except asyncio.CancelledError:
            ok, error = True, ""  # only stop() cancels a job: it ended because we were told to end it
        except Exception as exc:
            ok, error = False, f"{type(exc).__name__}: {exc}"
        finally:
            self.jobs.pop(info.id, None)
            self.tasks.pop(info.id, None)
            if not self.jobs:
                self.idle.set()
        if ok:
            self.worker.metrics.succeeded += 1
        else:
            self.worker.metrics.failed += 1
        logger.log("INFO" if ok else "ERROR",
                   f"job {info.id} in room '{info.room}' {'ended' if ok else 'failed: ' + error}")
        await registration.job_status(info.id, pa.JS_SUCCESS if ok else pa.JS_FAILED, error)
        self.worker.status_changed()

    async def terminate(self, job_id: str) -> None:
        """JobTermination (dispatch deleted, room closed) or our own shutdown: the bot leaves now."""
        runner, task = self.jobs.get(job_id), self.tasks.get(job_id)
        if runner is None or task is None:
            return
        try:
            await asyncio.wait_for(runner.stop(), STOP_GRACE)
        except (asyncio.TimeoutError, Exception) as exc:
            logger.warning(f"job {job_id}: stop did not finish cleanly ({type(exc).__name__})")
        done, _ = await asyncio.wait([task], timeout=STOP_GRACE)
        if not done:
            task.cancel()
            await asyncio.wait([task], timeout=1.0)

    async def drain(self, timeout: float) -> bool:
        """Take no new jobs; wait for the running ones to end by themselves. True if they all did."""
        self.draining = True
        self.worker.status_changed()
        await self.spares.close()
        if self.jobs:
            logger.info(f"draining: waiting up to {timeout:g} s for {len(self.jobs)} running job(s)")
        try:
            await asyncio.wait_for(self.idle.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    async def stop_all(self) -> None:
        if self.jobs:
            await asyncio.gather(*(self.terminate(job_id) for job_id in list(self.jobs)))

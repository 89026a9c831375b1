"""``--process-per-job``: each job in its own process, started from a warm spare.

Why a spare: a fresh Python that imports pipecat takes ~1.5 s before it can connect,
which would land on every dispatch. The worker keeps one child that has already done
its imports and waits on stdin; a job takes it (and a new spare starts behind it). The
job's token goes down that pipe, never into argv or the environment.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys

from runner.worker.jobs import STOP_GRACE, JobInfo


async def _spawn(verbose: bool, json_logs: bool) -> asyncio.subprocess.Process:
    """A child that has finished its imports (it printed ``{"ready": 1}``), or one that died trying."""
    env = {**os.environ, "LKRUN_VERBOSE": "1" if verbose else "", "LKRUN_JSON_LOGS": "1" if json_logs else ""}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "runner.worker.child", env=env, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, start_new_session=True)
    while True:
        line = await proc.stdout.readline()
        if not line or line.startswith(b'{"ready"'):
            return proc


class Spares:
    """At most one warm child process (started on demand, replaced when taken)."""

    def __init__(self, verbose: bool = False, json_logs: bool = False):
        self.verbose, self.json_logs = verbose, json_logs
        self._next: asyncio.Task | None = None
        self._closed = False

    def start(self) -> asyncio.Task | None:
        if self._next is None and not self._closed:
            self._next = asyncio.ensure_future(_spawn(self.verbose, self.json_logs))
        return self._next

    def take(self, refill: bool = True) -> asyncio.Task:
        """A task resolving to a child process for one job (the spare, or a fresh one)."""
        task, self._next = self._next, None
        if task is None or (task.done() and (task.cancelled() or task.exception()
                                             or task.result().returncode is not None)):
            task = asyncio.ensure_future(_spawn(self.verbose, self.json_logs))
        if refill:
            self.start()
        return task

    async def close(self) -> None:
        """No more jobs: the waiting spare reads EOF on stdin and exits."""
        self._closed = True
        task, self._next = self._next, None
        if task is None:
            return
        try:
            proc = await task
        except Exception:
            return
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), STOP_GRACE)
        except asyncio.TimeoutError:
            proc.kill()


class ChildJob:
    """One job in a child process; progress arrives as JSON lines on the child's stdout."""

    def __init__(self, info: JobInfo, process: asyncio.Task, on_joined, on_event_ms):
        self.info, self._process = info, process
        self._on_joined, self._on_event_ms = on_joined, on_event_ms
        self.proc: asyncio.subprocess.Process | None = None
        self._stopping = False

    async def run(self) -> tuple[bool, str]:
        self.proc = proc = await self._process
        info = self.info
        job = {"file": info.file, "url": info.url, "token": info.token, "room": info.room,
               "identity": info.identity, "id": info.id, "room_sid": info.room_sid}
        proc.stdin.write(json.dumps(job).encode() + b"\n")
        await proc.stdin.drain()
        proc.stdin.close()
        if self._stopping:  # stopped while the process was starting
            proc.send_signal(signal.SIGTERM)
        error = ""
        async for line in proc.stdout:  # {"ready": 1} | {"joined": 1} | {"event_ms": x} | {"error": ...}
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if "joined" in message:
                self._on_joined()
            elif "event_ms" in message:
                self._on_event_ms(float(message["event_ms"]))
            elif "error" in message:
                error = str(message["error"])
        code = await proc.wait()
        if code == 0 or (self._stopping and code in (-signal.SIGTERM, -signal.SIGKILL)):
            return True, ""
        return False, error or f"the job process exited with code {code}"

    async def stop(self) -> None:
        """SIGTERM (the child's bot leaves the room), SIGKILL after STOP_GRACE."""
        self._stopping = True
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), STOP_GRACE)
        except asyncio.TimeoutError:
            proc.kill()

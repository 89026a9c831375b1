"""The process of one job under ``lkrun worker --process-per-job``.

Why a separate entry point: it starts *before* its job (a warm spare: imports done),
prints ``{"ready": 1}`` and waits for one JSON line on stdin with the job (bot file,
URL, token, room, identity). Progress goes back on stdout as JSON lines (``joined``,
``event_ms``, ``error``); logs go to stderr. EOF on stdin means "not needed": exit 0.
Exit code 0 means the job succeeded; SIGTERM makes the bot leave its room, then exit 0.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys


def _emit(**message) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def _main(spec, job: dict) -> int:
    from runner.runtime.bot import BotRuntime
    from runner.runtime.trace import Trace
    from runner.worker.jobs import JobInfo, JobServer, job_spec, joined_or_gone, run_bot

    trace = Trace(size=20)
    trace.listeners.append(lambda entry: _emit(event_ms=entry.ms))
    bot = BotRuntime(job_spec(spec, job["room"], job["identity"]), JobServer(job["url"], job_token=job["token"]),
                     once=True, trace=trace)
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Future] = []  # bot.stop() writes the record and ends the session's span
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stopping.append(asyncio.ensure_future(bot.stop())))
    info = JobInfo(id=job["id"], room=job["room"], identity=job["identity"], agent_name="", file=job["file"],
                   token="", room_sid=job.get("room_sid", ""))

    async def watch_join():
        if await joined_or_gone(bot, info):
            _emit(joined=1)

    watcher = asyncio.ensure_future(watch_join())
    try:
        ok, error = await run_bot(bot)
    finally:
        watcher.cancel()
        if stopping:  # the bot has left: let its stop finish before the loop closes
            await asyncio.gather(*stopping, return_exceptions=True)
    if not ok:
        _emit(error=error)
    return 0 if ok else 1


def main() -> int:
    from runner.runtime import logs
    from runner.botfile.check import check_file
    from runner.botfile.errors import ConfigError
    from runner.worker.jobs import preload
    from runner.worker.ops import setup_logging

    setup_logging(bool(os.environ.get("LKRUN_VERBOSE")), bool(os.environ.get("LKRUN_JSON_LOGS")))
    preload()
    _emit(ready=1)
    line = sys.stdin.readline()
    if not line.strip():
        return 0
    job = json.loads(line)
    try:
        spec = check_file(job["file"])
    except ConfigError as exc:
        _emit(error=f"{job['file']}: {len(exc.problems)} problem(s) in the bot file")
        return 1
    logs.register_secrets(spec.secrets)
    try:
        return asyncio.run(_main(spec, job))
    finally:
        from runner.runtime import telemetry
        telemetry.shutdown()  # the job's spans still queued in the batch


if __name__ == "__main__":
    sys.exit(main())

"""Many bots in one process: the dev server, signals, isolation, exit codes.

One SIGINT/SIGTERM handler for the process (pipecat's runners get none): the first
signal makes every bot leave within 3 s; a second ^C exits at once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from pathlib import Path

import click
from loguru import logger

from runner.host.reload import ReloadHost
from runner.runtime import logs, records, telemetry
from runner.runtime.bot import BotFatal, BotRuntime
from runner.connect.endpoint import Server, remote_server, url_for

STOP_TIMEOUT = 3.0
RECORD_TIMEOUT = 2.0  # seconds for the session records of a stop to be written


class Supervisor(ReloadHost):
    def __init__(self, specs, *, once: bool = False, reload: bool = False, files=(), playground: bool = False,
                 port: int = 0, environ=os.environ, folders=(), edit: bool = True):
        self.specs = list(specs)
        self.files = list(files)
        self.folders = [Path(f) for f in folders]  # watched for new bot files (folder mode)
        self.file_keys = {str(Path(f).resolve()): str(f) for f in self.files}
        self.watcher = None
        self.bots_started = False
        self.once = once
        self.reload = reload
        self.playground = playground
        self.port = port
        self.edit = edit  # the playground may write the bot files (False: --no-edit)
        self.environ = environ
        self.bots: dict[str, BotRuntime] = {}  # file -> runtime
        self.tasks: dict[str, asyncio.Task] = {}
        self.devserver = None
        self.embedded: Server | None = None
        self.stop_event = asyncio.Event()
        self.signal_code: int | None = None
        self.fatal: list[str] = []
        self.playground_server = None  # runner.playground.Playground, when --playground

    def key_for(self, path) -> str:
        """The name a bot file is known by (as the user wrote it), for absolute watch paths too."""
        resolved = str(Path(path).resolve())
        if resolved not in self.file_keys:
            try:
                self.file_keys[resolved] = str(Path(path).resolve().relative_to(Path.cwd()))
            except ValueError:
                self.file_keys[resolved] = resolved
        return self.file_keys[resolved]

    async def add_spec(self, key: str, spec) -> None:
        """A file that became valid (or appeared in a watched folder) starts its bot."""
        if url_for(spec, self.environ) is None and self.embedded is None:
            await self.start_embedded()
            self.banner()
        self.specs.append(spec)
        self.start_bot(key, spec)
        self.notice(key, "reload", f"started {Path(key).name}: the file is valid now")

    async def stop_bot(self, key: str) -> None:
        bot, task = self.bots.pop(key, None), self.tasks.pop(key, None)
        self.specs = [s for s in self.specs if s.file != key]
        if bot is not None:
            await bot.stop()
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if bot is not None:  # its file went away mid-session: the record of what it did so far
            await records.session_stopped(bot)

    def server_for(self, spec) -> Server:
        if url_for(spec, self.environ) is None:
            return self.embedded
        return remote_server(spec, self.environ)

    async def start_embedded(self) -> None:
        from runner.host.devserver import DevServer
        self.devserver = DevServer()
        await self.devserver.start()
        self.embedded = Server(self.devserver.url, self.devserver.api_key, self.devserver.api_secret, embedded=True)
        logs.register_secrets([self.devserver.api_secret])

    def banner(self, specs=None) -> None:
        """The dev server's address now; each bot's join line once that bot is really in its room."""
        click.echo(f"LiveKit dev server: {self.embedded.url}  (key devkey; stops when lkrun stops)")

    async def _announce(self, bot: BotRuntime) -> None:
        from runner.connect.tokens import person_token
        await bot.in_room.wait()
        spec = bot.spec
        token = person_token(self.embedded.api_key, self.embedded.api_secret, room=spec.room,
                             identity="you", name="You")
        click.echo(f"  bot '{spec.name}' in room '{spec.room}'. Join as a person with this token:\n"
                   f"  {token}")

    async def start_playground(self) -> None:
        """The loopback page to talk to the bots; a taken port is a warning, not a failure."""
        from runner.playground import Playground, PlaygroundError
        server = Playground(self, port=self.port, edit=self.edit)
        try:
            url = await server.start()
        except PlaygroundError as exc:
            click.echo(f"warning: {exc}; running without the playground", err=True)
            return
        self.playground_server = server
        built = "" if server.built else "  (not built yet: the page says how)"
        click.echo(f"Playground: {url}  (talk to your bots in a browser){built}")

    def notice(self, key: str, kind: str, message: str) -> None:
        """A reload ("reload") or invalid-edit ("error") notice, for the playground's trace panel."""
        if self.playground_server is not None:
            self.playground_server.notice(key, kind, message)

    def start_bot(self, key: str, spec) -> BotRuntime:
        logs.register_secrets(spec.secrets)
        bot = BotRuntime(spec, self.server_for(spec), once=self.once)
        self.bots[key] = bot
        # one bot given on the command line: a first connect that fails is fatal (one line, exit 1);
        # bots that appear later through reload are retried instead
        single = len(self.specs) == 1 and not self.bots_started
        self.bots_started = True
        self.tasks[key] = asyncio.ensure_future(self._guard(key, bot, single))
        if self.embedded is not None and bot.server is self.embedded:
            announce = asyncio.ensure_future(self._announce(bot))
            self.tasks[key].add_done_callback(lambda _task: announce.cancel())
        return bot

    async def _guard(self, key: str, bot: BotRuntime, single: bool) -> None:
        """One bot's crash never stops another."""
        try:
            await bot.run(fatal_first_connect=single)
        except BotFatal as exc:
            self.fatal.append(f"{bot.name}: {exc}")
            if single:  # one line and exit 1, reload or not: waiting would hide the failure
                click.echo(f"error: {exc}", err=True)
                self.stop_event.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or a broken stage: report it, keep the others
            logger.opt(exception=exc).error(f"[{bot.name}] crashed: {type(exc).__name__}: {exc}")
            self.fatal.append(f"{bot.name}: crashed")
        finally:
            bots = [t for k, t in self.tasks.items() if k != "__watch__"]
            if all(t.done() or t is asyncio.current_task() for t in bots) and (not self.reload or self.once):
                self.stop_event.set()

    def install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.handle_signal, sig)

    def handle_signal(self, sig) -> None:
        if self.signal_code is not None:
            if sig == signal.SIGINT:
                click.echo("forced exit", err=True)
                os._exit(130)
            return
        self.signal_code = 130 if sig == signal.SIGINT else 0
        click.echo("stopping: every bot is leaving its room", err=True)
        self.stop_event.set()

    async def stop_all(self) -> None:
        bots = list(self.bots.values())
        if bots:
            await asyncio.wait([asyncio.ensure_future(b.stop()) for b in bots], timeout=STOP_TIMEOUT)
        pending = [t for t in self.tasks.values() if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=0.5)
        if bots:  # sessions cut short by ^C/SIGTERM still get their record (written atomically)
            await asyncio.wait([asyncio.ensure_future(records.session_stopped(b)) for b in bots],
                               timeout=RECORD_TIMEOUT)
        telemetry.shutdown()  # the spans still queued (the process ends with os._exit)

    async def main(self) -> int:
        self.install_signals()
        try:
            if any(url_for(s, self.environ) is None for s in self.specs):
                try:
                    await self.start_embedded()
                except Exception as exc:
                    click.echo(f"error: {exc}", err=True)
                    return 1
                self.banner()
            for spec in self.specs:
                self.start_bot(spec.file, spec)
            if self.playground:
                await self.start_playground()
            if self.reload:
                from runner.host.reload import watch_task
                self.tasks["__watch__"] = asyncio.ensure_future(watch_task(self))
            await self.stop_event.wait()
        finally:
            if self.playground_server is not None:
                await self.playground_server.stop()
            await self.stop_all()
            if self.devserver is not None:
                await self.devserver.stop()
        if self.signal_code is not None:
            return self.signal_code
        if len(self.specs) == 1 and self.fatal:
            return 1
        return 0


def run_cli(paths, *, reload=True, once=False, verbose=False, playground=False, port=0,
            exit_when_done=True, edit=True) -> int:
    """The `lkrun run` command. It ends the process itself once the bots are out (see
    exit_process); in-process callers (tests) pass exit_when_done=False."""
    logs.setup(verbose)
    from runner.botfile.files import check_many, expand
    files, problems = expand(paths)
    folders = [p for p in paths if Path(p).is_dir()]
    specs, found = check_many(files)
    problems = sorted(problems + found)
    for problem in problems:
        click.echo(problem.render(), err=True)
    invalid = any(p.severity == "error" for p in problems)
    if not files and not (reload and folders):
        click.echo("error: no bot files to run", err=True)
        return 1
    if invalid and not reload:
        return 1
    if invalid:
        click.echo("lkrun: waiting for a fix: the files with errors start when they are saved valid", err=True)
    supervisor = Supervisor(specs, once=once, reload=reload, files=files, playground=playground, port=port,
                            folders=folders, edit=edit)
    try:
        code = asyncio.run(supervisor.main())
    except KeyboardInterrupt:
        code = 130
    return exit_process(code) if exit_when_done else code


def exit_process(code: int) -> int:
    """End the process now that every bot has left, skipping interpreter finalization.

    LiveKit's FFI keeps tokio threads alive; when Python finalizes under them, one of them
    can panic ("panic in a function that cannot unwind") and abort the process: exit code
    -6 instead of 0/130, seen in 3 of 100 ^C runs under load, always after asyncio.run()
    had returned. Flush what we wrote, stop any dev server left behind, and leave.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    devserver = sys.modules.get("runner.host.devserver")
    for proc in list(getattr(devserver, "_LIVE", ())):
        if proc.poll() is None:
            proc.kill()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(run_cli(sys.argv[1:]))

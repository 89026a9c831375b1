"""``lkrun test``: run conversation tests (``*.test.yaml``) offline (or ``--live`` in real rooms) and
report per case."""

from __future__ import annotations

import contextlib
import os

import click


def test_cli(paths: list[str], *, junit_file: str | None = None, fmt: str = "text", llm_url: str | None = None,
             live: bool = False, livekit_url: str | None = None, only: tuple = ()) -> int:
    from runner.testing import report
    from runner.testing.run import run_paths
    if llm_url and live:
        raise click.UsageError("--llm-url answers an offline run's LLM; with --live the bot uses its own llm stage")
    if livekit_url and not live:
        raise click.UsageError("--url is the LiveKit server for --live")
    with _server(live, livekit_url) as server:
        outcome = run_paths(paths, llm_url=llm_url, live=server, only=only)
    if fmt == "json":
        click.echo(report.as_json(outcome))
    else:
        out, err = report.text(outcome)
        for line in err:
            click.echo(line, err=True)
        for line in out:
            click.echo(line)
    if junit_file:
        with open(junit_file, "w", encoding="utf-8") as fh:
            fh.write(report.junit(outcome))
    return outcome.exit_code()


@contextlib.contextmanager
def _server(live: bool, url: str | None):
    """--live: the LiveKit server to use (the given URL or LIVEKIT_URL, else an embedded dev server)."""
    if not live:
        yield None
        return
    from runner.connect.endpoint import Server
    url = url or os.environ.get("LIVEKIT_URL")
    if url:
        from runner.connect.tokens import resolve_credentials
        key, secret = resolve_credentials()
        yield Server(url, key, secret)
        return
    from runner.host.devserver import DevServer, DevServerError
    try:
        dev = DevServer(log_level="warn")
        dev.start_sync()
    except DevServerError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        yield Server(dev.url, dev.api_key, dev.api_secret, embedded=True)
    finally:
        dev.stop_sync()


test_cli.__test__ = False  # not a pytest function

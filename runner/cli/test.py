"""``lkrun test``: run conversation tests (``*.test.yaml``) offline and report per case."""

from __future__ import annotations

import click


def test_cli(paths: list[str], *, junit_file: str | None = None, fmt: str = "text") -> int:
    from runner.testing import report
    from runner.testing.run import run_paths
    outcome = run_paths(paths)
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


test_cli.__test__ = False  # not a pytest function

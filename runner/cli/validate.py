"""``lkrun validate``: check bot files, compiler-style errors."""

from __future__ import annotations

import json

import click

from runner.botfile.files import check_many, expand


def validate_paths(paths: list[str], *, fmt="text", allow_missing_env=False) -> int:
    files, problems = expand(paths)
    specs, found = check_many(files, allow_missing_env=allow_missing_env)
    problems = sorted(problems + found)
    errors = [p for p in problems if p.severity == "error"]
    if fmt == "json":
        click.echo(json.dumps({"files": [str(f) for f in files], "ok": not errors,
                               "problems": [p.as_dict() for p in problems]}, indent=2))
    else:
        for problem in problems:
            click.echo(problem.render(), err=problem.severity == "error")
        bad = len({p.file for p in errors})
        if errors:
            click.echo(f"{len(errors)} error{'s' * (len(errors) != 1)} in {bad} file{'s' * (bad != 1)}", err=True)
        else:
            click.echo(f"ok: {len(specs)} bot file{'s' * (len(specs) != 1)} valid")
    return 1 if errors or not files else 0

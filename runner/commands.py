"""Plain functions behind the small CLI commands; each returns an exit code."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from .errors import ConfigError, Problem

BOT_SUFFIXES = (".yaml", ".yml")


def expand(paths: list[str]) -> tuple[list[Path], list[Problem]]:
    """Files as given, folders as their *.yaml files (sorted); missing paths are problems."""
    files, problems = [], []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in BOT_SUFFIXES and p.is_file())
            if not found:
                problems.append(Problem(raw, 1, 1, "no .yaml bot files in this folder", severity="warning"))
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            problems.append(Problem(raw, 1, 1, "file not found"))
    return files, problems


def internal_error(file: str, exc: BaseException) -> Problem:
    """A failure of lkrun itself while checking a file: named, located, without the exception text
    (which could hold a secret value from the environment)."""
    return Problem(file, 1, 1, f"lkrun could not check this file: internal error ({type(exc).__name__})",
                   "this is a bug in lkrun; please report it with the file attached")


def check_many(files: list[Path], *, allow_missing_env=False, environ=None):
    """Check each file; two bots with the same room and identity are an error. -> (specs, problems)."""
    from .check import check_file

    specs, problems, seen = [], [], {}
    for path in files:
        try:
            spec = check_file(path, allow_missing_env=allow_missing_env, environ=environ)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        except Exception as exc:  # a checker bug must not hide the other files (nor print a traceback)
            problems.append(internal_error(str(path), exc))
            continue
        problems.extend(spec.warnings)
        key = (spec.livekit.get("url"), spec.room, spec.identity)
        if key in seen:
            from .yamlsafe import load_file
            doc = load_file(path)
            has_identity = "identity" in (doc.data.get("livekit") or {})
            problems.append(doc.problem(("livekit", "identity") if has_identity else ("livekit",),
                                        f"bot '{spec.name}' uses the same room '{spec.room}' and identity "
                                        f"'{spec.identity}' as {seen[key]}",
                                        "LiveKit would keep only one of them: give each bot its own identity",
                                        key=not has_identity))
            continue
        seen[key] = str(path)
        specs.append(spec)
    return specs, problems


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


STARTER = """\
# yaml-language-server: $schema={schema}
# {name}: a starter bot. Run it with:  lkrun {file}
# Check it with:  lkrun validate {file}     List what you can write:  lkrun events / lkrun actions
version: 1
name: {name}
description: Says hello to each person who joins and answers "ping" with "pong".

livekit:
  room: ${{LIVEKIT_ROOM:-lobby}}     # the room to join (override with LIVEKIT_ROOM)
  identity: {name}                  # the bot's participant identity, unique in the room
  name: {title}                     # the name people see

vars:                               # your own values, used in templates as {{{{ vars.greeting }}}}
  greeting: Hello

on:
  participant_connected:            # someone joined the room
    - send:
        to: "{{{{ participant.id }}}}"
        data: {{text: "{{{{ vars.greeting }}}}, {{{{ participant.name or participant.id }}}}!"}}
  data_received:                    # someone sent a data message
    - if: "{{{{ message.text == 'ping' or data == 'ping' }}}}"
      then:
        - send: {{to: "{{{{ participant.id }}}}", data: {{text: pong}}}}
"""


def new_bot(name: str, *, force: bool = False) -> int:
    target = Path(name if name.endswith(BOT_SUFFIXES) else f"{name}.yaml")
    stem = target.stem
    if not stem.replace("-", "_").isidentifier():
        click.echo(f"error: '{stem}' is not a good bot name: use letters, digits, '-' and '_'", err=True)
        return 1
    if target.exists() and not force:
        click.echo(f"error: {target} already exists (use --force to overwrite)", err=True)
        return 1
    from .sections import schemas_dir
    schema_file = schemas_dir() / "bot.schema.json"
    try:
        schema = os.path.relpath(schema_file, target.resolve().parent)
    except ValueError:
        schema = str(schema_file)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(STARTER.format(schema=schema, name=stem, title=stem.replace("_", " ").title(), file=target))
    click.echo(f"wrote {target}; run it with: lkrun {target}")
    return 0


def mint_token(room: str, identity: str, name: str | None, ttl_minutes: int) -> int:
    from .tokens import CredentialsError, person_token, resolve_credentials
    try:
        key, secret = resolve_credentials()
        click.echo(person_token(key, secret, room=room, identity=identity, name=name, ttl_minutes=ttl_minutes))
    except (CredentialsError, ValueError) as exc:
        click.echo(f"error: {exc}", err=True)
        return 1
    return 0


def describe_events() -> str:
    from .events import COMMON_DOC, EVENTS
    lines = ["Events (under on:). Every event has: " + ", ".join(f"{k} ({v})" for k, v in COMMON_DOC.items()), ""]
    for event in EVENTS:
        extra = ", ".join(_flatten(event.variables)) or "-"
        form = " [triggers]" if event.kind == "triggers" else ""
        needs = f" (needs {event.needs})" if event.needs else ""
        lines.append(f"  {event.name:26}{event.doc}{form}{needs}\n  {'':26}variables: {extra}")
    return "\n".join(lines)


def _flatten(shape: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in shape.items():
        out.extend(_flatten(value, f"{prefix}{key}.") if isinstance(value, dict) else [f"{prefix}{key}"])
    return out


def describe_actions() -> str:
    from .actions import ACTIONS
    lines = ["Actions (in an event's list, one per '- '):", ""]
    for entry in ACTIONS:
        fields = ", ".join(entry.body.get("properties", {}))
        needs = f" (needs {entry.needs})" if entry.needs else ""
        lines.append(f"  {entry.name:13}{entry.doc}{needs}\n  {'':13}fields: {fields or '-'}"
                     f"\n  {'':13}e.g. {entry.example.splitlines()[0] if entry.example else ''}")
    return "\n".join(lines)


def describe_stages(kind: str | None) -> str:
    from . import catalog
    from .stages import KINDS
    lines = []
    for name in ([kind] if kind else list(KINDS)):
        lines.append(f"{name}: {KINDS[name]}")
        for value in catalog.stage_types(name):
            entry = catalog.stage_entry(value)
            lines.append(f"  {value:28}{entry.get('label', '')}  [{catalog.install_hint(value)}]")
        lines.append(f"  {'python':28}your own: factory: package.module:function")
    return "\n".join(lines)

"""``lkrun new``: write a commented starter bot file."""

from __future__ import annotations

import os
from pathlib import Path

import click

from runner.botfile.files import BOT_SUFFIXES


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


STARTER_TEST = """\
# yaml-language-server: $schema={schema}
# Conversation tests for {name}. Run them with:  lkrun test {file}
# Each case starts a fresh session; steps: join, leave, send, chat, say, press, wait, llm, expect.
bot: {bot}
cases:
  - name: greets each person by name
    steps:
      - join: {{id: ada, name: Ada}}
      - expect: {{send: {{to: ada, data: {{text: "Hello, Ada!"}}}}}}

  - name: answers ping with pong
    steps:
      - join: {{id: ada, name: Ada}}
      - send: {{from: ada, data: {{text: ping}}}}
      - expect: {{send: {{to: ada, data: {{text: pong}}}}}}
"""


def _schema_path(name: str, target: Path) -> str:
    from runner.botfile.sections import schemas_dir
    schema_file = schemas_dir() / name
    try:
        return os.path.relpath(schema_file, target.resolve().parent)
    except ValueError:
        return str(schema_file)


def new_bot(name: str, *, force: bool = False) -> int:
    target = Path(name if name.endswith(BOT_SUFFIXES) else f"{name}.yaml")
    stem = target.stem
    if not stem.replace("-", "_").isidentifier():
        click.echo(f"error: '{stem}' is not a good bot name: use letters, digits, '-' and '_'", err=True)
        return 1
    test = target.with_name(f"{stem}.test.yaml")
    for path in (target, test):
        if path.exists() and not force:
            click.echo(f"error: {path} already exists (use --force to overwrite)", err=True)
            return 1
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(STARTER.format(schema=_schema_path("bot.schema.json", target), name=stem,
                                     title=stem.replace("_", " ").title(), file=target))
    test.write_text(STARTER_TEST.format(schema=_schema_path("test.schema.json", test), name=stem, file=test,
                                        bot=target.name))
    click.echo(f"wrote {target}; run it with: lkrun {target}")
    click.echo(f"wrote {test}; run its tests with: lkrun test {test}")
    return 0

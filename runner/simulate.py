"""``lkrun simulate``: run one event's actions without a room and print what would happen."""

from __future__ import annotations

import asyncio
import json

import click

from .engine import Run, SessionState, event_variables
from .errors import ConfigError


class PrintEffects:
    """Effects that describe themselves instead of touching a room."""

    def __init__(self, secrets=frozenset()):
        self.secrets = secrets
        self.lines: list[str] = []

    def _out(self, text: str) -> None:
        from .env import mask
        line = mask(text, self.secrets)
        self.lines.append(line)
        click.echo(line)

    @staticmethod
    def _to(ids) -> str:
        return "everyone" if not ids else ", ".join(ids)

    async def say(self, text):
        self._out(f"say: {text}")

    async def play(self, path):
        self._out(f"play: {path.name}")

    async def send(self, data, to, after_speech):
        from .engine import encode_packet
        payload = encode_packet(data)
        shown = json.dumps(payload, ensure_ascii=False) if isinstance(payload, dict) else payload
        self._out(f"send to {self._to(to)}{' (after speech)' if after_speech else ''}: {shown}")

    async def chat(self, text, to):
        self._out(f"chat to {self._to(to)}: {text}")

    async def llm(self, messages, run):
        for message in messages:
            self._out(f"llm append ({message.get('role')}): {message.get('content')}")
        if run:
            self._out("llm: run (the reply is not generated in simulate)")

    async def interrupt(self):
        self._out("interrupt")

    async def end(self, now):
        self._out("end" + (" now" if now else " (after queued speech)"))

    async def mute(self, participant, muted):
        self._out(f"{'mute' if muted else 'unmute'}: {participant}")

    async def set_metadata(self, metadata):
        self._out(f"set_metadata: {metadata}")

    async def log(self, message, level):
        self._out(f"log ({level}): {message}")

    async def http(self, url, method, body, headers, timeout):
        self._out(f"http {method} {url}" + (f" json={json.dumps(body)}" if body else "") + " (not sent)")
        return {"status": 0, "json": None, "text": ""}

    async def wait(self, seconds):
        self._out(f"wait: {seconds:g} s (not waited in simulate)")

    def state_changed(self, scope, participant, values):
        shown = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in values.items())
        self._out(f"set ({scope if scope == 'room' else 'participant ' + str(participant)}): {shown}")

    async def dtmf(self, digits):
        self._out(f"dtmf: {digits}")


async def simulate(spec, event: str, *, participant=None, name=None, data=None, text=None,
                   state: SessionState | None = None, effects=None):
    handler = spec.on.get(event)
    effects = effects or PrintEffects(spec.secrets)
    state = state or SessionState()
    others = [participant] if participant else []
    groups = None
    nodes = handler.actions if handler else ()
    if handler and handler.triggers:
        if event == "user_said":
            match = next(((t, m) for t in handler.triggers if (m := t.pattern.search(text or ""))), None)
            if match is None:
                effects._out(f"no user_said pattern matched {text!r}: the turn goes to the LLM")
                return effects
            nodes, groups = match[0].actions, list(match[1].groups())
        else:
            nodes = tuple(node for trigger in handler.triggers for node in trigger.actions)
    variables = event_variables(event, participant, name=name, payload=data if event == "data_received" else None,
                                message=_json_or_empty(data) if event == "app_message" else None,
                                text=text, digit=data if event == "dtmf_event" else None, groups=groups)
    run = Run(spec, state, effects, event, variables, participant, others)
    entry = await run.execute(nodes)
    if entry.error:
        effects._out(f"error: {entry.error}")
    return effects


def _json_or_empty(data):
    try:
        value = json.loads(data or "")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def simulate_cli(bot, event, *, participant, name, data, text, allow_missing_env) -> int:
    from .check import check_file
    from .errors import did_you_mean
    from .events import EVENTS
    try:
        spec = check_file(bot, allow_missing_env=allow_missing_env)
    except ConfigError as exc:
        click.echo(exc.render(), err=True)
        return 1
    if event not in EVENTS:
        click.echo(f"error: unknown event '{event}'{did_you_mean(event, EVENTS.names())}", err=True)
        return 1
    if event not in spec.on:
        click.echo(f"{bot} has no actions for '{event}'")
        return 0
    effects = asyncio.run(simulate(spec, event, participant=participant, name=name, data=data, text=text))
    return 1 if any(line.startswith("error:") for line in effects.lines) else 0

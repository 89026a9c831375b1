"""``lkrun simulate``: run one event's actions without a room and print what would happen."""

from __future__ import annotations

import json
from pathlib import Path

import click

from runner.runtime.engine import Run, event_variables
from runner.runtime.state import SessionState
from runner.botfile.errors import did_you_mean
from runner.botfile.events import EVENTS


LEAVING = frozenset({"participant_left", "participant_disconnected"})  # the person is gone already
# variables that come from somewhere else than the event, and the option that sets them
NOT_A_VAR = {"state": "--state", "room": "--others (room.participants) or the bot file (room.name)",
             "participant.state": "--participant-state", "bot": "the bot file", "vars": "the bot file",
             "now": "the clock", "event": "the EVENT argument", "results": "the run's http actions"}


class SimulateInputError(ValueError):
    """A simulate option that does not fit the event (printed as one line, exit 2)."""


class PrintEffects:
    """Effects (``runtime.effects.Effects``) that describe themselves instead of touching a room."""

    def __init__(self, secrets=frozenset()):
        self.secrets = secrets
        self.lines: list[str] = []
        self.errors = 0
        self.prefix = ""  # "  " under an idle/timer step's label

    def _emit(self, line: str, err: bool = False) -> None:
        click.echo(line, err=err)

    def _out(self, text: str, err: bool = False) -> None:
        from runner.botfile.env import mask
        line = mask(self.prefix + text, self.secrets)
        self.lines.append(line)
        self._emit(line, err)

    @staticmethod
    def _to(ids) -> str:
        return "everyone" if not ids else ", ".join(ids)

    async def say(self, text: str) -> None:
        self._out(f"say: {text}")

    async def play(self, path: Path) -> None:
        self._out(f"play: {path.name}")

    async def send(self, data: str | dict, to: list[str] | None, after_speech: bool) -> None:
        from runner.runtime.engine import encode_packet
        payload = encode_packet(data)
        shown = json.dumps(payload, ensure_ascii=False) if isinstance(payload, dict) else payload
        self._out(f"send to {self._to(to)}{' (after speech)' if after_speech else ''}: {shown}")

    async def chat(self, text: str, to: list[str] | None) -> None:
        self._out(f"chat to {self._to(to)}: {text}")

    async def llm(self, messages: list[dict], run: bool) -> None:
        for message in messages:
            self._out(f"llm append ({message.get('role')}): {message.get('content')}")
        if run:
            self._out("llm: run (the reply is not generated in simulate)")

    async def interrupt(self) -> None:
        self._out("interrupt")

    async def end(self, now: bool, hangup: bool = False) -> None:
        self._out("end" + (" and hang up (the room is deleted)" if hangup else " now" if now
                           else " (after queued speech)"))

    async def mute(self, participant: str, muted: bool) -> None:
        self._out(f"{'mute' if muted else 'unmute'}: {participant}")

    async def set_metadata(self, metadata: str) -> None:
        self._out(f"set_metadata: {metadata}")

    async def log(self, message: str, level: str) -> None:
        self._out(f"log ({level}): {message}")

    async def http(self, url: str, method: str, body: dict | None, headers: dict,
                   timeout: float) -> dict:
        self._out(f"http {method} {url}" + (f" json={json.dumps(body)}" if body else "") + " (not sent)")
        return {"status": 0, "json": None, "text": ""}

    async def wait(self, seconds: float) -> None:
        self._out(f"wait: {seconds:g} s (simulate does not wait)")

    async def speech_finished(self) -> None:
        pass  # nothing is spoken in simulate

    def state_changed(self, scope: str, participant: str | None, values: dict) -> None:
        where = "state" if scope == "room" else "participant.state"
        shown = ", ".join(f"{where}.{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in values.items())
        self._out(f"set: {shown}" + (f" ({participant})" if scope != "room" else ""))

    async def dtmf(self, digits: str) -> None:
        self._out(f"dtmf: {digits}")

    async def dial(self, number: str, trunk: str, identity: str | None, name: str | None,
                   wait_until_answered: bool, timeout: float | None) -> dict:
        who = ", ".join(f"{k} {v}" for k, v in (("as", identity), ("named", name)) if v)
        waits = (f", waiting up to {timeout:g} s for an answer" if timeout else ", waiting for an answer") \
            if wait_until_answered else ""
        self._out(f"dial {number} through trunk {trunk}{' ' + who if who else ''}{waits} (not dialled)")
        return {"identity": identity or f"sip_{number}", "participant_id": None, "sip_call_id": None, "room": None}

    async def transfer(self, participant: str, to: str, play_dialtone: bool) -> None:
        self._out(f"transfer {participant} to {to}{' (with a dial tone)' if play_dialtone else ''} (not transferred)")

    async def hangup(self, participant: str) -> None:
        self._out(f"hangup: {participant} (not removed from the room)")


def parse_value(raw: str):
    """A --var / --state value: JSON when it parses (2, true, {"a": 1}, "quoted"), else the text."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _blank(name: str, shape):
    """What a declared but unset variable reads as: null, {} for `message`, a shape's fields as nulls."""
    if name == "message":
        return {}
    if isinstance(shape, dict):
        return {key: _blank("", inner) for key, inner in shape.items() if key != "state"}
    return None


def _apply_var(event, variables: dict, dotted: str, value) -> None:
    path = dotted.split(".")
    top, declared = path[0], EVENTS[event].variables
    source = NOT_A_VAR.get(".".join(path[:2])) or (NOT_A_VAR.get(top) if top not in declared else None)
    if source:
        raise SimulateInputError(f"--var {dotted}: '{top}' is not an event variable; it comes from {source}")
    if top not in declared or not all(path):
        names = ", ".join(declared) or "none"
        raise SimulateInputError(f"--var {dotted}: '{event}' has no variable '{top}'"
                                 f"{did_you_mean(top, declared)} (its variables: {names})")
    target = variables
    for key in path[:-1]:
        if not isinstance(target.get(key), dict):
            target[key] = {}
        target = target[key]
    target[path[-1]] = value


def event_inputs(event: str, *, participant=None, name=None, data=None, text=None, digit=None,
                 variables=None, groups=None) -> tuple[dict, str | None]:
    """The event's template variables from simulate's options -> (variables, participant identity)."""
    declared = EVENTS[event].variables
    who = participant if "participant" in declared else None
    payload = data if data is not None else text
    found = event_variables(
        event, who, name=name, groups=groups,
        payload=payload if event == "data_received" else None,
        message=_json_object(payload) if event == "app_message" else None,
        text=text if "text" in declared else None,
        digit=(digit if digit is not None else data) if event == "dtmf_event" else None)
    for key, shape in declared.items():  # missing fields read as null (docs/bot-spec.md section 3)
        blank = _blank(key, shape)
        if found.get(key) is None:
            found[key] = blank
        elif isinstance(blank, dict) and isinstance(found[key], dict):
            found[key] = {**blank, **found[key]}
    for dotted, value in (variables or {}).items():
        _apply_var(event, found, dotted, value)
    if "participant" in found:
        who = found["participant"].get("id")
    return found, who


def _json_object(data):
    try:
        value = json.loads(data or "")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _steps(spec, handler, event: str, text):
    """[(label, nodes, groups)] to run, or a one-line reason nothing runs."""
    if not handler.triggers:
        return [(None, handler.actions, None)] if handler.actions else f"the '{event}' list is empty"
    if event == "user_said":
        for trigger in handler.triggers:
            if (match := trigger.pattern.search(text or "")) is not None:
                return [(None, trigger.actions, list(match.groups()))]
        hint = ("give the words with --text" if text is None else "the turn goes to the LLM"
                if spec.stage("llm") else "the bot has no llm stage, so nothing answers")
        return f"no user_said pattern matched {text or ''!r} ({hint})"
    if event == "idle":
        ordered = sorted(handler.triggers, key=lambda t: t.after)  # as the live idle clock fires them
        return [(f"after {t.after:g} s:", t.actions, None) for t in ordered]
    return [(_timer_label(t), t.actions, None) for t in handler.triggers]


def _timer_label(trigger) -> str:
    if trigger.after is not None and trigger.every:
        return f"after {trigger.after:g} s, then every {trigger.every:g} s:"
    return f"after {trigger.after:g} s (once):" if trigger.after is not None else f"every {trigger.every:g} s:"


async def simulate(spec, event: str, *, participant=None, name=None, data=None, text=None, digit=None,
                   variables=None, others=(), state: SessionState | None = None, effects=None):
    effects = effects or PrintEffects(spec.secrets)
    state = state or SessionState()
    handler = spec.on.get(event)
    if handler is None:
        effects._out(f"{spec.file} has no actions for '{event}'")
        return effects
    steps = _steps(spec, handler, event, text)
    if isinstance(steps, str):
        effects._out(f"no actions ran: {steps}")
        return effects
    for label, nodes, groups in steps:
        found, who = event_inputs(event, participant=participant, name=name, data=data, text=text,
                                  digit=digit, variables=variables, groups=groups)
        me = who if "participant" in found else participant
        people = list(dict.fromkeys(p for p in [me, *others] if p))
        if event in LEAVING:
            people = [p for p in people if p != who]
        effects.prefix = ""
        if label:
            effects._out(label)
            effects.prefix = "  "
        shown = len(effects.lines)
        entry = await Run(spec, state, effects, event, found, who, people).execute(nodes)
        if entry.error:
            effects.errors += 1
            effects.prefix = ""  # compiler-style: file:line:col first
            effects._out(entry.error, err=True)
            if "error" in spec.on and event != "error":
                effects._out(f"in a room, 'error' runs next: lkrun simulate {spec.file} error "
                             f"--var error.message=...", err=True)
        elif len(effects.lines) == shown:
            names = ", ".join(dict.fromkeys(f"{step[0]} at line {step[1]}" for step in entry.steps))
            count = len(entry.steps)
            effects._out(f"ran {count} action{'s' * (count != 1)} ({names}), nothing to show")
        effects.prefix = ""
    return effects

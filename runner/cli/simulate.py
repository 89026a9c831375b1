"""``lkrun simulate``: the command's options, checked, then one run of runner.runtime.simulate."""

from __future__ import annotations

import asyncio

import click

from runner.runtime.simulate import SimulateInputError, event_inputs, parse_value, simulate
from runner.runtime.state import SessionState
from runner.botfile.errors import ConfigError, did_you_mean
from runner.botfile.events import EVENTS


def _object_option(option: str, raw):
    if raw is None:
        return None
    value = parse_value(raw)
    if not isinstance(value, dict):
        raise SimulateInputError(f"{option} needs a JSON object such as '{{\"count\": 2}}', got {raw!r}")
    return value


def _unused_options(event: str, given: dict) -> list[str]:
    declared = EVENTS[event].variables
    uses = {"--text": "text" in declared or event in ("data_received", "app_message"),
            "--data": event in ("data_received", "app_message", "dtmf_event"),
            "--digit": event == "dtmf_event", "--participant-state": "participant" in declared}
    return [f"note: '{event}' does not use {option}; ignored" for option, value in given.items()
            if value is not None and not uses[option]]


def simulate_cli(bot, event, *, participant, name, data, text, allow_missing_env, digit=None,
                 assignments=(), others=(), room_state=None, participant_state=None, node=None) -> int:
    from runner.botfile.check import check_file
    try:
        spec = check_file(bot, allow_missing_env=allow_missing_env)
    except ConfigError as exc:
        click.echo(exc.render(), err=True)
        return 1
    for warning in spec.warnings:
        click.echo(warning.render(), err=True)
    if event not in EVENTS:
        click.echo(f"error: unknown event '{event}'{did_you_mean(event, EVENTS.names())}", err=True)
        return 1
    try:
        if data is not None and text is not None and event in ("data_received", "app_message"):
            raise SimulateInputError(f"give the '{event}' payload once: --text or --data")
        variables = {}
        for item in assignments:
            key, sep, raw = item.partition("=")
            if not sep or not key.strip():
                raise SimulateInputError(f"--var needs NAME=VALUE, got {item!r}")
            variables[key.strip()] = parse_value(raw)
        state = SessionState(room=_object_option("--state", room_state) or {})
        seeded = _object_option("--participant-state", participant_state)
        for note in _unused_options(event, {"--text": text, "--data": data, "--digit": digit,
                                            "--participant-state": participant_state}):
            click.echo(note, err=True)
        _, who = event_inputs(event, participant=participant, name=name, data=data, text=text,
                              digit=digit, variables=variables)  # bad --var names fail before anything runs
        if seeded and who:
            state.participants[who] = seeded
    except SimulateInputError as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    if node is not None or (event == "node_entered" and spec.flow is not None):
        return _simulate_node(spec, event, node, participant, name, others, state)
    effects = asyncio.run(simulate(spec, event, participant=participant, name=name, data=data, text=text,
                                   digit=digit, variables=variables, others=others, state=state))
    return 1 if effects.errors else 0


def _simulate_node(spec, event, node, participant, name, others, state) -> int:
    from runner.runtime.simulate import PrintEffects
    from runner.runtime.simulate_flow import simulate_node
    if spec.flow is None or event != "node_entered":
        click.echo("error: --node is for 'node_entered' in a bot with a flow: section", err=True)
        return 2
    node = node or spec.flow.initial_node
    if node not in spec.flow.nodes:
        click.echo(f"error: there is no node named '{node}'{did_you_mean(node, spec.flow.nodes)}", err=True)
        return 2
    effects = asyncio.run(simulate_node(spec, node, PrintEffects(spec.secrets), participant=participant,
                                        name=name, others=others, state=state))
    return 1 if effects.errors else 0

"""Adding an event or a top-level section is one registry entry: everything else follows.

Each test registers a dummy entry through the registry API only (no edits to other modules),
checks that the schema, `lkrun events`, did-you-mean, the checker, `simulate` and the runtime
see it, and unregisters it.
"""

from __future__ import annotations

import asyncio

import pytest
from click.testing import CliRunner

from runner.botfile.check import check_document
from runner.botfile.errors import ConfigError
from runner.botfile.events import EVENTS, PARTICIPANT
from runner.botfile.registry import EventDef
from runner.botfile.templates import LEAF
from runner.botfile.yamlsafe import load_text

HEAD = "version: 1\nname: ext\nlivekit: {room: r, identity: ext}\n"


def spec_of(text: str):
    return check_document(load_text(HEAD + text, "bot.yaml"), environ={}, dotenv={})


@pytest.fixture
def dummy_event():
    entry = EVENTS.register(EventDef(
        name="hand_raised", doc="a person raised their hand", variables={**PARTICIPANT, "level": LEAF},
        pipecat="on_hand_raised", per_participant=True, activity=True, untrusted=True,
        from_args=lambda pid, level, *_: (pid, {"level": level})))
    yield entry
    EVENTS.unregister(entry.name)


BOT = """\
on:
  hand_raised:
    - send: {to: "{{ participant.id }}", data: "hand {{ level }} from {{ participant.id }}"}
"""


def test_a_new_event_is_in_the_schema_the_docs_and_did_you_mean(dummy_event):
    from runner.botfile import schema
    from runner.cli.main import main
    assert "hand_raised" in schema.build()["properties"]["on"]["properties"]
    listing = CliRunner().invoke(main, ["events"]).stdout
    assert "hand_raised" in listing and "a person raised their hand" in listing
    with pytest.raises(ConfigError) as caught:
        spec_of("on:\n  hand_raisd:\n    - log: hi\n")
    assert "unknown event 'hand_raisd' (did you mean 'hand_raised'?)" in caught.value.render()
    with pytest.raises(ConfigError) as caught:  # its variables are checked like any other event's
        spec_of("on:\n  hand_raised:\n    - log: \"{{ levle }}\"\n")
    assert "levle" in caught.value.render()


async def test_a_new_event_simulates(dummy_event):
    from runner.runtime.simulate import PrintEffects, simulate

    class Quiet(PrintEffects):
        def _out(self, text):
            self.lines.append(text)

    effects = Quiet()
    await simulate(spec_of(BOT), "hand_raised", participant="ada", variables={"level": 2}, effects=effects)
    assert effects.lines == ["send to ada: hand 2 from ada"]


async def test_a_new_event_fires_from_its_transport_hook(dummy_event):
    """The wiring reads the registry: the hook's handler builds the participant and variables."""
    from runner.runtime.scheduler import Dispatcher
    from runner.runtime.state import SessionState
    from runner.runtime.timers import IdleClock
    from runner.runtime.trace import Trace
    from runner.runtime.wiring import wire_registry_events

    sent = []

    class Effects:
        async def send(self, data, to, after_speech):
            sent.append((data, to))

    class Bot:
        spec, state, trace, idle, effects = spec_of(BOT), SessionState(), Trace(), IdleClock(), Effects()

        @staticmethod
        def participants():
            return ["ada"]

    class Transport:
        handlers: dict = {}

        def add_event_handler(self, name, handler):
            self.handlers[name] = handler

    transport, bot = Transport(), Bot()
    bot.idle.fired.add(0)
    dispatcher = Dispatcher(bot)
    wire_registry_events(transport, dispatcher.fire)
    await transport.handlers["on_hand_raised"](transport, "ada", 3)
    for _ in range(100):
        if sent:
            break
        await asyncio.sleep(0.01)
    assert sent == [("hand 3 from ada", ["ada"])]
    assert not bot.idle.fired  # declared activity: idle started over
    await dispatcher.stop()


@pytest.fixture
def dummy_section():
    from runner.botfile.registry import SectionDef
    from runner.botfile.sections import SECTIONS
    entry = SECTIONS.register(SectionDef(
        name="branding", doc="colours for the playground",
        schema={"type": "object", "additionalProperties": False,
                "properties": {"color": {"enum": ["red", "blue"]}, "motto": {"type": "string"}}},
        default={}, live=True, templates=True))
    yield entry
    SECTIONS.unregister(entry.name)


def test_a_new_section_is_checked_and_reaches_the_spec(dummy_section):
    from runner.botfile import schema
    from runner.botfile.templates import render_value
    spec = spec_of("vars: {who: ada}\nbranding: {color: red, motto: \"hi {{ vars.who }}\"}\n")
    assert render_value(dict(spec.sections["branding"]), {"vars": {"who": "ada"}}) == \
        {"color": "red", "motto": "hi ada"}
    assert spec_of("").sections["branding"] == {}  # the default
    assert {"enum": ["red", "blue"]} in schema.build()["properties"]["branding"]["properties"]["color"]["anyOf"]
    with pytest.raises(ConfigError) as caught:
        spec_of("branding: {colour: red}\nbrandng: {}\n")
    text = caught.value.render()
    assert "bot.yaml:4:12: error: unknown key 'colour' in branding (did you mean 'color'?)" in text
    assert "unknown top-level key 'brandng' (did you mean 'branding'?)" in text
    with pytest.raises(ConfigError) as caught:
        spec_of("branding: {motto: \"{{ vars.nope }}\"}\n")
    assert "nope" in caught.value.render()


def test_a_live_section_reloads_in_place(dummy_section):
    from runner.host.reload import diff
    old = spec_of("branding: {color: red}\n")
    new = spec_of("branding: {color: blue}\n")
    assert diff(old, new) == {"tier": "live", "changes": ["branding"], "settings": {}}

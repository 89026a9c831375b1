"""One Effects protocol: every `run.effects.<name>` an action uses exists, with the same
signature, in the Protocol, the live room (LiveEffects), `lkrun simulate` (PrintEffects) and
the test doubles' base (NullEffects); and the implementations define nothing the Protocol lacks."""

from __future__ import annotations

import ast
import inspect
import textwrap

import pytest

from runner.botfile.actions import ACTIONS
from runner.botfile.registry import ActionDef
from runner.runtime.effects import Effects, LiveEffects, NullEffects
from runner.runtime.simulate import PrintEffects

IMPLEMENTATIONS = (LiveEffects, PrintEffects, NullEffects)
PROTOCOL_METHODS = sorted(name for name, value in vars(Effects).items()
                          if not name.startswith("_") and inspect.isfunction(value))


def effects_used(run) -> set[str]:
    """Names of ``<context>.effects.<name>`` in a run function's source (its first parameter
    is the run context, whatever it is called)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(run)))
    function = next(node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)))
    context = function.args.args[0].arg
    return {node.attr for node in ast.walk(function)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
            and node.value.attr == "effects" and isinstance(node.value.value, ast.Name)
            and node.value.value.id == context}


def _parameters(function) -> list:
    return list(inspect.signature(function).parameters.values())[1:]  # without self


def _shown(function) -> str:
    signature = inspect.signature(function)
    return str(signature.replace(parameters=_parameters(function)))


def problems(action: ActionDef, classes=(Effects, *IMPLEMENTATIONS)) -> list[str]:
    """What is wrong between this action's effects and the classes, one line each."""
    found = []
    for name in sorted(effects_used(action.run)):
        wanted = getattr(Effects, name, None)
        for cls in classes:
            method = getattr(cls, name, None)
            if not callable(method):
                found.append(f"{cls.__name__} lacks {name} (used by action '{action.name}')")
            elif wanted is not None and cls is not Effects:
                if _parameters(method) != _parameters(wanted):
                    found.append(f"{cls.__name__}.{name}{_shown(method)} differs from "
                                 f"Effects.{name}{_shown(wanted)}")
                if inspect.iscoroutinefunction(method) != inspect.iscoroutinefunction(wanted):
                    found.append(f"{cls.__name__}.{name} is {'' if inspect.iscoroutinefunction(method) else 'not '}"
                                 f"async, unlike Effects.{name}")
    return found


def test_the_check_sees_what_actions_use():
    assert effects_used(ACTIONS["send"].run) == {"send"}
    assert effects_used(ACTIONS["set"].run) == {"state_changed"}
    assert effects_used(ACTIONS["if"].run) == set()  # nested actions run through run_actions
    assert {"mute"} == effects_used(ACTIONS["unmute"].run)


@pytest.mark.parametrize("name", [entry.name for entry in ACTIONS if entry.run is not None])
def test_every_action_s_effects_exist_everywhere_with_one_signature(name):
    assert problems(ACTIONS[name]) == []


def test_all_used_effects_together_are_the_protocol():
    from runner.runtime import waits
    used = set().union(*(effects_used(entry.run) for entry in ACTIONS if entry.run is not None))
    used |= {"speech_finished"} if "effects.speech_finished()" in inspect.getsource(waits) else set()
    assert used == set(PROTOCOL_METHODS)  # the protocol lists nothing no action (or wait) needs


@pytest.mark.parametrize("cls", IMPLEMENTATIONS, ids=lambda c: c.__name__)
def test_implementations_define_exactly_the_protocol(cls):
    public = {name for name, value in vars(cls).items()
              if not name.startswith("_") and inspect.isfunction(value)}
    assert public == set(PROTOCOL_METHODS), f"{cls.__name__} drifted from Effects"
    for name in PROTOCOL_METHODS:
        assert _parameters(getattr(cls, name)) == _parameters(getattr(Effects, name)), name
        assert inspect.iscoroutinefunction(getattr(cls, name)) == inspect.iscoroutinefunction(
            getattr(Effects, name)), name
        assert (getattr(Effects, name).__doc__ or "").strip(), f"Effects.{name} has no docstring"
    assert isinstance(cls.__new__(cls), Effects)  # runtime_checkable: the names are all there


def test_a_new_action_with_an_effect_nobody_implements_is_reported():
    async def _teleport(run, body):
        await run.effects.teleport(str(body["where"]))

    ACTIONS.register(ActionDef(name="teleport_test", doc="move the bot (test only)",
                               body={"type": "object", "properties": {"where": {"type": "string"}}},
                               run=_teleport))
    try:
        found = problems(ACTIONS["teleport_test"])
    finally:
        ACTIONS.unregister("teleport_test")
    assert "teleport_test" not in ACTIONS
    assert "PrintEffects lacks teleport (used by action 'teleport_test')" in found
    assert [line.split(" lacks")[0] for line in found] == ["Effects", "LiveEffects", "PrintEffects", "NullEffects"]


def test_a_signature_that_drifts_is_reported():
    class Drifted(PrintEffects):
        async def send(self, data, to):  # after_speech forgotten
            pass

    found = problems(ACTIONS["send"], classes=(Effects, Drifted))
    assert len(found) == 1 and found[0].startswith("Drifted.send(data, to) differs from Effects.send(")

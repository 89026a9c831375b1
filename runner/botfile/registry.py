"""Registries: the one place that names what a user can write.

Everything user-visible is derived from these tables: the JSON Schema, the validator's
dispatch and did-you-mean lists, ``lkrun events|actions|stages`` and the docs.
Adding an action is one ``ActionDef`` in ``actions.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Generic, Iterator, TypeVar

TEMPLATE = {"type": "string", "pattern": r"^\s*\{\{[\s\S]*\}\}\s*$",
            "description": "a Jinja template that is exactly one {{ expression }}"}


def templated(schema: dict) -> dict:
    """A non-string field that may also be a ``{{ expression }}`` giving the value at run time."""
    return {"anyOf": [schema, {"$ref": "#/$defs/template"}]}


@dataclass(frozen=True)
class ActionDef:
    name: str
    doc: str
    body: dict  # JSON Schema of the normalised body (always an object)
    shorthand: str | None = None  # a scalar/list body means {shorthand: value}
    companions: dict = field(default_factory=dict)  # extra keys beside the action key -> schema
    nested: tuple = ()  # paths (from the action item) of nested action lists; '*' = every index
    needs: str | None = None  # a pipeline capability: 'tts', 'llm', 'audio_out'
    example: str = ""
    run: Callable | None = None  # async (run_context, item) -> None; set by engine modules
    # extra static check: (body, report(path, msg, hint), context: CheckContext) -> None
    check: Callable | None = None
    # paths (in the normalised body) of fields that are conditions: each must be exactly one
    # {{ expression }} (a plain non-empty string would always be true); '*' = every index
    conditions: tuple = ()


@dataclass(frozen=True)
class CheckContext:
    """What an ``ActionDef.check`` may know besides the action's body: the bot file being checked
    (its raw data, e.g. its ``livekit:`` section), what the bot's pipeline can do (``capabilities``:
    stage kinds such as 'stt', 'tts', 'llm', and 'audio_out'), the event (or script/tool label)
    whose actions these are, and whether such a run belongs to a person (``person``: True for a
    person's event, False for a bot's own such as ``timer``, None when not known: a script, a tool)."""

    file: dict
    capabilities: frozenset = frozenset()
    event: str = ""
    person: bool | None = None


@dataclass(frozen=True)
class EventDef:
    name: str
    doc: str
    variables: dict  # template variables beyond the common ones (shape, see templates.LEAF)
    kind: str = "actions"  # or "triggers"
    trigger: dict | None = None  # JSON Schema of one trigger (for kind == "triggers")
    pipecat: str | None = None  # the LiveKitTransport event it comes from
    needs: str | None = None
    warning: str | None = None
    per_participant: bool = False
    # how the runtime treats it (the scheduler and the transport wiring read these, not hand lists)
    untrusted: bool = False  # carries what other people send: rate-limited per sender
    activity: bool = False  # a person did something: idle starts over
    bot_speech: bool = False  # the bot spoke: idle's quiet time restarts, its steps do not
    once: str | None = None  # "participant": once per identity per session; "session": once per session
    leave: bool = False  # the person left: their runs stop; this event's runs see the room without them
    # runs after the bot has left the room (session_ended): actions that need the room are errors there
    after_leaving: bool = False
    # the raw transport hook's arguments (after the transport) -> (participant, variables); None = (pid, {})
    from_args: Callable | None = None


@dataclass(frozen=True)
class SectionDef:
    """A top-level key of the bot file. Built-in sections (``builtin``) have their own step in the
    checker; any other entry is checked against ``schema`` and lands in ``BotSpec.sections``."""

    name: str
    doc: str
    schema: dict | None = None  # JSON Schema of the value (built-ins: assembled by schema.py)
    default: object = None  # the value when the file leaves it out
    live: bool = False  # reload swaps it in place; otherwise an edit rejoins with a new generation
    templates: bool = False  # may hold {{ }} templates (with the common variables)
    builtin: bool = False


class StopRun(Exception):
    """Raised by an action's run function to end its run quietly (a `stop`, a wait that timed
    out): not a failure, no `error` event; the reason goes to the trace."""

    def __init__(self, reason: str = ""):
        self.reason = reason
        super().__init__(reason)


T = TypeVar("T")


class Registry(Generic[T]):
    """An ordered name -> entry table with a noun for messages."""

    def __init__(self, noun: str):
        self.noun = noun
        self._entries: dict[str, T] = {}

    def register(self, entry: T) -> T:
        name = entry.name  # type: ignore[attr-defined]
        if name in self._entries:
            raise ValueError(f"{self.noun} '{name}' registered twice")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def get(self, name: str) -> T | None:
        return self._entries.get(name)

    def __iter__(self) -> Iterator[T]:
        return iter(self._entries.values())

    def names(self) -> list[str]:
        return list(self._entries)

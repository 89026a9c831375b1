"""The typed, immutable result of a successful check: what the runtime is built from."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class ActionNode:
    """One action from the file: its name, compiled body, nested lists and where it was written."""

    name: str
    body: object  # the normalised body; template strings are compiled Templates
    nested: MappingProxyType  # path tuple -> tuple[ActionNode, ...]
    line: int
    col: int
    continue_on_error: bool = False  # `continue_on_error: true` beside the action: a failure is logged, the run goes on

    def branch(self, *path) -> tuple:
        return self.nested.get(tuple(path), ())


@dataclass(frozen=True)
class Trigger:
    """A user_said / idle / timer entry."""

    actions: tuple
    line: int
    pattern: re.Pattern | None = None
    cont: bool = False
    after: float | None = None
    every: float | None = None


@dataclass(frozen=True)
class Handler:
    event: str
    mode: str
    actions: tuple = ()  # ActionNode, for action events
    triggers: tuple = ()  # Trigger, for trigger events
    line: int = 1


@dataclass(frozen=True)
class ToolSpec:
    """An LLM function whose handler is an action list."""

    name: str
    description: str
    parameters: dict
    actions: tuple
    result: object  # a compiled template or a literal


@dataclass(frozen=True)
class ScriptField:
    """One input of a script: `with:` gives it, else its default (a compiled value), else null."""

    description: str = ""
    required: bool = False
    default: object = None


@dataclass(frozen=True)
class ScriptSpec:
    """A named action list from `scripts:`, started by the `run` action with its fields as variables."""

    actions: tuple  # ActionNode
    fields: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))  # name -> ScriptField
    description: str = ""
    line: int = 0


@dataclass(frozen=True)
class StageSpec:
    kind: str  # vad | stt | llm | tts
    type: str
    body: dict = field(repr=False)  # constructor arguments and settings (api_key: never printed)
    line: int = 0


@dataclass(frozen=True)
class BotSpec:
    file: str
    name: str
    description: str
    livekit: dict = field(repr=False)  # may hold api_key/api_secret/token: never printed
    params: dict
    session: dict
    pipeline: tuple
    vars: dict
    on: MappingProxyType  # event name -> Handler
    tools: tuple = ()  # ToolSpec
    secrets: frozenset = field(default=frozenset(), repr=False)
    warnings: tuple = ()
    raw: dict = field(default_factory=dict, repr=False, compare=False)  # resolved data, for reload diffs
    sections: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))  # registered sections
    scripts: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))  # name -> ScriptSpec
    text_hash: str = ""
    flow: object = None  # FlowSpec (runner/botfile/flow_spec.py) when the file has `flow:`

    @property
    def identity(self) -> str:
        return self.livekit.get("identity") or self.name

    @property
    def room(self) -> str:
        return self.livekit["room"]

    def stage(self, kind: str) -> StageSpec | None:
        return next((s for s in self.pipeline if s.kind == kind), None)

    def capabilities(self) -> set[str]:
        caps = {s.kind for s in self.pipeline}
        if self.params.get("audio_out_enabled"):
            caps.add("audio_out")
        if self.params.get("audio_in_enabled"):
            caps.add("audio_in")
        return caps

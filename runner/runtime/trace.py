"""The trace: the last N event runs, for the debug log and the playground."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from enum import Enum


class RunOutcome(str, Enum):
    """How an event run ended (a str, so the trace stays plain JSON for the playground)."""

    OK = "ok"
    ERROR = "error"  # an action or template failed: the run stopped, `error` fired
    CANCELLED = "cancelled"  # the person it belonged to left, or the session ended
    DROPPED = "dropped"  # never ran: the sender was over session.rate_limit, or too many were queued

    def __str__(self) -> str:
        return self.value


@dataclass
class TraceEntry:
    time: float
    bot: str
    event: str
    participant: str | None
    steps: list = field(default_factory=list)  # (action, line, rendered, ms)
    outcome: RunOutcome = RunOutcome.OK
    error: str | None = None  # file:line:col: error in action 'x': message
    message: str | None = None  # the failure alone, without its position (for an LLM tool result)
    ms: float = 0.0
    note: str | None = None  # e.g. a first message held until its sender was announced
    dropped: int = 0  # outcome dropped: how many runs this entry stands for
    action: str | None = None  # the failing action (outcome error), with its line
    line: int | None = None


class Trace:
    """The last N event runs, for the debug log and the playground."""

    def __init__(self, size: int = 200):
        self.entries: deque[TraceEntry] = deque(maxlen=size)
        self.listeners: list = []

    def add(self, entry: TraceEntry) -> None:
        self.entries.append(entry)
        for listener in list(self.listeners):
            listener(entry)

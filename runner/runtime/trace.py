"""The trace: the last N event runs, for the debug log and the playground."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field


@dataclass
class TraceEntry:
    time: float
    bot: str
    event: str
    participant: str | None
    steps: list = field(default_factory=list)  # (action, line, rendered, ms)
    outcome: str = "ok"  # ok | error | cancelled | dropped
    error: str | None = None
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

"""The one config-error type: every problem a user can cause carries file:line:col.

A ``ConfigError`` holds one or more ``Problem``s so that a check can report every
mistake in one pass, sorted by position, like a compiler.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import asdict, dataclass, field
from typing import Iterable


@dataclass(frozen=True, order=True)
class Problem:
    """One located message. Lines and columns are 1-based (editors count that way)."""

    file: str
    line: int
    col: int
    message: str = field(compare=False)
    hint: str | None = field(default=None, compare=False)
    severity: str = field(default="error", compare=False)

    def render(self) -> str:
        text = f"{self.file}:{self.line}:{self.col}: {self.severity}: {self.message}"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text

    def as_dict(self) -> dict:
        return asdict(self)


class ConfigError(Exception):
    """Raised for anything wrong with a bot file; never a traceback for the user."""

    def __init__(self, problems: Problem | Iterable[Problem]):
        if isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = sorted(problems)
        super().__init__(self.render())

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    def render(self) -> str:
        return "\n".join(p.render() for p in self.problems)

    def to_json(self) -> str:
        return json.dumps([p.as_dict() for p in self.problems], indent=2)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' or '' -- the suffix every closed list uses."""
    matches = difflib.get_close_matches(str(word), sorted(set(choices)), n=1, cutoff=0.6)
    return f" (did you mean '{matches[0]}'?)" if matches else ""


def closest(word: str, choices: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(str(word), sorted(set(choices)), n=1, cutoff=0.6)
    return matches[0] if matches else None

"""Room- and participant-scoped session state: survives reloads and reconnects, reset by ``end``."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SessionState:
    """Room- and participant-scoped state: survives reloads and reconnects, reset by `end`."""

    room: dict = field(default_factory=dict)
    participants: dict = field(default_factory=dict)  # identity -> state dict
    joined: set = field(default_factory=set)  # identities whose join events already fired
    names: dict = field(default_factory=dict)  # identity -> {"name", "metadata"}
    carried: set = field(default_factory=set)  # people still in the room from the last session

    def participant(self, identity: str | None) -> dict:
        if identity is None:
            return {}
        return self.participants.setdefault(identity, {})

    def reset(self, carried=()) -> None:
        """A new session. People still in the room are carried over: not greeted again."""
        self.room.clear()
        self.participants.clear()
        self.joined.clear()
        self.carried = set(carried)
        for event in _once_events("participant"):
            self.joined.update((event, p) for p in self.carried)
        if self.carried:
            self.joined.update((event, None) for event in _once_events("session"))

    def prune_carried(self, present) -> None:
        """At the new session's connect: a carried person who left in between is new again."""
        present = set(present)
        per_person = _once_events("participant")
        for person in self.carried - present:
            self.joined.difference_update((event, person) for event in per_person)
        self.carried &= present
        if not self.carried and not any(k[0] in per_person for k in self.joined):
            self.joined.difference_update((event, None) for event in _once_events("session"))


def _once_events(scope: str) -> set[str]:
    """Join events that fire once per person ("participant") or once per session ("session")."""
    from runner.botfile.events import EVENTS
    return {e.name for e in EVENTS if e.once == scope}

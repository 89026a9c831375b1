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
        self.joined.update(("participant_connected", p) for p in self.carried)
        if self.carried:
            self.joined.add(("first_participant_joined", None))

    def prune_carried(self, present) -> None:
        """At the new session's connect: a carried person who left in between is new again."""
        present = set(present)
        for person in self.carried - present:
            self.joined.discard(("participant_connected", person))
        self.carried &= present
        if not self.carried and not any(k[0] == "participant_connected" for k in self.joined):
            self.joined.discard(("first_participant_joined", None))

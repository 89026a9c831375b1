"""The ``Effects`` protocol: everything an action may do to the world, and ``NullEffects``.

An action's run function (``botfile/actions*.py``) touches the world only through
``run.effects``: ``LiveEffects`` (the room, ``effects.py``), ``simulate.PrintEffects``
(``lkrun simulate``), the recorder of ``lkrun test``, or a test double built on
``NullEffects``. ``tests/test_effects_protocol.py`` checks every registered action against
all of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable


@runtime_checkable
class Effects(Protocol):
    """What an action may do to the world. Any failure raises: the run stops and ``error`` fires."""

    async def say(self, text: str) -> None:
        """Speak ``text`` through the tts stage (queued after speech already queued)."""

    async def play(self, path: Path) -> None:
        """Play an audio file; ``path`` is already resolved inside the bot's folder."""

    async def send(self, data: str | dict, to: list[str] | None, after_speech: bool) -> None:
        """Publish a data message (text or JSON object) to these identities (None: everyone)."""

    async def chat(self, text: str, to: list[str] | None) -> None:
        """Send a chat message on the lk.chat text stream to these identities (None: everyone)."""

    async def llm(self, messages: list[dict], run: bool) -> None:
        """Append ``{role, content}`` messages to the LLM context; ``run``: generate a reply now."""

    async def interrupt(self) -> None:
        """Stop the bot's current speech."""

    async def end(self, now: bool, hangup: bool = False) -> None:
        """End the session after queued speech (or ``now``); ``hangup`` deletes the room."""

    async def mute(self, participant: str, muted: bool) -> None:
        """Stop (``muted``) or resume receiving this participant's audio."""

    async def set_metadata(self, metadata: str) -> None:
        """Set the bot's own participant metadata."""

    async def wait(self, seconds: float) -> None:
        """Pause this run (0 to 3600 seconds, checked by the action)."""

    async def speech_finished(self) -> None:
        """Until the speech this run queued has finished playing (a wait_for's timeout starts then)."""

    def state_changed(self, scope: str, participant: str | None, values: dict) -> None:
        """``set`` stored these (masked) values in ``scope`` (room or participant); not awaited."""

    async def log(self, message: str, level: str) -> None:
        """Write ``message`` to lkrun's log at ``level`` (debug, info, warning, error)."""

    async def http(self, url: str, method: str, body: dict | None, headers: dict,
                   timeout: float) -> dict:
        """One request; returns ``{status, json, text}`` or raises ValueError with a short reason."""

    async def dtmf(self, digits: str) -> None:
        """Send these keypad tones (0-9, *, #, A-D)."""

    async def dial(self, number: str, trunk: str, identity: str | None, name: str | None,
                   wait_until_answered: bool, timeout: float | None) -> dict:
        """Call ``number`` through SIP trunk ``trunk`` into this room; returns ``{identity,
        participant_id, sip_call_id, room}``. ``timeout``: seconds of ringing (None: LiveKit's)."""

    async def transfer(self, participant: str, to: str, play_dialtone: bool) -> None:
        """Transfer this SIP participant's call to ``to`` (tel:... or sip:...)."""

    async def hangup(self, participant: str) -> None:
        """Remove this participant from the room (a phone caller's line drops)."""


class NullEffects:
    """Effects that do nothing: the base of test doubles, so a new effect is never missing from one."""

    async def say(self, text: str) -> None:
        pass

    async def play(self, path: Path) -> None:
        pass

    async def send(self, data: str | dict, to: list[str] | None, after_speech: bool) -> None:
        pass

    async def chat(self, text: str, to: list[str] | None) -> None:
        pass

    async def llm(self, messages: list[dict], run: bool) -> None:
        pass

    async def interrupt(self) -> None:
        pass

    async def end(self, now: bool, hangup: bool = False) -> None:
        pass

    async def mute(self, participant: str, muted: bool) -> None:
        pass

    async def set_metadata(self, metadata: str) -> None:
        pass

    async def wait(self, seconds: float) -> None:
        pass

    async def speech_finished(self) -> None:
        pass

    def state_changed(self, scope: str, participant: str | None, values: dict) -> None:
        pass

    async def log(self, message: str, level: str) -> None:
        pass

    async def http(self, url: str, method: str, body: dict | None, headers: dict,
                   timeout: float) -> dict:
        return {"status": 0, "json": None, "text": ""}

    async def dtmf(self, digits: str) -> None:
        pass

    async def dial(self, number: str, trunk: str, identity: str | None, name: str | None,
                   wait_until_answered: bool, timeout: float | None) -> dict:
        return {"identity": identity, "participant_id": None, "sip_call_id": None, "room": None}

    async def transfer(self, participant: str, to: str, play_dialtone: bool) -> None:
        pass

    async def hangup(self, participant: str) -> None:
        pass

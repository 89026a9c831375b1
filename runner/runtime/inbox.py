"""What people send, read from the LiveKit room itself: data packets, DTMF, chat text streams.

lkrun reads these from the room, not from pipecat's events, because pipecat loses the sender
of a packet that arrives before its sender was announced, and parses JSON that can raise.
Every message goes through ``Arrivals`` (held until its sender is announced) to the scheduler.
Handlers never raise: what other participants send is untrusted.
"""

from __future__ import annotations

import asyncio

from loguru import logger

from runner.runtime import room_hooks
from runner.runtime.arrivals import Arrivals
from runner.runtime.engine import parse_message

MAX_CHAT_BYTES = 64 * 1024  # a chat message longer than this is cut off while it is read, not after
MAX_PACKET_BYTES = 65536
ANNOUNCE_ATTRIBUTE = "lkrun.announce"  # deleting an attribute nobody has: no change, an immediate update


class Inbox:
    """One generation's incoming messages."""

    def __init__(self, bot):
        self.bot = bot
        self.fire = bot.dispatcher.fire
        joins = any(e in bot.spec.on for e in ("participant_connected", "first_participant_joined"))
        lookup, announce = server_calls(bot)
        self.arrivals = Arrivals(bot.spec.name, lookup, hold_for_joins=joins, announce=announce)
        self.reasons: dict[str, str] = {}  # who left -> LiveKit's disconnect reason

    def attach(self, room) -> None:
        """Listen on pipecat's room as soon as it exists (before it connects)."""
        sender = room_hooks.packet_sender(room, admits=self._admits)
        room.on("data_received", lambda packet: self._packet(packet, sender))
        room.on("sip_dtmf_received", lambda dtmf: self._dtmf(dtmf, sender))
        room.on("participant_disconnected", lambda p: self.reasons.__setitem__(p.identity, _reason_name(p)))
        room.on("participant_attributes_changed", self._attributes)  # pipecat has no hook for it

    def _admits(self, identity) -> bool:
        """A data packet from a sender already over session.rate_limit is dropped (and counted) before
        the SDK and pipecat handle it; never while a run waits for input (it may be the answer)."""
        dispatcher = self.bot.dispatcher
        if identity is None or dispatcher.waits.waiters or not dispatcher.limiter.over(identity):
            return True
        dispatcher.drops.add("data_received", identity, "the sender is over session.rate_limit")
        return False

    def _attributes(self, changed, participant) -> None:
        """A person's LiveKit attributes changed (a phone caller's sip.callStatus): remember them, fire
        participant_attributes_changed with what changed. lkrun's own announce nudge is not a change."""
        try:
            identity = participant.identity
            if identity == self.bot.spec.identity:  # the bot's own attributes
                return
            changed = {str(k): str(v) for k, v in dict(changed or {}).items() if k != ANNOUNCE_ATTRIBUTE}
            info = participant_info(participant)
        except Exception as exc:  # an SDK object in a shape we did not expect: never raise
            logger.debug(f"could not read an attributes change: {exc}")
            return
        if not changed:
            return

        def run(who, note):
            known = self.bot.state.names.setdefault(identity, info)
            known.update(attributes=info["attributes"], kind=info["kind"])
            self.fire("participant_attributes_changed", who, extra={"changed": changed}, note=note)
        self.arrivals.deliver(identity, run)

    def listen_for_chat(self, room) -> None:
        try:
            room.register_text_stream_handler("lk.chat", self._chat_stream)
        except ValueError:  # already registered on this room
            pass

    def _learn(self, pid) -> None:
        """A sender found through the server: their name and metadata as the server knows them."""
        names = self.bot.state.names
        if pid is not None and pid not in names and pid in self.arrivals.server_info:
            names[pid] = self.arrivals.server_info[pid]

    def _chat_stream(self, reader, participant_identity) -> None:
        async def read():
            try:
                text = await asyncio.wait_for(read_capped(reader), timeout=30)
            except Exception as exc:
                logger.warning(f"[{self.bot.spec.name}] could not read a chat message: {exc}")
                return
            self.arrivals.deliver(participant_identity or None,
                                  lambda who, note: self.fire("chat_received", who, text=text, note=note))
        asyncio.ensure_future(read())

    def _packet(self, packet, sender) -> None:
        identity = packet.participant.identity if packet.participant is not None else sender()
        payload = bytes(packet.data[:MAX_PACKET_BYTES])
        self.arrivals.deliver(identity, lambda who, note: self._fire_packet(who, payload, note))

    def _fire_packet(self, identity, payload: bytes, note) -> None:
        self._learn(identity)
        self.fire("data_received", identity, payload=payload, note=note)
        if "app_message" in self.bot.spec.on:
            _text, message = parse_message(payload)
            if message:
                self.fire("app_message", identity, message=message, note=note)

    def _dtmf(self, dtmf, sender) -> None:
        identity = dtmf.participant.identity if dtmf.participant is not None else sender()
        digit = str(dtmf.digit or dtmf.code or "")

        def run(who, note):
            self._learn(who)
            self.fire("dtmf_event", who, digit=digit, note=note)
        self.arrivals.deliver(identity, run)


def server_calls(bot):
    """-> (lookup, announce): who is in the room as the server sees it, and "announce these
    people now"; (None, None) without API credentials."""
    if bot.server.api_credentials(bot.spec) is None:
        return None, None

    async def lookup() -> dict:
        from livekit import api
        async with bot.server.api(bot.spec) as lkapi:
            answer = await lkapi.room.list_participants(api.ListParticipantsRequest(room=bot.spec.room))
        return {p.identity: {"name": p.name or None, "metadata": p.metadata or None}
                for p in answer.participants
                if p.identity != bot.spec.identity and not p.permission.hidden}

    async def announce(identities) -> None:
        from livekit import api
        async with bot.server.api(bot.spec) as lkapi:
            await asyncio.gather(*(lkapi.room.update_participant(api.UpdateParticipantRequest(
                room=bot.spec.room, identity=identity, attributes={ANNOUNCE_ATTRIBUTE: ""}))
                for identity in identities), return_exceptions=True)
    return lookup, announce


async def read_capped(reader) -> str:
    """Read a chat stream chunk by chunk, stopping at MAX_CHAT_BYTES (never the whole of it)."""
    parts, size = [], 0
    async for chunk in reader:
        size += len(chunk.encode("utf-8", "replace"))
        if size > MAX_CHAT_BYTES:
            close = getattr(reader, "_close", None)
            if close is not None:
                close()
            raise ValueError(f"the chat message is longer than {MAX_CHAT_BYTES // 1024} KiB; it was cut off")
        parts.append(chunk)
    return "".join(parts)


def participant_kind(participant) -> str | None:
    """LiveKit's participant kind as a word: standard, sip, agent, ingress, egress, connector, bridge."""
    try:
        from livekit import rtc
        name = rtc.ParticipantKind.Name(participant.kind)
    except Exception:
        return None
    return name.removeprefix("PARTICIPANT_KIND_").lower()


def participant_info(participant) -> dict:
    """What templates see of an SDK participant (``bot.state.names[identity]``)."""
    return {"name": participant.name or None, "metadata": participant.metadata or None,
            "kind": participant_kind(participant), "attributes": dict(participant.attributes or {})}


def _reason_name(participant) -> str:
    try:
        from livekit import rtc
        return rtc.DisconnectReason.Name(participant.disconnect_reason)
    except Exception:
        return "disconnected"

"""Wire pipecat's LiveKitTransport events (and LiveKit room hooks) to the bot's dispatcher.

Handlers are plain ``async def`` closures (pipecat never awaits callable objects) and
never raise: event data from other participants is untrusted.
"""

from __future__ import annotations

import asyncio

from loguru import logger

from runner.runtime.arrivals import Arrivals
from runner.runtime.effects import set_audio_subscribed
from runner.runtime import room_hooks
from runner.runtime.room_hooks import when_room_created

# why LiveKit closed the room on the bot -> the generation's outcome kind
STOP_REASONS = {"DUPLICATE_IDENTITY": "duplicate", "PARTICIPANT_REMOVED": "removed", "ROOM_DELETED": "removed"}
MAX_CHAT_BYTES = 64 * 1024  # a chat message longer than this is cut off while it is read, not after

# wired by hand below (the room itself, first messages, leave reasons); every other event with a
# transport hook is wired from its registry entry by wire_registry_events
CUSTOM = {"connected", "disconnected", "before_disconnect", "participant_connected", "first_participant_joined",
          "participant_left", "audio_track_subscribed", "active_speaker_changed", "data_received", "app_message",
          "dtmf_event"}


def wire_registry_events(transport, fire, skip=CUSTOM) -> None:
    """One generic handler per registered event with a transport hook (``EventDef.pipecat``)."""
    from runner.botfile.events import EVENTS
    for event in EVENTS:
        if event.pipecat is not None and event.name not in skip:
            transport.add_event_handler(event.pipecat, _generic_handler(event, fire))


def _generic_handler(event, fire):
    async def handler(_transport, *args):
        try:
            if event.from_args is not None:
                participant, variables = event.from_args(*args)
            else:
                participant, variables = (args[0] if args and event.per_participant else None), {}
        except Exception as exc:  # data from the SDK in a shape we did not expect: never raise
            logger.debug(f"could not read the arguments of {event.pipecat}: {exc}")
            return
        fire(event.name, participant, **({"extra": variables} if variables else {}))
    return handler


def wire_events(gen) -> None:
    bot, transport, worker = gen.bot, gen.transport, gen.worker
    fire = bot.dispatcher.fire
    me = bot.spec.identity

    def on(name):
        def register(fn):
            transport.add_event_handler(name, fn)
            return fn
        return register

    joins = any(e in bot.spec.on for e in ("participant_connected", "first_participant_joined"))
    lookup, announce = _server_calls(bot)
    arrivals = gen.arrivals = Arrivals(bot.spec.name, lookup, hold_for_joins=joins, announce=announce)
    reasons: dict[str, str] = {}

    def room_created(room) -> None:
        """lkrun reads data, DTMF and leave reasons from the room itself: with the sender's
        identity even before they are announced (pipecat's events lose it)."""
        sender = room_hooks.packet_sender(room)
        room.on("data_received", lambda packet: _packet(packet, sender))
        room.on("sip_dtmf_received", lambda dtmf: _dtmf(dtmf, sender))
        room.on("participant_disconnected", lambda p: reasons.__setitem__(p.identity, _reason_name(p)))

    when_room_created(transport, room_created)

    def learn(pid) -> None:
        """A sender found through the server: their name and metadata as the server knows them."""
        if pid is not None and pid not in bot.state.names and pid in arrivals.server_info:
            bot.state.names[pid] = arrivals.server_info[pid]

    def remember(pid: str) -> None:
        room = gen.room
        remote = room.remote_participants.get(pid) if room is not None else None
        if remote is not None:
            bot.state.names[pid] = {"name": remote.name or None, "metadata": remote.metadata or None}

    @on("on_connected")
    async def _connected(_transport):
        gen.room = transport._client.room
        gen.room.on("disconnected", _room_disconnected)
        gen.room.on("reconnecting", gen.sdk_reconnecting)
        gen.room.on("reconnected", gen.sdk_reconnected)
        try:
            gen.room.register_text_stream_handler("lk.chat", _chat_stream)
        except ValueError:
            pass
        if not bot.spec.params.get("audio_out_enabled"):
            # detached and bounded: an unpublish racing a disconnect never completes, and pipecat
            # waits for this handler before it can leave the room
            asyncio.ensure_future(_unpublish_silent_track(gen.room))
        gen.connected.set()
        bot.session_connected(p for p in gen.room.remote_participants if p != me)
        logger.info(f"[{bot.spec.name}] in room '{bot.spec.room}' as '{me}'")
        fire("connected")

    def _room_disconnected(reason=None):
        name = getattr(reason, "name", None) or str(reason)
        try:
            from livekit import rtc
            name = rtc.DisconnectReason.Name(reason)
        except Exception:
            pass
        kind = STOP_REASONS.get(name)
        if kind and gen.outcome is None:
            gen.finish(kind, name)
        elif gen.outcome is None and name != "CLIENT_INITIATED":
            gen.finish("lost", name)

    def _chat_stream(reader, participant_identity):
        async def read():
            try:
                text = await asyncio.wait_for(_read_capped(reader), timeout=30)
            except Exception as exc:
                logger.warning(f"[{bot.spec.name}] could not read a chat message: {exc}")
                return
            arrivals.deliver(participant_identity or None,
                             lambda who, note: fire("chat_received", who, text=text, note=note))
        asyncio.ensure_future(read())

    def _packet(packet, sender) -> None:
        identity = packet.participant.identity if packet.participant is not None else sender()
        payload = bytes(packet.data[:65536])
        arrivals.deliver(identity, lambda who, note: _fire_packet(who, payload, note))

    def _fire_packet(identity, payload: bytes, note) -> None:
        learn(identity)
        fire("data_received", identity, payload=payload, note=note)
        if "app_message" in bot.spec.on:
            from runner.runtime.engine import parse_message
            _text, message = parse_message(payload)
            if message:
                fire("app_message", identity, message=message, note=note)

    def _dtmf(dtmf, sender) -> None:
        identity = dtmf.participant.identity if dtmf.participant is not None else sender()
        digit = str(dtmf.digit or dtmf.code or "")
        arrivals.deliver(identity, lambda who, note: (learn(who), fire("dtmf_event", who, digit=digit, note=note)))

    @on("on_disconnected")
    async def _disconnected(_transport):
        fire("disconnected")
        if gen.outcome is None:
            gen.finish("lost", "disconnected")

    @on("on_before_disconnect")
    async def _before(_transport):
        fire("before_disconnect")

    @on("on_participant_connected")
    async def _participant(_transport, pid):
        if pid == me:
            return
        remember(pid)
        fire("participant_connected", pid)
        arrivals.announce(pid)  # after the join event: a greeting goes before the answer

    @on("on_first_participant_joined")
    async def _first(_transport, pid):
        if pid != me:
            fire("first_participant_joined", pid)

    @on("on_participant_left")
    async def _left(_transport, pid, reason):
        arrivals.left(pid)
        fire("participant_left", pid, extra={"reason": reasons.pop(pid, None) or reason})

    @on("on_audio_track_subscribed")
    async def _audio(_transport, pid):
        if not bot.spec.params.get("audio_in_enabled") or pid in gen.muted:
            # nobody reads this audio: unsubscribe so it cannot pile up in memory (gotcha 16)
            await set_audio_subscribed(transport._client.room, pid, False)
        fire("audio_track_subscribed", pid)

    wire_registry_events(transport, fire)

    @on("on_active_speaker_changed")
    async def _speaker(_transport, participant):
        pid = participant.get("id") if isinstance(participant, dict) else None
        if pid and pid != me:
            fire("active_speaker_changed", pid)

    @worker.event_handler("on_pipeline_started")
    async def _started(_worker, _frame):
        fire("pipeline_started")
        bot.pipeline_started(gen)

    @worker.event_handler("on_pipeline_error")
    async def _error(_worker, frame):
        processor = getattr(frame, "processor", None)
        transport = processor is not None and "LiveKit" in type(processor).__name__
        if transport and not gen.connected.is_set():
            gen.finish("connect_failed", _connect_message(frame))
        elif transport and getattr(frame, "fatal", False):
            gen.finish("lost", str(getattr(frame, "error", frame)))
        else:
            logger.error(f"[{bot.spec.name}] {getattr(frame, 'error', frame)}")
            fire("error", extra={"error": {"message": str(getattr(frame, "error", frame)), "event": None,
                                           "action": None, "line": None, "file": None}})


ANNOUNCE_ATTRIBUTE = "lkrun.announce"  # deleting an attribute nobody has: no change, an immediate update


def _server_calls(bot):
    """-> (lookup, announce): who is in the room as the server sees it, and "announce these
    people now"; (None, None) without API credentials."""
    server = bot.server
    key = bot.spec.livekit.get("api_key") or server.api_key
    secret = bot.spec.livekit.get("api_secret") or server.api_secret
    if not (key and secret):
        return None, None
    from runner.connect.probe import http_url

    async def lookup() -> dict:
        from livekit import api
        async with api.LiveKitAPI(http_url(server.url), key, secret) as lkapi:
            answer = await lkapi.room.list_participants(api.ListParticipantsRequest(room=bot.spec.room))
        return {p.identity: {"name": p.name or None, "metadata": p.metadata or None}
                for p in answer.participants
                if p.identity != bot.spec.identity and not p.permission.hidden}

    async def announce(identities) -> None:
        from livekit import api
        async with api.LiveKitAPI(http_url(server.url), key, secret) as lkapi:
            await asyncio.gather(*(lkapi.room.update_participant(api.UpdateParticipantRequest(
                room=bot.spec.room, identity=identity, attributes={ANNOUNCE_ATTRIBUTE: ""}))
                for identity in identities), return_exceptions=True)
    return lookup, announce


async def _read_capped(reader) -> str:
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


def _reason_name(participant) -> str:
    try:
        from livekit import rtc
        return rtc.DisconnectReason.Name(participant.disconnect_reason)
    except Exception:
        return "disconnected"


async def _unpublish_silent_track(room) -> None:
    """pipecat always publishes an audio track; a bot that never speaks pays ~2% of a core
    per room for its encoder. Unpublish it (people see the bot either way)."""
    from livekit import rtc
    for publication in list(room.local_participant.track_publications.values()):
        if publication.kind == rtc.TrackKind.KIND_AUDIO:
            try:
                await asyncio.wait_for(room.local_participant.unpublish_track(publication.sid), 2.0)
            except Exception as exc:  # not worth failing a connect over
                logger.debug(f"could not unpublish the silent audio track: {exc}")


def _connect_message(frame) -> str:
    exc = getattr(frame, "exception", None)
    last = getattr(exc, "last_attempt", None)
    inner = last.exception() if last is not None else exc
    return f"cannot connect to LiveKit: {getattr(inner, 'message', None) or inner or frame.error}"

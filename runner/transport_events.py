"""Wire pipecat's LiveKitTransport events (and LiveKit room hooks) to the bot's dispatcher.

Handlers are plain ``async def`` closures (pipecat never awaits callable objects) and
never raise: event data from other participants is untrusted.
"""

from __future__ import annotations

import asyncio

from loguru import logger

from .effects import set_audio_subscribed
from .generation import STOP_REASONS

SIMPLE = ["participant_disconnected", "audio_track_unsubscribed", "video_track_subscribed",
          "video_track_unsubscribed"]


def wire_events(gen) -> None:
    bot, transport, worker = gen.bot, gen.transport, gen.worker
    fire = bot.dispatcher.fire
    me = bot.spec.identity

    def on(name):
        def register(fn):
            transport.add_event_handler(name, fn)
            return fn
        return register

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
        bot.connected_once = True
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
                text = await asyncio.wait_for(reader.read_all(), timeout=30)
            except Exception as exc:
                logger.warning(f"[{bot.spec.name}] could not read a chat message: {exc}")
                return
            fire("chat_received", participant_identity, text=text[:65536])
        asyncio.ensure_future(read())

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

    @on("on_first_participant_joined")
    async def _first(_transport, pid):
        if pid != me:
            fire("first_participant_joined", pid)

    @on("on_participant_left")
    async def _left(_transport, pid, reason):
        fire("participant_left", pid, extra={"reason": reason})

    @on("on_audio_track_subscribed")
    async def _audio(_transport, pid):
        if not bot.spec.params.get("audio_in_enabled") or pid in gen.muted:
            # nobody reads this audio: unsubscribe so it cannot pile up in memory (gotcha 16)
            await set_audio_subscribed(transport._client.room, pid, False)
        fire("audio_track_subscribed", pid)

    for name in SIMPLE:
        def make(event):
            async def handler(_transport, pid, *_):
                fire(event, pid)
            return handler
        transport.add_event_handler(f"on_{name}", make(name))

    @on("on_data_received")
    async def _data(_transport, data, pid):
        fire("data_received", pid, payload=bytes(data[:65536]))

    @on("on_app_message")
    async def _app(_transport, message, sender):
        fire("app_message", sender, message=message)

    @on("on_dtmf_event")
    async def _dtmf(_transport, data):
        data = data if isinstance(data, dict) else {}
        fire("dtmf_event", data.get("participant_id"), digit=str(data.get("digit") or data.get("tone") or ""))

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
        if processor is not None and "LiveKit" in type(processor).__name__ and not gen.connected.is_set():
            gen.finish("connect_failed", _connect_message(frame))
        else:
            logger.error(f"[{bot.spec.name}] {getattr(frame, 'error', frame)}")
            fire("error", extra={"error": {"message": str(getattr(frame, "error", frame)), "event": None,
                                           "action": None, "line": None}})


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

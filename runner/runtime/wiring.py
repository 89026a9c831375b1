"""Wire pipecat's LiveKitTransport events (and LiveKit room hooks) to the bot's scheduler.

Handlers are plain ``async def`` bound methods (pipecat awaits coroutine functions) and never
raise: event data from other participants is untrusted. What people send is ``inbox.py``'s.
"""

from __future__ import annotations

import asyncio

from loguru import logger

from runner.botfile.stages import PYTHON
from runner.runtime import room_hooks
from runner.runtime.effects import set_audio_subscribed
from runner.runtime.inbox import Inbox, participant_info
from runner.runtime.room_hooks import skip_pipecats_packets, when_room_created

# why LiveKit closed the room on the bot -> the generation's outcome kind
STOP_REASONS = {"DUPLICATE_IDENTITY": "duplicate", "PARTICIPANT_REMOVED": "removed", "ROOM_DELETED": "removed"}

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
    """Connect one generation's transport and worker to the bot (what each hook means is below)."""
    Wiring(gen).attach()


class Wiring:
    """One generation's handlers: the room's lifecycle, people joining and leaving, the pipeline."""

    def __init__(self, gen):
        self.gen, self.bot, self.transport = gen, gen.bot, gen.transport
        self.fire = self.bot.dispatcher.fire
        self.me = self.bot.spec.identity
        self.inbox = Inbox(self.bot)
        gen.arrivals = self.inbox.arrivals

    def attach(self) -> None:
        when_room_created(self.transport, self._listen)
        for hook, handler in (("on_connected", self.connected), ("on_disconnected", self.disconnected),
                              ("on_before_disconnect", self.before_disconnect),
                              ("on_participant_connected", self.participant_connected),
                              ("on_first_participant_joined", self.first_participant_joined),
                              ("on_participant_left", self.participant_left),
                              ("on_audio_track_subscribed", self.audio_track_subscribed),
                              ("on_active_speaker_changed", self.active_speaker_changed)):
            self.transport.add_event_handler(hook, handler)
        wire_registry_events(self.transport, self.fire)
        self.gen.worker.add_event_handler("on_pipeline_started", self.pipeline_started)
        self.gen.worker.add_event_handler("on_pipeline_error", self.pipeline_error)

    # -- the room ------------------------------------------------------------------------------
    def _listen(self, room) -> None:
        self.inbox.attach(room)
        spec = self.bot.spec
        # RTVI's processor reads pipecat's message frames, and a `type: python` stage may
        if not spec.session.get("rtvi") and not any(stage.type == PYTHON for stage in spec.pipeline):
            skip_pipecats_packets(self.transport)

    async def connected(self, _transport) -> None:
        gen, bot = self.gen, self.bot
        room = gen.room = room_hooks.client_room(self.transport)
        room.on("disconnected", self.room_disconnected)
        room.on("reconnecting", gen.sdk_reconnecting)
        room.on("reconnected", gen.sdk_reconnected)
        self.inbox.listen_for_chat(room)
        if not bot.spec.params.get("audio_out_enabled"):
            # detached and bounded: an unpublish racing a disconnect never completes, and pipecat
            # waits for this handler before it can leave the room
            asyncio.ensure_future(_unpublish_silent_track(room))
        gen.connected.set()
        bot.session_connected(p for p in room.remote_participants if p != self.me)
        logger.info(f"[{bot.spec.name}] in room '{bot.spec.room}' as '{self.me}'")
        self.fire("connected")

    def room_disconnected(self, reason=None) -> None:
        gen = self.gen
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

    async def disconnected(self, _transport) -> None:
        self.fire("disconnected")
        if self.gen.outcome is None:
            self.gen.finish("lost", "disconnected")

    async def before_disconnect(self, _transport) -> None:
        self.fire("before_disconnect")

    # -- people --------------------------------------------------------------------------------
    def remember(self, pid: str) -> None:
        room = self.gen.room
        remote = room.remote_participants.get(pid) if room is not None else None
        if remote is not None:  # name, metadata, kind (standard, sip, agent, ...) and attributes
            self.bot.state.names[pid] = participant_info(remote)

    async def participant_connected(self, _transport, pid) -> None:
        if pid == self.me:
            return
        self.remember(pid)
        self.fire("participant_connected", pid)
        self.inbox.arrivals.announce(pid)  # after the join event: a greeting goes before the answer

    async def first_participant_joined(self, _transport, pid) -> None:
        if pid != self.me:
            self.fire("first_participant_joined", pid)

    async def participant_left(self, _transport, pid, reason) -> None:
        self.inbox.arrivals.left(pid)
        self.fire("participant_left", pid, extra={"reason": self.inbox.reasons.pop(pid, None) or reason})

    async def audio_track_subscribed(self, _transport, pid) -> None:
        if not self.bot.spec.params.get("audio_in_enabled") or pid in self.gen.muted:
            # nobody reads this audio: unsubscribe so it cannot pile up in memory (gotcha 16)
            await set_audio_subscribed(room_hooks.client_room(self.transport), pid, False)
        self.fire("audio_track_subscribed", pid)

    async def active_speaker_changed(self, _transport, participant) -> None:
        pid = participant.get("id") if isinstance(participant, dict) else None
        if pid and pid != self.me:
            self.fire("active_speaker_changed", pid)

    # -- the pipeline --------------------------------------------------------------------------
    async def pipeline_started(self, _worker, _frame) -> None:
        self.fire("pipeline_started")
        self.bot.pipeline_started(self.gen)

    async def pipeline_error(self, _worker, frame) -> None:
        gen, processor = self.gen, getattr(frame, "processor", None)
        transport = processor is not None and "LiveKit" in type(processor).__name__
        if transport and not gen.connected.is_set():
            gen.finish("connect_failed", _connect_message(frame))
        elif transport and getattr(frame, "fatal", False):
            gen.finish("lost", str(getattr(frame, "error", frame)))
        else:
            logger.error(f"[{self.bot.spec.name}] {getattr(frame, 'error', frame)}")
            self.fire("error", extra={"error": {"message": str(getattr(frame, "error", frame)), "event": None,
                                                "action": None, "line": None, "file": None}})


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

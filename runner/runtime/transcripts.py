"""Being a good LiveKit citizen: transcripts on ``lk.transcription`` and ``lk.agent.state``.

The voice taps (``voice/transcripts.py``) report to the bot's ``Conversation``; it publishes, as
LiveKit Agents does, so LiveKit's own front ends show the conversation:

* each person's transcripts (interim ones with ``lk.transcription_final: "false"``, then the
  final one, ``"true"``), attributed to their microphone track (``lk.transcribed_track_id``)
  and sent on their behalf (the stream's sender identity is theirs);
* the bot's spoken text, streamed in step with its audio (a delta stream per utterance, closed
  with ``lk.transcription_final: "true"``), attributed to the bot's own audio track;
* the bot's state in its ``lk.agent.state`` attribute: ``listening``, ``thinking``, ``speaking``.

Every segment has its own ``lk.segment_id``. Publishing runs in one background task per bot, in
order, and never holds up the pipeline: a failure (the bot is between connections, the
network is slow) is logged at debug level and dropped. It also feeds the session record
(``records.py``). ``session: {transcripts: false}`` stops the publishing, not the record.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from loguru import logger

TOPIC = "lk.transcription"
SEGMENT_ID = "lk.segment_id"
TRACK_ID = "lk.transcribed_track_id"
FINAL = "lk.transcription_final"
STATE = "lk.agent.state"
MAX_QUEUED = 512  # publish jobs waiting; more are dropped (a stalled connection never grows memory)


def _segment_id() -> str:
    return "SG_" + uuid.uuid4().hex[:12]


def audio_track_sid(participant) -> str:
    """The sid of a participant's (first) audio track, or '' when it has none."""
    from livekit import rtc
    for publication in list(getattr(participant, "track_publications", {}).values()):
        if publication.kind == rtc.TrackKind.KIND_AUDIO:
            return publication.sid or ""
    return ""


class Conversation:
    """The bot's ``ConversationSink``: publishes to the room, tells the session record."""

    def __init__(self, bot):
        self.bot = bot
        self.record = None  # records.SessionRecord of the current session, when recording
        self.state: str | None = None
        self._user_segments: dict[str | None, str] = {}  # identity -> the open segment
        self._bot_segment: str | None = None
        self._bot_text: list[str] = []
        self._bot_started: float | None = None
        self._bot_speaking = False
        self._writer = None  # the open TextStreamWriter of the bot's utterance
        self._jobs: asyncio.Queue = asyncio.Queue(maxsize=MAX_QUEUED)
        self._worker: asyncio.Task | None = None
        self._stats_tasks: set[asyncio.Task] = set()

    # -- settings ------------------------------------------------------------------------------
    @property
    def publishing(self) -> bool:
        spec = self.bot.spec
        audio = spec.params.get("audio_in_enabled") or spec.params.get("audio_out_enabled")
        return bool(audio and spec.session.get("transcripts", True))

    def _room(self):
        gen = self.bot.generation
        return None if gen is None else gen.room

    # -- the room connection -------------------------------------------------------------------
    def connected(self) -> None:
        """A generation joined: its state attribute starts at listening (or speaking)."""
        self.state = None
        self._writer = None  # a writer belongs to the connection it was opened on
        self._set_state("speaking" if self._bot_speaking else "listening")

    # -- what the taps report (ConversationSink) -----------------------------------------------
    def user_text(self, identity: str | None, text: str, final: bool) -> None:
        segment = self._user_segments.get(identity) or _segment_id()
        self._user_segments[identity] = segment
        if final:
            self._user_segments.pop(identity, None)
            if self.record is not None:
                self.record.said(identity, "user", text.strip())
        if self.publishing:
            self._publish(self._send_user, identity, text.strip(), segment, final)

    def user_turn(self, started: bool, identity: str | None) -> None:
        if self.record is not None:
            self.record.user_turn(started, identity)
        if started:
            self._set_state("listening")
        elif "llm" in self.bot.services:
            self._set_state("thinking")

    def user_stopped_speaking(self, at: float) -> None:
        if self.record is not None:
            self.record.speech_ended(at)

    def llm_started(self) -> None:
        if not self._bot_speaking:
            self._set_state("thinking")

    def bot_text(self, text: str, spaced: bool) -> None:
        if self._bot_segment is None:
            self._open_bot_segment()
        chunk = text if spaced or not self._bot_text else " " + text
        self._bot_text.append(chunk)
        if self.publishing:
            self._publish(self._write_bot, chunk)

    def bot_speaking(self, speaking: bool) -> None:
        self._bot_speaking = speaking
        if speaking:
            if self.record is not None:
                self.record.bot_started()
                room = self._room()
                if room is not None:
                    task = asyncio.ensure_future(self._network_delay(self.record, room))
                    self._stats_tasks.add(task)  # held until done (the loop keeps only a weak reference)
                    task.add_done_callback(self._stats_tasks.discard)
            self._set_state("speaking")
            return
        self._close_bot_segment(interrupted=False)
        self._set_state("listening")

    def bot_interrupted(self) -> None:
        if self._bot_segment is not None:
            self._close_bot_segment(interrupted=True)

    def bot_audible(self, at: float) -> None:
        if self.record is not None:
            self.record.bot_audible(at)

    def audio_started(self, at: float) -> None:
        if self.record is not None:
            self.record.audio_started(at)

    def audio(self, pcm: bytes, sample_rate: int, channels: int) -> None:
        if self.record is not None:
            self.record.audio(pcm, sample_rate, channels)

    # -- the bot's utterances ------------------------------------------------------------------
    def _open_bot_segment(self) -> None:
        self._bot_segment, self._bot_text, self._bot_started = _segment_id(), [], time.time()
        if self.publishing:
            self._publish(self._open_bot, self._bot_segment)

    def _close_bot_segment(self, interrupted: bool) -> None:
        if self._bot_segment is None:
            return
        text = "".join(self._bot_text).strip()
        if self.record is not None and text:
            self.record.said(self.bot.spec.identity, "bot", text, started=self._bot_started, interrupted=interrupted)
        if self.publishing:
            self._publish(self._close_bot)
        self._bot_segment, self._bot_text, self._bot_started = None, [], None

    # -- publishing, in order, in the background -----------------------------------------------
    def _set_state(self, state: str) -> None:
        if state == self.state:
            return
        self.state = state
        if self.publishing:
            self._publish(self._send_state, state)

    @staticmethod
    async def _network_delay(record, room) -> None:
        """The way there and back that the bot does not see, from WebRTC's statistics: the person's
        audio waits in the bot's jitter buffer and the bot's in the person's (taken to be the
        same), and each crosses to the server and back once (the bot's round-trip time)."""
        try:
            stats = await asyncio.wait_for(room.get_rtc_stats(), 2.0)
        except Exception:  # no statistics: the turn keeps the bot's own time
            return
        buffers, rtts = [], []
        for item in [*stats.publisher_stats, *stats.subscriber_stats]:
            kind = item.WhichOneof("stats")
            if kind == "inbound_rtp" and item.inbound_rtp.stream.kind == "audio":
                inbound = item.inbound_rtp.inbound
                if inbound.jitter_buffer_emitted_count:
                    buffers.append(inbound.jitter_buffer_delay / inbound.jitter_buffer_emitted_count)
            elif kind == "candidate_pair" and item.candidate_pair.candidate_pair.nominated:
                rtts.append(item.candidate_pair.candidate_pair.current_round_trip_time)
        if buffers:
            record.network_delay(2 * max(buffers) + (max(rtts) if rtts else 0.0))

    def _publish(self, job, *args) -> None:
        try:
            self._jobs.put_nowait((job, args))
        except asyncio.QueueFull:
            return
        if self._worker is None or self._worker.done():
            self._worker = asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        while not self._jobs.empty():
            job, args = self._jobs.get_nowait()
            try:
                await asyncio.wait_for(job(*args), 5.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # between connections, or a slow network: never the pipeline's problem
                logger.debug(f"[{self.bot.spec.name}] could not publish a transcript or state: "
                             f"{exc or type(exc).__name__}")

    async def _send_state(self, state: str) -> None:
        room = self._room()
        if room is not None and room.isconnected():
            await room.local_participant.set_attributes({STATE: state})

    async def _send_user(self, identity, text: str, segment: str, final: bool) -> None:
        room = self._room()
        if room is None or not room.isconnected() or not text:
            return
        person = room.remote_participants.get(identity) if identity else None
        attributes = {SEGMENT_ID: segment, FINAL: "true" if final else "false"}
        track = audio_track_sid(person) if person is not None else ""
        if track:
            attributes[TRACK_ID] = track
        writer = await room.local_participant.stream_text(topic=TOPIC, attributes=attributes,
                                                          sender_identity=identity or None)
        await writer.write(text)
        await writer.aclose()

    async def _open_bot(self, segment: str) -> None:
        room = self._room()
        if room is None or not room.isconnected():
            self._writer = None
            return
        attributes = {SEGMENT_ID: segment, FINAL: "false"}
        track = audio_track_sid(room.local_participant)
        if track:
            attributes[TRACK_ID] = track
        self._writer = await room.local_participant.stream_text(topic=TOPIC, attributes=attributes)

    async def _write_bot(self, chunk: str) -> None:
        if self._writer is not None:
            await self._writer.write(chunk)

    async def _close_bot(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            await writer.aclose(attributes={FINAL: "true"})


def conversation(bot) -> Conversation:
    """The bot's conversation sink (made on first use; the voice taps find it as bot.conversation)."""
    found = getattr(bot, "conversation", None)
    if found is None:
        found = bot.conversation = Conversation(bot)
    return found


def connected(bot) -> None:
    """A generation of a bot with audio joined its room."""
    spec = bot.spec
    if spec.params.get("audio_in_enabled") or spec.params.get("audio_out_enabled"):
        conversation(bot).connected()

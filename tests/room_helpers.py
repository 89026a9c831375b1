"""pytest plugin: a `Person` (the real livekit SDK as a human participant) and in-process bots.

Why people publish a microphone track by default: livekit-server batches the join and
leave announcements of participants that publish nothing on a fixed 3 s ticker
(``subscriberUpdateInterval`` in its room.go, not configurable), so a data-only person
is seen by the bot up to 3 s late. A person with a mic (what a browser user has) is
announced at once. ``Person(..., mic=False)`` keeps the data-only behaviour.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import time
import uuid
from pathlib import Path

import pytest
from livekit import api, rtc

from runner.connect.tokens import person_token

SAMPLE_RATE = 48000
PERSON_TOPIC = "test-person"  # what people send; bots see every topic, people skip this one
FRAME_MS = 10


class Person:
    """A participant that records what the bot sends: data packets, chat texts, who left."""

    def __init__(self, server, room: str, identity: str, name: str | None = None, *, mic: bool = True,
                 hidden: bool = False):
        self.server, self.room_name, self.identity, self.name = server, room, identity, name
        self.mic, self.hidden = mic, hidden
        self.room = rtc.Room()
        self.data: asyncio.Queue = asyncio.Queue()
        self.chat: asyncio.Queue = asyncio.Queue()
        self.left: asyncio.Queue = asyncio.Queue()
        self.joined: asyncio.Queue = asyncio.Queue()
        self.metadata: asyncio.Queue = asyncio.Queue()
        self.source: rtc.AudioSource | None = None
        self._tone: asyncio.Task | None = None
        self.room.on("data_received", self._on_data)
        self.room.on("participant_disconnected", lambda p: self.left.put_nowait(p.identity))
        self.room.on("participant_connected", lambda p: self.joined.put_nowait(p.identity))
        self.room.on("participant_metadata_changed",
                     lambda p, old, new: self.metadata.put_nowait((p.identity, new)))
        self.room.register_text_stream_handler("lk.chat", self._on_chat)

    def _on_data(self, packet) -> None:
        if packet.topic == PERSON_TOPIC:  # another person's message to the bot, not for us
            return
        self.data.put_nowait((packet.participant.identity if packet.participant else None,
                              packet.data.decode(errors="replace")))

    def _on_chat(self, reader, identity):
        async def read():
            self.chat.put_nowait((identity, await reader.read_all()))
        asyncio.ensure_future(read())

    def token(self) -> str:
        if not self.hidden:
            return person_token(self.server.api_key, self.server.api_secret, room=self.room_name,
                                identity=self.identity, name=self.name)
        grants = api.VideoGrants(room_join=True, room=self.room_name, hidden=True, can_publish=False)
        return (api.AccessToken(self.server.api_key, self.server.api_secret).with_identity(self.identity)
                .with_grants(grants).with_ttl(datetime.timedelta(minutes=30)).to_jwt())

    async def join(self) -> "Person":
        await self.room.connect(self.server.url, self.token())
        if self.mic and not self.hidden:
            await self.publish_mic()
        return self

    async def publish_mic(self) -> rtc.AudioSource:
        """Publish a microphone track (silent until `play_tone`)."""
        self.source = rtc.AudioSource(SAMPLE_RATE, 1)
        track = rtc.LocalAudioTrack.create_audio_track("mic", self.source)
        await self.room.local_participant.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE))
        return self.source

    def play_tone(self, seconds: float, hz: float = 440.0) -> asyncio.Task:
        """A sine wave on the mic, paced in real time by the AudioSource's queue."""
        import numpy as np

        samples = SAMPLE_RATE * FRAME_MS // 1000
        t = np.arange(SAMPLE_RATE) / SAMPLE_RATE  # one second; 440 Hz fits a whole number of periods
        second = (8000 * np.sin(2 * np.pi * hz * t)).astype(np.int16).tobytes()
        frames = [second[i * samples * 2:(i + 1) * samples * 2] for i in range(1000 // FRAME_MS)]

        async def play():
            for n in range(int(seconds * 1000 / FRAME_MS)):
                frame = rtc.AudioFrame(frames[n % len(frames)], SAMPLE_RATE, 1, samples)
                await self.source.capture_frame(frame)
        self._tone = asyncio.ensure_future(play())
        return self._tone

    async def send(self, payload) -> None:
        data = json.dumps(payload) if isinstance(payload, dict) else str(payload)
        await self.room.local_participant.publish_data(data.encode(), reliable=True, topic=PERSON_TOPIC)

    async def next_data(self, timeout: float = 10.0, sender: str | None = None):
        """The next data packet (from `sender` only, when given), parsed as JSON when it is JSON.

        A packet can outrun the announcement of its sender (data channel vs signalling): the
        SDK then reports no sender. People skip each other's packets (PERSON_TOPIC), so an
        unattributed packet is a bot's."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            who, text = await asyncio.wait_for(self.data.get(), max(0.01, deadline - loop.time()))
            if sender is None or who in (sender, None):
                break
        try:
            return json.loads(text)
        except ValueError:
            return text

    async def no_data(self, wait: float = 1.0, sender: str | None = None) -> bool:
        try:
            await self.next_data(wait, sender)
            return False
        except asyncio.TimeoutError:
            return True

    async def wait_left(self, identity: str, timeout: float = 10.0) -> None:
        """Until `identity` leaves the room (as this person sees it)."""
        async def until():
            while await self.left.get() != identity:
                pass
        await asyncio.wait_for(until(), timeout)

    async def leave(self) -> None:
        if self._tone is not None:
            self._tone.cancel()
        await self.room.disconnect()


async def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02, what: str = "condition"):
    """Poll a cheap in-process predicate (for state that has no event) within a deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


async def seen_by(bot, *persons: Person, timeout: float = 10.0) -> None:
    """Until an in-process bot knows these people: a packet that outruns its sender's
    announcement has no sender, and a reply `to: "{{ participant.id }}"` then fails."""
    await wait_for(lambda: all(p.identity in bot.participants() for p in persons), timeout,
                   what=f"the bot to see {', '.join(p.identity for p in persons)}")


@pytest.fixture
def room_name() -> str:
    return f"room-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def people(livekit_server):
    """people(room, identity, name=None, mic=True, hidden=False) -> a joined Person; all leave at the end."""
    joined: list[Person] = []

    async def join(room: str, identity: str, name: str | None = None, **options) -> Person:
        person = await Person(livekit_server, room, identity, name, **options).join()
        joined.append(person)
        return person

    yield join
    for person in joined:
        try:
            await asyncio.wait_for(person.leave(), 5)
        except Exception:
            pass


@pytest.fixture
async def run_bot(livekit_server, tmp_path):
    """run_bot(yaml_text, name='bot') -> (BotRuntime, task) running in this process on the real server."""
    from runner.runtime.bot import BotRuntime
    from runner.botfile.check import check_file
    from runner.connect.endpoint import Server

    started: list[tuple] = []

    async def start(text: str, name: str = "bot", *, once: bool = False, server=None, environ=None):
        path = Path(tmp_path) / f"{name}.yaml"
        path.write_text(text)
        spec = check_file(path, environ=environ)
        target = server or Server(livekit_server.url, livekit_server.api_key, livekit_server.api_secret)
        bot = BotRuntime(spec, target, once=once)
        task = asyncio.ensure_future(bot.run())
        started.append((bot, task))
        for _ in range(200):
            if bot.connected_once or task.done():
                break
            await asyncio.sleep(0.05)
        if task.done():
            task.result()
        return bot, task

    yield start
    for bot, task in started:
        await asyncio.wait_for(bot.stop(), 5)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def percentile(values, q):
    """Nearest-rank percentile (q in 0..100); nan for no values."""
    values = sorted(values)
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


class Pinger:
    """A person's pings: {"seq": n} every ``every`` s, each reply timed in the SDK's callback
    (``received`` decides what a reply is; what people send to the room is skipped)."""

    def __init__(self, person, every: float = 0.1):
        self.person, self.every = person, every
        self.sent: dict[int, float] = {}
        self.rtt: dict[int, float] = {}
        self.unexpected: list = []
        person.room.on("data_received", self._on_data)

    def _on_data(self, packet):
        now = time.monotonic()
        if packet.topic == PERSON_TOPIC:
            return
        try:
            reply = json.loads(packet.data)
        except ValueError:
            self.unexpected.append(packet.data)
            return
        self.received(reply, now)

    def received(self, reply, now: float) -> None:
        try:
            seq = int(reply["seq"])
        except (KeyError, TypeError, ValueError):
            self.unexpected.append(reply)
            return
        if seq in self.sent and seq not in self.rtt and reply.get("text", "pong") == "pong":
            self.rtt[seq] = (now - self.sent[seq]) * 1000
        else:
            self.unexpected.append(reply)

    async def run(self, until: asyncio.Event):
        seq, next_at = 0, time.monotonic()
        while not until.is_set():
            seq += 1
            self.sent[seq] = time.monotonic()
            await self.person.send({"seq": seq})
            next_at += self.every
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    def window(self, start: float, end: float) -> list[int]:
        return [s for s, t in self.sent.items() if start <= t < end]

"""LiveKit's own front ends work: transcripts of both sides on lk.transcription, the bot's
lk.agent.state, and (same call, to keep voice tests few) the session record with its audio."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import wave

import pytest

from audio_helpers import RATE, Microphone, silence, speech

from runner.connect.tokens import bot_token

pytestmark = [pytest.mark.livekit, pytest.mark.slow]

ASSISTANT = """
version: 1
name: scribe
livekit: {room: ROOM, identity: scribe}
session: {record: {dir: RECORDS}, record_audio: true}
pipeline:
  - vad: {type: silero}
  - stt: {type: whisper_stt}
  - llm:
      type: openai_llm
      api_key: ${FAKE_KEY:-not-a-real-key}
      base_url: BASE_URL
      settings: {model: fake, system_instruction: "You are a concierge."}
  - tts: {type: piper_tts}
on:
  data_received:
    - end: {}
"""


def first_sound(pcm, rate: int, threshold: float = 500.0) -> float:
    """Seconds into ``pcm`` of its first 10 ms louder than ``threshold`` (RMS)."""
    import numpy as np
    step = rate // 100
    for start in range(0, len(pcm) - step + 1, step):
        if np.sqrt(np.mean(pcm[start:start + step].astype(np.float64) ** 2)) > threshold:
            return start / rate
    raise AssertionError("no sound")


async def quiet(ears, since: float, seconds: float, timeout: float = 20.0) -> None:
    """Until no sound louder than RMS 300 has reached ``ears`` for ``seconds`` (after ``since``)."""
    import numpy as np
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        loud = [t for t, c in ears.chunks if t >= since and c.size and np.sqrt(np.mean(c.astype(np.float64) ** 2)) > 300]
        if loop.time() - (loud[-1] if loud else since) >= seconds:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the bot kept talking")


class Listener:
    """What a LiveKit front end sees: lk.transcription streams and the bot's lk.agent.state."""

    def __init__(self, room):
        self.streams: asyncio.Queue = asyncio.Queue()
        self.states: list[str] = []
        room.register_text_stream_handler("lk.transcription", self._on_stream)
        room.on("participant_attributes_changed", self._on_attributes)

    def _on_stream(self, reader, identity):
        async def read():
            text = await reader.read_all()
            self.streams.put_nowait({"from": identity, "text": text, **dict(reader.info.attributes)})
        asyncio.ensure_future(read())

    def _on_attributes(self, changed, participant):
        if participant.identity == "scribe" and "lk.agent.state" in changed:
            self.states.append(changed["lk.agent.state"])

    async def final(self, track: str, words: str, timeout: float = 30.0) -> dict:
        """The first final transcript of this track with these words (the VAD may split a sentence
        into two turns: the bot then answers each)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            item = await asyncio.wait_for(self.streams.get(), max(0.01, deadline - loop.time()))
            if item.get("lk.transcribed_track_id") == track and item.get("lk.transcription_final") == "true" \
                    and words in item["text"].lower():
                return item


async def test_transcripts_agent_state_and_the_record_of_a_call(run_bot, people, room_name, tmp_path):
    from bench.fake_openai import FakeOpenAI
    llm = await FakeOpenAI().start()
    folder = tmp_path / "records"
    try:
        bot, _ = await run_bot(ASSISTANT.replace("ROOM", room_name).replace("BASE_URL", llm.base_url)
                               .replace("RECORDS", str(folder)))
        observer = await people(room_name, "observer", mic=False)
        listener = Listener(observer.room)
        alice = await people(room_name, "alice", mic=False)  # the test publishes its own mic
        mic = await Microphone(alice.room).publish()
        alice_track = next(iter(alice.room.local_participant.track_publications.values())).sid
        for _ in range(100):  # the bot's audio track, as the observer sees it
            scribe = observer.room.remote_participants.get("scribe")
            if scribe is not None and scribe.track_publications:
                break
            await asyncio.sleep(0.1)
        bot_track = next(p.sid for p in scribe.track_publications.values())
        from audio_helpers import Speaker
        import numpy as np
        ears = Speaker(alice.room, "scribe")  # alice measures the turn herself
        phrase = speech("Hello there how are you")  # one phrase with no pause in it: one turn
        voiced = phrase[:np.nonzero(np.abs(phrase) > 500)[0][-1] + 1]  # up to her last voiced sample
        loop = asyncio.get_running_loop()
        wall = time.time() - loop.time()  # loop time -> wall clock (the record's)
        await mic.play(silence(0.5))
        await mic.play(voiced)
        spoke_until = loop.time() + mic.source.queued_duration  # when that sample leaves her microphone
        spoke_from = spoke_until - len(voiced) / RATE + first_sound(voiced, RATE)
        await mic.play(silence(1.5))

        said = await listener.final(alice_track, "how are you")
        assert said["lk.segment_id"]
        reply = await listener.final(bot_track, "how are you")
        assert reply["text"].startswith("You said:")
        assert reply["lk.segment_id"] and reply["lk.segment_id"] != said["lk.segment_id"]
        assert reply["from"] == "scribe"
        for _ in range(100):
            if listener.states[-1:] == ["listening"] and "speaking" in listener.states:
                break
            await asyncio.sleep(0.1)
        print("agent states:", listener.states)
        states = listener.states
        assert "thinking" in states and "speaking" in states
        assert states.index("thinking") < states.index("speaking") < len(states) - 1
        assert states[-1] == "listening"

        heard = await ears.first_sound(spoke_until, 5)
        await quiet(ears, heard, 0.8)  # she has heard the whole answer (it plays out after the bot's frames)
        await alice.send("bye")  # end: the record is written after the bot has left
        for _ in range(200):
            if list(folder.glob("*.json")):
                break
            await asyncio.sleep(0.1)
        record = json.loads(next(folder.glob("*.json")).read_text())
        roles = [(line["role"], line["speaker"]) for line in record["transcript"]]
        assert ("user", "alice") in roles and ("bot", "scribe") in roles
        assert record["turns"] and record["turns"][0]["latency_ms"] > 0
        measured = (heard - spoke_until) * 1000
        recorded = [t["latency_ms"] for t in record["turns"]]
        print(f"turn latency: the record's turns {recorded} ms; alice measured {measured:.0f} ms from her last "
              f"voiced sample leaving her microphone to the first sound of the bot she received")
        turn = record["turns"][0]
        at = lambda iso: dt.datetime.fromisoformat(iso).timestamp()  # noqa: E731
        print(f"turn latency: the end of her voice as the bot's VAD heard it {1000 * (at(turn['user_stopped_at']) - wall - spoke_until):+.0f} ms "
              f"from when it left her, the bot's first sound left it {1000 * (at(turn['bot_started_at']) - wall - heard):+.0f} ms from when she got it; "
              f"network_ms {turn['network_ms']}")
        if len(recorded) > 1:  # seen once at load 3.7: a second turn after the answer (printed to see why)
            print("more than one turn:", record["turns"], [(t["role"], t["text"], t["offset"]) for t in record["transcript"]])
        # one phrase with no pause: her turn is the first, and the first sound she hears answers it.
        # The record's turn: the VAD's end of her voice to the bot's first sound leaving it, plus
        # the way there and back (jitter buffers, round trip) estimated from WebRTC's statistics
        # within 15 % (10.6 % off once in CI: 1,166 ms recorded, 1,304 ms measured)
        assert abs(recorded[0] - measured) <= max(0.15 * measured, 60), (recorded, measured)
        assert record["summary"]["latency_ms"]["max"] >= recorded[0]
        assert record["audio"] and record["audio"].endswith(".wav")
        with wave.open(str(folder / record["audio"])) as audio:
            assert audio.getnchannels() == 2 and audio.getsampwidth() == 2
            rate, frames = audio.getframerate(), audio.readframes(audio.getnframes())
        import numpy as np
        from audio_helpers import transcribe
        stereo = np.frombuffer(frames, dtype=np.int16).reshape(-1, 2)
        seconds = len(stereo) / rate
        caller, bot_side = transcribe(stereo[:, 0].copy(), rate).lower(), transcribe(stereo[:, 1].copy(), rate).lower()
        print(f"record audio: {seconds:.2f} s for a {record['summary']['duration']:.2f} s session; "
              f"left: {caller!r}; right: {bot_side!r}")
        assert "how are you" in caller and "you said" not in caller  # the caller alone on the left
        assert "you said" in bot_side  # the bot on the right
        # the file's first sample is the session's start, its last the session's end, and what was
        # said is where it was said: her voice as it left her microphone, the bot's as she heard it
        assert abs(seconds - record["summary"]["duration"]) < 0.5, (seconds, record["summary"]["duration"])
        started = dt.datetime.fromisoformat(record["started_at"]).timestamp()
        her_voice, bot_voice = first_sound(stereo[:, 0], rate), first_sound(stereo[:, 1], rate)
        print(f"record audio: her voice at {her_voice:.2f} s (she began at {spoke_from + wall - started:.2f} s), "
              f"the bot's at {bot_voice:.2f} s (she heard it at {heard + wall - started:.2f} s)")
        assert abs(her_voice - (spoke_from + wall - started)) < 0.5
        assert abs(bot_voice - (heard + wall - started)) < 0.5
    finally:
        await llm.stop()


def test_agent_kind_in_the_token_only_when_asked():
    from livekit import api
    standard = bot_token("devkey", "secret", room="r", identity="b")
    agent = bot_token("devkey", "secret", room="r", identity="b", kind="agent")
    assert api.TokenVerifier("devkey", "secret").verify(standard).kind == "standard"
    assert api.TokenVerifier("devkey", "secret").verify(agent).kind == "agent"
    with pytest.raises(ValueError):
        bot_token("devkey", "secret", room="r", identity="b", kind="admin")


def test_the_session_audio_runs_from_the_sessions_start_to_its_end(tmp_path):
    """The record's WAV timeline, without a call: silence before the recorder's first sample and
    between two connections' recorders, silence up to the end, and what lies past the end cut."""
    from types import SimpleNamespace

    from runner.runtime.records import SessionRecord

    spec = SimpleNamespace(name="scribe", file=str(tmp_path / "scribe.yaml"),
                           session={"record": str(tmp_path), "record_audio": True})
    bot = SimpleNamespace(spec=spec, next_session_id=None, dispatcher=SimpleNamespace(fire=lambda *a, **k: None))
    record = SessionRecord(bot)
    rate = 16000
    tone = lambda seconds: (b"\x10\x00" * 2) * int(seconds * rate)  # noqa: E731  stereo, both sides sound

    record.audio_started(record.started + 1.5)  # the first person published 1.5 s in
    record.audio(tone(2.0), rate, 2)
    record.audio(tone(1.0), rate, 2)  # the next piece follows
    record.audio_started(record.started + 6.0)  # a new connection's recorder, 1.5 s later than the file
    record.audio(tone(1.0), rate, 2)
    name = record.finish_audio(record.started + 9.0)
    with wave.open(str(tmp_path / name)) as audio:
        import numpy as np
        pcm = np.frombuffer(audio.readframes(audio.getnframes()), dtype=np.int16).reshape(-1, 2)
    loud = np.abs(pcm[:, 0]) > 0
    assert len(pcm) == 9 * rate
    assert not loud[:int(1.5 * rate)].any() and loud[int(1.5 * rate):int(4.5 * rate)].all()
    assert not loud[int(4.5 * rate):6 * rate].any() and loud[6 * rate:7 * rate].all() and not loud[7 * rate:].any()

    longer = SessionRecord(bot)  # the bot's queued speech when it left: past the end, cut
    longer.audio_started(longer.started)
    longer.audio(tone(3.0), rate, 2)
    name = longer.finish_audio(longer.started + 2.0)
    with wave.open(str(tmp_path / name)) as audio:
        assert audio.getnframes() == 2 * rate and len(audio.readframes(10 * rate)) == 2 * rate * 4

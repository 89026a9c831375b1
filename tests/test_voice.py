"""Voice in a real room: offline VAD + STT + TTS, user_said with the speaker, audible replies."""

import asyncio

import pytest

from audio_helpers import Microphone, Speaker, silence, speech, transcribe

pytestmark = [pytest.mark.livekit, pytest.mark.slow]

TALKER = """
version: 1
name: talker
livekit: {room: ROOM, identity: talker}
pipeline:
  - vad: {type: silero}
  - stt: {type: whisper_stt}
  - tts: {type: piper_tts}
on:
  participant_connected:
    - say: "Hello, welcome to the room."
  user_said:
    - match: "(?i)weather"
      do:
        - send: {data: {heard: "{{ text }}", who: "{{ participant.id }}"}}
        - say: It is sunny and warm today.
"""


async def test_greeting_is_audible_and_user_said_round_trip(run_bot, people, room_name):
    bot, _ = await run_bot(TALKER.replace("ROOM", room_name))
    loop = asyncio.get_running_loop()
    alice = await people(room_name, "alice")
    # like a browser, the person publishes a microphone on joining (LiveKit announces
    # participants that publish nothing only every 3 s: subscriberUpdateInterval)
    mic = await Microphone(alice.room).publish()
    joined = loop.time()
    ear = Speaker(alice.room, "talker")
    first = await ear.first_sound(joined, timeout=10)
    print(f"greeting audible {first - joined:.2f} s after joining")
    assert first - joined < 3.0
    await asyncio.sleep(2.5)  # let the greeting finish
    await mic.play(silence(0.5))
    sent = loop.time()
    await mic.play(speech("What is the weather like today?"))
    await mic.play(silence(1.5))
    heard = await alice.next_data(timeout=15, sender="talker")
    assert "weather" in heard["heard"].lower()
    assert heard["who"] == "alice"
    reply_at = await ear.first_sound(sent + 1.0, timeout=10)
    await asyncio.sleep(3.0)
    words = transcribe(ear.audio_since(reply_at - 0.1)).lower()
    print(f"bot reply transcribed: {words!r}")
    assert "sunny" in words and "warm" in words

"""A data-only bot in a real room: greeting, ping/pong, chat, literal templates."""

import asyncio

import pytest

pytestmark = pytest.mark.livekit

GREETER = """
version: 1
name: greeter
livekit: {room: ROOM, identity: greeter}
vars: {greeting: Welcome}
on:
  participant_connected:
    - send: {to: "{{ participant.id }}", data: {text: "{{ vars.greeting }}, {{ participant.name or participant.id }}!"}}
  data_received:
    - if: "{{ message.text == 'ping' or data == 'ping' }}"
      then:
        - send: {to: "{{ participant.id }}", data: {text: pong}}
      else:
        - send: {to: "{{ participant.id }}", data: {echo: "{{ data }}"}}
  chat_received:
    - chat: {text: "you said {{ text }}", to: "{{ participant.id }}"}
"""


async def test_greets_each_person_and_answers_ping_only_to_sender(run_bot, people, room_name):
    await run_bot(GREETER.replace("ROOM", room_name))
    alice = await people(room_name, "alice", "Alice")
    assert await alice.next_data() == {"text": "Welcome, Alice!"}
    bob = await people(room_name, "bob")
    assert await bob.next_data() == {"text": "Welcome, bob!"}
    await alice.send({"text": "ping"})
    assert await alice.next_data() == {"text": "pong"}
    assert await bob.no_data(1.0, sender="greeter")


async def test_untrusted_text_is_never_a_template(run_bot, people, room_name):
    await run_bot(GREETER.replace("ROOM", room_name))
    mallory = await people(room_name, "mallory", "{{ 7*7 }}")
    assert await mallory.next_data() == {"text": "Welcome, {{ 7*7 }}!"}
    await mallory.send("{{ 7*7 }}")
    assert await mallory.next_data() == {"echo": "{{ 7*7 }}"}


async def test_chat_text_stream_round_trip(run_bot, people, room_name):
    await run_bot(GREETER.replace("ROOM", room_name))
    alice = await people(room_name, "alice")
    await alice.next_data()
    await alice.room.local_participant.send_text("hello there", topic="lk.chat")
    sender, text = await asyncio.wait_for(alice.chat.get(), 10)
    assert (sender, text) == ("greeter", "you said hello there")


DTMF = """
version: 1
name: keypad
livekit: {room: ROOM, identity: keypad}
on:
  dtmf_event:
    - send: {to: "{{ participant.id }}", data: {digit: "{{ digit }}"}}
"""


async def test_dtmf_from_a_participant_fires_dtmf_event(run_bot, people, room_name):
    await run_bot(DTMF.replace("ROOM", room_name))
    carol = await people(room_name, "carol")
    await carol.room.local_participant.publish_dtmf(code=11, digit="#")
    assert await carol.next_data(sender="keypad") == {"digit": "#"}
    await carol.room.local_participant.publish_dtmf(code=7, digit="7")
    assert await carol.next_data(sender="keypad") == {"digit": "7"}

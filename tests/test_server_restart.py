"""The LiveKit server dies and comes back during a session: the bot rejoins with its state.

This restarts the session-wide test server (same ports), so it lives in its own module;
the tests after it use the restarted server.
"""

import asyncio
import time

import pytest

from room_helpers import wait_for

pytestmark = pytest.mark.livekit

COUNTER = """
version: 1
name: counter
livekit: {room: ROOM, identity: counter}
on:
  participant_connected:
    - send: {to: "{{ participant.id }}", data: {text: "Welcome, {{ participant.id }}!"}}
  data_received:
    - set: {values: {count: "{{ (state.count or 0) + 1 }}"}}
    - send: {to: "{{ participant.id }}", data: {count: "{{ state.count }}"}}
"""


async def test_bot_rejoins_after_a_server_crash_with_state_and_no_regreeting(run_bot, people, room_name,
                                                                             livekit_server):
    bot, task = await run_bot(COUNTER.replace("ROOM", room_name))
    alice = await people(room_name, "alice")
    assert await alice.next_data(sender="counter") == {"text": "Welcome, alice!"}
    bob = await people(room_name, "bob")
    assert await bob.next_data(sender="counter") == {"text": "Welcome, bob!"}
    await alice.send("one")
    assert await alice.next_data(sender="counter") == {"count": 1}
    await bob.send("two")
    assert await bob.next_data(sender="counter") == {"count": 2}

    generations = bot.generations
    await asyncio.to_thread(livekit_server.kill)
    await asyncio.sleep(1.0)  # the outage
    await asyncio.to_thread(livekit_server.start_sync)
    back = time.monotonic()

    async def in_room():
        while True:
            gen = bot.generation
            if gen is not None and gen.connected.is_set() and bot.generations > generations:
                return
            await asyncio.sleep(0.02)
    await asyncio.wait_for(in_room(), 10)
    print(f"restart: bot back in the room {time.monotonic() - back:.2f} s after the server returned")
    assert not task.done()

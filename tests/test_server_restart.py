"""The LiveKit server goes away and comes back during a session: the bot is back with its state.

Two ways a server goes away, two recovery paths:
- a crash (SIGKILL) for a second: LiveKit's SDK resumes/restarts the connection by itself
  (for ~20 s), inside the same generation;
- a graceful restart: the server tells clients SERVER_SHUTDOWN, the SDK gives up, and
  lkrun's own loop rejoins with a fresh token in a new generation.
In both, room state (a `set` counter) survives and nobody is greeted twice.

These tests restart the session-wide test server (same ports), so they live in their own
module; the tests that run after them use the restarted server.
"""

import asyncio
import time

import pytest

from room_helpers import Person

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


async def greeted_pair(run_bot, people, room_name):
    bot, task = await run_bot(COUNTER.replace("ROOM", room_name))
    alice = await people(room_name, "alice")
    assert await alice.next_data(sender="counter") == {"text": "Welcome, alice!"}
    bob = await people(room_name, "bob")
    assert await bob.next_data(sender="counter") == {"text": "Welcome, bob!"}
    await alice.send("one")
    assert await alice.next_data(sender="counter") == {"count": 1}
    await bob.send("two")
    assert await bob.next_data(sender="counter") == {"count": 2}
    return bot, task, alice, bob


async def answered(person: Person, payload, timeout: float):
    """Send until the bot answers (the person's own connection may still be coming back, and
    right after a reconnect the bot may not know the sender yet: that run fails, it does not
    broadcast). A second greeting on the way fails the test."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        try:
            await person.send(payload)
        except Exception:  # not reconnected yet
            await asyncio.sleep(0.1)
            continue
        try:
            reply = await person.next_data(timeout=0.5, sender="counter")
        except asyncio.TimeoutError:
            continue
        assert isinstance(reply, dict) and "text" not in reply, f"{person.identity} got {reply!r}, not a count"
        return reply
    raise AssertionError(f"the bot did not answer {person.identity} within {timeout:g} s")


async def test_bot_is_back_after_a_server_crash_with_state_and_no_regreeting(run_bot, people, room_name,
                                                                              livekit_server):
    bot, task, alice, bob = await greeted_pair(run_bot, people, room_name)
    await asyncio.to_thread(livekit_server.kill)
    await asyncio.sleep(1.0)  # the outage itself, not an assertion
    await asyncio.to_thread(livekit_server.start_sync)
    back = time.monotonic()
    # the room state survived: the counter goes on from 2 (not from 0)
    count = (await answered(alice, "three", timeout=10))["count"]
    print(f"crash: bot answered {time.monotonic() - back:.2f} s after the server returned "
          f"(generation {bot.generation.number})")
    assert count >= 3
    assert (await answered(bob, "four", timeout=5))["count"] > count
    assert await alice.no_data(0.5, sender="counter")  # nothing else for alice (no broadcast)
    assert not task.done()


async def test_bot_is_back_after_a_server_restart_with_state_and_no_regreeting(run_bot, people, room_name,
                                                                                livekit_server):
    bot, task, alice, bob = await greeted_pair(run_bot, people, room_name)
    await asyncio.to_thread(livekit_server.restart_sync)
    back = time.monotonic()
    # the shutdown disconnected the people too (SERVER_SHUTDOWN): they come back as new
    # connections with the same identities. The bot comes back either through the SDK's
    # own resume or, when the server told it to leave, through lkrun's rejoin.
    for old in (alice, bob):  # a client told SERVER_SHUTDOWN is gone; its SDK may still be retrying,
        try:                  # and a second connection of the same identity in this process can hang
            await asyncio.wait_for(old.room.disconnect(), 5)
        except Exception:
            pass
    alice2 = await people(room_name, "alice")
    bob2 = await people(room_name, "bob")
    count = (await answered(alice2, "three", timeout=10))["count"]
    print(f"restart: bot answered {time.monotonic() - back:.2f} s after the server returned "
          f"(generation {bot.generation.number})")
    assert count >= 3
    assert (await answered(bob2, "four", timeout=5))["count"] > count
    assert await alice2.no_data(0.5, sender="counter")  # and no late second greeting
    assert not task.done()


async def test_bot_rejoins_by_itself_when_the_sdk_reconnect_hangs(run_bot, people, room_name, livekit_server):
    """A server address that accepts connections and never answers (a crashed server behind
    a proxy, a half-dead host) makes LiveKit's own reconnect attempt hang: lkrun gives up on
    it after RECONNECT_GRACE and rejoins with a fresh generation once the server is back."""
    import socket

    from runner.runtime.generation import RECONNECT_GRACE

    bot, task, alice, bob = await greeted_pair(run_bot, people, room_name)
    first = bot.generation
    await asyncio.to_thread(livekit_server.kill)
    hole = socket.socket()
    hole.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    hole.bind(("127.0.0.1", livekit_server.port))
    hole.listen(64)  # accepts (in the kernel), never answers
    try:
        async def given_up():
            while first.outcome is None:
                await asyncio.sleep(0.05)
        await asyncio.wait_for(given_up(), RECONNECT_GRACE + 5)
        assert first.outcome.kind == "lost" and "did not reconnect" in first.outcome.message, first.outcome
    finally:
        hole.close()
    await asyncio.to_thread(livekit_server.start_sync)
    back = time.monotonic()

    async def rejoined():
        while not (bot.generation is not None and bot.generation is not first and bot.generation.connected.is_set()):
            await asyncio.sleep(0.02)
    await asyncio.wait_for(rejoined(), 10)
    print(f"hung reconnect: bot back in the room {time.monotonic() - back:.2f} s after the server returned "
          f"(generation {bot.generation.number})")
    carol = await people(room_name, "carol")
    assert await carol.next_data(sender="counter") == {"text": "Welcome, carol!"}
    assert (await answered(carol, "five", timeout=5))["count"] >= 3
    assert not task.done()

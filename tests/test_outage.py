"""A network outage long enough for pipecat to give up on a connect: the bot is back, alone, with its state.

The failure this guards: during an outage pipecat's setup timeout (20 s) cancels a
``Room.connect`` that LiveKit's SDK goes on running (it retries for ~32 s). lkrun started the
next generation meanwhile; when the path healed both joined with the bot's identity and
replaced each other (DUPLICATE_IDENTITY), then either lkrun gave up ("another participant
joined with the same identity; not rejoining", exit 1) or the SDK, with nobody to take the room
it had made, killed the process ("FFI Panic ... ReadyForRoomEventRequest", SIGTERM).

The outage is a TCP relay between the bot and the server (scripts/faults.py's Relay): the
bot's connections are cut and new signalling connections are held until the heal, while the
token check (/rtc/validate) still goes through, so every new generation gets as far as
connecting. The bot runs as a real `lkrun` process: the SDK's way of failing is to SIGTERM
the process it runs in, which must not be pytest's.
"""

import asyncio
import os
import signal
import sys
import time

import pytest
from livekit import api

from scripts.faults import Relay

pytestmark = pytest.mark.livekit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LKRUN = os.path.join(os.path.dirname(sys.executable), "lkrun")
OUTAGE = 30.0  # > RECONNECT_GRACE + backoff + pipecat's 20 s setup timeout: a connect is cut off

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


async def holders(server, room: str) -> list[str]:
    async with api.LiveKitAPI(server.http_url, server.api_key, server.api_secret) as lkapi:
        answer = await lkapi.room.list_participants(api.ListParticipantsRequest(room=room))
    return [p.sid for p in answer.participants if p.identity == "counter"]


async def answer(person, payload, timeout: float):
    """Send until the bot answers with a count (a greeting on the way fails the test)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        await person.send(payload)
        try:
            reply = await person.next_data(timeout=0.5, sender="counter")
        except asyncio.TimeoutError:
            continue
        assert isinstance(reply, dict) and "count" in reply, f"got {reply!r}, not a count"
        return reply["count"]
    return None


async def test_bot_is_back_alone_after_an_outage_that_outlasts_a_connect(livekit_server, people, room_name,
                                                                         tmp_path):
    relay = await Relay("127.0.0.1", livekit_server.port).start()
    path = tmp_path / "counter.yaml"
    path.write_text(COUNTER.replace("ROOM", room_name))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEKIT_")}
    env.update(LIVEKIT_URL=f"ws://127.0.0.1:{relay.port}", LIVEKIT_API_KEY=livekit_server.api_key,
               LIVEKIT_API_SECRET=livekit_server.api_secret)
    log = open(tmp_path / "lkrun.log", "w+b")
    bot = await asyncio.create_subprocess_exec(LKRUN, str(path), "--no-reload", cwd=ROOT, env=env,
                                               stdout=log, stderr=log, start_new_session=True)

    def output() -> str:
        log.flush()
        return (tmp_path / "lkrun.log").read_text(errors="replace")

    try:
        for _ in range(300):
            if await holders(livekit_server, room_name) or bot.returncode is not None:
                break
            await asyncio.sleep(0.1)
        assert bot.returncode is None, f"lkrun exited ({bot.returncode}):\n{output()[-3000:]}"
        alice = await people(room_name, "alice")
        assert await alice.next_data(sender="counter") == {"text": "Welcome, alice!"}
        assert await answer(alice, "one", timeout=5) == 1

        relay.hold(passing=lambda first: b"/rtc/validate" in first)
        relay.reset()
        await asyncio.sleep(OUTAGE)
        relay.heal()
        healed = time.monotonic()

        count = await answer(alice, "two", timeout=20)
        back = time.monotonic() - healed
        await asyncio.sleep(3.0)  # a late duplicate connection would show up (and kick the bot) by now
        text = output()
        assert bot.returncode is None, f"lkrun exited ({bot.returncode}):\n{text[-3000:]}"
        assert "not rejoining" not in text and "FFI Panic" not in text, text[-3000:]
        assert count is not None, f"the bot did not answer within 20 s of the heal:\n{text[-3000:]}"
        print(f"outage: bot answered {back:.1f} s after the heal")
        assert count >= 2  # the counter went on: state kept across generations
        assert len(await holders(livekit_server, room_name)) == 1
        assert await answer(alice, "three", timeout=5) == count + 1
        assert await alice.no_data(0.5, sender="counter")  # no second greeting
    finally:
        if bot.returncode is None:
            os.killpg(bot.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(bot.wait(), 10)
            except asyncio.TimeoutError:
                os.killpg(bot.pid, signal.SIGKILL)
                await bot.wait()
        await relay.close()
        log.close()

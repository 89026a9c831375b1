"""Flood fairness: one person floods a data bot, another keeps talking to it and is not frozen.

"loud" sends 2,000 data messages in ~2 s; "quiet" pings at 10/s the whole time. The bot has
lkrun's default limits (session.rate_limit 10 runs/s sustained, rate_burst 50), so almost
all of loud's messages are dropped (counted, not logged one by one) while every one of
quiet's pings gets its pong, quickly. Everything (bot, both people) runs in this process on
the real LiveKit server, so the numbers include the SDK's receive path of the flood.

Set LKRUN_FLOOD_PROFILE=1 to write a cProfile of the flood window to flood.prof (and print
the top functions).
"""

import asyncio
import gc
import os
import sys
import time
from pathlib import Path

import pytest

from room_helpers import Pinger, percentile, seen_by, wait_for

pytestmark = pytest.mark.livekit

ECHO = """
version: 1
name: echo
livekit: {room: ROOM, identity: echo}
on:
  data_received:
    - send: {to: "{{ participant.id }}", data: {text: pong, seq: "{{ message.seq }}"}}
"""

FLOOD = 2000
FLOOD_SECONDS = 2.0
PING_EVERY = 0.1  # 10/s: exactly the sustained rate limit; the burst of 50 absorbs jitter


LOUD = r"""
import asyncio, json, sys, time
from livekit import rtc
from runner.connect.tokens import person_token

async def main(url, key, secret, room_name, bot, count, seconds):
    room = rtc.Room()
    pongs = []
    room.on("data_received", lambda p: pongs.append(1) if p.participant and p.participant.identity == bot else None)
    await room.connect(url, person_token(key, secret, room=room_name, identity="loud"))
    source = rtc.AudioSource(48000, 1)  # a mic: LiveKit announces a participant with no track only every 3 s
    track = rtc.LocalAudioTrack.create_audio_track("mic", source)
    await room.local_participant.publish_track(
        track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE))
    while bot not in room.remote_participants:
        await asyncio.sleep(0.02)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    gate = asyncio.Semaphore(64)  # messages in flight at once

    async def send(i):
        async with gate:
            data = json.dumps({"seq": 10**6 + i, "junk": "x" * 64}).encode()
            await room.local_participant.publish_data(data, reliable=True, topic="test-person",
                                                      destination_identities=[bot])

    start = time.monotonic()
    tasks = []
    for i in range(count):
        tasks.append(asyncio.ensure_future(send(i)))
        await asyncio.sleep(max(0.0, start + seconds * (i + 1) / count - time.monotonic()))
    await asyncio.gather(*tasks)
    print("sent", time.monotonic() - start, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    print("pongs", len(pongs), flush=True)
    await room.disconnect()

asyncio.run(main(*sys.argv[1:6], int(sys.argv[6]), float(sys.argv[7])))
"""


class Loud:
    """The flooding person, in a process of its own (like a real remote client): its sending
    costs are not paid by the bot's event loop. It floods the bot only (destination_identities):
    quiet's client would otherwise receive and decode the same 2,000 packets in this process."""

    def __init__(self, server, room: str, bot: str):
        self.args = [sys.executable, "-c", LOUD, server.url, server.api_key, server.api_secret, room, bot,
                     str(FLOOD), str(FLOOD_SECONDS)]

    async def start(self):
        self.proc = await asyncio.create_subprocess_exec(
            *self.args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            cwd=str(Path(__file__).resolve().parent.parent))
        assert await self.expect("ready", 30) == []

    async def expect(self, word: str, timeout: float) -> list[str]:
        line = (await asyncio.wait_for(self.proc.stdout.readline(), timeout)).decode().split()
        assert line and line[0] == word, f"loud said {line!r}, expected {word!r}"
        return line[1:]

    async def flood(self) -> float:
        """Go; returns the seconds the flood took to send."""
        self.proc.stdin.write(b"go\n")
        await self.proc.stdin.drain()
        return float((await self.expect("sent", 60))[0])

    async def pongs(self) -> int:
        self.proc.stdin.write(b"count\n")
        await self.proc.stdin.drain()
        return int((await self.expect("pongs", 10))[0])

    async def stop(self):
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()


async def test_a_flood_from_one_person_does_not_freeze_another(run_bot, people, room_name, livekit_server):
    bot, _ = await run_bot(ECHO.replace("ROOM", room_name))
    quiet = await people(room_name, "quiet")
    loud = Loud(livekit_server, room_name, "echo")
    await loud.start()
    try:
        await seen_by(bot, quiet)
        await wait_for(lambda: "loud" in bot.participants(), what="the bot to see loud")
        await flood_while_pinging(bot, quiet, loud)
    finally:
        await loud.stop()


async def flood_while_pinging(bot, quiet, loud):
    # the bot runs in the test process, which holds every earlier test's objects: a full collection of
    # that heap can stall the loop (the likely cause of a lone 445 ms ping once in CI); collect before the window
    gc.collect()
    pinger = Pinger(quiet, PING_EVERY)
    stop = asyncio.Event()
    pings = asyncio.ensure_future(pinger.run(stop))
    await asyncio.sleep(3.0)  # before: 30 pings

    profile = None
    if os.environ.get("LKRUN_FLOOD_PROFILE"):
        import cProfile
        profile = cProfile.Profile()
        profile.enable()
    flood_start = time.monotonic()
    flood_took = await loud.flood()
    await asyncio.sleep(1.0)  # the tail of the flood: what the bot still has to read and drop
    flood_end = time.monotonic()
    if profile is not None:
        profile.disable()
    await asyncio.sleep(1.0)  # after
    stop.set()
    await pings
    await asyncio.sleep(1.0)  # the last pongs

    before = [pinger.rtt[s] for s in pinger.window(0, flood_start) if s in pinger.rtt]
    during_seqs = pinger.window(flood_start, flood_end)
    during = [pinger.rtt[s] for s in during_seqs if s in pinger.rtt]
    lost = sorted(s for s in pinger.sent if s not in pinger.rtt)
    dropped = bot.dispatcher.dropped
    loud_pongs = await loud.pongs()
    print(f"\nflood: {FLOOD} messages sent by loud in {flood_took:.2f} s; "
          f"bot dropped {dropped}, answered loud {loud_pongs}")
    print(f"quiet before the flood: n={len(before)} p50={percentile(before, 50):.1f} ms "
          f"p99={percentile(before, 99):.1f} ms max={max(before):.1f} ms")
    print(f"quiet during the flood: n={len(during)} p50={percentile(during, 50):.1f} ms "
          f"p99={percentile(during, 99):.1f} ms max={max(during, default=float('nan')):.1f} ms")
    print(f"quiet lost: {len(lost)} of {len(pinger.sent)} {lost[:10]}")
    if profile is not None:
        import pstats
        profile.dump_stats("flood.prof")
        pstats.Stats(profile).sort_stats("cumulative").print_stats(30)

    assert not lost, f"quiet lost pings {lost}"
    assert not pinger.unexpected, pinger.unexpected[:5]
    assert len(during) >= 25
    # "frozen" is what the old main did: seconds without an answer. On this shared 2-core machine
    # the flood's own SDK receive path (every packet is decoded by the livekit FFI before lkrun
    # can drop it) costs quiet 50-200 ms at p99 in CI, so the bar is a freeze, not a latency target;
    # the printed numbers are the measurement (bench/ holds the latency targets)
    assert percentile(during, 99) < 400, "quiet froze during loud's flood"
    assert max(during) < 1500, "quiet waited over 1.5 s for an answer during loud's flood"
    # loud gets its burst plus the sustained rate, the rest is counted as dropped
    assert FLOOD - 200 < dropped < FLOOD - 50
    assert dropped + loud_pongs >= FLOOD - 5  # every flood message is either answered or counted

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
import json
import os
import time

import pytest

from room_helpers import PERSON_TOPIC, seen_by

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


def percentile(values, q):
    values = sorted(values)
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


class Pinger:
    """quiet's side: {"seq": n} every 100 ms, the matching pong timed in the SDK callback."""

    def __init__(self, person):
        self.person = person
        self.sent: dict[int, float] = {}
        self.rtt: dict[int, float] = {}
        self.unexpected: list = []
        person.room.on("data_received", self._on_data)

    def _on_data(self, packet):
        now = time.monotonic()
        if packet.topic == PERSON_TOPIC:  # loud's flood, seen by everyone in the room
            return
        try:
            reply = json.loads(packet.data)
            seq = int(reply["seq"])
        except (ValueError, KeyError, TypeError):
            return
        if seq in self.sent and seq not in self.rtt and reply.get("text") == "pong":
            self.rtt[seq] = (now - self.sent[seq]) * 1000
        else:
            self.unexpected.append(reply)

    async def run(self, until: asyncio.Event):
        seq = 0
        next_at = time.monotonic()
        while not until.is_set():
            seq += 1
            self.sent[seq] = time.monotonic()
            await self.person.send({"seq": seq})
            next_at += PING_EVERY
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    def window(self, start: float, end: float) -> list[int]:
        return [s for s, t in self.sent.items() if start <= t < end]


async def flood(person, count: int, seconds: float) -> tuple[float, float]:
    """Send `count` messages paced over `seconds` (in batches of 20 sent at once)."""
    batch = 20
    start = time.monotonic()
    for i in range(0, count, batch):
        await asyncio.gather(*(person.send({"seq": 10**6 + j, "junk": "x" * 64})
                               for j in range(i, min(count, i + batch))))
        await asyncio.sleep(max(0.0, start + seconds * (i + batch) / count - time.monotonic()))
    return start, time.monotonic()


async def test_a_flood_from_one_person_does_not_freeze_another(run_bot, people, room_name):
    bot, _ = await run_bot(ECHO.replace("ROOM", room_name))
    quiet = await people(room_name, "quiet")
    loud = await people(room_name, "loud")
    await seen_by(bot, quiet, loud)
    pinger = Pinger(quiet)
    stop = asyncio.Event()
    pings = asyncio.ensure_future(pinger.run(stop))
    await asyncio.sleep(3.0)  # before: 30 pings

    profile = None
    if os.environ.get("LKRUN_FLOOD_PROFILE"):
        import cProfile
        profile = cProfile.Profile()
        profile.enable()
    flood_start, flood_sent = await flood(loud, FLOOD, FLOOD_SECONDS)
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
    loud_pongs = 0
    while not loud.data.empty():
        who, text = loud.data.get_nowait()
        loud_pongs += who == "echo"
    print(f"\nflood: {FLOOD} messages sent by loud in {flood_sent - flood_start:.2f} s; "
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
    assert percentile(during, 99) < 100, "quiet froze during loud's flood"
    # loud gets its burst plus the sustained rate, the rest is counted as dropped
    assert FLOOD - 200 < dropped < FLOOD - 50
    assert dropped + loud_pongs >= FLOOD - 5  # every flood message is either answered or counted

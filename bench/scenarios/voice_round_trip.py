"""Voice round trip: end of the person's speech -> first audible bot audio at the person.

lkrun runs ``bench/bots/voice_llm.yaml`` and the hand-written bot ``baselines/voice_bot.py``
builds the same services (Silero VAD stop_secs 0.5, speech-timeout turn stop 0.3 s, Whisper
tiny.en int8, the loopback fake OpenAI LLM, Piper joe). Both run at once in their own rooms;
utterances alternate between them (A B A B ...), and only the room being spoken to gets audio.
"""

from __future__ import annotations

import asyncio

from .. import botfiles
from ..audio import Ear, Mic, speech
from ..clients import Peer, join_all, leave_all
from ..fake_openai import FakeOpenAI
from ..procs import baseline_cmd, lkrun_cmd
from ..stats import summary

NAME = "voice_round_trip"
TITLE = "voice round trip: end of user speech -> first bot audio"
TIME_LIMIT = 300
SYSTEMS = ("lkrun", "hand-written pipecat")
UTTERANCE = "What is the weather like today?"


async def turn(peer: Peer, mic: Mic, ear: Ear, pcm: bytes) -> float:
    """Speak once; the round trip in ms (end of speech -> first loud chunk from the bot)."""
    silence = bytes(int(0.3 * 48000) * 2)
    await mic.play(silence)
    spoken = await mic.play(pcm)
    done = asyncio.Event()
    keep_open = asyncio.ensure_future(mic.silence_until(done, limit=15))
    try:
        first = await ear.first_sound(spoken, timeout=15)
    finally:
        done.set()
        await asyncio.gather(keep_open, return_exceptions=True)
    await ear.quiet(0.6, timeout=15)  # let the reply finish before the next turn
    return (first - spoken) * 1000


async def run(ctx, report):
    runs = 1 if ctx.quick else 6
    warm = 0 if ctx.quick else 1
    pcm = await asyncio.to_thread(speech, UTTERANCE)
    fake = await FakeOpenAI().start()
    rooms = {system: ctx.room(f"voice{i}") for i, system in enumerate(SYSTEMS)}
    peers = {system: Peer(ctx.server, rooms[system]) for system in SYSTEMS}
    ears: dict[str, Ear] = {}
    try:
        async with ctx.procs(BENCH_OPENAI_URL=fake.base_url, BENCH_OPENAI_KEY="sk-bench") as procs:
            try:
                path = botfiles.render("voice_llm", ctx.folder("voice"), rooms["lkrun"])
                bots = {"lkrun": procs.spawn(lkrun_cmd(path), "voice-lkrun"),
                        "hand-written pipecat": procs.spawn(
                            baseline_cmd("voice_bot", "-r", rooms["hand-written pipecat"], "-i",
                                         botfiles.BOT_IDENTITY), "voice-pipecat")}
                await join_all(list(peers.values()))
                mics = {}
                for system in SYSTEMS:
                    ears[system] = Ear(peers[system].room, botfiles.BOT_IDENTITY)
                    mics[system] = await Mic(peers[system].room).publish()
                for system in SYSTEMS:
                    try:
                        await peers[system].wait_joined(botfiles.BOT_IDENTITY, timeout=60)
                        await ears[system].wait_listening(timeout=60)
                    except asyncio.TimeoutError:
                        bots[system].check_alive()
                        raise
                await asyncio.sleep(1.0)  # the bots' subscriptions to the new microphones settle
                samples = {system: [] for system in SYSTEMS}
                requests = {system: 0 for system in SYSTEMS}
                for i in range(warm + runs):
                    for system in (SYSTEMS if i % 2 == 0 else tuple(reversed(SYSTEMS))):
                        before = len(fake.requests)
                        try:
                            took = await turn(peers[system], mics[system], ears[system], pcm)
                        except asyncio.TimeoutError:
                            bots[system].check_alive()
                            raise RuntimeError(f"{system}: no spoken reply within 15 s") from None
                        requests[system] += len(fake.requests) - before
                        if i >= warm:
                            samples[system].append(took)
                for bot in bots.values():
                    bot.check_alive()
            finally:
                for ear in ears.values():
                    await ear.close()
                await leave_all(list(peers.values()))
    finally:
        await fake.stop()
    for system in SYSTEMS:
        s = summary(samples[system])
        report.row("end of speech -> first bot audio", system, s["p50"], "ms", min=s["min"], max=s["max"],
                   n=s["n"], llm_requests=requests[system])
    report.ratio("voice round trip p50 lkrun / hand-written", "lkrun", samples["lkrun"], "hand-written pipecat",
                 samples["hand-written pipecat"], target=1.05)
    report.note(f"utterance {UTTERANCE!r} ({len(pcm) / 96000:.1f} s, Piper joe at 48 kHz); {warm} warm-up turn(s) "
                "per bot not counted; end of speech = last sample played out by the AudioSource")

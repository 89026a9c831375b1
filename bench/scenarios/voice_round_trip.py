"""Voice turn-taking: end of the person's speech -> first bot audio, and false turn ends, on speech
with natural mid-sentence pauses.

Each utterance is three phrases (offline Piper voice) with 300-700 ms silences between them
(seeded), so a turn detector that ends the turn in a pause is caught: the bot then asks the LLM
more than once for one utterance. lkrun runs ``bench/bots/voice_llm.yaml`` with lkrun's default
session (no turn settings in the file); the hand-written bot ``baselines/voice_bot.py`` runs
pipecat's recommended set-up (``--turn recommended``: the default UserTurnStrategies, i.e.
smart-turn v3, with VAD stop_secs 0.2). Same services otherwise (Silero VAD, Whisper tiny.en
int8, the loopback fake OpenAI LLM, Piper joe). Both run at once in their own rooms; utterances
alternate between them (A B A B ...), and only the room being spoken to gets audio.

``BENCH_VOICE_SESSION`` (JSON object) adds a ``session:`` to lkrun's bot file and
``BENCH_VOICE_RUNS`` sets the number of utterances: for trying candidate defaults, never set in
the recorded runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time

from .. import botfiles
from ..audio import Ear, Mic, paused_speech
from ..clients import Peer, join_all, leave_all
from ..fake_openai import FakeOpenAI
from ..procs import baseline_cmd, lkrun_cmd
from ..stats import summary

NAME = "voice_round_trip"
TITLE = "voice turns: end of speech -> first bot audio, false turn ends in mid-sentence pauses"
TIME_LIMIT = 540
SYSTEMS = ("lkrun", "hand-written pipecat")
UTTERANCES = (
    ("I would like to book a table", "for two people", "tomorrow evening."),
    ("Can you tell me", "what the weather", "will be like this weekend?"),
    ("My account number is", "four five six", "and I forgot my password."),
    ("I was thinking", "that maybe we could", "meet again on Friday."),
)


def utterances(count: int, seed: int = 19) -> list[tuple[tuple[str, ...], tuple[float, ...]]]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        phrases = UTTERANCES[i % len(UTTERANCES)]
        out.append((phrases, tuple(round(rng.uniform(0.3, 0.7), 2) for _ in phrases[1:])))
    return out


async def turn(mic: Mic, ear: Ear, fake: FakeOpenAI, pcm: bytes) -> dict:
    """Speak one paused utterance; the round trip (ms), LLM requests and bot audio while speaking."""
    await mic.play(bytes(int(0.3 * 48000) * 2))
    started = time.monotonic()
    spoken = await mic.play(pcm)
    done = asyncio.Event()
    keep_open = asyncio.ensure_future(mic.silence_until(done, limit=15))
    try:
        first = await ear.first_sound(spoken, timeout=15)
        await ear.quiet(0.8, timeout=15)  # the reply (and any second reply) finished
    finally:
        done.set()
        await asyncio.gather(keep_open, return_exceptions=True)
    requests = [t for kind, t, _ in fake.events if kind == "request" and t >= started]
    last = max((t for t in requests if t <= first), default=None)  # the request the heard reply answers
    return {"ms": (first - spoken) * 1000, "requests": len(requests),
            # where the wait goes: turn end + speech to text, then LLM + text to speech + transport
            "to_llm_ms": None if last is None else (last - spoken) * 1000,
            "llm_to_audio_ms": None if last is None else (first - last) * 1000,
            "early_requests": sum(t < spoken for t in requests),
            "talked_over": any(started <= t < spoken for t in ear.loud)}


def lkrun_bot(ctx, room: str):
    path = botfiles.render("voice_llm", ctx.folder("voice"), room)
    extra = os.environ.get("BENCH_VOICE_SESSION")
    if extra:
        path.write_text(path.read_text() + f"session: {json.dumps(json.loads(extra))}\n")
    return path


async def run(ctx, report):
    runs = int(os.environ.get("BENCH_VOICE_RUNS") or (1 if ctx.quick else 12))
    warm = 0 if ctx.quick else 1
    plan = utterances(warm + runs)
    audio = [await asyncio.to_thread(paused_speech, phrases, pauses) for phrases, pauses in plan]
    fakes = {system: await FakeOpenAI().start() for system in SYSTEMS}  # one each: requests are counted per bot
    rooms = {system: ctx.room(f"voice{i}") for i, system in enumerate(SYSTEMS)}
    peers = {system: Peer(ctx.server, rooms[system]) for system in SYSTEMS}
    ears: dict[str, Ear] = {}
    results: dict[str, list[dict]] = {system: [] for system in SYSTEMS}
    missed = {system: 0 for system in SYSTEMS}
    try:
        async with ctx.procs(BENCH_OPENAI_KEY="sk-bench") as procs:
            try:
                bots = {"lkrun": procs.spawn(lkrun_cmd(lkrun_bot(ctx, rooms["lkrun"])), "voice-lkrun",
                                             BENCH_OPENAI_URL=fakes["lkrun"].base_url),
                        "hand-written pipecat": procs.spawn(
                            baseline_cmd("voice_bot", "-r", rooms["hand-written pipecat"], "-i",
                                         botfiles.BOT_IDENTITY, "--turn", "recommended"), "voice-pipecat",
                            BENCH_OPENAI_URL=fakes["hand-written pipecat"].base_url)}
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
                for i, pcm in enumerate(audio):
                    for system in (SYSTEMS if i % 2 == 0 else tuple(reversed(SYSTEMS))):
                        try:
                            found = await turn(mics[system], ears[system], fakes[system], pcm)
                        except asyncio.TimeoutError:  # counted, not fatal: a loaded machine can miss one
                            bots[system].check_alive()
                            missed[system] += i >= warm
                            report.note(f"{system}: no spoken reply within 15 s to utterance {i}")
                            await ears[system].quiet(1.0, timeout=15)
                            continue
                        if i >= warm:
                            results[system].append(found)
                for bot in bots.values():
                    bot.check_alive()
            finally:
                for ear in ears.values():
                    await ear.close()
                await leave_all(list(peers.values()))
    finally:
        for fake in fakes.values():
            await fake.stop()
    pauses = sum(len(p) for _, p in plan[warm:])
    samples = {}
    for system in SYSTEMS:
        found = results[system]
        false_ends = sum(max(0, r["requests"] - 1) for r in found)
        clean = [r["ms"] for r in found if r["requests"] == 1 and not r["talked_over"]]
        if not clean and ctx.quick and found:  # the smoke run's one utterance had a false turn end
            clean = [r["ms"] for r in found]
            report.note(f"{system}: quick run without a clean turn: its round trip includes a false turn end")
        samples[system] = clean
        # every turn whose answered request came after the speech ended (a false turn end before it
        # leaves the last segment: a shorter one to transcribe, so this favours the system that cuts in)
        split = [r for r in found if r["to_llm_ms"] is not None and r["to_llm_ms"] > 0]
        if split:
            before, after = summary([r["to_llm_ms"] for r in split]), summary([r["llm_to_audio_ms"] for r in split])
            report.row("end of speech -> LLM request (turn end + STT)", system, before["p50"], "ms",
                       min=before["min"], max=before["max"], n=before["n"])
            report.row("LLM request -> first bot audio (LLM + TTS + transport)", system, after["p50"], "ms",
                       min=after["min"], max=after["max"], n=after["n"])
        s = summary(clean)
        report.row("end of speech -> first bot audio", system, s["p50"], "ms", p95=s["p95"], min=s["min"],
                   max=s["max"], n=s["n"], false_ends_per_100_pauses=100.0 * false_ends / max(pauses, 1),
                   false_ends=false_ends, pauses=pauses, talked_over=sum(r["talked_over"] for r in found),
                   requests_before_end=sum(r["early_requests"] for r in found), missed=missed[system])
        if not clean:  # every turn was cut into pieces: its false turn ends are the result
            report.note(f"{system}: no clean turn ({missed[system]} without a reply, {false_ends} false turn ends)")
    if not any(samples.values()):
        raise RuntimeError("no clean turn measured for either system")
    if all(samples.values()):
        report.ratio("voice round trip p50 lkrun / hand-written (recommended)", "lkrun", samples["lkrun"],
                     "hand-written pipecat", samples["hand-written pipecat"], target=1.0)
    report.note(f"{runs} utterances per system of 3 phrases with 300-700 ms pauses ({pauses} pauses), "
                f"{warm} warm-up utterance(s) not counted; end of speech = last sample of the last phrase "
                "played out by the AudioSource; a false turn end = one more LLM request than utterances; "
                "the round trip is taken from turns with exactly one request and no bot audio while speaking; "
                "target p50 <= 700 ms and no more false turn ends than the hand-written bot")

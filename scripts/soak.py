"""Soak: many bots in one process for a long time; nothing lost, nothing leaked.

    .venv/bin/python scripts/soak.py                 # 30 minutes (make soak)
    .venv/bin/python scripts/soak.py --minutes 10
    .venv/bin/python scripts/soak.py --minutes 2 --warmup 30 --interval 5 --bots 10   # tests/test_soak.py

One process runs N data bots (BotRuntime objects, what `lkrun a.yaml b.yaml ...` runs) each
in its own room, N people (the real livekit SDK) each sending one message a second to their
bot and checking every reply (same seq, same text, from that bot, within 5 s), and one voice
call: a bot with the offline voice stack (Silero VAD, Whisper STT, Piper TTS) and a person
whose microphone plays silence and, every 20 s, a spoken question; the bot must send the
transcript back as data and answer aloud. A LiveKit dev server runs beside it.

Every --interval seconds it samples this process: VmRSS (/proc/self/status), open file
descriptors (/proc/self/fd), asyncio tasks (len(asyncio.all_tasks())), threads, and the
message counters. At the end it prints the least-squares slope per minute of RSS, fds and
tasks over the samples after --warmup, and exits 1 when any message or voice turn was lost
(no reply in 15 s; 30 s for a voice turn) or a slope is clearly growing: over its limit and
more than twice its standard error (a short run's RSS jumps by tens of MiB while Whisper
transcribes: that is noise, not growth):

    RSS   > 1.0 MiB/min   With 20 bots that is ~1,200 data runs a minute: 1 MiB/min is ~870 B
                          kept per message (a frame, a task, a trace entry, a buffer that is
                          never freed) and 1.4 GiB a day. After the warm-up (models loaded, the
                          per-bot trace rings of 200 entries full) RSS is flat to well under
                          that (see the report).
    fds   > 0.5 /min      Nothing opens files or sockets per message: steady state is exactly
                          flat, so one leaked descriptor every two minutes is a leak.
    tasks > 0.5 /min      Same for asyncio tasks (a few are in flight at any sample; the slope
                          of that noise over minutes is ~0).

The people run in processes of their own, as real remote clients would: the data clients in one
(up to PEOPLE_PER_PROCESS) and the voice caller alone. The measured process holds only the bots,
and its event loop is not shared with 20 clients and a microphone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from audio_helpers import silence, speech  # noqa: E402  (tests/audio_helpers.py: Piper speech, no pipecat)

LIMITS = {"rss_mib": 1.0, "fds": 0.5, "tasks": 0.5}
REPLY_TIMEOUT = 15.0  # no reply by then: lost (a slow reply on a busy machine is late, not lost)
LATE_MS = 1000.0
VOICE_TIMEOUT = 30.0  # end of speech -> the transcript back
VOICE_EVERY = 20.0
PEOPLE_PER_PROCESS = 20  # 5 a process was worse here: a 1-minute run had 559 of 1,200 replies late, against 0
QUESTION = "What is the weather like today?"

DATA_BOT = """
version: 1
name: soak{i}
livekit: {{room: {room}, identity: soak{i}}}
on:
  data_received:
    - send: {{to: "{{{{ participant.id }}}}", data: {{text: "pong {{{{ message.n }}}}", seq: "{{{{ message.seq }}}}"}}}}
"""

VOICE_BOT = """
version: 1
name: talker
livekit: {room: ROOM, identity: talker}
pipeline:
  - vad: {type: silero}
  - stt: {type: whisper_stt}
  - tts: {type: piper_tts}
on:
  user_said:
    - match: "(?s).+"
      do:
        - send: {to: "{{ participant.id }}", data: {heard: "{{ text }}"}}
        - say: It is sunny and warm today.
  # so a lost turn says where it was lost: never heard as speech, or heard and not transcribed
  user_turn_started:
    - send: {data: {turn: started}}
  user_turn_stopped:
    - send: {data: {turn: stopped}}
"""


def proc_status() -> dict:
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "Threads"):
                out[key] = int(value.split()[0])
    return out


def slope_per_minute(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """Least-squares slope of (seconds, value) in value per minute, and its standard error."""
    n = len(points)
    if n < 3:
        return None
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    if var == 0:
        return None
    slope = sum((t - mt) * (v - mv) for t, v in points) / var
    residual = sum((v - mv - slope * (t - mt)) ** 2 for t, v in points)
    se = (residual / (n - 2) / var) ** 0.5
    return slope * 60, se * 60


def percentile(values, q):
    values = sorted(values)
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


class DataCaller:
    """One person talking to one data bot: a message a second, every reply checked."""

    def __init__(self, server, room: str, bot: str, index: int):
        from livekit import rtc
        self.server, self.room_name, self.bot, self.index = server, room, bot, index
        self.room = rtc.Room()
        self.pending: dict[int, float] = {}  # seq -> sent (monotonic)
        self.sent = self.answered = self.lost = self.wrong = self.late = 0
        self.latencies: list[float] = []  # since the last sample
        self.seq = 0
        self.expired: set[int] = set()  # counted lost; a reply that still comes is not "wrong"
        self.warm = 0  # seqs up to this one were warm-up messages (late replies to them are ignored)
        self.room.on("data_received", self._on_data)

    async def join(self) -> None:
        from livekit import rtc
        from runner.connect.tokens import person_token
        token = person_token(self.server.api_key, self.server.api_secret, room=self.room_name,
                             identity=f"person{self.index}")
        await self.room.connect(self.server.url, token)
        # a mic, like a browser: LiveKit announces participants that publish nothing only every 3 s
        self.source = rtc.AudioSource(48000, 1)
        track = rtc.LocalAudioTrack.create_audio_track("mic", self.source)
        await self.room.local_participant.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE))

    def _on_data(self, packet) -> None:
        now = time.monotonic()
        try:
            reply = json.loads(packet.data)
            seq = int(reply["seq"])
        except (ValueError, KeyError, TypeError):
            self.wrong += 1
            return
        if seq <= self.warm or seq in self.expired:
            return
        sent = self.pending.pop(seq, None)
        who = packet.participant.identity if packet.participant else None
        if sent is None or reply.get("text") != f"pong {seq * 7}" or who not in (self.bot, None):
            self.wrong += 1
            return
        self.answered += 1
        self.latencies.append((now - sent) * 1000)
        self.late += self.latencies[-1] > LATE_MS

    async def ready(self, timeout: float = 60.0) -> None:
        """Until the bot answers (it may still be joining); these warm-up messages are not counted."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.seq += 1
            self.pending[self.seq] = time.monotonic()
            await self.send(self.seq)
            await asyncio.sleep(0.5)
            if self.answered:
                break
        else:
            raise RuntimeError(f"{self.bot} never answered")
        self.warm = self.seq
        self.pending.clear()
        self.sent = self.answered = self.wrong = self.late = 0
        self.latencies.clear()

    async def send(self, seq: int) -> None:
        payload = json.dumps({"seq": seq, "n": seq * 7}).encode()
        await self.room.local_participant.publish_data(payload, reliable=True)

    async def run(self, until: float) -> None:
        await asyncio.sleep(self.index * 1.0 / 20 % 1.0)  # spread the people over the second
        next_at = time.monotonic()
        while time.monotonic() < until:
            self.seq += 1
            self.pending[self.seq] = time.monotonic()
            self.sent += 1
            try:
                await self.send(self.seq)
            except Exception as exc:  # a failed publish is a lost message, not a crash of the soak
                print(f"person{self.index}: send failed: {exc}", file=sys.stderr)
            self.expire()
            next_at += 1.0
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    def expire(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for seq, sent in list(self.pending.items()):
            if now - sent > REPLY_TIMEOUT:
                del self.pending[seq]
                self.expired.add(seq)
                self.lost += 1

    async def leave(self) -> None:
        try:
            await asyncio.wait_for(self.room.disconnect(), 5)
        except Exception:
            pass


class Ear:
    """When the bot was last audible; keeps no audio (a soak must not grow by itself)."""

    def __init__(self, room, identity: str):
        from livekit import rtc
        self.identity, self.last_loud = identity, 0.0
        self.task = None
        self.rtc = rtc
        room.on("track_subscribed", self._on_track)

    def _on_track(self, track, publication, participant):
        if participant.identity != self.identity or track.kind != self.rtc.TrackKind.KIND_AUDIO or self.task:
            return
        stream = self.rtc.AudioStream(track, sample_rate=16000, num_channels=1)
        self.task = asyncio.ensure_future(self._read(stream))

    async def _read(self, stream):
        import numpy as np
        async for event in stream:
            data = np.frombuffer(event.frame.data, dtype=np.int16)
            if data.size and np.sqrt(np.mean(data.astype(np.float32) ** 2)) > 500:
                self.last_loud = time.monotonic()


class VoiceCaller:
    """One voice call: silence on the mic, and a spoken question every VOICE_EVERY seconds."""

    def __init__(self, server, room: str):
        from livekit import rtc
        self.server, self.room_name = server, room
        self.room = rtc.Room()
        self.heard: asyncio.Queue = asyncio.Queue()
        self.turns = self.answered = self.lost = self.silent = 0
        self.misheard: list[str] = []  # transcripts without "weather" (Whisper hears Piper word for word)
        self.latencies: list[float] = []  # end of speech -> transcript back as data
        self.marks: list[tuple[float, str]] = []  # the bot's user_turn_started/stopped, as it saw them
        self.room.on("data_received", self._on_data)
        self.ear = Ear(self.room, "talker")

    def _on_data(self, packet) -> None:
        try:
            message = json.loads(packet.data)
        except ValueError:
            return
        if isinstance(message, dict) and "turn" in message:
            self.marks.append((time.monotonic(), str(message["turn"])))
        else:
            self.heard.put_nowait((time.monotonic(), message))

    async def join(self) -> None:
        from audio_helpers import Microphone
        from runner.connect.tokens import person_token
        token = person_token(self.server.api_key, self.server.api_secret, room=self.room_name, identity="caller")
        await self.room.connect(self.server.url, token)
        self.mic = await Microphone(self.room).publish()

    async def turn(self, count: bool = True) -> None:
        began = time.monotonic()
        await self.mic.play(speech(QUESTION))
        ended = time.monotonic()
        await self.mic.play(silence(0.3))
        if count:
            self.turns += 1
        deadline = ended + VOICE_TIMEOUT
        while True:
            try:
                at, reply = await asyncio.wait_for(self.heard.get(), max(0.01, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                if count:
                    self.lost += 1
                    seen = [f"{what} at {at - ended:+.1f} s" for at, what in self.marks if at >= began]
                    print(f"voice turn {self.turns} lost: no transcript within {VOICE_TIMEOUT:g} s of the end of "
                          f"speech; the bot's turn events since it began: {', '.join(seen) or 'none'}",
                          file=sys.stderr, flush=True)
                else:
                    raise RuntimeError("the voice bot never answered the first question")
                return
            heard = str(reply.get("heard", ""))
            if "weather" in heard.lower():
                break
            if count and heard:
                self.misheard.append(heard)
        if count:
            self.answered += 1
            self.latencies.append((at - ended) * 1000)
        while time.monotonic() < at + 6.0:  # the spoken answer follows the data reply
            await self.mic.play(silence(0.5))
            if self.ear.last_loud > at:
                return
        if count:
            self.silent += 1

    async def ready(self, attempts: int = 4) -> None:
        """Until the bot answers a question (its models load, its VAD starts); not counted."""
        for attempt in range(attempts):
            await self.mic.play(silence(1.0))
            try:
                await self.turn(count=False)
                return
            except RuntimeError:
                if attempt == attempts - 1:
                    raise

    async def run(self, until: float) -> None:
        while time.monotonic() < until:
            start = time.monotonic()
            await self.turn()
            while time.monotonic() < min(until, start + VOICE_EVERY):
                await self.mic.play(silence(0.5))

    async def leave(self) -> None:
        if self.ear.task is not None:
            self.ear.task.cancel()
        try:
            await asyncio.wait_for(self.room.disconnect(), 5)
        except Exception:
            pass


async def start_bot(text: str, folder: Path, name: str, server, trace_size: int | None):
    from runner.botfile.check import check_file
    from runner.runtime.bot import BotRuntime
    from runner.runtime.trace import Trace
    path = folder / f"{name}.yaml"
    path.write_text(text)
    spec = check_file(path)
    bot = BotRuntime(spec, server, trace=Trace(trace_size) if trace_size else None)
    task = asyncio.ensure_future(bot.run())
    return bot, task


def counters(callers, voice) -> dict:
    """The people's side of a sample (their latencies since the last one are taken)."""
    lat = [x for c in callers for x in c.latencies]
    for caller in callers:
        caller.latencies.clear()
    return {"sent": sum(c.sent for c in callers), "answered": sum(c.answered for c in callers),
            "lost": sum(c.lost for c in callers), "wrong": sum(c.wrong for c in callers),
            "late": sum(c.late for c in callers), "latencies_ms": [round(x, 1) for x in lat],
            "voice_turns": voice.turns if voice else 0, "voice_answered": voice.answered if voice else 0,
            "voice_lost": voice.lost if voice else 0, "voice_silent": voice.silent if voice else 0}


def emit(kind: str, **data) -> None:
    print(json.dumps({"type": kind, **data}), flush=True)


async def people(args) -> int:
    """The people, in a process of their own (like real remote clients): the bots' process is the
    one measured, and its event loop is not shared with 20 SDK clients and a microphone."""
    from runner.connect.endpoint import Server
    server = Server(args.url, args.api_key, args.api_secret)
    callers = [DataCaller(server, f"soak-{args.stamp}-{i}", f"soak{i}", i)
               for i in range(args.first, args.first + args.bots)]
    voice = VoiceCaller(server, f"soak-{args.stamp}-voice") if args.voice else None
    everyone = callers + ([voice] if voice else [])
    gate = asyncio.Semaphore(10)

    async def join(person):
        async with gate:
            await person.join()
            if isinstance(person, DataCaller):
                await person.ready()
    try:
        await asyncio.gather(*(join(p) for p in everyone))
        if voice:
            await voice.ready()
        emit("ready")
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        t0 = time.monotonic()
        until = t0 + args.minutes * 60
        work = [asyncio.ensure_future(c.run(until)) for c in callers]
        if voice:
            work.append(asyncio.ensure_future(voice.run(until)))
        while time.monotonic() < until:
            await asyncio.sleep(max(0.0, min(until - time.monotonic(), args.interval / 2)))
            for task in work:  # a crashed person is a failed soak now, not in 30 minutes
                if task.done() and task.exception() is not None:
                    raise task.exception()
            for caller in callers:
                caller.expire()
            emit("sample", **counters(callers, voice))
        await asyncio.gather(*work)
        end = time.monotonic() + REPLY_TIMEOUT + 0.5  # the last replies; what is still missing then is lost
        while any(c.pending for c in callers) and time.monotonic() < end:
            await asyncio.sleep(0.05)
        for caller in callers:
            caller.expire(time.monotonic() + REPLY_TIMEOUT + 1)
        emit("done", **counters(callers, voice), voice=vars_of(voice))
    finally:
        for person in everyone:
            await person.leave()
    return 0


VOICE_KEYS = ("voice_turns", "voice_answered", "voice_lost", "voice_silent")


DATA_KEYS = ("sent", "answered", "lost", "wrong", "late")


def merged(parts: list[dict]) -> dict:
    """The people processes' counters as one: data summed over the data crowds (latencies pooled),
    voice from the voice caller's."""
    out = {k: sum(p.get(k, 0) for p in parts) for k in DATA_KEYS}
    pooled = [x for p in parts for x in p.get("latencies_ms", ())]
    out.update(p50_ms=percentile(pooled, 50), p99_ms=percentile(pooled, 99))
    for part in parts:
        if part.get("voice_turns"):
            out.update({k: part[k] for k in VOICE_KEYS if k in part})
    return out


class Crowd:
    """One process of people (see ``people``), its latest counters and its final ones."""

    @classmethod
    async def start(cls, argv: list[str], env: dict) -> "Crowd":
        crowd = cls()
        crowd.proc = await asyncio.create_subprocess_exec(  # the key and secret by environment, never in argv
            sys.executable, __file__, *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env)
        crowd.latest = {"type": None}
        crowd.done = asyncio.get_running_loop().create_future()
        crowd.listener = asyncio.ensure_future(crowd._listen())
        return crowd

    async def _listen(self) -> None:
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                if not self.done.done():
                    self.done.set_exception(RuntimeError(f"a people's process ended ({await self.proc.wait()})"))
                return
            try:
                message = json.loads(line)
            except ValueError:
                continue
            self.latest.update(message)
            if message["type"] == "done" and not self.done.done():
                self.done.set_result(message)

    def check(self) -> None:
        if self.done.done() and self.done.exception() is not None:
            raise self.done.exception()

    async def ready(self) -> None:
        while self.latest["type"] != "ready":
            self.check()
            await asyncio.sleep(0.1)

    async def go(self) -> None:
        self.proc.stdin.write(b"go\n")
        await self.proc.stdin.drain()

    async def stop(self) -> None:
        self.listener.cancel()
        if self.proc.returncode is None:
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()


async def soak(args) -> int:
    import tempfile

    from runner.connect.endpoint import Server
    from runner.host.devserver import DevServer
    from runner.runtime import logs
    logs.setup(verbose=False)

    devserver = DevServer()
    await devserver.start()
    server = Server(devserver.url, devserver.api_key, devserver.api_secret)
    folder = Path(tempfile.mkdtemp(prefix="lkrun-soak-"))
    stamp = time.monotonic_ns() % 10**8
    bots, crowds = [], []
    started = time.monotonic()
    samples: list[dict] = []
    probe = None
    if args.tracemalloc or args.objects:
        from soak_memory import MemoryProbe  # scripts/soak_memory.py
        probe = MemoryProbe([float(t) for t in (args.tracemalloc or args.objects).split(",")],
                            trace=bool(args.tracemalloc))
    code = 1
    try:
        for i in range(args.bots):
            bots.append(await start_bot(DATA_BOT.format(i=i, room=f"soak-{stamp}-{i}"), folder, f"soak{i}", server,
                                        args.trace_size))
        if args.voice:
            bots.append(await start_bot(VOICE_BOT.replace("ROOM", f"soak-{stamp}-voice"), folder, "talker", server,
                                        args.trace_size))
        env = {**os.environ, "LIVEKIT_API_KEY": devserver.api_key, "LIVEKIT_API_SECRET": devserver.api_secret}
        common = ["--people", devserver.url, str(stamp), "--minutes", str(args.minutes), "--interval", str(args.interval)]
        # every SDK room in a process wakes for every other room's events (one process of 20 clients takes
        # most of a core here), but each process also has its own WebRTC threads: more processes cost more
        # one process at a time: five processes joining 25 rooms at once while the bots warm up timed
        # out the SDK's signal connections on this 2-core machine
        for first in range(0, args.bots, PEOPLE_PER_PROCESS):
            count = min(PEOPLE_PER_PROCESS, args.bots - first)
            crowds.append(await Crowd.start(common + ["--bots", str(count), "--first", str(first), "--no-voice"], env))
            await crowds[-1].ready()
        if args.voice:  # the voice caller alone: 20 SDK clients beside it starve its microphone's timing
            crowds.append(await Crowd.start(common + ["--bots", "0", "--first", "0"], env))
            await crowds[-1].ready()
        ready = time.monotonic() - started
        print(f"soak: {args.bots} data bots + {'1 voice bot' if args.voice else 'no voice'} in pid {os.getpid()} "
              f"(the people in pid {', '.join(str(c.proc.pid) for c in crowds)}), ready in {ready:.1f} s; running "
              f"{args.minutes:g} min, sampling every {args.interval:g} s, slopes after {args.warmup:g} s", flush=True)
        for crowd in crowds:
            await crowd.go()
        t0 = time.monotonic()
        until = t0 + args.minutes * 60
        while True:
            now = time.monotonic()
            for crowd in crowds:
                crowd.check()
            status = proc_status()
            people_side = merged([c.latest for c in crowds])
            sample = {"t": round(now - t0, 1), "rss_mib": status["VmRSS"] / 1024, "threads": status["Threads"],
                      "fds": len(os.listdir("/proc/self/fd")), "tasks": len(asyncio.all_tasks()),
                      "py_blocks": sys.getallocatedblocks(),
                      **{k: 0 for k in ("sent", "answered", "lost", "wrong", "late", *VOICE_KEYS)},
                      "p50_ms": float("nan"), "p99_ms": float("nan"), **people_side}
            samples.append(sample)
            if probe is not None:
                probe.tick(sample["t"], sample["rss_mib"], sample["answered"])
            print(f"t={sample['t']:6.0f} s  rss={sample['rss_mib']:7.1f} MiB  fds={sample['fds']:4d}  "
                  f"tasks={sample['tasks']:5d}  pyblocks={sample['py_blocks']:8d}  threads={sample['threads']:3d}  sent={sample['sent']:6d}  "
                  f"answered={sample['answered']:6d}  lost={sample['lost']}  wrong={sample['wrong']}  late={sample['late']}  "
                  f"p50={sample['p50_ms']:.0f} ms p99={sample['p99_ms']:.0f} ms  voice {sample['voice_answered']}/"
                  f"{sample['voice_turns']} (silent {sample['voice_silent']})", flush=True)
            if now >= until:
                break
            await asyncio.sleep(max(0.0, min(until, t0 + len(samples) * args.interval) - time.monotonic()))
        finals = [await asyncio.wait_for(c.done, REPLY_TIMEOUT + VOICE_TIMEOUT + 30) for c in crowds]
        code = report(args, samples, {**merged(finals), "voice": next((f["voice"] for f in finals if f.get("voice")), None)})
        if probe is not None:
            probe.report()
    finally:
        for crowd in crowds:
            await crowd.stop()
        for bot, task in bots:
            try:
                await asyncio.wait_for(bot.stop(), 5)
            except Exception:
                pass
            task.cancel()
        await asyncio.gather(*(t for _, t in bots), return_exceptions=True)
        await devserver.stop()
    return code


def report(args, samples, final: dict) -> int:
    sent, answered, lost, wrong, late = (final[k] for k in ("sent", "answered", "lost", "wrong", "late"))
    voice = final.get("voice")
    steady = [s for s in samples if s["t"] >= args.warmup]
    fits = {key: slope_per_minute([(s["t"], s[key]) for s in steady]) for key in LIMITS}
    slopes = {key: fit and fit[0] for key, fit in fits.items()}
    print(f"\nsoak result after {samples[-1]['t'] / 60:.1f} min ({len(steady)} samples after the "
          f"{args.warmup:g} s warm-up):")
    print(f"  data: sent {sent}, answered {answered}, lost {lost}, wrong {wrong}, "
          f"later than {LATE_MS:.0f} ms {late}")
    if voice:
        print(f"  voice: {voice['turns']} turns, answered {voice['answered']}, lost {voice['lost']}, "
              f"no audible answer {voice['silent']}, transcript back p50 {percentile(voice['latencies_ms'], 50):.0f} ms "
              f"max {max(voice['latencies_ms'], default=float('nan')):.0f} ms")
        if voice["misheard"]:
            print(f"  voice: heard without 'weather': {voice['misheard'][:5]}")
    failed = []
    for key, limit in LIMITS.items():
        fit = fits[key]
        first, last = (steady[0][key], steady[-1][key]) if steady else (None, None)
        shown = "n/a (too few samples)" if fit is None else f"{fit[0]:+.3f}/min ± {fit[1]:.3f}"
        print(f"  slope {key:7s} {shown:>22}  (limit {limit:g}/min; {first:.6g} -> {last:.6g} over the window)")
        if fit is not None and fit[0] > limit and fit[0] > 2 * fit[1]:  # over the limit, and not noise
            failed.append(f"{key} grows {fit[0]:+.3f}/min ± {fit[1]:.3f} > {limit:g}/min")
    blocks = slope_per_minute([(s["t"], s["py_blocks"]) for s in steady])
    if blocks is not None:  # not a limit: whether RSS growth is Python objects at all (soak_memory.py)
        print(f"  slope py_blocks {blocks[0]:+.1f}/min ± {blocks[1]:.1f}  (Python's live heap blocks; "
              f"{steady[0]['py_blocks']} -> {steady[-1]['py_blocks']})")
    if lost or wrong:
        failed.append(f"{lost} data messages lost, {wrong} wrong replies")
    if voice and (voice["lost"] or voice["silent"]):
        failed.append(f"{voice['lost']} voice turns lost, {voice['silent']} without an audible answer")
    if any(v is None for v in slopes.values()):
        failed.append("too few samples after the warm-up for slopes")
    if args.json:
        Path(args.json).write_text(json.dumps({"samples": samples, "slopes": slopes, "slope_se": {k: f and f[1] for k, f in fits.items()}, "limits": LIMITS,
                                               "sent": sent, "answered": answered, "lost": lost, "wrong": wrong,
                                               "voice": voice, "failed": failed}, indent=1))
    print("FAIL: " + "; ".join(failed) if failed else "OK: nothing lost, nothing growing", flush=True)
    return 1 if failed else 0


def vars_of(voice):
    if voice is None:
        return None
    return {"turns": voice.turns, "answered": voice.answered, "lost": voice.lost, "silent": voice.silent,
            "misheard": voice.misheard,
            "latencies_ms": voice.latencies}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="how long to run (default 30)")
    parser.add_argument("--bots", type=int, default=20, help="data bots, one person each (default 20)")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples (default 10)")
    parser.add_argument("--warmup", type=float, default=120.0, help="seconds left out of the slopes (default 120)")
    parser.add_argument("--no-voice", dest="voice", action="store_false", help="no voice call")
    parser.add_argument("--trace-size", type=int, default=None,
                        help="each bot's trace ring (default: the runtime's 200); a short run uses a small one "
                             "so the ring is full before the warm-up ends")
    parser.add_argument("--json", help="write the samples and the result here")
    parser.add_argument("--tracemalloc", metavar="T1,T2",
                        help="snapshots of the measured process's Python heap at these seconds (e.g. 200,500) "
                             "and the top differences by traceback after the last (scripts/soak_memory.py); "
                             "slows the bots, so its slopes are not an untraced run's")
    parser.add_argument("--objects", metavar="T1,T2",
                        help="only gc's object counts by type at these seconds, and which grew (cheap)")
    parser.add_argument("--people", nargs=2, metavar=("URL", "STAMP"),
                        help=argparse.SUPPRESS)  # the people's process, started by the soak itself
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)  # a people's process: its first bot
    args = parser.parse_args(argv)
    if args.people:
        args.url, args.stamp = args.people
        args.api_key, args.api_secret = os.environ["LIVEKIT_API_KEY"], os.environ["LIVEKIT_API_SECRET"]
    try:
        code = asyncio.run(people(args) if args.people else soak(args))
    except KeyboardInterrupt:
        code = 130
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # the livekit FFI's threads can abort a normal interpreter exit (see runner.host.supervisor)


if __name__ == "__main__":
    main()

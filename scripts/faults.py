"""Faults: a bot across a network partition and a slow, stalling link (`make faults`; root, not CI).

    sudo .venv/bin/python scripts/faults.py            # both scenarios (make faults)
    sudo .venv/bin/python scripts/faults.py --only partition --cut 30

Five network namespaces joined by veth pairs, private 10.77.x addresses only (nothing touches
the real network; every namespace is deleted at the end, also on failure or ^C):

    lkfaults-ppl  10.77.2.2 ──── 10.77.2.1  lkfaults-srv  10.77.1.1 ──── 10.77.1.2  lkfaults-bot
    (people, checks)             (livekit-server,          ^ the partition:        (lkrun: faultbot)
                                  ICE/UDP 7882, TCP 7881)    `ip link set down`
                                 10.77.5.1 ── 10.77.5.2  lkfaults-relay  10.77.1.1 ── 10.77.1.2  lkfaults-bot2
                                                         (TCP relay: 7880, 7881)    (lkrun: slowbot, UDP
                                                                                     blocked by `ip rule`)

partition: faultbot's link goes down for --cut s (30) and up again. Checked: the bot answers
again within 10 s of the heal, the server lists exactly one participant with its identity, the
`set` counter goes on from before the cut, nobody is greeted twice (a person who joined during
the cut is greeted once, after it), no message is answered twice, and only messages sent while
the bot was away may be missing (they are counted).

slow: slowbot reaches the server only through a user-space TCP relay (signalling on 7880 and,
since UDP is blocked in its namespace, media and data over ICE/TCP on 7881). For --slow s (60)
the relay delays every chunk by 200 ms and stalls everything for 2-12 s now and then. Reported:
reply latencies, replies lost or doubled, greetings, reconnects; checked: no double answer or
greeting, one identity, and the bot answers within 10 s after the impairment ends.

Packet loss is not emulated: this kernel has no netem qdisc, there is no iptables/nft, and on a
TCP stream dropped segments are retransmitted by the kernel, so a relay that "drops" chunks would
corrupt the stream rather than emulate loss; a delay plus stalls is what loss looks like to TCP.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "lkfaults-"
SERVER_PORT, TCP_PORT, UDP_PORT = 7880, 7881, 7882
KEY, SECRET = "devkey", "secret"
BACK_WITHIN = 10.0
# a user's LIVEKIT_* settings reach neither the server (LIVEKIT_KEYS would replace devkey) nor the bots
BASE_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("LIVEKIT_", "NODE_IP", "UDP_PORT"))}


# ---------------------------------------------------------------- the relay (also used by tests)

class Relay:
    """A TCP relay with faults: ``hold()`` forwards nothing (new connections wait, as a SYN that
    is retransmitted until the path heals), ``heal()`` resumes, ``reset()`` aborts every
    connection, ``delay`` adds latency to every chunk, ``stall(s)`` holds for s seconds.
    ``hold(passing=fn)``: a new connection whose first bytes satisfy fn is forwarded anyway."""

    def __init__(self, target_host: str, target_port: int, host: str = "127.0.0.1", port: int = 0,
                 delay: float = 0.0):
        self.target = (target_host, target_port)
        self.host, self.port, self.delay = host, port, delay
        self._open = asyncio.Event()
        self._open.set()
        self._passing = None
        self._transports: set = set()
        self._server = None
        self.accepted = self.chunks = self.stalls = 0

    async def start(self) -> "Relay":
        self._server = await asyncio.start_server(self._client, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def held(self) -> bool:
        return not self._open.is_set()

    def hold(self, passing=None) -> None:
        self._passing = passing
        self._open.clear()

    def heal(self) -> None:
        self._passing = None
        self._open.set()

    async def stall(self, seconds: float) -> None:
        self.stalls += 1
        self.hold()
        try:
            await asyncio.sleep(seconds)
        finally:
            self.heal()

    def reset(self) -> None:
        for transport in list(self._transports):
            transport.abort()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.reset()

    async def _client(self, reader, writer) -> None:
        self.accepted += 1
        self._transports.add(writer.transport)
        upstream = None
        try:
            first, free = b"", False
            if self.held and self._passing is not None:
                first = await reader.read(65536)
                free = bool(first) and self._passing(first)
            if not free:
                await self._open.wait()
            up_reader, upstream = await asyncio.open_connection(*self.target)
            self._transports.add(upstream.transport)
            if first:
                upstream.write(first)
            await asyncio.gather(self._pipe(reader, upstream, free), self._pipe(up_reader, writer, free))
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            for w in (writer, upstream):
                if w is not None:
                    self._transports.discard(w.transport)
                    w.transport.abort()

    async def _pipe(self, reader, writer, free: bool) -> None:
        """Read as it comes, write each chunk `delay` later (latency, not a bandwidth cap),
        and nothing while held."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()

        async def read():
            while True:
                data = await reader.read(65536)
                queue.put_nowait((loop.time() + self.delay, data))
                if not data:
                    return

        reading = asyncio.ensure_future(read())
        try:
            while True:
                due, data = await queue.get()
                if due > loop.time():
                    await asyncio.sleep(due - loop.time())
                if not free:
                    await self._open.wait()
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                self.chunks += 1
                writer.write(data)
                await writer.drain()
        finally:
            reading.cancel()


# ---------------------------------------------------------------- namespaces (root side)

def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


def cleanup() -> None:
    """Delete every namespace this script makes (their veths go with them)."""
    listing = sh("ip", "netns", "list", check=False).stdout.split("\n")
    for line in listing:
        name = line.split(" ")[0]
        if name.startswith(PREFIX):
            for pid in sh("ip", "netns", "pids", name, check=False).stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            sh("ip", "netns", "del", name, check=False)


def link(a: str, a_dev: str, a_addrs: list[str], b: str, b_dev: str, b_addrs: list[str]) -> None:
    sh("ip", "link", "add", a_dev, "netns", PREFIX + a, "type", "veth", "peer", "name", b_dev, "netns", PREFIX + b)
    for ns, dev, addrs in ((a, a_dev, a_addrs), (b, b_dev, b_addrs)):
        for addr in addrs:
            sh("ip", "-n", PREFIX + ns, "addr", "add", addr, "dev", dev)
        sh("ip", "-n", PREFIX + ns, "link", "set", dev, "up")


def build_network() -> None:
    for ns in ("srv", "bot", "ppl", "relay", "bot2"):
        sh("ip", "netns", "add", PREFIX + ns)
        sh("ip", "-n", PREFIX + ns, "link", "set", "lo", "up")
    link("srv", "lkf-srv-bot", ["10.77.1.1/24"], "bot", "lkf-bot", ["10.77.1.2/24"])
    link("srv", "lkf-srv-ppl", ["10.77.2.1/24"], "ppl", "lkf-ppl", ["10.77.2.2/24"])
    link("srv", "lkf-srv-rly", ["10.77.5.1/24"], "relay", "lkf-rly-srv", ["10.77.5.2/24"])
    link("relay", "lkf-rly-bot", ["10.77.1.1/24"], "bot2", "lkf-bot2", ["10.77.1.2/24"])
    # slowbot's only way to the server is the relay: no UDP at all, so ICE falls back to TCP
    sh("ip", "-n", PREFIX + "bot2", "rule", "add", "ipproto", "udp", "prohibit", "pref", "100")


def server_config() -> str:
    # slowbot dials the 10.77.1.1:7881 candidate, which in its namespace is the relay; the relay's
    # connections arrive on 10.77.5.1, and pion's ICE/TCP mux matches a connection by (ufrag, local
    # address), so that address must be one of the server's candidates too
    return (f"port: {SERVER_PORT}\nbind_addresses: ['0.0.0.0']\nlogging: {{level: info}}\n"
            f"rtc:\n  tcp_port: {TCP_PORT}\n  udp_port: {UDP_PORT}\n  use_external_ip: false\n"
            "  enable_loopback_candidate: false\n  ips:\n    includes: [10.77.1.0/24, 10.77.2.0/24, 10.77.5.0/24]\n")


BOT = """
version: 1
name: {name}
livekit: {{room: {room}, identity: {name}}}
on:
  participant_connected:
    - send: {{to: "{{{{ participant.id }}}}", data: {{greet: "{{{{ participant.id }}}}"}}}}
  data_received:
    - set: {{values: {{count: "{{{{ (state.count or 0) + 1 }}}}"}}}}
    - send: {{to: "{{{{ participant.id }}}}", data: {{count: "{{{{ state.count }}}}", seq: "{{{{ message.seq }}}}"}}}}
"""


class Procs:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, ns: str, cmd: list[str], env: dict | None = None) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.log", "wb")
        proc = subprocess.Popen(["ip", "netns", "exec", PREFIX + ns, *cmd], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env={**BASE_ENV, **(env or {})},
                                start_new_session=True, cwd=ROOT)
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 5
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def bot_summary(text: str) -> list[str]:
    keys = ("interrupted", "reconnected", "lost the connection", "in room", "not rejoining", "abandoned",
            "previous connection", "older connection", "cannot reach", "still open", "FFI Panic", "Traceback")
    lines = [line for line in text.splitlines() if any(k in line for k in keys)]
    return [line[:160] for line in lines][-30:]


def orchestrate(args) -> int:
    if os.geteuid() != 0 or not shutil.which("ip"):
        print("faults: needs root and iproute2 (ip netns)")
        return 2
    from runner.host.devserver import find_livekit_server
    binary = find_livekit_server()
    python = str(ROOT / ".venv" / "bin" / "python")
    lkrun = str(ROOT / ".venv" / "bin" / "lkrun")
    workdir = Path(tempfile.mkdtemp(prefix="lkfaults-"))
    procs = Procs(workdir)
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    cleanup()  # a previous run that was SIGKILLed
    try:
        build_network()
        procs.start("server", "srv", [binary, "--dev", "--bind", "0.0.0.0", "--config-body", server_config()])
        lk = {"LIVEKIT_URL": f"ws://10.77.1.1:{SERVER_PORT}", "LIVEKIT_API_KEY": KEY, "LIVEKIT_API_SECRET": SECRET}
        scenarios = [s for s in ("partition", "slow") if args.only in (None, s)]
        if "slow" in scenarios:
            procs.start("relay", "relay", [python, __file__, "--role", "relay", "--slow", str(args.slow)])
        time.sleep(1.0)  # the server and the relay listen
        for name, ns, room, scenario in (("faultbot", "bot", "partition", "partition"),
                                         ("slowbot", "bot2", "slow", "slow")):
            if scenario in scenarios:
                (workdir / f"{name}.yaml").write_text(BOT.format(name=name, room=room))
                procs.start(name, ns, [lkrun, str(workdir / f"{name}.yaml"), "--no-reload"], env=lk)
        relay_pid = procs.procs["relay"].pid if "relay" in procs.procs else 0
        driver = procs.start("driver", "ppl", [python, __file__, "--role", "driver", "--only", ",".join(scenarios),
                                               "--cut", str(args.cut), "--slow", str(args.slow),
                                               "--relay-pid", str(relay_pid)])
        try:
            code = driver.wait(timeout=args.cut + args.slow + 240)
        except subprocess.TimeoutExpired:
            code = 3
        print(procs.log("driver"), end="")
        for name in ("faultbot", "slowbot"):
            if name in procs.procs:
                alive = procs.procs[name].poll() is None
                print(f"\n--- {name} (lkrun) log, the lines that matter "
                      f"({'still running' if alive else f'exited {procs.procs[name].returncode}'}):")
                for line in bot_summary(procs.log(name)):
                    print("  " + line)
                if not alive:
                    code = code or 1
        if "relay" in procs.procs:
            print("\n--- relay:")
            for line in procs.log("relay").splitlines()[-20:]:
                print("  " + line)
        server_log = procs.log("server")
        print(f"\n--- server: {server_log.count(chr(34) + 'reason' + chr(34) + ': ' + chr(34) + 'DUPLICATE_IDENTITY')} "
              "participant(s) closed with DUPLICATE_IDENTITY")
        print(f"\nfaults: {'PASS' if code == 0 else f'FAIL ({code})'}  (logs in {workdir})")
        return code
    finally:
        procs.stop_all()
        cleanup()
        left = [n for n in sh("ip", "netns", "list", check=False).stdout.split() if n.startswith(PREFIX)]
        print("cleanup: namespaces removed" if not left else f"cleanup: LEFT {left}")
        signal.signal(signal.SIGTERM, previous)


# ---------------------------------------------------------------- the relay process (in lkfaults-relay)

async def relay_main(args) -> int:
    random.seed(7)
    relays = [await Relay("10.77.5.1", port, host="10.77.1.1", port=port).start()
              for port in (SERVER_PORT, TCP_PORT)]
    start = time.monotonic()

    def say(text):
        print(f"{time.monotonic() - start:6.1f}s {text}", flush=True)

    go = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, go.set)
    say("relay: forwarding 10.77.1.1:7880,7881 -> 10.77.5.1")
    await go.wait()
    say(f"relay: impaired for {args.slow:g} s: +200 ms per chunk, stalls")
    for relay in relays:
        relay.delay = 0.2
    end = time.monotonic() + args.slow
    while time.monotonic() < end:
        await asyncio.sleep(min(random.uniform(6, 12), max(0.0, end - time.monotonic())))
        if time.monotonic() >= end:
            break
        seconds = min(random.choice([2, 3, 5, 8, 12]), max(0.5, end - time.monotonic()))
        say(f"relay: stall {seconds:g} s")
        await asyncio.gather(*(relay.stall(seconds) for relay in relays))
    for relay in relays:
        relay.delay = 0.0
    say(f"relay: clean again ({sum(r.accepted for r in relays)} connections, "
        f"{sum(r.chunks for r in relays)} chunks, {relays[0].stalls} stalls)")
    await asyncio.Event().wait()
    return 0


# ---------------------------------------------------------------- the driver (in lkfaults-ppl)

class Watch:
    """One person in a room: every greeting and reply the bot sent them, with arrival times."""

    def __init__(self, person, bot: str):
        self.person, self.bot = person, bot
        self.greetings: list[float] = []
        self.replies: dict[int, list[tuple[float, int]]] = {}  # seq -> [(time, count)]
        self.sent: dict[int, float] = {}
        self._task = asyncio.ensure_future(self._read())

    async def _read(self):
        while True:
            who, text = await self.person.data.get()
            if who not in (self.bot, None):
                continue
            try:
                data = json.loads(text)
            except ValueError:
                continue
            now = time.monotonic()
            if "greet" in data:
                self.greetings.append(now)
            elif "seq" in data:
                self.replies.setdefault(int(data["seq"]), []).append((now, int(data["count"])))

    async def send(self, seq: int) -> None:
        self.sent[seq] = time.monotonic()
        try:
            await self.person.send({"seq": seq})
        except Exception:
            pass


async def participants(room: str) -> list:
    from livekit import api
    async with api.LiveKitAPI(f"http://10.77.2.1:{SERVER_PORT}", KEY, SECRET) as lkapi:
        return list((await lkapi.room.list_participants(api.ListParticipantsRequest(room=room))).participants)


async def until(predicate, timeout: float, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(step)
    return None


class Report:
    def __init__(self, title: str):
        self.failures: list[str] = []
        print(f"\n=== {title}", flush=True)

    def note(self, text: str) -> None:
        print(f"  {text}", flush=True)

    def check(self, ok: bool, text: str) -> None:
        print(f"  [{'ok' if ok else 'FAIL'}] {text}", flush=True)
        if not ok:
            self.failures.append(text)


async def join(room: str, identity: str):
    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
    from room_helpers import Person

    class Server:
        url, api_key, api_secret = f"ws://10.77.2.1:{SERVER_PORT}", KEY, SECRET
    return await Person(Server, room, identity).join()


async def in_room(room: str, identity: str) -> list:
    return [p for p in await participants(room) if p.identity == identity]


def message_checks(report: Report, watch: Watch, away: tuple[float, float]) -> None:
    """Missing replies only for messages sent while the bot was away; none doubled; counts rise."""
    doubled = [s for s, r in watch.replies.items() if len(r) > 1]
    report.check(not doubled, f"no message answered twice ({len(doubled)} doubled: {doubled[:10]})")
    missing = [s for s in watch.sent if s not in watch.replies]
    inside = [s for s in missing if away[0] <= watch.sent[s] <= away[1]]
    outside = [s for s in missing if s not in inside]
    sent_away = [s for s in watch.sent if away[0] <= watch.sent[s] <= away[1]]
    report.note(f"{len(watch.sent)} messages sent, {len(watch.replies)} answered; {len(sent_away)} sent while "
                f"the bot was away, {len(inside)} of them unanswered")
    report.check(not outside, f"every message sent while the bot was there was answered "
                              f"(missing outside the outage: {outside[:10]})")
    counts = [r[0][1] for _, r in sorted(watch.replies.items())]
    report.check(counts == sorted(counts) and len(set(counts)) == len(counts),
                 f"the counter rises by one per message it got, never resets: {counts[:6]}...{counts[-4:]}")


async def partition(args) -> list[str]:
    report = Report(f"partition: faultbot's link down for {args.cut:g} s")
    bot, room = "faultbot", "partition"
    if not await until(lambda: in_room(room, bot), 60, 0.5):
        report.check(False, "faultbot joined its room")
        return report.failures
    alice = Watch(await join(room, "alice"), bot)
    await until(lambda: alice.greetings, 10)
    seq = 0
    for _ in range(3):
        seq += 1
        await alice.send(seq)
        await until(lambda: seq in alice.replies, 5)
    before = max((r[0][1] for r in alice.replies.values()), default=0)
    report.note(f"before: alice greeted {len(alice.greetings)}x, counter at {before}")

    cut = time.monotonic()
    sh("ip", "-n", PREFIX + "srv", "link", "set", "lkf-srv-bot", "down")
    report.note("ip link set lkf-srv-bot down")
    bob = None
    while time.monotonic() - cut < args.cut:
        seq += 1
        await alice.send(seq)
        if bob is None and time.monotonic() - cut > args.cut / 3:
            bob = Watch(await join(room, "bob"), bot)
            report.note(f"bob joined {time.monotonic() - cut:.1f} s into the outage")
        await asyncio.sleep(1.0)
    sh("ip", "-n", PREFIX + "srv", "link", "set", "lkf-srv-bot", "up")
    heal = time.monotonic()
    report.note("ip link set lkf-srv-bot up")
    back = None
    while time.monotonic() - heal < 30 and back is None:
        seq += 1
        await alice.send(seq)
        answered = await until(lambda: seq in alice.replies, 0.5, 0.02)
        if answered:
            back = alice.replies[seq][0][0]
    report.check(back is not None and back - heal <= BACK_WITHIN,
                 f"back within {BACK_WITHIN:g} s of the heal: answered "
                 + (f"{back - heal:.1f} s after it" if back else "never (30 s)"))
    await until(lambda: bob.greetings, 10)
    for _ in range(5):  # settled: everything is answered again
        seq += 1
        await alice.send(seq)
        await until(lambda: seq in alice.replies, 5)
        await asyncio.sleep(0.3)
    await asyncio.sleep(3.0)  # late doubles, late greetings
    holders = await in_room(room, bot)
    report.check(len(holders) == 1, f"exactly one participant '{bot}' in the room: {[p.sid for p in holders]}")
    first_after = min((r[0][1] for s, r in alice.replies.items() if alice.sent[s] >= cut), default=None)
    report.check(first_after is not None and first_after > before,
                 f"session state kept: the first count after the cut is {first_after} (was {before})")
    report.check(len(alice.greetings) == 1, f"alice greeted once ({len(alice.greetings)})")
    report.check(bob is not None and len(bob.greetings) == 1,
                 f"bob (joined during the outage) greeted once, after it ({len(bob.greetings) if bob else '-'})")
    message_checks(report, alice, (cut, back or time.monotonic()))
    for person in (alice, bob):
        if person is not None:
            await person.person.leave()
    return report.failures


async def slow(args) -> list[str]:
    report = Report(f"slow: slowbot behind a relay (+200 ms a chunk, stalls) for {args.slow:g} s, "
                    "media and data over ICE/TCP")
    bot, room = "slowbot", "slow"
    if not await until(lambda: in_room(room, bot), 60, 0.5):
        report.check(False, "slowbot joined its room")
        return report.failures
    carol = Watch(await join(room, "carol"), bot)
    await until(lambda: carol.greetings, 10)
    seq = 0

    async def sender(stop: asyncio.Event):
        nonlocal seq
        while not stop.is_set():
            seq += 1
            await carol.send(seq)
            await asyncio.sleep(1.0)

    stop = asyncio.Event()
    sending = asyncio.ensure_future(sender(stop))
    await asyncio.sleep(5)
    start = time.monotonic()
    if args.relay_pid:
        os.kill(args.relay_pid, signal.SIGUSR1)
    dave, dave_joined = None, None
    while time.monotonic() - start < args.slow:
        if dave is None and time.monotonic() - start > args.slow / 3:
            dave_joined = time.monotonic()
            dave = Watch(await join(room, "dave"), bot)
        await asyncio.sleep(0.5)
    end = time.monotonic()
    report.note(f"impairment over after {end - start:.0f} s")
    await asyncio.sleep(2)
    first_after = await until(lambda: [s for s, r in carol.replies.items() if carol.sent[s] >= end + 1], 20)
    back = min(carol.replies[s][0][0] for s in first_after) - end if first_after else None
    report.check(back is not None and back <= BACK_WITHIN + 2,
                 f"answering normally after the impairment: {f'{back:.1f} s' if back else 'no answer'} after it")
    stop.set()
    await sending
    await asyncio.sleep(3)
    during = [(s, r[0][0] - carol.sent[s]) for s, r in carol.replies.items() if start <= carol.sent[s] <= end]
    latencies = sorted(lat for _, lat in during)
    if latencies:
        report.note(f"replies during the impairment: {len(latencies)} of "
                    f"{sum(1 for s in carol.sent if start <= carol.sent[s] <= end)}, latency "
                    f"median {latencies[len(latencies) // 2]:.2f} s, max {latencies[-1]:.2f} s")
    outside = [s for s in carol.sent if s not in carol.replies and not start <= carol.sent[s] <= end]
    lost = [s for s in carol.sent if s not in carol.replies and start <= carol.sent[s] <= end]
    report.note(f"{len(carol.sent)} messages sent, {len(carol.replies)} answered, {len(lost)} unanswered during "
                f"the impairment, {len(outside)} outside it")
    report.check(not [s for s, r in carol.replies.items() if len(r) > 1], "no message answered twice")
    report.check(len(carol.greetings) == 1, f"carol greeted once ({len(carol.greetings)})")
    if dave is not None:
        greeted = f"{dave.greetings[0] - dave_joined:.1f} s after joining" if dave.greetings else "never"
        report.check(len(dave.greetings) <= 1, f"dave (joined while it was slow) greeted at most once: {greeted}")
    holders = await in_room(room, bot)
    report.check(len(holders) == 1, f"exactly one participant '{bot}' in the room")
    for person in (carol, dave):
        if person is not None:
            await person.person.leave()
    return report.failures


async def driver_main(args) -> int:
    from loguru import logger
    logger.remove()
    failures = []
    for name in args.only.split(","):
        failures += await {"partition": partition, "slow": slow}[name](args)
    print(f"\n{len(failures)} check(s) failed" + ("".join(f"\n  - {f}" for f in failures) if failures else ""))
    return 1 if failures else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=None, help="partition or slow (default: both)")
    parser.add_argument("--cut", type=float, default=30.0, help="partition length, s")
    parser.add_argument("--slow", type=float, default=60.0, help="delay/stall period, s")
    parser.add_argument("--role", choices=["relay", "driver"], help=argparse.SUPPRESS)
    parser.add_argument("--relay-pid", type=int, default=0, help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args(argv)
    if args.role == "relay":
        return asyncio.run(relay_main(args))
    if args.role == "driver":
        sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
        import warnings
        warnings.filterwarnings("ignore", message=".*HMAC key.*")
        return asyncio.run(driver_main(args))
    if args.only not in (None, "partition", "slow"):
        parser.error("--only: partition or slow")
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())

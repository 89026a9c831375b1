"""Hot reload: file write -> new behaviour live, p50/p95 over 50 edits (quick: 5).

One lkrun process with reload on runs a data bot whose reply carries ``vars.version``.
Each edit is saved the way editors save (write a temporary file, rename it over the bot
file); the clock starts right after the rename and stops when a ping's reply carries the
new version. Pings go every 10 ms, so the figure includes up to one ping round trip
(a few ms, reported beside it as the floor of the measurement).
"""

from __future__ import annotations

import asyncio
import json
import os
import time

from .. import botfiles
from ..clients import Peer
from ..procs import LKRUN
from ..stats import summary

NAME = "hot_reload"
TITLE = "hot reload: file write -> new behaviour live"
TIME_LIMIT = 150
IMPLEMENTED = True

BOT = """version: 1
name: reloader
livekit: {room: __ROOM__, identity: __IDENTITY__}
session: {rate_limit: 100000}
vars: {version: v0}
on:
  data_received:
    - send: {to: "{{ participant.id }}", data: {text: "{{ vars.version }}", seq: "{{ message.seq }}"}}
"""


def save_by_rename(path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.swp")
    tmp.write_text(text)
    os.replace(tmp, path)


def big(text: str, actions: int = 1000) -> str:
    """The reloader plus ``actions - 1`` more actions (templated logs and sets) on another event:
    a 1,000-action file whose every reload is checked and swapped in whole."""
    lines = [text.rstrip("\n"), "  participant_left:"]
    for i in range(actions - 1):
        lines.append(f'    - log: "step {i} for {{{{ participant.id }}}} in {{{{ bot.name }}}}"' if i % 2 else
                     f'    - set: {{values: {{step_{i}: "{{{{ vars.version }}}} {i}"}}}}')
    return "\n".join(lines) + "\n"


async def run(ctx, report):
    small = 5 if ctx.quick else 50
    await measure(ctx, report, "file write -> new reply", "reloader", small, lambda t: t)
    await measure(ctx, report, "1,000 actions: file write -> new reply", "reloader_big", 3 if ctx.quick else 20, big)
    report.note("target p50 < 150 ms (small bot) and < 300 ms (1,000 actions); includes up to one ping round trip")


async def measure(ctx, report, case: str, name: str, edits: int, shape) -> None:
    room = ctx.room("reload")
    folder = ctx.folder("hot_reload")
    path = folder / f"{name}.yaml"
    text = shape(BOT.replace("__ROOM__", room).replace("__IDENTITY__", botfiles.BOT_IDENTITY))
    path.write_text(text)
    latest: dict[str, str] = {}
    peer = Peer(ctx.server, room)

    def on_data(packet):
        try:
            latest["text"] = json.loads(packet.data.decode()).get("text")
        except (ValueError, AttributeError):
            pass

    peer.room.on("data_received", on_data)
    samples, rtts, misses = [], [], 0
    async with ctx.procs() as procs:
        try:
            bot = procs.spawn([LKRUN, "run", str(path), "--no-playground"], f"reload-{name}")
            await peer.join()
            await peer.wait_joined(botfiles.BOT_IDENTITY, timeout=30)
            await peer.warm_up()
            for _ in range(10):
                rtts.append(await peer.ping())
            for i in range(1, edits + 1):
                version = f"v{i}"
                save_by_rename(path, text.replace("version: v0", f"version: {version}"))
                started = time.monotonic()
                deadline = started + 10
                while time.monotonic() < deadline and latest.get("text") != version:
                    try:
                        await peer.ping(timeout=0.5)
                    except asyncio.TimeoutError:
                        pass
                    if latest.get("text") != version:
                        await asyncio.sleep(0.01)
                if latest.get("text") == version:
                    samples.append((time.monotonic() - started) * 1000)
                else:
                    misses += 1
                await asyncio.sleep(0.2)  # let watchfiles settle between edits
            bot.check_alive()
        finally:
            await peer.leave()
    s = summary(samples)
    r = summary(rtts)
    report.row(case, "lkrun (watchfiles, rename-save)", s["p50"], "ms", p95=s["p95"],
               max=s["max"], n=s["n"], missed=misses, ping_rtt_p50=r["p50"], file_kb=len(text) / 1024)

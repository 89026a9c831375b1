"""Hot reload end to end: a real `lkrun` process, real watchfiles, real file edits, a real room."""

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.livekit, pytest.mark.slow]

BOT = """
version: 1
name: reloader
livekit: {room: ROOM, identity: reloader}
vars: {greeting: Hello, reply: one}
on:
  participant_connected:
    - send: {to: "{{ participant.id }}", data: {greet: "{{ vars.greeting }}"}}
  data_received:
    - send: {to: "{{ participant.id }}", data: {reply: "{{ vars.reply }}"}}
"""


def save_by_rename(path: Path, text: str) -> None:
    """How editors save: write a temporary file, then rename it over the original."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class Lkrun:
    def __init__(self, livekit_server, *files, extra=()):
        self.args = [sys.executable, "-m", "runner.cli", *map(str, files), "--no-playground", *extra]
        self.env = {**os.environ, "LIVEKIT_URL": livekit_server.url, "LIVEKIT_API_KEY": livekit_server.api_key,
                    "LIVEKIT_API_SECRET": livekit_server.api_secret}
        self.lines: list[str] = []

    async def __aenter__(self):
        self.proc = await asyncio.create_subprocess_exec(*self.args, env=self.env, stdout=asyncio.subprocess.PIPE,
                                                         stderr=asyncio.subprocess.PIPE)
        self._reader = asyncio.ensure_future(self._read())
        return self

    async def _read(self):
        async for line in self.proc.stderr:
            self.lines.append(line.decode(errors="replace").rstrip())

    async def wait_for_line(self, text: str, timeout: float = 15.0, after: int = 0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines[after:]:
                if text in line:
                    return line
            await asyncio.sleep(0.02)
        raise AssertionError(f"no line with {text!r} in:\n" + "\n".join(self.lines[-30:]))

    async def __aexit__(self, *exc):
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self._reader.cancel()


async def ask(person, sender="reloader"):
    await person.send("ping")
    return await person.next_data(5, sender=sender)


async def test_vars_and_actions_swap_live_without_disconnect(livekit_server, people, room_name, tmp_path):
    path = tmp_path / "reloader.yaml"
    path.write_text(BOT.replace("ROOM", room_name))
    async with Lkrun(livekit_server, path) as lkrun:
        await lkrun.wait_for_line("in room")
        alice = await people(room_name, "alice")
        assert await alice.next_data(10, sender="reloader") == {"greet": "Hello"}
        assert await ask(alice) == {"reply": "one"}
        mark = len(lkrun.lines)
        save_by_rename(path, path.read_text().replace("reply: one", "reply: two"))
        await lkrun.wait_for_line("vars changed, applied live", after=mark)
        assert await ask(alice) == {"reply": "two"}
        mark = len(lkrun.lines)
        save_by_rename(path, path.read_text().replace(
            '    - send: {to: "{{ participant.id }}", data: {reply: "{{ vars.reply }}"}}',
            '    - send: {to: "{{ participant.id }}", data: {reply: "{{ vars.reply }}"}}\n'
            '    - send: {to: "{{ participant.id }}", data: {extra: "added"}}'))
        await lkrun.wait_for_line("on changed, applied live", after=mark)
        assert await ask(alice) == {"reply": "two"}
        assert await alice.next_data(5, sender="reloader") == {"extra": "added"}
        assert await alice.no_data(1.0, sender="reloader")  # no second greeting
        assert alice.left.empty()  # the bot never left


async def test_invalid_edit_keeps_previous_version_then_fix_applies(livekit_server, people, room_name, tmp_path):
    path = tmp_path / "reloader.yaml"
    good = BOT.replace("ROOM", room_name)
    path.write_text(good)
    async with Lkrun(livekit_server, path) as lkrun:
        await lkrun.wait_for_line("in room")
        alice = await people(room_name, "alice")
        await alice.next_data(10, sender="reloader")
        mark = len(lkrun.lines)
        save_by_rename(path, good.replace("- send: {to", "- sned: {to", 1))
        error = await lkrun.wait_for_line("unknown action 'sned'", after=mark)
        assert error.startswith(f"{path}:") and ":7:" in error
        await lkrun.wait_for_line("still running the previous version", after=mark)
        assert await ask(alice) == {"reply": "one"}
        mark = len(lkrun.lines)
        with open(path, "w") as fh:  # truncate, then write (a different editor style)
            fh.write(good.replace("reply: one", "reply: fixed"))
        await lkrun.wait_for_line("applied live", after=mark)
        assert await ask(alice) == {"reply": "fixed"}


async def test_params_edit_starts_one_new_generation(livekit_server, people, room_name, tmp_path):
    path = tmp_path / "reloader.yaml"
    path.write_text(BOT.replace("ROOM", room_name))
    async with Lkrun(livekit_server, path) as lkrun:
        await lkrun.wait_for_line("in room")
        alice = await people(room_name, "alice")
        await alice.next_data(10, sender="reloader")
        mark = len(lkrun.lines)
        save_by_rename(path, path.read_text().replace("vars:", "params: {audio_out_volume: 0.5}\nvars:"))
        await lkrun.wait_for_line("rejoined with a new pipeline", after=mark)
        assert await asyncio.wait_for(alice.left.get(), 10) == "reloader"
        assert await asyncio.wait_for(alice.joined.get(), 10) == "reloader"
        assert await ask(alice) == {"reply": "one"}
        assert await alice.no_data(1.5, sender="reloader")  # not greeted again
        assert alice.left.empty() and alice.joined.empty()  # at most one leave and one join


async def test_folder_mode_create_and_delete(livekit_server, people, room_name, tmp_path):
    folder = tmp_path / "bots"
    folder.mkdir()
    (folder / "first.yaml").write_text(BOT.replace("ROOM", room_name).replace("reloader", "first"))
    async with Lkrun(livekit_server, folder) as lkrun:
        await lkrun.wait_for_line("in room")
        alice = await people(room_name, "alice")
        await alice.next_data(10, sender="first")
        second = BOT.replace("ROOM", room_name).replace("reloader", "second")
        save_by_rename(folder / "second.yaml", second)
        assert await asyncio.wait_for(alice.joined.get(), 15) == "second"
        assert await alice.next_data(10, sender="second") == {"greet": "Hello"}  # a new bot greets
        (folder / "first.yaml").unlink()
        assert await asyncio.wait_for(alice.left.get(), 15) == "first"
        assert await ask(alice, sender="second") == {"reply": "one"}


SPEAKER = """
version: 1
name: speaker
livekit: {room: ROOM, identity: speaker}
pipeline:
  - llm:
      type: openai_llm
      api_key: ${FAKE_KEY:-not-a-real-key}
      base_url: BASE_URL
      settings: {model: fake, system_instruction: "You are {{ vars.persona }}."}
  - tts: {type: espeak_tts, settings: {voice: en-us}}
vars: {persona: a pirate}
on:
  data_received:
    - if: "{{ data == 'speak' }}"
      then: [{say: "The quick brown fox jumps over the lazy dog."}]
      else: [{llm: {append: [{role: user, content: "{{ data }}"}], run: true}}]
"""


def median_pitch(pcm, rate=16000) -> float:
    """Median fundamental frequency of the voiced 40 ms frames (autocorrelation)."""
    import numpy as np
    x = pcm.astype(np.float64)
    n = int(0.04 * rate)
    pitches = []
    for start in range(0, len(x) - n, n):
        frame = x[start:start + n]
        if np.sqrt(np.mean(frame ** 2)) < 500:
            continue
        frame = frame - frame.mean()
        corr = np.correlate(frame, frame, "full")[n - 1:]
        lo, hi = rate // 400, rate // 60
        lag = lo + int(np.argmax(corr[lo:hi]))
        if corr[lag] > 0.3 * corr[0]:
            pitches.append(rate / lag)
    return float(np.median(pitches)) if pitches else 0.0


async def test_voice_and_system_instruction_change_live(livekit_server, people, room_name, tmp_path):
    from audio_helpers import Microphone, Speaker
    from bench.fake_openai import FakeOpenAI
    llm = await FakeOpenAI().start()
    path = tmp_path / "speaker.yaml"
    path.write_text(SPEAKER.replace("ROOM", room_name).replace("BASE_URL", llm.base_url))
    try:
        async with Lkrun(livekit_server, path) as lkrun:
            await lkrun.wait_for_line("in room")
            alice = await people(room_name, "alice", mic=False)  # the test publishes its own mic
            await Microphone(alice.room).publish()
            ear = Speaker(alice.room, "speaker")
            loop = asyncio.get_running_loop()

            async def utterance():
                start = loop.time()
                await alice.send("speak")
                heard = await ear.first_sound(start, timeout=10)
                await asyncio.sleep(3.0)
                return ear.audio_since(heard)

            await alice.send("hello")
            for _ in range(100):
                if llm.requests:
                    break
                await asyncio.sleep(0.05)
            assert llm.requests[-1]["messages"][0]["content"] == "You are a pirate."
            before = median_pitch(await utterance())
            mark = len(lkrun.lines)
            save_by_rename(path, path.read_text().replace("voice: en-us", "voice: en-us+f4")
                           .replace("persona: a pirate", "persona: a librarian"))
            await lkrun.wait_for_line("service settings updated live", after=mark)
            after = median_pitch(await utterance())
            print(f"median pitch before {before:.0f} Hz, after {after:.0f} Hz")
            assert after > before * 1.4  # espeak's female variant speaks clearly higher
            count = len(llm.requests)
            await alice.send("hello again")
            for _ in range(100):
                if len(llm.requests) > count:
                    break
                await asyncio.sleep(0.05)
            assert llm.requests[-1]["messages"][0]["content"] == "You are a librarian."
            assert alice.left.empty()  # no disconnect
    finally:
        await llm.stop()


async def test_invalid_at_start_waits_for_the_fix_and_reloaded_fires(livekit_server, people, room_name, tmp_path):
    path = tmp_path / "reloader.yaml"
    good = BOT.replace("ROOM", room_name) + "  reloaded:\n    - send: {data: {reloaded: \"{{ changes }}\"}}\n"
    path.write_text(good.replace("reply: one", "reply: [unclosed"))
    async with Lkrun(livekit_server, path) as lkrun:
        await lkrun.wait_for_line("waiting for a fix")
        assert any(line.startswith(f"{path}:5:") and ": error: " in line for line in lkrun.lines), lkrun.lines
        alice = await people(room_name, "alice")
        assert await alice.no_data(1.0, sender="reloader")  # no bot yet
        save_by_rename(path, good)
        await lkrun.wait_for_line("started")
        assert await alice.next_data(15, sender="reloader") == {"greet": "Hello"}
        mark = len(lkrun.lines)
        save_by_rename(path, good.replace("greeting: Hello", "greeting: Hi"))
        await lkrun.wait_for_line("applied live", after=mark)
        assert await alice.next_data(5, sender="reloader") == {"reloaded": ["vars"]}  # one {{ }} keeps its type

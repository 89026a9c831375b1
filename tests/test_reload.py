"""Reload decisions (pure): which tier an edit needs; the watcher against real folders (a fake supervisor).
End-to-end reloads with a real room: test_reload_live.py."""

import asyncio
import os
import time
from pathlib import Path

import pytest

from runner.host import reload
from runner.botfile.check import check_document
from runner.host.reload import describe, diff
from runner.botfile.yamlsafe import load_text

BASE = """
version: 1
name: r
livekit: {room: lobby, identity: r}
params: {audio_out_enabled: true}
pipeline:
  - tts: {type: espeak_tts, settings: {voice: en-us}}
vars: {greeting: Hello}
on:
  participant_connected:
    - say: "{{ vars.greeting }}"
"""


def spec(text):
    return check_document(load_text(text, "r.yaml"), environ={})


@pytest.mark.parametrize("edit, tier, changes", [
    (("greeting: Hello", "greeting: Hi"), "live", ["vars"]),
    (('- say: "{{ vars.greeting }}"', '- say: "{{ vars.greeting }}!"'), "live", ["on"]),
    (("voice: en-us", "voice: en-gb"), "settings", ["pipeline"]),
    (("audio_out_enabled: true", "audio_out_enabled: true, audio_out_volume: 0.5"), "generation", ["params"]),
    (("type: espeak_tts, settings: {voice: en-us}", "type: piper_tts"), "generation", ["pipeline"]),
    (("room: lobby", "room: other"), "generation", ["livekit"]),
])
def test_tier_of_each_kind_of_edit(edit, tier, changes):
    old, new = spec(BASE), spec(BASE.replace(*edit))
    change = diff(old, new)
    assert change["tier"] == tier
    assert change["changes"] == changes


def test_settings_delta_names_only_changed_fields():
    change = diff(spec(BASE), spec(BASE.replace("voice: en-us", "voice: en-gb, rate: 150")))
    assert change["tier"] == "settings"
    assert change["settings"] == {0: {"voice": "en-gb", "rate": 150}}


def test_removing_a_setting_needs_a_new_generation():
    old = spec(BASE.replace("voice: en-us", "voice: en-us, rate: 150"))
    assert diff(old, spec(BASE))["tier"] == "generation"


def test_unchanged_file_is_live_with_no_changes():
    change = diff(spec(BASE), spec(BASE))
    assert change == {"tier": "live", "changes": [], "settings": {}}
    assert describe(change) == "nothing changed, applied live"


def test_description_reads_like_the_notice():
    assert describe(diff(spec(BASE), spec(BASE.replace("Hello", "Hi")))) == "vars changed, applied live"


def test_var_used_by_a_setting_updates_the_service_live():
    base = BASE.replace("settings: {voice: en-us}", 'settings: {voice: "{{ vars.voice }}"}').replace(
        "greeting: Hello", "greeting: Hello, voice: en-us")
    change = diff(spec(base), spec(base.replace("voice: en-us}", "voice: en-gb}")))
    assert change["tier"] == "settings"
    assert change["settings"] == {0: {"voice": "en-gb"}}


# ---- the watcher: nothing a folder can contain stops hot reload --------------------------------

GOOD = "version: 1\nlivekit: {room: lobby, identity: w}\nvars: {n: 1}\n"
SLOW = ("version: 1\nlivekit: {room: lobby}\non:\n  data_received:\n"  # two values of 4,000 unknown variables
        + "".join("    - log: \"" + "\\n".join(f"{{{{ u{k}_{i} }}}}" for i in range(4000)) + "\"\n" for k in range(2)))


class FakeSupervisor(reload.ReloadHost):
    """What Watcher and watch_task use of the supervisor; records what they asked of it."""

    def __init__(self, folder: Path):
        self.specs, self.files, self.folders = [], [], [folder]
        self.file_keys: dict[str, str] = {}
        self.bots: dict = {}
        self.stop_event = asyncio.Event()
        self.started: list[str] = []
        self.stopped: list[str] = []
        self.notices: list[tuple] = []

    def key_for(self, path) -> str:
        return self.file_keys.setdefault(str(Path(path).resolve()), str(Path(path).resolve()))

    async def add_spec(self, key, spec):
        self.started.append(key)

    async def stop_bot(self, key):
        self.stopped.append(key)

    def notice(self, key, kind, message):
        self.notices.append((key, kind, message))


async def until(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def watching(supervisor):
    task = asyncio.ensure_future(reload.watch_task(supervisor, debounce_ms=50, step_ms=10))
    await asyncio.sleep(0.3)  # the watch is set up
    return task


async def stop(supervisor, task):
    supervisor.stop_event.set()
    await asyncio.wait_for(task, 5)


async def test_a_symlink_loop_in_the_folder_does_not_stop_hot_reload(tmp_path):
    supervisor = FakeSupervisor(tmp_path)
    task = await watching(supervisor)
    os.symlink(tmp_path / "b.yaml", tmp_path / "a.yaml")
    os.symlink(tmp_path / "a.yaml", tmp_path / "b.yaml")
    await asyncio.sleep(0.4)
    assert not task.done(), task.exception()
    (tmp_path / "bot.yaml").write_text(GOOD)
    await until(lambda: supervisor.started)
    assert supervisor.started == [str((tmp_path / "bot.yaml").resolve())]
    await stop(supervisor, task)


async def test_a_bot_file_replaced_by_a_folder_stops_its_bot(tmp_path, capsys):
    supervisor = FakeSupervisor(tmp_path)
    task = await watching(supervisor)
    path = tmp_path / "x.yaml"
    path.write_text(GOOD)
    await until(lambda: supervisor.started)
    path.unlink()
    path.mkdir()
    await until(lambda: supervisor.stopped)
    key = str(path.resolve())
    assert supervisor.stopped == [key]
    assert f"{key}: is now a folder, not a bot file, stopping its bot" in capsys.readouterr().err
    path.rmdir()
    path.write_text(GOOD)  # and a file again later starts it again
    await until(lambda: len(supervisor.started) == 2)
    await stop(supervisor, task)


async def test_a_new_folder_named_like_a_bot_file_is_ignored(tmp_path, capsys):
    supervisor = FakeSupervisor(tmp_path)
    watcher = reload.Watcher(supervisor)
    (tmp_path / "notes.yaml").mkdir()
    await watcher.handle(tmp_path / "notes.yaml")
    assert supervisor.stopped == [] and capsys.readouterr().err == ""


async def test_checking_runs_beside_the_live_calls_not_instead_of_them(tmp_path):
    """A slow check (8,000 problems) runs in a thread: the event loop, and every call on it, keeps going."""
    supervisor = FakeSupervisor(tmp_path)
    watcher = reload.Watcher(supervisor)
    path = tmp_path / "slow.yaml"
    path.write_text(SLOW)
    gaps, last = [], time.monotonic()

    async def ticker():
        nonlocal last
        while True:
            await asyncio.sleep(0.005)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticking = asyncio.ensure_future(ticker())
    start = time.monotonic()
    await watcher.handle(path)
    elapsed = time.monotonic() - start
    ticking.cancel()
    assert supervisor.notices and supervisor.notices[0][1] == "error"
    # the loop was never frozen for the length of the check (on the loop it would be one gap of `elapsed`)
    assert elapsed > 0.3 and max(gaps) < elapsed / 2, (max(gaps), elapsed)


async def test_a_check_over_the_budget_is_reported_not_waited_for(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(reload, "CHECK_BUDGET", 0.05)
    supervisor = FakeSupervisor(tmp_path)
    path = tmp_path / "slow.yaml"
    path.write_text(SLOW)
    await reload.Watcher(supervisor).handle(path)
    err = capsys.readouterr().err
    assert f"{path.resolve()}: checking took longer than 0.05 s\n{path.resolve()}: not started: waiting for a fix" in err
    assert supervisor.started == []


async def test_an_oversized_bot_file_is_an_error_not_a_long_check(tmp_path, capsys):
    supervisor = FakeSupervisor(tmp_path)
    path = tmp_path / "big.yaml"
    path.write_text(GOOD + "# padding\n" * 30000)
    await reload.Watcher(supervisor).handle(path)
    err = capsys.readouterr().err
    assert f"{path.resolve()}:1:1: error: the file is larger than 256 KiB" in err
    assert supervisor.started == []


async def test_a_second_file_with_the_same_room_and_identity_is_refused_through_reload(tmp_path, capsys):
    """The loader's duplicate rule holds for files added or edited while lkrun runs."""
    from types import SimpleNamespace

    from runner.botfile.check import check_file
    supervisor = FakeSupervisor(tmp_path)
    first = tmp_path / "a.yaml"
    first.write_text("version: 1\nname: a\nlivekit:\n  room: lobby\n  identity: helper\n")
    supervisor.bots[supervisor.key_for(first)] = SimpleNamespace(spec=check_file(first))
    second = tmp_path / "b.yaml"
    second.write_text("version: 1\nname: b\nlivekit: {room: lobby, identity: helper}\n")
    await reload.Watcher(supervisor).handle(second)
    err = capsys.readouterr().err
    assert (f"{second.resolve()}:3:34: error: bot 'b' uses the same room 'lobby' and identity 'helper' as "
            f"{first.resolve()}:5:13") in err, err
    assert f"{second.resolve()}: not started: waiting for a fix" in err
    assert supervisor.started == []


FLOW_BOT = """version: 1
livekit: {room: flows}
pipeline:
  - llm: {type: openai_llm, api_key: "${OPENAI_API_KEY:-unused}"}
flow: flows/intake.flow.yaml
"""
FLOW = """initial_node: greet
nodes:
  greet:
    task_messages: [{role: developer, content: "GREETING"}]
    post_actions: [{type: end_conversation}]
"""


async def test_an_edit_to_a_flow_file_in_another_folder_reloads_the_bot_that_uses_it(tmp_path, capsys):
    supervisor = FakeSupervisor(tmp_path)
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "intake.flow.yaml").write_text(FLOW.replace("GREETING", "Hello"))
    task = await watching(supervisor)
    (tmp_path / "bot.yaml").write_text(FLOW_BOT)
    await until(lambda: supervisor.started)
    key = str((tmp_path / "bot.yaml").resolve())
    await asyncio.sleep(0.3)  # the watch now covers flows/ as well
    (tmp_path / "flows" / "intake.flow.yaml").write_text(FLOW.replace("GREETING", "Welcome"))
    await until(lambda: len(supervisor.started) == 2)
    assert supervisor.started == [key, key]
    (tmp_path / "flows" / "intake.flow.yaml").write_text(FLOW.replace("greet:", "gret:"))
    await until(lambda: "there is no node" in capsys.readouterr().err or supervisor.notices)
    assert supervisor.notices and supervisor.notices[-1][1] == "error"
    assert "intake.flow.yaml" in supervisor.notices[-1][2] and "initial_node 'greet' is not a node" in \
        supervisor.notices[-1][2]
    assert len(supervisor.started) == 2  # the broken flow did not start anything
    await stop(supervisor, task)

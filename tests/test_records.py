"""Session records: one JSON file per session (validated against the published schema), secrets
masked, redact patterns blanked, an unwritable folder an `error` event, and `session_ended`."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import jsonschema
import pytest

from room_helpers import seen_by, wait_for
from test_supervisor import lkrun  # noqa: F401  (fixture: a real lkrun process)

from runner.botfile.check import check_file
from runner.botfile.errors import ConfigError
from runner.runtime import record_files, records

pytestmark = pytest.mark.livekit

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "schemas" / "record.schema.json").read_text())

RECORDER = """
version: 1
name: recorder
livekit: {room: ROOM, identity: recorder}
vars: {token: "${HOOK_TOKEN}"}
session: {record: {dir: RECORDS, redact: ['\\b\\d(?:[ -]?\\d){12,15}\\b']}}
on:
  participant_connected:
    - send: {to: "{{ participant.id }}", data: {hello: "{{ participant.id }}"}}
  data_received:
    - if: "{{ data == 'bye' }}"
      then:
        - end: {}
      else:
        - set: {values: {last: "{{ data }}"}}
        - send: {data: {echo: "{{ data }}", auth: "{{ vars.token }}"}}
  session_ended:
    - http: {url: "WEBHOOK/ended", method: POST, headers: {Authorization: "Bearer ${HOOK_TOKEN}"},
             json: {summary: "{{ session.summary }}", record: "{{ session.record }}", last: "{{ session.state.last }}"}}
  error:
    - send: {data: {error: "{{ error.message }}"}}
"""


@pytest.fixture
async def hook():
    """A loopback webhook that records what it is sent."""
    from aiohttp import web
    calls: asyncio.Queue = asyncio.Queue()

    async def handle(request):
        calls.put_nowait({"path": request.path, "json": await request.json()})
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/ended", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    yield url, calls
    await runner.cleanup()


def _bot(room: str, folder, hook_url: str = "http://127.0.0.1:9") -> str:
    return RECORDER.replace("ROOM", room).replace("RECORDS", str(folder)).replace("WEBHOOK", hook_url)


async def test_a_session_writes_one_valid_record_and_session_ended_posts_it(run_bot, people, room_name, tmp_path, hook):
    url, calls = hook
    folder = tmp_path / "records"
    bot, task = await run_bot(_bot(room_name, folder, url), environ={"HOOK_TOKEN": "hunter2-secret-token"})
    alice = await people(room_name, "alice", "Alice")
    assert await alice.next_data(10, sender="recorder") == {"hello": "alice"}
    await seen_by(bot, alice)
    await alice.send("card 4111 1111 1111 1111 please")
    echo = await alice.next_data(10, sender="recorder")
    assert echo["auth"] == "hunter2-secret-token"  # the room gets the real value; the record must not
    await alice.send("bye")
    posted = await asyncio.wait_for(calls.get(), 20)
    summary = posted["json"]["summary"]
    assert summary["participants"] == 1 and summary["runs"] >= 3 and summary["errors"] == 0
    assert summary["duration"] > 0
    assert posted["json"]["last"] == "card [redacted] please"

    files = sorted(folder.glob("*.json"))
    assert len(files) == 1, files
    assert posted["json"]["record"] == str(files[0])
    assert not list(folder.glob(".*"))  # no temp file left behind
    text = files[0].read_text()
    record = json.loads(text)
    jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(record)
    assert "hunter2-secret-token" not in text
    assert "4111" not in text
    assert record["bot"]["name"] == "recorder" and record["room"] == room_name
    assert [p["id"] for p in record["participants"]] == ["alice"]
    assert record["participants"][0]["name"] == "Alice"
    events = [r["event"] for r in record["runs"]]
    assert events.count("participant_connected") == 1 and events.count("data_received") == 2
    echo_run = next(r for r in record["runs"] if r["event"] == "data_received")
    sent = next(a for a in echo_run["actions"] if a["action"] == "send")
    assert sent["values"]["data"]["auth"] == "***"
    assert sent["values"]["data"]["echo"] == "card [redacted] please"
    assert record["state"]["room"]["last"] == "card [redacted] please"
    assert record["summary"] == summary

    # the bot rejoined for the next session and works as before
    await wait_for(lambda: bot.generation is not None and bot.generation.connected.is_set(), 15,
                   what="the next session")
    assert not task.done()


async def test_an_unwritable_folder_is_an_error_event_and_the_bot_keeps_running(run_bot, people, room_name, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the records folder should be")
    bot, task = await run_bot(_bot(room_name, blocker / "records"), environ={"HOOK_TOKEN": "x"})

    def errors(what):
        return [e for e in bot.trace.entries if e.event == "error" and any(
            what in str(step[2]) for step in e.steps)]
    await wait_for(lambda: errors("session record: cannot write to"), 10, what="the error at the start")
    alice = await people(room_name, "alice")
    assert await alice.next_data(10, sender="recorder") == {"hello": "alice"}
    await seen_by(bot, alice)
    await alice.send("ping")
    assert (await alice.next_data(10, sender="recorder"))["echo"] == "ping"
    await alice.send("bye")  # the write at the end fails too: an error event (after leaving), no crash
    await wait_for(lambda: errors(".json to"), 20, what="the error at the end")
    await wait_for(lambda: bot.generation is not None and bot.generation.connected.is_set(), 20,
                   what="the next session after a failed record")
    assert not task.done()
    assert not list(tmp_path.rglob("*.json"))


def test_actions_that_need_the_room_are_errors_under_session_ended(tmp_path):
    path = tmp_path / "bot.yaml"
    path.write_text("""
version: 1
livekit: {room: r}
on:
  session_ended:
    - log: "{{ session.summary.duration }}"
    - send: {data: bye}
    - if: "{{ session.summary.turns > 0 }}"
      then:
        - chat: thanks
""")
    with pytest.raises(ConfigError) as caught:
        check_file(path)
    text = str(caught.value)
    assert "'send' cannot run under 'session_ended'" in text
    assert "'chat' cannot run under 'session_ended'" in text
    assert "'log'" not in text


def test_prune_keeps_the_newest_and_drops_the_old(tmp_path):
    now = time.time()
    names = []
    for day in range(5):
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now - day * 86400))
        name = f"{stamp}-bot-{day:08x}"
        (tmp_path / f"{name}.json").write_text("{}")
        (tmp_path / f"{name}.wav").write_bytes(b"")
        os.utime(tmp_path / f"{name}.json", (now - day * 86400, now - day * 86400))
        names.append(name)
    (tmp_path / "notes.json").write_text("{}")  # not a record: never touched
    (tmp_path / f"{time.strftime('%Y%m%dT%H%M%SZ')}-other-00000000.json").write_text("{}")  # another bot's
    record_files.prune(tmp_path, "bot", keep_days=3.5, max_files=None, now=now)
    assert sorted(p.stem for p in tmp_path.glob("*-bot-*.json")) == sorted(names[:4])
    record_files.prune(tmp_path, "bot", keep_days=None, max_files=2, now=now)
    assert sorted(p.stem for p in tmp_path.glob("*-bot-*.json")) == sorted(names[:2])
    assert not (tmp_path / f"{names[3]}.wav").exists()
    assert (tmp_path / "notes.json").exists() and len(list(tmp_path.glob("*-other-*"))) == 1


def test_write_is_atomic_and_leaves_no_temp_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "r.json"
    record_files.write_atomically(target, '{"a": 1}')
    assert json.loads(target.read_text()) == {"a": 1}

    def full(*_args):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(record_files.os, "replace", full)
    with pytest.raises(OSError):
        record_files.write_atomically(target, '{"a": 2}')
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


@pytest.mark.parametrize("sig, code", [("SIGTERM", 0), ("SIGINT", 130)])
async def test_a_session_cut_short_by_a_signal_still_writes_its_record(sig, code, lkrun, people, tmp_path,
                                                                      room_name):
    """lkrun stopped with ^C or SIGTERM in the middle of a call: the record is there, valid, whole."""
    import signal

    from test_supervisor import until_joined
    secret = "hook-secret-4f9a1c77e2"
    folder = tmp_path / "records"
    path = tmp_path / "recorder.yaml"
    path.write_text(_bot(room_name, folder))
    run = lkrun([path], env={"HOOK_TOKEN": secret})
    alice = await people(room_name, "alice", "Alice")
    await until_joined(alice, "recorder")
    assert await alice.next_data(20, sender="recorder") == {"hello": "alice"}
    await alice.send("card 4111 1111 1111 1111 please")
    assert (await alice.next_data(10, sender="recorder"))["echo"] == "card 4111 1111 1111 1111 please"
    assert not list(folder.glob("*.json"))  # the session is still going
    run.proc.send_signal(getattr(signal, sig))
    assert await run.wait(10) == code
    files = list(folder.glob("*.json"))
    assert len(files) == 1, run.stderr()
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temp file left behind
    text = files[0].read_text()
    record = json.loads(text)
    jsonschema.validate(record, SCHEMA)
    assert record["ended_by"] == "stopped"
    assert [p["id"] for p in record["participants"]] == ["alice"]
    echo = next(r for r in record["runs"] if r["event"] == "data_received")
    assert next(a for a in echo["actions"] if a["action"] == "send")["values"]["data"]["echo"] == \
        "card [redacted] please"
    assert secret not in text and "4111" not in text


async def test_a_full_disk_at_the_end_of_a_session_is_an_error_event(tmp_path, monkeypatch):
    """ENOSPC from the kernel itself (/dev/full) while the record is written: an `error` event with
    the reason, nothing left half-written, no exception out of session_ended."""
    from types import SimpleNamespace

    from runner.runtime.trace import Trace
    fired = []
    spec = check_file(_write_bot(tmp_path, _bot("lobby", tmp_path / "records")), environ={"HOOK_TOKEN": "x"})
    bot = SimpleNamespace(spec=spec, trace=Trace(), once=False, state=SimpleNamespace(names={}, room={}, participants={}),
                          dispatcher=SimpleNamespace(fire=lambda *a, **k: fired.append((a, k)), tasks=[]),
                          generation=None, session_record=None)
    records.session_connected(bot)
    real_open = open
    monkeypatch.setattr(record_files, "open", lambda *a, **k: real_open("/dev/full", "w", encoding="utf-8"),
                        raising=False)
    await asyncio.sleep(0.2)  # the folder check at the start (it passes: the folder is writable)
    await records.session_ended(bot)
    errors = [k["extra"]["error"]["message"] for a, k in fired if a[0] == "error"]
    assert errors and "No space left on device" in errors[0], fired
    assert [a[0] for a, _ in fired] == ["error", "session_ended"]  # session_ended still fires
    assert next(k for a, k in fired if a[0] == "session_ended")["extra"]["session"]["record"] is None
    assert not list((tmp_path / "records").glob("*"))


def _write_bot(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recorder.yaml"
    path.write_text(text)
    return path


async def test_stopping_a_bot_mid_session_writes_its_record_as_the_worker_stops_it(run_bot, people, room_name,
                                                                                   tmp_path):
    """BotRuntime.stop (what the worker's jobs and a deleted bot file call) writes the record too."""
    folder = tmp_path / "records"
    bot, _ = await run_bot(_bot(room_name, folder), environ={"HOOK_TOKEN": "x"})
    alice = await people(room_name, "alice")
    assert await alice.next_data(10, sender="recorder") == {"hello": "alice"}
    await asyncio.wait_for(bot.stop(), 10)
    (path,) = folder.glob("*.json")
    record = json.loads(path.read_text())
    jsonschema.validate(record, SCHEMA)
    assert record["ended_by"] == "stopped" and [p["id"] for p in record["participants"]] == ["alice"]
    await bot.stop()  # a second stop writes nothing more
    assert list(folder.glob("*.json")) == [path]


def _session_of(spec):
    """A bot just enough for records.session_connected: its trace feeds the record."""
    from types import SimpleNamespace

    from runner.runtime.trace import Trace
    bot = SimpleNamespace(spec=spec, trace=Trace(), once=False, state=SimpleNamespace(names={}, room={}, participants={}),
                          dispatcher=SimpleNamespace(fire=lambda *a, **k: None, tasks=[]),
                          generation=None, session_record=None)
    records.session_connected(bot)
    return bot


def _many_runs(bot, count: int) -> None:
    """``count`` finished runs: every 10th an error, every 100th a tool call, every 1000th 3 dropped."""
    from runner.runtime.trace import RunOutcome, TraceEntry
    for i in range(count):
        entry = TraceEntry(time.time(), bot.spec.name, "tool:lookup" if i % 100 == 0 else "data_received", "ann",
                           steps=[["send", 7, {"data": {"echo": "x" * 100}}, 0.1]])
        if i % 1000 == 999:
            entry.outcome, entry.dropped = RunOutcome.DROPPED, 3
        elif i % 10 == 9:
            entry.outcome = RunOutcome.ERROR
        bot.trace.add(entry)


async def test_a_session_that_is_not_recorded_keeps_no_runs_only_their_counts(tmp_path):
    """Issue 13's soak: every session has a record (for session_ended's summary), and it kept its
    last 5,000 runs even when nothing is written; ~1 KB each, per bot (RSS +1.2 MiB/min with 20
    bots at a message a second). Unwritten, it keeps none; the summary still counts them all."""
    text = "\n".join(line for line in _bot("lobby", tmp_path).splitlines() if not line.startswith("session:"))
    spec = check_file(_write_bot(tmp_path, text), environ={"HOOK_TOKEN": "x"})
    assert records.settings(spec) is None
    bot = _session_of(spec)
    _many_runs(bot, 6000)
    record = bot.session_record
    assert len(record.runs) == 0
    summary = record.document()["summary"]
    assert (summary["runs"], summary["errors"], summary["tool_calls"], summary["dropped_runs"]) == (6000, 594, 60, 18)


async def test_a_recorded_session_keeps_its_last_runs_and_counts_all_of_them(tmp_path):
    spec = check_file(_write_bot(tmp_path, _bot("lobby", tmp_path / "records")), environ={"HOOK_TOKEN": "x"})
    bot = _session_of(spec)
    await asyncio.sleep(0.1)  # the folder check at the start
    _many_runs(bot, records.MAX_RUNS + 1000)
    record = bot.session_record
    assert len(record.runs) == records.MAX_RUNS
    document = record.document()
    assert len(document["runs"]) + len(document["tool_calls"]) == records.MAX_RUNS
    summary = document["summary"]  # the counts are the session's, not only of the runs kept
    assert (summary["runs"], summary["errors"], summary["tool_calls"], summary["dropped_runs"]) == (6000, 594, 60, 18)

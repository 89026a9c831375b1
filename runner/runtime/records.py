"""A record of every session: one JSON file (``schemas/record.schema.json``), optionally a WAV.

A ``SessionRecord`` starts when a session's first generation joins and is finished when the
session ends (``BotRuntime._end_session_state``). It gathers who was there, the transcript
(both sides, from ``transcripts.Conversation``), every event run with its actions and rendered
values and every tool call (from the Trace), and the latency of every turn. With
``session: {record: DIR}`` it is written, atomically (a temp file, then ``os.replace``), as
``DIR/<start>-<bot>-<id>.json``; ``record_audio: true`` adds the stereo WAV beside it. Secret
values are masked and the ``redact`` patterns blanked everywhere in it. ``keep_days`` and
``max_files`` prune the bot's older records. A folder that cannot be written (missing
permissions, a full disk) is an ``error`` event, never a crash.

Then ``session_ended`` fires, after the bot has left, with ``session.transcript`` and
``session.summary`` (recorded or not), so a bot can post them to a webhook.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import json
import os
import re
import time
import uuid
from collections import deque
from pathlib import Path

from loguru import logger

from runner.botfile.env import mask
from runner.runtime.record_audio import SessionAudio
from runner.runtime.record_files import check_folder, prune, reason, report_error, safe_name, write_atomically
from runner.runtime.trace import RunOutcome

VERSION = 1
SCHEMA_ID = "https://lkrun.dev/schemas/record.schema.json"
REDACTED = "[redacted]"
MAX_TRANSCRIPT = 5000  # lines kept per session (the oldest go first; the summary counts them all)
MAX_RUNS = 5000  # event runs kept per session
ONCE_WAIT = 30.0  # `lkrun run --once`: how long session_ended's runs may take before the bot exits


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).isoformat(timespec="milliseconds")


def settings(spec) -> dict | None:
    """session.record, normalised: {dir: Path, keep_days, max_files, redact: [Pattern]} or None."""
    value = spec.session.get("record")
    if not value:
        return None
    conf = {"dir": value} if isinstance(value, str) else dict(value)
    folder = Path(os.path.expanduser(str(conf["dir"])))
    if not folder.is_absolute():
        folder = Path(spec.file).resolve().parent / folder
    return {"dir": folder, "keep_days": conf.get("keep_days"), "max_files": conf.get("max_files"),
            "redact": [re.compile(p) for p in conf.get("redact") or ()],
            "audio": bool(spec.session.get("record_audio"))}


class SessionRecord:
    """What one session did, gathered while it runs."""

    def __init__(self, bot):
        self.bot = bot
        # the id pipecat's conversation span was given, when tracing started before the record
        self.id = getattr(bot, "next_session_id", None) or uuid.uuid4().hex
        bot.next_session_id = None
        self.started = time.time()
        self.participants: dict[str, dict] = {}
        self.transcript: deque = deque(maxlen=MAX_TRANSCRIPT)
        self.said_count = {"user": 0, "bot": 0}
        self.conf = settings(bot.spec)
        # the runs themselves only when the record is written: the summary needs only their counts,
        # and 5,000 entries of a session that is never written were ~1 KB each held per bot, the
        # soak's RSS growth of 1.2 MiB/min with 20 bots (issue 13)
        self.runs: deque = deque(maxlen=MAX_RUNS if self.conf is not None else 0)
        self.run_count = self.error_count = self.dropped_count = self.tool_count = 0
        self.turns: list[dict] = []
        self._speech_end: float | None = None  # where the VAD heard the current turn's voice end
        self._rooms: list = []
        self.name = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(self.started))}-{safe_name(bot.spec.name)}-{self.id[:8]}"
        self.sound = SessionAudio(self)

    # -- people --------------------------------------------------------------------------------
    def attach(self, room) -> None:
        """Follow a generation's room: who is there, who joins and leaves."""
        if room is None or any(r is room for r in self._rooms):
            return
        self._rooms.append(room)
        for participant in list(room.remote_participants.values()):
            self._joined(participant)
        room.on("participant_connected", self._joined)
        room.on("participant_disconnected", self._left)

    def _joined(self, participant) -> None:
        identity = getattr(participant, "identity", None)
        if not identity or identity == self.bot.spec.identity:
            return
        entry = self.participants.get(identity)
        if entry is None:
            entry = self.participants[identity] = {"id": identity, "name": getattr(participant, "name", "") or None,
                                                    "joined_at": time.time(), "left_at": None}
        entry["left_at"] = None
        kind = getattr(participant, "kind", None)
        if kind is not None:
            try:
                from livekit import rtc
                entry["kind"] = rtc.ParticipantKind.Name(kind).removeprefix("PARTICIPANT_KIND_").lower()
            except Exception:
                pass

    def _left(self, participant) -> None:
        entry = self.participants.get(getattr(participant, "identity", None))
        if entry is not None:
            entry["left_at"] = time.time()

    # -- what was said ---------------------------------------------------------------------------
    def said(self, identity: str | None, role: str, text: str, started: float | None = None,
             interrupted: bool = False) -> None:
        if not text:
            return
        now = time.time()
        self.said_count[role] = self.said_count.get(role, 0) + 1
        line = {"speaker": identity, "role": role, "text": text, "at": started or now, "end": now}
        if interrupted:
            line["interrupted"] = True
        self.transcript.append(line)

    def speech_ended(self, at: float) -> None:
        self._speech_end = at

    def user_turn(self, started: bool, identity: str | None) -> None:
        """A turn's latency is the time the person waits, as she hears it: from the end of her
        voice as it reached the bot (the VAD's stop less its stop_secs, as pipecat's
        UserBotLatencyObserver measures; without a VAD stop, the turn's end) to the bot's first
        sound as it left the bot (``bot_audible``; else pipecat's BotStartedSpeakingFrame), plus
        the network's way there and back (``network_delay``: jitter buffers and round trip)."""
        now = time.time()
        if started:
            self._speech_end = None
            return
        end = self._speech_end if self._speech_end is not None and 0 <= now - self._speech_end < 10 else now
        self._speech_end = None
        self.turns.append({"participant": identity, "ended_at": end, "bot_started_at": None})

    def bot_started(self) -> None:
        """The bot's audio began (pipecat's BotStartedSpeakingFrame); the turn's answer, unless
        ``bot_audible`` tells when it was heard."""
        if self.turns and self.turns[-1]["bot_started_at"] is None:
            self.turns[-1]["bot_started_at"] = time.time()
            self.turns[-1]["heard_at"] = None

    def network_delay(self, seconds: float) -> None:
        """The current turn's way there and back, estimated from WebRTC's statistics."""
        if self.turns and self.turns[-1]["bot_started_at"] is not None and "network" not in self.turns[-1]:
            self.turns[-1]["network"] = seconds

    def bot_audible(self, at: float) -> None:
        """The first sound of the bot's answer left it at ``at``."""
        if self.turns and self.turns[-1]["bot_started_at"] is not None and self.turns[-1].get("heard_at", 0) is None:
            self.turns[-1]["heard_at"] = at

    # -- event runs ------------------------------------------------------------------------------
    def on_trace(self, entry) -> None:
        if entry.time >= self.started - 1.0:
            self.run_count += 1
            self.error_count += entry.outcome is RunOutcome.ERROR
            self.dropped_count += (entry.dropped or 1) if entry.outcome is RunOutcome.DROPPED else 0
            self.tool_count += entry.event.startswith("tool:")
            self.runs.append(entry)

    # -- audio (``record_audio.py``) -------------------------------------------------------------
    def audio_started(self, at: float) -> None:
        self.sound.started_at(at)

    def audio(self, pcm: bytes, sample_rate: int, channels: int) -> None:
        self.sound.write(pcm, sample_rate, channels)

    def finish_audio(self, ended: float | None = None) -> str | None:
        return self.sound.finish(ended)

    # -- the document ------------------------------------------------------------------------------
    def document(self, audio: str | None = None, ended_by: str = "session", ended: float | None = None) -> dict:
        bot, spec = self.bot, self.bot.spec
        ended = time.time() if ended is None else ended
        names = bot.state.names
        people = []
        for entry in self.participants.values():
            info = names.get(entry["id"], {})
            person = {"id": entry["id"], "name": entry["name"] or info.get("name"),
                      "metadata": info.get("metadata"), "joined_at": _iso(entry["joined_at"]),
                      "left_at": _iso(entry["left_at"])}
            if "kind" in entry:
                person["kind"] = entry["kind"]
            people.append(person)
        transcript = []
        for line in self.transcript:
            item = {"speaker": line["speaker"], "role": line["role"], "text": line["text"],
                    "at": _iso(line["at"]), "offset": round(line["at"] - self.started, 3),
                    "end_offset": round(line["end"] - self.started, 3)}
            if line.get("interrupted"):
                item["interrupted"] = True
            transcript.append(item)
        runs, tools = [], []
        for entry in self.runs:
            item = _run(entry)
            if entry.event.startswith("tool:"):
                tools.append({"name": entry.event[5:], **item})
            else:
                runs.append(item)
        turns = []
        for turn in self.turns:
            answered = turn.get("heard_at") or turn["bot_started_at"]
            network = turn.get("network") or 0.0
            latency = None if answered is None else round((answered - turn["ended_at"] + network) * 1000, 1)
            turns.append({"participant": turn["participant"], "user_stopped_at": _iso(turn["ended_at"]),
                          "bot_started_at": _iso(answered), "latency_ms": latency,
                          "network_ms": round(network * 1000, 1) if answered is not None else None})
        latencies = [t["latency_ms"] for t in turns if t["latency_ms"] is not None]
        summary = {
            "duration": round(ended - self.started, 3),
            "participants": len(people),
            "turns": len(turns),
            "user_messages": self.said_count.get("user", 0),
            "bot_messages": self.said_count.get("bot", 0),
            "runs": self.run_count,
            "errors": self.error_count,  # all of the session's, also those beyond MAX_RUNS
            "tool_calls": self.tool_count,
            "dropped_runs": self.dropped_count,
            "latency_ms": {"average": round(sum(latencies) / len(latencies), 1) if latencies else None,
                           "max": max(latencies) if latencies else None},
        }
        document = {
            "$schema": SCHEMA_ID,
            "version": VERSION,
            "id": self.id,
            "bot": {"name": spec.name, "identity": spec.identity, "file": spec.file},
            "room": spec.room,
            "started_at": _iso(self.started),
            "ended_at": _iso(ended),
            "participants": people,
            "transcript": transcript,
            "runs": runs,
            "tool_calls": tools,
            "turns": turns,
            "state": {"room": _plain(bot.state.room), "participants": _plain(bot.state.participants)},
            "summary": summary,
            "audio": audio,
            "ended_by": ended_by,
        }
        return self.clean(document)

    def clean(self, value):
        """Secrets masked and the redact patterns blanked, in every string of the document."""
        secrets = self.bot.spec.secrets
        patterns = self.conf["redact"] if self.conf else ()
        if not secrets and not patterns:
            return value

        def text(s: str) -> str:
            if secrets:
                s = mask(s, secrets)
            for pattern in patterns:
                s = pattern.sub(REDACTED, s)
            return s

        def walk(v):
            if isinstance(v, str):
                return text(v)
            if isinstance(v, dict):
                return {k: walk(x) for k, x in v.items()}
            if isinstance(v, list):
                return [walk(x) for x in v]
            return v
        return walk(value)

    def detach(self) -> None:
        for room in self._rooms:
            for event, handler in (("participant_connected", self._joined), ("participant_disconnected", self._left)):
                try:
                    room.off(event, handler)
                except Exception:
                    pass
        self._rooms.clear()


def _run(entry) -> dict:
    item = {"event": entry.event, "participant": entry.participant, "at": _iso(entry.time),
            "outcome": str(entry.outcome), "ms": entry.ms,
            "actions": [{"action": step[0], "line": step[1], "values": _plain(step[2]), "ms": step[3]}
                        for step in entry.steps]}
    for key in ("error", "note"):
        if getattr(entry, key, None):
            item[key] = getattr(entry, key)
    if entry.outcome is RunOutcome.DROPPED:
        item["dropped"] = entry.dropped
    return item


def _plain(value):
    """A JSON-able copy (trace values and state are JSON already; this keeps any odd value a string)."""
    return json.loads(json.dumps(value, default=str))


# -- the session's hooks (called by BotRuntime) ------------------------------------------------------
def current(bot) -> SessionRecord | None:
    return getattr(bot, "session_record", None)


def session_connected(bot) -> None:
    """A generation joined: the session's record starts (first time) and follows the new room."""
    from runner.runtime import telemetry, transcripts
    record = current(bot)
    if record is None:
        record = bot.session_record = SessionRecord(bot)
        bot.trace.listeners.append(record.on_trace)
        telemetry.session_started(bot, record)
        if record.conf is not None:
            asyncio.ensure_future(_check_folder(bot, record.conf["dir"]))
    gen = bot.generation
    record.attach(gen.room if gen is not None else None)
    transcripts.connected(bot)
    conversation = getattr(bot, "conversation", None)
    if conversation is not None:
        conversation.record = record


async def _check_folder(bot, folder: Path) -> None:
    try:
        await asyncio.to_thread(check_folder, folder)
    except OSError as exc:
        report_error(bot, f"session record: cannot write to {folder}: {reason(exc)}")


def _close(bot) -> SessionRecord | None:
    """Take the session's record off the bot (no more lines or runs go into it)."""
    record = current(bot)
    if record is None:
        return None
    bot.session_record = None
    conversation = getattr(bot, "conversation", None)
    if conversation is not None:
        conversation.record = None
    try:
        bot.trace.listeners.remove(record.on_trace)
    except ValueError:
        pass
    record.detach()
    return record


async def session_ended(bot) -> None:
    """The session is over and the bot has left: write the record, then fire session_ended."""
    from runner.runtime import telemetry
    record = _close(bot)
    if record is None:
        return
    await asyncio.sleep(0)  # the audio recorder's last piece (its handler runs as a task)
    ended = time.time()
    audio = record.finish_audio(ended)
    document = record.document(audio, ended=ended)
    telemetry.session_ended(bot, document["summary"])
    path = await _write(bot, record, document)
    session = {"id": record.id, "transcript": document["transcript"], "summary": document["summary"],
               "record": str(path) if path else None,
               "audio": str(path.with_name(audio)) if path and audio else None,
               "state": document["state"]["room"]}
    bot.dispatcher.fire("session_ended", None, extra={"session": session})
    if bot.once and "session_ended" in bot.spec.on:  # the process exits next: let the webhook go out
        await _runs_finished(bot)


async def session_stopped(bot) -> Path | None:
    """lkrun is stopping (^C, SIGTERM) or the bot's file went away in the middle of a session: the
    record is written as it stands, ``"ended_by": "stopped"``. ``session_ended`` does not fire (the
    bot's runs were stopped with it). Returns the record's path, or None."""
    from runner.runtime import telemetry
    record = _close(bot)
    if record is None:
        return None
    ended = time.time()
    audio = record.finish_audio(ended)
    document = record.document(audio, ended_by="stopped", ended=ended)
    telemetry.session_ended(bot, document["summary"])
    return await _write(bot, record, document)


async def _write(bot, record: SessionRecord, document: dict) -> Path | None:
    conf = record.conf
    if conf is None:
        return None
    path = conf["dir"] / f"{record.name}.json"
    text = json.dumps(document, ensure_ascii=False, indent=1)
    try:
        await asyncio.to_thread(write_atomically, path, text)
    except OSError as exc:
        report_error(bot, f"session record: cannot write {path.name} to {path.parent}: {reason(exc)}")
        return None
    try:
        await asyncio.to_thread(prune, conf["dir"], bot.spec.name, conf["keep_days"], conf["max_files"])
    except OSError as exc:
        logger.warning(f"[{bot.spec.name}] could not prune old session records: {reason(exc)}")
    logger.info(f"[{bot.spec.name}] session record written: {path}")
    return path


async def _runs_finished(bot) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ONCE_WAIT
    await asyncio.sleep(0)
    while loop.time() < deadline:
        tasks = [t for t in bot.dispatcher.tasks if not t.done()]
        if not tasks:
            return
        await asyncio.wait(tasks, timeout=max(0.01, deadline - loop.time()))

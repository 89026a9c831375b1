"""RecordingEffects: what the bot did, in order, each with the bot file line of the action that did it."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path

from runner.runtime.engine import current_run, encode_packet


@dataclass
class Record:
    kind: str  # say, send, chat, play, log, http, mute, unmute, dtmf, metadata, llm, llm_called, ended, error, ...
    fields: dict
    time: float
    line: int | None = None  # the bot file line of the action (None: not an action, e.g. an LLM reply)
    source: str = ""  # the bot file, or where else it came from ("the scripted LLM reply at t.yaml:12")
    used: bool = False  # matched by an expect already

    def origin(self) -> str:
        if self.line is not None:
            return f"{self.source}:{self.line}"
        return self.source

    def show(self) -> str:
        from runner.testing.expect import show_record
        return show_record(self)


def stop_reason(entry) -> str | None:
    """The reason of the ``stop`` action a finished run ended at (``expect: {stopped}``), or None."""
    if str(entry.outcome) != "ok" or not entry.steps or entry.steps[-1][0] != "stop":
        return None
    rendered = entry.steps[-1][2]
    return str(rendered.get("reason") or "") if isinstance(rendered, dict) else str(rendered or "")


def record_run_end(effects, entry, file: str) -> None:
    """What a finished run's trace entry adds to the records: its error, or the stop it ended at."""
    if str(entry.outcome) == "error":
        effects.add("error", entry.line, file, message=entry.error or "")
    reason = stop_reason(entry)
    if reason is not None:
        effects.add("stopped", entry.steps[-1][1], file, reason=reason)


class ScriptedFailure(RuntimeError):
    """What a ``fail:`` step makes an effect raise."""


FAILED_RECORD = {"set_metadata": "metadata"}  # fail: names the action; these record under another kind

EPOCH = 1767258000.0  # 2026-01-01T09:00:00+00:00: {{ now }} when an offline case starts


@dataclass
class RecordingEffects:
    """Effects (``runtime.effects.Effects``) that record instead of touching a room."""

    bot: object  # OfflineBot
    records: list[Record] = field(default_factory=list)
    failures: dict[str, list[str]] = field(default_factory=dict)  # record kind -> messages of fail: steps

    def script_failure(self, body, where: str) -> None:
        """A ``fail:`` step: the next effect of this action raises, as a real room or server would."""
        action = body if isinstance(body, str) else body["action"]
        message = (body.get("message") if isinstance(body, dict) else None) or \
            f"{action} failed (the fail: step at {where})"
        self.failures.setdefault(FAILED_RECORD.get(action, action), []).append(str(message))

    def wall_time(self) -> float:
        """``{{ now }}`` offline: EPOCH plus the virtual time, so a case that pins a time always passes."""
        return EPOCH + asyncio.get_running_loop().time() - getattr(self.bot, "born", 0.0)

    def add(self, kind: str, line: int | None = None, source: str | None = None, **fields) -> Record:
        record = Record(kind, fields, asyncio.get_running_loop().time(), line, source or "")
        self.records.append(record)
        return record

    def _record(self, kind: str, **fields) -> Record:
        if self.failures.get(kind):  # scripted: the action did not happen, its run fails
            raise ScriptedFailure(self.failures[kind].pop(0))
        run = current_run()  # the run whose action is calling this effect
        node = run.node if run is not None else None
        return self.add(kind, node.line if node is not None else None,
                        run.spec.file if run is not None else self.bot.spec.file, **fields)

    async def say(self, text: str) -> None:
        self._record("say", text=text)
        self.bot.idle.touch()

    async def play(self, path: Path) -> None:
        self._record("play", file=Path(path).name)
        self.bot.idle.touch()

    async def send(self, data, to, after_speech: bool) -> None:
        payload = encode_packet(data)
        if isinstance(payload, str):
            try:
                parsed = json.loads(payload)
                payload = parsed if isinstance(parsed, dict) else payload
            except ValueError:
                pass
        self._record("send", to=list(to) if to else None, data=payload)

    async def chat(self, text: str, to) -> None:
        self._record("chat", to=list(to) if to else None, text=text)

    async def llm(self, messages: list[dict], run: bool) -> None:
        record = self._record("llm", messages=messages, run=run,
                              text="\n".join(str(m.get("content", "")) for m in messages))
        self.bot.context.extend(messages)
        if run:
            self.bot.spawn(self.bot.llm_request(f"the llm action at {record.origin()}"))

    async def interrupt(self) -> None:
        self._record("interrupt")

    async def end(self, now: bool, hangup: bool = False) -> None:
        record = self._record("ended", now=now, hangup=hangup, reason="end")
        self.bot.end_session(hangup=hangup, record=record)

    async def mute(self, participant: str, muted: bool) -> None:
        self._record("mute" if muted else "unmute", participant=participant)

    async def set_metadata(self, metadata: str) -> None:
        self._record("metadata", text=metadata)

    async def wait(self, seconds: float) -> None:
        await asyncio.sleep(seconds)  # the loop's clock is virtual: the runner moves it

    def state_changed(self, scope: str, participant: str | None, values: dict) -> None:
        self._record("set", scope=scope, participant=participant, values=values)

    async def log(self, message: str, level: str) -> None:
        self._record("log", message=message, level=level)

    async def http(self, url: str, method: str, body, headers: dict, timeout: float) -> dict:
        self._record("http", url=url, method=method, json=body)
        answer = self.bot.http_answers.popleft() if self.bot.http_answers else {}
        status = answer.get("status", 200)
        if status >= 400:  # as LiveEffects.http: the action fails, `error` fires
            raise ValueError(f"http {method} {url.split('?')[0]} answered {status}")
        return {"status": answer.get("status", 200), "json": answer.get("json"), "text": answer.get("text", "")}

    async def dtmf(self, digits: str) -> None:
        self._record("dtmf", digits=digits)

    async def speech_finished(self) -> None:
        """Offline speech takes no time: it has always finished."""

    async def dial(self, number: str, trunk: str, identity, name, wait_until_answered: bool, timeout) -> dict:
        self._record("dial", number=number, trunk=trunk, identity=identity, name=name)
        return {"identity": identity or f"sip_{number}", "participant_id": None, "sip_call_id": None,
                "room": self.bot.spec.room}

    async def transfer(self, participant: str, to: str, play_dialtone: bool) -> None:
        self._record("transfer", participant=participant, to=to)

    async def hangup(self, participant: str) -> None:
        self._record("hangup", participant=participant)
        if participant in self.bot.present:  # LiveKit removes them: their leave events follow
            self.bot.spawn(self.bot.leave({"id": participant, "reason": "PARTICIPANT_REMOVED"}))

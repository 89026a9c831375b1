"""`idle` steps in the real scheduler (no room): the bot's own speech, queued or playing, is not quiet."""

from __future__ import annotations

import asyncio

from runner.botfile.check import check_document
from runner.botfile.yamlsafe import load_text
from runner.runtime import waits
from runner.runtime.effects import NullEffects
from runner.runtime.scheduler import Dispatcher
from runner.runtime.state import SessionState
from runner.runtime.timers import IdleClock, session_tasks
from runner.runtime.trace import Trace

IDLER = """\
version: 1
name: idler
livekit: {room: r, identity: idler}
on:
  idle:
    - after: 0.3
      do: [{log: ask}]
"""


class Bot:
    name = "idler"

    def __init__(self):
        self.spec = check_document(load_text(IDLER, "bot.yaml"), environ={}, dotenv={})
        self.state, self.trace, self.idle, self.effects = SessionState(), Trace(), IdleClock(), NullEffects()
        self.dispatcher = Dispatcher(self)

    def participants(self):
        return ["alice"]


def _asked(bot) -> int:
    return len([e for e in bot.trace.entries if e.event == "idle"])


async def test_speech_the_tts_has_not_started_yet_keeps_idle_from_firing():
    bot = Bot()
    speech = bot.dispatcher.waits.speech
    tasks = session_tasks(bot)
    try:
        speech.queued()  # a `say` whose first audio is late: a slow TTS on a loaded machine
        await asyncio.sleep(0.8)
        assert _asked(bot) == 0, "idle fired while the bot's speech was still on its way"
        speech.event("bot_started_speaking")
        await asyncio.sleep(0.5)
        assert _asked(bot) == 0, "idle fired while the bot was speaking"
        speech.event("bot_stopped_speaking")
        await asyncio.sleep(0.15)
        assert _asked(bot) == 0, "quiet time did not restart at the end of the bot's speech"
        await asyncio.sleep(0.5)
        assert _asked(bot) == 1
    finally:
        for task in tasks:
            task.cancel()


async def test_speech_that_never_starts_stops_holding_idle_after_the_cap(monkeypatch):
    monkeypatch.setattr(waits, "SPEECH_START_CAP", 0.2)
    bot = Bot()
    tasks = session_tasks(bot)
    try:
        bot.dispatcher.waits.speech.queued()  # a TTS that failed: no audio will come
        await asyncio.sleep(1.0)
        assert _asked(bot) == 1
    finally:
        for task in tasks:
            task.cancel()


def test_speech_is_busy_from_queued_until_it_stops():
    speech = waits.Speech()
    assert not speech.busy()
    speech.queued()
    assert speech.busy()
    speech.event("bot_started_speaking")
    assert speech.busy()
    speech.event("bot_stopped_speaking")
    assert not speech.busy()

"""`idle` steps and timers in the real scheduler (no room): the bot's own speech, queued or playing, is
not quiet; a bot file with nothing to count is not polled, and a reload that adds steps wakes them."""

from __future__ import annotations

import asyncio

from runner.botfile.check import check_document
from runner.botfile.yamlsafe import load_text
from runner.runtime import waits
from runner.runtime.effects import NullEffects
from runner.runtime.scheduler import Dispatcher
from runner.runtime.state import SessionState
from runner.runtime.timers import IdleClock, SpecSwaps, session_tasks
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


QUIET = """\
version: 1
name: idler
livekit: {room: r, identity: idler}
on:
  data_received: [{log: hi}]
"""

TICKER = IDLER + """\
  timer:
    - every: 0.2
      do: [{log: tick}]
"""


def _spec(text):
    return check_document(load_text(text, "bot.yaml"), environ={}, dotenv={})


class Bot:
    name = "idler"

    def __init__(self, text=IDLER):
        self.spec = _spec(text)
        self.state, self.trace, self.idle, self.effects = SessionState(), Trace(), IdleClock(), NullEffects()
        self.dispatcher = Dispatcher(self)
        self.swaps = SpecSwaps()
        self.looked = 0

    def participants(self):
        self.looked += 1
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


async def test_a_bot_with_nothing_to_count_is_not_polled_until_a_reload_gives_it_steps():
    bot = Bot(QUIET)
    tasks = session_tasks(bot)
    try:
        bot.idle.last -= 60  # a minute of quiet before the reload
        await asyncio.sleep(0.5)
        assert bot.looked == 0  # the idle loop slept: no look at the room every 100 ms
        bot.spec = _spec(TICKER)
        bot.swaps.swapped()
        await asyncio.sleep(0.15)
        assert _asked(bot) == 0, "the new idle step counted the quiet from before the reload"
        assert bot.looked > 0
        await asyncio.sleep(0.45)
        assert _asked(bot) == 1
        assert len([e for e in bot.trace.entries if e.event == "timer"]) >= 1
        assert all(not task.done() for task in tasks)
    finally:
        for task in tasks:
            task.cancel()

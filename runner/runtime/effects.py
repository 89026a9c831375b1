"""What actions do: the ``Effects`` protocol, and LiveEffects for a live room.

An action's run function (``botfile/actions.py``) touches the world only through
``run.effects``, which is one of: ``LiveEffects`` (the room), ``simulate.PrintEffects``
(``lkrun simulate``) or a test double built on ``NullEffects``. ``Effects`` lists what
each must provide; ``tests/test_effects_protocol.py`` checks every registered action
against all of them.

Data, chat and metadata go through the LiveKit room directly (not pipecat's
``send_message``, which drops failures silently) so a failure stops the run and fires
``error`` with the action's line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

from loguru import logger

from runner.runtime.engine import encode_packet

MAX_HTTP_BODY = 1024 * 1024
SUBSCRIBE_CONFIRM = 1.0  # seconds to wait for the server to confirm a (un)subscribe


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text: str) -> str:
    """Text from participants on one log line: no forged lines, no terminal control sequences."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


async def set_audio_subscribed(room, participant: str, subscribed: bool) -> None:
    """Subscribe to (or stop receiving) a participant's audio, and make sure it happened.

    pipecat's mute_participant/unmute_participant only set the SDK's wish. Measured on
    livekit 1.2.1: a re-subscribe sent right after an unsubscribe is sometimes lost (about
    one in eight), and asking again is a no-op because the SDK already "wants" it; toggling
    the wish off and on again gets it through. So: ask, wait for the server's answer,
    toggle if it did not come.
    """
    import asyncio

    from livekit import rtc

    def pending():
        remote = room.remote_participants.get(participant) if room is not None else None
        pubs = [p for p in (remote.track_publications.values() if remote else ())
                if p.kind == rtc.TrackKind.KIND_AUDIO]
        return [p for p in pubs if p.subscribed != subscribed]

    for attempt in range(3):
        for publication in pending():
            if attempt:
                publication.set_subscribed(not subscribed)
                await asyncio.sleep(0.2)
            publication.set_subscribed(subscribed)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SUBSCRIBE_CONFIRM
        while pending() and loop.time() < deadline:
            await asyncio.sleep(0.02)
        if not pending():
            return
    logger.warning(f"the server did not confirm {'subscribing to' if subscribed else 'unsubscribing from'} "
                   f"{participant}'s audio")


@runtime_checkable
class Effects(Protocol):
    """What an action may do to the world. Any failure raises: the run stops and ``error`` fires."""

    async def say(self, text: str) -> None:
        """Speak ``text`` through the tts stage (queued after speech already queued)."""

    async def play(self, path: Path) -> None:
        """Play an audio file; ``path`` is already resolved inside the bot's folder."""

    async def send(self, data: str | dict, to: list[str] | None, after_speech: bool) -> None:
        """Publish a data message (text or JSON object) to these identities (None: everyone)."""

    async def chat(self, text: str, to: list[str] | None) -> None:
        """Send a chat message on the lk.chat text stream to these identities (None: everyone)."""

    async def llm(self, messages: list[dict], run: bool) -> None:
        """Append ``{role, content}`` messages to the LLM context; ``run``: generate a reply now."""

    async def interrupt(self) -> None:
        """Stop the bot's current speech."""

    async def end(self, now: bool, hangup: bool = False) -> None:
        """End the session after queued speech (or ``now``); ``hangup`` deletes the room."""

    async def mute(self, participant: str, muted: bool) -> None:
        """Stop (``muted``) or resume receiving this participant's audio."""

    async def set_metadata(self, metadata: str) -> None:
        """Set the bot's own participant metadata."""

    async def wait(self, seconds: float) -> None:
        """Pause this run (0 to 3600 seconds, checked by the action)."""

    def state_changed(self, scope: str, participant: str | None, values: dict) -> None:
        """``set`` stored these (masked) values in ``scope`` (room or participant); not awaited."""

    async def log(self, message: str, level: str) -> None:
        """Write ``message`` to lkrun's log at ``level`` (debug, info, warning, error)."""

    async def http(self, url: str, method: str, body: dict | None, headers: dict,
                   timeout: float) -> dict:
        """One request; returns ``{status, json, text}`` or raises ValueError with a short reason."""

    async def dtmf(self, digits: str) -> None:
        """Send these keypad tones (0-9, *, #, A-D)."""


class NullEffects:
    """Effects that do nothing: the base of test doubles, so a new effect is never missing from one."""

    async def say(self, text: str) -> None:
        pass

    async def play(self, path: Path) -> None:
        pass

    async def send(self, data: str | dict, to: list[str] | None, after_speech: bool) -> None:
        pass

    async def chat(self, text: str, to: list[str] | None) -> None:
        pass

    async def llm(self, messages: list[dict], run: bool) -> None:
        pass

    async def interrupt(self) -> None:
        pass

    async def end(self, now: bool, hangup: bool = False) -> None:
        pass

    async def mute(self, participant: str, muted: bool) -> None:
        pass

    async def set_metadata(self, metadata: str) -> None:
        pass

    async def wait(self, seconds: float) -> None:
        pass

    def state_changed(self, scope: str, participant: str | None, values: dict) -> None:
        pass

    async def log(self, message: str, level: str) -> None:
        pass

    async def http(self, url: str, method: str, body: dict | None, headers: dict,
                   timeout: float) -> dict:
        return {"status": 0, "json": None, "text": ""}

    async def dtmf(self, digits: str) -> None:
        pass


class LiveEffects:
    """Effects in the live room of the bot's current generation."""

    def __init__(self, bot):
        self.bot = bot  # BotRuntime: .generation (current), .spec, .end_session()

    @property
    def gen(self):
        gen = self.bot.generation
        if gen is None or gen.room is None:
            raise RuntimeError("the bot is not connected to the room right now")
        return gen

    async def say(self, text: str) -> None:
        from pipecat.frames.frames import TTSSpeakFrame
        await self.gen.worker.queue_frame(TTSSpeakFrame(text))

    async def play(self, path: Path) -> None:
        from runner.voice.audio import file_frames
        gen = self.gen
        for frame in file_frames(path, gen.out_sample_rate):
            await gen.worker.queue_frame(frame)

    async def send(self, data: str | dict, to: list[str] | None, after_speech: bool) -> None:
        payload = encode_packet(data)
        text = json.dumps(payload, ensure_ascii=False) if isinstance(payload, dict) else payload
        gen = self.gen
        if after_speech and gen.has_audio_out:
            from pipecat.transports.livekit.transport import LiveKitOutputTransportMessageFrame
            for target in to or [None]:
                await gen.worker.queue_frame(LiveKitOutputTransportMessageFrame(message=payload, participant_id=target))
            return
        await gen.room.local_participant.publish_data(text.encode("utf-8"), reliable=True,
                                                      destination_identities=list(to or []))

    async def chat(self, text: str, to: list[str] | None) -> None:
        await self.gen.room.local_participant.send_text(text, topic="lk.chat",
                                                        destination_identities=list(to or []))

    async def llm(self, messages: list[dict], run: bool) -> None:
        from pipecat.frames.frames import LLMMessagesAppendFrame
        await self.gen.worker.queue_frame(LLMMessagesAppendFrame(messages=messages, run_llm=run))

    async def interrupt(self) -> None:
        from pipecat.frames.frames import InterruptionFrame
        await self.gen.worker.queue_frame(InterruptionFrame())

    async def end(self, now: bool, hangup: bool = False) -> None:
        await self.bot.end_session(now=now, hangup=hangup)

    async def mute(self, participant: str, muted: bool) -> None:
        gen = self.gen
        if muted:
            gen.muted.add(participant)
        else:
            gen.muted.discard(participant)
        await set_audio_subscribed(gen.room, participant, not muted)

    async def set_metadata(self, metadata: str) -> None:
        await self.gen.room.local_participant.set_metadata(metadata)

    async def wait(self, seconds: float) -> None:
        import asyncio
        await asyncio.sleep(seconds)

    def state_changed(self, scope: str, participant: str | None, values: dict) -> None:
        """`set` ran (the live room has nothing to show; simulate and tests print or record it)."""

    async def log(self, message: str, level: str) -> None:
        logger.log(level.upper(), f"[{self.bot.spec.name}] {printable(message)}")

    async def http(self, url: str, method: str, body: dict | None, headers: dict,
                   timeout: float) -> dict:
        """One request; failures become one short message (no query string: it may hold data)."""
        import asyncio

        import aiohttp
        from yarl import URL
        where = f"http {method} {url.split('?')[0]}"
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
                # encoded: the URL is sent as lkrun encoded it (no dot-segment collapsing); no redirects:
                # a redirect would take the author's headers wherever the server points
                async with session.request(method, URL(url, encoded=True), json=body, headers=headers,
                                           allow_redirects=False) as response:
                    raw = await response.content.read(MAX_HTTP_BODY + 1)
                    status = response.status
                    location = response.headers.get("Location", "")
        except asyncio.TimeoutError:
            raise ValueError(f"{where}: no answer within {timeout:g} s") from None
        except aiohttp.ClientConnectorError as exc:
            from runner.connect.probe import os_reason
            raise ValueError(f"{where}: cannot connect: {os_reason(exc)}") from None
        except aiohttp.ClientError as exc:
            raise ValueError(f"{where}: {type(exc).__name__}: {exc}") from None
        if len(raw) > MAX_HTTP_BODY:
            raise ValueError(f"{where}: the response is larger than 1 MiB")
        text = raw.decode("utf-8", "replace")
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if 300 <= status < 400:
            target = urlsplit(location).netloc or "the same host"
            raise ValueError(f"{where} answered a redirect ({status}) to {target}; lkrun does not follow "
                             "redirects: put the final address in the bot file")
        if status >= 400:
            raise ValueError(f"{where} answered {status}")
        return {"status": status, "json": parsed, "text": text[:65536]}

    async def dtmf(self, digits: str) -> None:
        from pipecat.audio.dtmf.types import KeypadEntry
        from pipecat.frames.frames import OutputDTMFUrgentFrame
        for digit in digits:
            await self.gen.worker.queue_frame(OutputDTMFUrgentFrame(button=KeypadEntry(digit)))

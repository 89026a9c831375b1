"""What actions do in a live room (``LiveEffects``); the protocol they follow is ``effects_api``.

Data, chat and metadata go through the LiveKit room directly (not pipecat's
``send_message``, which drops failures silently) so a failure stops the run and fires
``error`` with the action's line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

from loguru import logger

from runner.runtime.effects_api import Effects, NullEffects  # noqa: F401  (their home; re-exported)
from runner.runtime.engine import packet_text

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
        self.bot.dispatcher.waits.speech.queued()
        await self.gen.worker.queue_frame(TTSSpeakFrame(text))

    async def play(self, path: Path) -> None:
        from runner.voice.audio import file_frames
        gen = self.gen
        for frame in file_frames(path, gen.out_sample_rate):
            await gen.worker.queue_frame(frame)

    async def send(self, data: str | dict, to: list[str] | None, after_speech: bool) -> None:
        payload, text = packet_text(data)
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

    async def speech_finished(self) -> None:
        await self.bot.dispatcher.waits.speech.finished()

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

    # -- call control: one livekit.api call each, with the bot's API key and secret ---------------
    async def dial(self, number: str, trunk: str, identity: str | None, name: str | None,
                   wait_until_answered: bool, timeout: float | None) -> dict:
        from livekit import api
        request = api.CreateSIPParticipantRequest(
            sip_trunk_id=trunk, sip_call_to=number, room_name=self.bot.spec.room,
            participant_identity=identity or "", participant_name=name or "",
            wait_until_answered=wait_until_answered)
        if timeout is not None:
            request.ringing_timeout.seconds = int(timeout)
        info = await server_call(self.bot, "dial", lambda lkapi: lkapi.sip.create_sip_participant(request))
        return {"identity": info.participant_identity, "participant_id": info.participant_id,
                "sip_call_id": info.sip_call_id, "room": info.room_name}

    async def transfer(self, participant: str, to: str, play_dialtone: bool) -> None:
        from livekit import api
        request = api.TransferSIPParticipantRequest(room_name=self.bot.spec.room, participant_identity=participant,
                                                    transfer_to=to, play_dialtone=play_dialtone)
        await server_call(self.bot, "transfer", lambda lkapi: lkapi.sip.transfer_sip_participant(request))

    async def hangup(self, participant: str) -> None:
        from livekit import api
        request = api.RoomParticipantIdentity(room=self.bot.spec.room, identity=participant)
        await server_call(self.bot, "hangup", lambda lkapi: lkapi.room.remove_participant(request))


NO_SIP = "sip not connected"  # livekit-server's answer when it has no SIP service


async def server_call(bot, what: str, call):
    """One livekit.api call with the bot's API key and secret (``call(lkapi)`` -> awaitable).

    Every failure becomes one ValueError with LiveKit's own message (the run stops and
    ``error`` fires): no SIP trunk, no SIP service, permission denied, a wrong key."""
    import asyncio

    import aiohttp
    from livekit import api

    from runner.connect.probe import http_url
    server = bot.server
    client = server.api(bot.spec)
    if client is None:
        raise ValueError(f"{what} needs the LiveKit API key and secret (a token is not enough)")
    try:
        async with client as lkapi:
            return await call(lkapi)
    except api.TwirpError as exc:
        raise ValueError(f"{what}: {livekit_said(exc)}") from None
    except asyncio.TimeoutError:
        raise ValueError(f"{what}: LiveKit did not answer in time") from None
    except aiohttp.ClientError as exc:
        raise ValueError(f"{what}: cannot reach LiveKit at {http_url(server.url)}: {type(exc).__name__}: {exc}") \
            from None


def livekit_said(exc) -> str:
    """A TwirpError as one line: LiveKit's message, its code, and what it means when that is not obvious."""
    message = (exc.message or "").strip()
    message = message.removeprefix("twirp error unknown: ")  # livekit-server's wrapper, not its message
    status = getattr(exc, "status", None)
    if not message:
        message = {401: "the API key or secret was not accepted", 403: "permission denied"}.get(
            status, f"an error without a message (HTTP {status})")
    said = f"LiveKit answered: {message} ({exc.code})"
    if NO_SIP in message:
        said += "; this LiveKit server has no SIP service (LiveKit Cloud has one; a self-hosted server needs livekit-sip)"
    return said

"""What actions do in a live room: data, chat, metadata, mute, speech frames, http.

Data, chat and metadata go through the LiveKit room directly (not pipecat's
``send_message``, which drops failures silently) so a failure stops the run and fires
``error`` with the action's line.
"""

from __future__ import annotations

import json

from loguru import logger

from .engine import encode_packet

MAX_HTTP_BODY = 1024 * 1024


class LiveEffects:
    def __init__(self, bot):
        self.bot = bot  # BotRuntime: .generation (current), .spec, .end_session()

    @property
    def gen(self):
        gen = self.bot.generation
        if gen is None or gen.room is None:
            raise RuntimeError("the bot is not connected to the room right now")
        return gen

    async def say(self, text):
        from pipecat.frames.frames import TTSSpeakFrame
        await self.gen.worker.queue_frame(TTSSpeakFrame(text))

    async def play(self, path):
        from .audio import file_frames
        gen = self.gen
        for frame in file_frames(path, gen.out_sample_rate):
            await gen.worker.queue_frame(frame)

    async def send(self, data, to, after_speech):
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

    async def chat(self, text, to):
        await self.gen.room.local_participant.send_text(text, topic="lk.chat",
                                                        destination_identities=list(to or []))

    async def llm(self, messages, run):
        from pipecat.frames.frames import LLMMessagesAppendFrame
        await self.gen.worker.queue_frame(LLMMessagesAppendFrame(messages=messages, run_llm=run))

    async def interrupt(self):
        from pipecat.frames.frames import InterruptionFrame
        await self.gen.worker.queue_frame(InterruptionFrame())

    async def end(self, now):
        await self.bot.end_session(now=now)

    async def mute(self, participant, muted):
        gen = self.gen
        if muted:
            gen.muted.add(participant)
            await gen.transport.mute_participant(participant)
        else:
            gen.muted.discard(participant)
            await gen.transport.unmute_participant(participant)

    async def set_metadata(self, metadata):
        await self.gen.room.local_participant.set_metadata(metadata)

    async def log(self, message, level):
        logger.log(level.upper(), f"[{self.bot.spec.name}] {message}")

    async def http(self, url, method, body, headers, timeout):
        import aiohttp
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            async with session.request(method, url, json=body, headers=headers) as response:
                raw = await response.content.read(MAX_HTTP_BODY + 1)
                if len(raw) > MAX_HTTP_BODY:
                    raise ValueError(f"http: the response from {url.split('?')[0]} is larger than 1 MiB")
                text = raw.decode("utf-8", "replace")
                try:
                    parsed = json.loads(text)
                except ValueError:
                    parsed = None
                if response.status >= 400:
                    raise ValueError(f"http {method} {url.split('?')[0]} answered {response.status}")
                return {"status": response.status, "json": parsed, "text": text[:65536]}

    async def dtmf(self, digits):
        from pipecat.audio.dtmf.types import KeypadEntry
        from pipecat.frames.frames import OutputDTMFUrgentFrame
        for digit in digits:
            await self.gen.worker.queue_frame(OutputDTMFUrgentFrame(button=KeypadEntry(digit)))

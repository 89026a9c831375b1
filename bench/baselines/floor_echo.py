"""The floor: a plain ``livekit`` rtc client echoing data messages, no pipecat.

Same reply as the bots (``{"text": "pong", "seq": N}`` to the sender), so the difference
between this and a bot is what pipecat (and lkrun) add on top of the LiveKit SDK. Several
``-r`` rooms run in one process (one ``rtc.Room`` each), the floor for lkrun's many-bots
process. ``--audio-track`` also publishes a silent microphone track, as pipecat's
LiveKitTransport always does (even with audio_out_enabled false).

    LIVEKIT_URL=... LIVEKIT_API_KEY=... LIVEKIT_API_SECRET=... python floor_echo.py -r ROOM [ROOM ...] -i IDENTITY
"""

import argparse
import asyncio
import json
import os
import signal

from livekit import api, rtc


async def echo(room_name: str, identity: str, audio_track: bool, stop: asyncio.Event):
    token = (api.AccessToken(os.environ["LIVEKIT_API_KEY"], os.environ["LIVEKIT_API_SECRET"])
             .with_identity(identity).with_grants(api.VideoGrants(room_join=True, room=room_name)).to_jwt())
    room = rtc.Room()
    tasks = set()

    async def reply(packet: rtc.DataPacket):
        try:
            message = json.loads(packet.data)
        except ValueError:
            message = {}
        seq = message.get("seq") if isinstance(message, dict) else None
        sender = packet.participant.identity if packet.participant else None
        await room.local_participant.publish_data(json.dumps({"text": "pong", "seq": seq}).encode(), reliable=True,
                                                  destination_identities=[sender] if sender else [])

    def on_data(packet: rtc.DataPacket):
        task = asyncio.ensure_future(reply(packet))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    room.on("data_received", on_data)
    await room.connect(os.environ["LIVEKIT_URL"], token)
    if audio_track:
        source = rtc.AudioSource(24000, 1)
        track = rtc.LocalAudioTrack.create_audio_track("silence", source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        await room.local_participant.publish_track(track, options)
    await stop.wait()
    await room.disconnect()


async def main(rooms: list[str], identity: str, audio_track: bool):
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await asyncio.gather(*(echo(room, identity, audio_track, stop) for room in rooms))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="plain livekit echo (the floor)")
    parser.add_argument("-r", "--room", nargs="+", required=True, help="one or more rooms (one client each)")
    parser.add_argument("-i", "--identity", default="bench-bot")
    parser.add_argument("--audio-track", action="store_true", help="publish a silent track, as pipecat does")
    args = parser.parse_args()
    asyncio.run(main(args.room, args.identity, args.audio_track))

"""The people in the benchmark's rooms: the real livekit SDK, on loopback.

A ``Peer`` joins a room, watches who joins, and measures data round trips: it sends
``{"seq": N}`` and waits for the bot's reply carrying the same ``seq``.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import time

from livekit import api, rtc


def person_token(server, room: str, identity: str) -> str:
    grants = api.VideoGrants(room_join=True, room=room, can_publish=True, can_subscribe=True,
                             can_publish_data=True)
    return (api.AccessToken(server.api_key, server.api_secret).with_identity(identity).with_name(identity)
            .with_grants(grants).with_ttl(datetime.timedelta(minutes=30)).to_jwt())


class Peer:
    def __init__(self, server, room: str, identity: str = "person"):
        self.server, self.room_name, self.identity = server, room, identity
        self.room = rtc.Room()
        self.joined: dict[str, float] = {}  # identity -> monotonic time this peer saw it join
        self._join_waiters: dict[str, asyncio.Event] = {}
        self._replies: dict[int, asyncio.Future] = {}
        self._seq = 0
        self._connect: asyncio.Future | None = None
        self.room.on("participant_connected", self._on_join)
        self.room.on("data_received", self._on_data)

    def _on_join(self, participant) -> None:
        self.joined.setdefault(participant.identity, time.monotonic())
        event = self._join_waiters.get(participant.identity)
        if event is not None:
            event.set()

    def _on_data(self, packet) -> None:
        now = time.monotonic()
        try:
            seq = int(json.loads(packet.data.decode()).get("seq"))
        except (ValueError, TypeError, AttributeError):
            return
        future = self._replies.pop(seq, None)
        if future is not None and not future.done():
            future.set_result(now)

    async def join(self, timeout: float = 60.0) -> "Peer":
        # Never cancel rtc.Room.connect: cancelled after the SDK's ConnectCallback, the room never
        # sends ReadyForRoomEvent, and the SDK then "panics" and SIGTERMs this whole process
        # (livekit/rtc/_ffi_client.py). On a timeout the connect finishes (or fails) on its own.
        connect = asyncio.ensure_future(self.room.connect(
            self.server.url, person_token(self.server, self.room_name, self.identity)))
        self._connect = connect
        await asyncio.wait_for(asyncio.shield(connect), timeout)
        for identity in self.room.remote_participants:
            self.joined.setdefault(identity, time.monotonic())
        return self

    async def wait_joined(self, identity: str, timeout: float) -> float:
        """Monotonic time at which this peer saw ``identity`` join (participant_connected)."""
        if identity not in self.joined:
            event = self._join_waiters.setdefault(identity, asyncio.Event())
            if identity in self.room.remote_participants:
                self.joined.setdefault(identity, time.monotonic())
            else:
                await asyncio.wait_for(event.wait(), timeout)
        return self.joined[identity]

    async def ping(self, timeout: float = 5.0, to: str | None = None) -> float:
        """One data round trip in milliseconds (send -> the reply with the same seq arrives)."""
        self._seq += 1
        seq = self._seq
        future = asyncio.get_running_loop().create_future()
        self._replies[seq] = future
        payload = json.dumps({"text": "ping", "seq": seq}).encode()
        sent = time.monotonic()
        try:
            await self.room.local_participant.publish_data(payload, reliable=True,
                                                           destination_identities=[to] if to else [])
            received = await asyncio.wait_for(future, timeout)
        finally:
            self._replies.pop(seq, None)
        return (received - sent) * 1000

    async def send(self, payload: dict) -> float:
        """Send a data message; returns the monotonic send time."""
        sent = time.monotonic()
        await self.room.local_participant.publish_data(json.dumps(payload).encode(), reliable=True)
        return sent

    async def warm_up(self, attempts: int = 40, timeout: float = 1.0) -> int:
        """Ping until the bot answers (it may still be joining); returns the attempts it took."""
        for attempt in range(1, attempts + 1):
            try:
                await self.ping(timeout)
                return attempt
            except asyncio.TimeoutError:
                continue
        raise RuntimeError(f"no reply from the bot in room {self.room_name} after {attempts} pings")

    async def leave(self) -> None:
        connect = self._connect
        if connect is not None and not connect.done():  # let a slow connect finish, then leave
            await asyncio.wait([connect], timeout=30)
        try:
            await asyncio.wait_for(self.room.disconnect(), 5)
        except Exception:
            pass


async def join_all(peers: list[Peer], concurrency: int = 10) -> None:
    """Join every peer, a few at a time (the caller owns the list and makes them leave)."""
    gate = asyncio.Semaphore(concurrency)

    async def join(peer):
        async with gate:
            await peer.join()

    await asyncio.gather(*(join(p) for p in peers))


async def leave_all(peers) -> None:
    await asyncio.gather(*(p.leave() for p in peers), return_exceptions=True)

"""The client side of LiveKit's agent worker protocol: one websocket to ``/agent``, protobuf frames.

Why hand-written rather than livekit-agents: that package pins the livekit rtc version
exactly, drags in a whole voice framework, and keeps the job token private, while the
protocol a worker needs is five messages (register, availability, job status, worker
status, and the server's assignment/termination). See shared/reference/scale-out.md §1.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from livekit import api
from livekit.protocol import agent as pa

PROTOCOL = 1
REGISTER_TIMEOUT = 10.0  # the server itself allows 10 s for the register request
HEARTBEAT = 5.0  # websocket pings: a server that vanished without a FIN is noticed within ~2 beats


class ProtocolError(Exception):
    """The server refused us or spoke out of turn (bad credentials, no register response)."""


def agent_url(url: str) -> str:
    """``ws(s)://host[:port][/prefix]`` (or http/https) -> the ``/agent`` websocket endpoint."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + "/agent", "", ""))


def worker_token(api_key: str, api_secret: str, ttl_minutes: float = 10) -> str:
    """The registration token: only the ``agent`` grant (no room rights); expiry only gates the connect."""
    return (api.AccessToken(api_key, api_secret)
            .with_grants(api.VideoGrants(agent=True))
            .with_ttl(datetime.timedelta(minutes=ttl_minutes))
            .to_jwt())


class AgentConnection:
    """One registered worker: send helpers for the worker messages, an iterator over the server's."""

    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse, worker_id: str,
                 server_info):
        self._session, self._ws = session, ws
        self.worker_id = worker_id
        self.server_info = server_info
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, url: str, api_key: str, api_secret: str, *, agent_name: str, version: str,
                   timeout: float = REGISTER_TIMEOUT) -> "AgentConnection":
        """Connect and register (JT_ROOM jobs for ``agent_name``; "" means automatic dispatch)."""
        session = aiohttp.ClientSession(trust_env=False)  # an HTTP(S)_PROXY must not capture the server
        try:
            try:
                ws = await session.ws_connect(
                    agent_url(url), params={"protocol": str(PROTOCOL)}, heartbeat=HEARTBEAT,
                    headers={"Authorization": f"Bearer {worker_token(api_key, api_secret)}"},
                    timeout=aiohttp.ClientWSTimeout(ws_close=2.0), max_msg_size=16 * 1024 * 1024)
            except aiohttp.WSServerHandshakeError as exc:
                if exc.status in (401, 403):
                    raise ProtocolError(f"the server refused the worker's credentials ({exc.status})") from None
                raise
            request = pa.RegisterWorkerRequest(type=pa.JT_ROOM, agent_name=agent_name, version=version)
            await ws.send_bytes(pa.WorkerMessage(register=request).SerializeToString())
            reply = await asyncio.wait_for(ws.receive(), timeout)
            if reply.type != aiohttp.WSMsgType.BINARY:
                await ws.close()
                raise ProtocolError(f"no register response (got {reply.type.name})")
            msg = pa.ServerMessage.FromString(reply.data)
            if msg.WhichOneof("message") != "register":
                await ws.close()
                raise ProtocolError(f"expected a register response, got {msg.WhichOneof('message')}")
            return cls(session, ws, msg.register.worker_id, msg.register.server_info)
        except BaseException:
            await session.close()
            raise

    async def messages(self) -> AsyncIterator:
        """ServerMessages until the connection closes (the iterator then just ends)."""
        async for frame in self._ws:
            if frame.type == aiohttp.WSMsgType.BINARY:
                yield pa.ServerMessage.FromString(frame.data)
            elif frame.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                break

    async def send(self, **message) -> None:
        """One WorkerMessage (``availability=...``, ``update_job=...``, ...); raises if the socket is gone."""
        async with self._lock:
            await self._ws.send_bytes(pa.WorkerMessage(**message).SerializeToString())

    async def availability(self, job_id: str, available: bool, identity: str = "", name: str = "") -> None:
        await self.send(availability=pa.AvailabilityResponse(
            job_id=job_id, available=available, participant_identity=identity, participant_name=name))

    async def job_status(self, job_id: str, status: int, error: str = "") -> None:
        await self.send(update_job=pa.UpdateJobStatus(job_id=job_id, status=status, error=error))

    async def worker_status(self, full: bool, load: float, job_count: int) -> None:
        await self.send(update_worker=pa.UpdateWorkerStatus(
            status=pa.WS_FULL if full else pa.WS_AVAILABLE, load=load, job_count=job_count))

    @property
    def closed(self) -> bool:
        return self._ws.closed

    async def close(self) -> None:
        try:
            await self._ws.close()
        finally:
            await self._session.close()

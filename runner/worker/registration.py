"""One registration with LiveKit's agent dispatch: a bot file under one agent name, kept alive.

Why one websocket per bot: the server keys workers by agent name, so a worker hosting
three bot files is three registrations sharing one job pool. When the server goes away
the registration reconnects with capped backoff (a restarted server sees us again within
a few seconds) while jobs already in rooms keep running: they talk to the room, not to us.
"""

from __future__ import annotations

import asyncio
import random

import aiohttp
from loguru import logger

from runner.worker.jobs import job_identity
from runner.worker.protocol import AgentConnection, ProtocolError

BACKOFF = (0.5, 1.0, 2.0, 3.0)  # seconds, then 3 s forever (+-20 % jitter)
STATUS_EVERY = 10.0  # re-send load even when nothing changed: cheap, and proves the link is alive


class Registration:
    def __init__(self, worker, spec, agent_name: str):
        self.worker = worker
        self.spec = spec
        self.agent_name = agent_name
        self.conn: AgentConnection | None = None
        self.worker_id: str | None = None
        self.registered_once = asyncio.Event()
        self.closing = False
        self._status_dirty = asyncio.Event()

    @property
    def registered(self) -> bool:
        return self.conn is not None and not self.conn.closed

    @property
    def label(self) -> str:
        return self.agent_name or f"{self.spec.name} (automatic dispatch)"

    async def run(self) -> None:
        """Register, serve, and re-register after any disconnect until ``close()``."""
        failures = 0
        while not self.closing:
            try:
                conn = await AgentConnection.open(self.worker.url, self.worker.api_key, self.worker.api_secret,
                                                  agent_name=self.agent_name, version=self.worker.version)
            except (ProtocolError, OSError, aiohttp.ClientError, asyncio.TimeoutError) as exc:
                failures += 1
                if failures == 1 or failures % 20 == 0:  # once, then about once a minute
                    reason = exc if isinstance(exc, ProtocolError) else f"{type(exc).__name__}: {exc or ''}"
                    logger.warning(f"[{self.label}] cannot register with LiveKit at {self.worker.url}: "
                                   f"{reason}; retrying")
                await self._backoff(failures)
                continue
            if self.closing:
                await conn.close()
                break
            self.conn, self.worker_id, failures = conn, conn.worker_id, 0
            logger.info(f"[{self.label}] registered with LiveKit {conn.server_info.version or '?'} "
                        f"as worker {conn.worker_id}")
            self.registered_once.set()
            try:
                await self._serve(conn)
            except Exception as exc:  # a bug must cost one connection, never the registration
                logger.opt(exception=exc).error(f"[{self.label}] {type(exc).__name__}: {exc}; reconnecting")
            finally:
                self.conn = None
                await conn.close()
            if not self.closing:
                logger.warning(f"[{self.label}] lost the connection to LiveKit; re-registering "
                               f"({len(self.worker.pool.jobs)} job(s) keep running)")
                failures = 1
                await self._backoff(failures)

    async def _backoff(self, failures: int) -> None:
        delay = BACKOFF[min(failures, len(BACKOFF)) - 1] * random.uniform(0.8, 1.2)
        await asyncio.sleep(delay)

    async def _serve(self, conn: AgentConnection) -> None:
        status = asyncio.ensure_future(self._status_loop(conn))
        try:
            async for message in conn.messages():
                kind = message.WhichOneof("message")
                if kind == "availability":
                    await self._availability(conn, message.availability.job)
                elif kind == "assignment":
                    self.worker.pool.assign(self, message.assignment)
                elif kind == "termination":
                    logger.info(f"[{self.label}] job {message.termination.job_id}: terminated by the server")
                    asyncio.ensure_future(self.worker.pool.terminate(message.termination.job_id))
        finally:
            status.cancel()

    async def _availability(self, conn: AgentConnection, job) -> None:
        """Answer at once: the server's whole dispatch attempt has a 3 s budget."""
        ok = self.worker.pool.offer(job)
        identity = job_identity(self.spec, job.id) if ok else ""
        name = self.spec.livekit.get("name") or self.spec.name if ok else ""
        try:
            await conn.availability(job.id, ok, identity, name)
        except (ConnectionError, aiohttp.ClientError, RuntimeError):
            self.worker.pool.reserved.pop(job.id, None)
        if not ok:
            logger.info(f"[{self.label}] declined job {job.id} for room '{job.room.name}' "
                        f"({'draining' if self.worker.pool.draining else 'at capacity'})")

    async def _status_loop(self, conn: AgentConnection) -> None:
        """Report load now (a fresh registration counts as empty), then on every change."""
        pool = self.worker.pool
        while not conn.closed:
            self._status_dirty.clear()
            try:
                await conn.worker_status(pool.full(), pool.load(), len(pool.jobs))
            except (ConnectionError, aiohttp.ClientError, RuntimeError):
                return
            try:
                await asyncio.wait_for(self._status_dirty.wait(), STATUS_EVERY)
            except asyncio.TimeoutError:
                pass

    def status_changed(self) -> None:
        self._status_dirty.set()

    async def job_status(self, job_id: str, status: int, error: str = "") -> None:
        """Best effort: after a reconnect the server no longer knows older jobs, which is fine."""
        conn = self.conn
        if conn is None or conn.closed:
            return
        try:
            await conn.job_status(job_id, status, error[:500])
        except (ConnectionError, aiohttp.ClientError, RuntimeError):
            pass

    async def close(self) -> None:
        self.closing = True
        conn = self.conn
        if conn is not None:
            await conn.close()

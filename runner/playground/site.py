"""A TCP site that bounds what a connection may hold: a deadline for the first request's
headers, and a cap on open connections (aiohttp has neither; a page that trickles its
headers one byte a second would otherwise keep a connection, and 300 of them, forever).

Later requests on a kept-alive connection are bounded by aiohttp's ``keepalive_timeout``
(an idle or half-sent request is closed once it passes); the playground sets it too.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 37\r\nConnection: close\r\n\r\ntoo many open connections; try again\n")


class _Busy(asyncio.Protocol):
    """Over the cap: answer 503 and close, without parsing anything."""

    def connection_made(self, transport) -> None:
        transport.write(BUSY)
        transport.close()


class BoundedSite(web.BaseSite):
    """``web.TCPSite`` with ``header_timeout`` seconds for the first request to arrive whole
    and at most ``max_connections`` open at once (across the runner's sites)."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, header_timeout: float,
                 max_connections: int, waiting: set, backlog: int = 128):
        super().__init__(runner, backlog=backlog)
        self._host, self._port = host, port
        self._header_timeout, self._max = header_timeout, max_connections
        # connections whose first request has not arrived: the app's middleware discards them
        # from this set when it does (aiohttp's handlers take no attributes or weak references)
        self._waiting = waiting

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    @property
    def sockets(self) -> list:
        return list(self._server.sockets) if self._server is not None else []

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        server = self._runner.server

        def factory():
            if len(server.connections) >= self._max:
                return _Busy()
            handler = server()
            self._waiting.add(handler)
            loop.call_later(self._header_timeout, self._deadline, handler)
            return handler

        self._server = await loop.create_server(factory, self._host, self._port, backlog=self._backlog)

    def _deadline(self, handler) -> None:
        if handler in self._waiting:
            self._waiting.discard(handler)
            if handler.transport is not None:
                handler.force_close()  # its request line and headers did not arrive in time

"""Ask the LiveKit server whether a token is accepted before pipecat starts connecting.

pipecat retries a failed connect six times (~8.5 s) and then idles without a room; one
HTTP request to ``/rtc/validate`` turns the two common failures into one clear line.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
from urllib.parse import urlsplit, urlunsplit


class ConnectFailed(Exception):
    """A first connect that cannot succeed: unreachable server or rejected token."""


def http_url(ws_url: str) -> str:
    parts = urlsplit(ws_url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def _clean(body: str, token: str) -> str:
    body = body.replace(token, "<token>").strip()
    body = re.sub(r"eyJ[\w-]+\.[\w-]+\.[\w-]+", "<token>", body)
    return body[:300]


def os_reason(exc) -> str:
    """'connection refused', not asyncio's "connect call failed ('127.0.0.1', 1)"."""
    error = getattr(exc, "os_error", None)
    if isinstance(error, socket.gaierror):
        return f"unknown host ({error.strerror or error})".lower()
    if getattr(error, "errno", None):
        return os.strerror(error.errno).lower()
    return str(getattr(error, "strerror", None) or error or exc).lower()


async def probe(url: str, token: str, timeout: float = 5.0) -> None:
    import aiohttp

    target = http_url(url) + "/rtc/validate"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout), trust_env=False) as session:
            async with session.get(target, params={"access_token": token}) as response:
                if response.status == 401:
                    raise ConnectFailed(f"token rejected (401): {_clean(await response.text(), token)}")
                if response.status == 403:
                    raise ConnectFailed(f"token not allowed (403): {_clean(await response.text(), token)}")
    except ConnectFailed:
        raise
    except aiohttp.ClientConnectorError as exc:
        raise ConnectFailed(f"cannot reach LiveKit at {url}: {os_reason(exc)}") from None
    except asyncio.TimeoutError:
        raise ConnectFailed(f"cannot reach LiveKit at {url}: no answer within {timeout:g} s") from None
    except aiohttp.InvalidURL:
        raise ConnectFailed(f"cannot reach LiveKit at {url}: not a valid URL") from None
    except aiohttp.ClientError as exc:
        raise ConnectFailed(f"cannot reach LiveKit at {url}: {exc}") from None

"""Ask the LiveKit server whether a token is accepted before pipecat starts connecting.

pipecat retries a failed connect six times (~8.5 s) and then idles without a room; one
HTTP request to ``/rtc/validate`` turns the two common failures into one clear line.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
from urllib.parse import urljoin, urlsplit, urlunsplit


class ConnectFailed(Exception):
    """A first connect that cannot succeed: unreachable server or rejected token."""


def http_url(ws_url: str) -> str:
    parts = urlsplit(ws_url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def _clean(body: str, token: str) -> str:
    """Every text probe prints: the token (and anything shaped like a JWT) masked, one short line."""
    body = body.replace(token, "<token>").strip() if token else body.strip()
    body = re.sub(r"eyJ[\w-]+\.[\w-]+\.[\w-]*", "<token>", body)
    body = re.sub(r"(access_token=)[^&\s'\"]+", r"\1<token>", body)
    return " ".join(body.split())[:300]


def _host(location: str | None, base: str) -> str:
    """Only the scheme://host[:port] of a redirect target: its path or query could carry anything."""
    parts = urlsplit(urljoin(base, location or ""))
    if not parts.hostname:
        return "an unknown address"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}{port}"


def os_reason(exc) -> str:
    """'connection refused', not asyncio's "connect call failed ('127.0.0.1', 1)"."""
    error = getattr(exc, "os_error", None)
    if isinstance(error, socket.gaierror):
        return f"unknown host ({error.strerror or error})".lower()
    if getattr(error, "errno", None):
        return os.strerror(error.errno).lower()
    return str(getattr(error, "strerror", None) or error or exc).lower()


async def probe(url: str, token: str, timeout: float = 5.0) -> None:
    try:
        await _probe(url, token, timeout)
    except ConnectFailed as exc:
        raise ConnectFailed(_clean(str(exc), token)) from None


async def _probe(url: str, token: str, timeout: float) -> None:
    import aiohttp

    target = http_url(url) + "/rtc/validate"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout), trust_env=False) as session:
            async with session.get(target, params={"access_token": token}, allow_redirects=False) as response:
                if 300 <= response.status < 400:  # following it would send the token to another address
                    where = _host(response.headers.get("Location"), target)
                    raise ConnectFailed(f"LiveKit at {url} answered a redirect ({response.status}) to {where}; "
                                        f"use the final address as the LiveKit URL")
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
    except aiohttp.ClientResponseError as exc:  # its text carries the request URL, token included
        reason = (str(exc.message).splitlines() or [""])[0].strip(" :") or f"status {exc.status}"
        raise ConnectFailed(f"cannot reach LiveKit at {url}: its answer could not be read ({reason})") from None
    except aiohttp.ClientError as exc:
        raise ConnectFailed(f"cannot reach LiveKit at {url}: {type(exc).__name__}: {exc}") from None

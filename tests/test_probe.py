"""The first-connect check: one request to /rtc/validate turns a refused token or an
unreachable server into one clear message (the real server; no mocks)."""

from __future__ import annotations

import socket

import pytest

from runner.connect.probe import ConnectFailed, http_url, probe
from runner.connect.tokens import bot_token


@pytest.mark.parametrize("ws, http", [
    ("ws://127.0.0.1:7880", "http://127.0.0.1:7880"),
    ("wss://lk.example.com/", "https://lk.example.com"),
    ("wss://lk.example.com/base/", "https://lk.example.com/base"),
    ("http://host:1", "http://host:1"),
])
def test_http_url(ws, http):
    assert http_url(ws) == http


@pytest.mark.livekit
async def test_a_good_token_passes(livekit_server):
    token = bot_token(livekit_server.api_key, livekit_server.api_secret, room="probe", identity="bot")
    await probe(livekit_server.url, token)


@pytest.mark.livekit
@pytest.mark.parametrize("case", ["wrong_secret", "garbage", "expired"])
async def test_a_rejected_token_is_named_and_masked(livekit_server, case):
    if case == "wrong_secret":
        token = bot_token(livekit_server.api_key, "a-different-secret-of-enough-length", room="probe",
                          identity="bot")
    elif case == "expired":
        token = bot_token(livekit_server.api_key, livekit_server.api_secret, room="probe", identity="bot",
                          ttl_minutes=-5)
    else:
        token = "not-a-jwt-at-all"
    with pytest.raises(ConnectFailed) as failed:
        await probe(livekit_server.url, token)
    message = str(failed.value)
    assert message.startswith("token rejected (401): "), message
    assert token not in message and "eyJ" not in message
    assert "\n" not in message and len(message) < 400


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_nothing_listening_is_connection_refused():
    port = closed_port()
    with pytest.raises(ConnectFailed) as failed:
        await probe(f"ws://127.0.0.1:{port}", "token")
    assert str(failed.value) == f"cannot reach LiveKit at ws://127.0.0.1:{port}: connection refused"


async def test_a_server_that_never_answers_times_out():
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(8)  # the kernel accepts; nobody answers
        url = f"ws://127.0.0.1:{hole.getsockname()[1]}"
        with pytest.raises(ConnectFailed) as failed:
            await probe(url, "token", timeout=0.5)
    assert str(failed.value) == f"cannot reach LiveKit at {url}: no answer within 0.5 s"


@pytest.mark.parametrize("url, reason", [
    ("ws://no-such-host.invalid:7880", "unknown host"),
    ("notaurl", "not a valid URL"),
])
async def test_bad_addresses_are_named(url, reason):
    with pytest.raises(ConnectFailed) as failed:
        await probe(url, "token", timeout=3)
    assert str(failed.value).startswith(f"cannot reach LiveKit at {url}: "), str(failed.value)
    assert reason in str(failed.value)


# ---- nothing the server answers can make probe print the token ---------------------------------

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib3QiLCJ2aWRlbyI6e319.c2lnbmF0dXJlLW9mLXRoZS1ib3Q"


@pytest.fixture
async def local_server():
    """An aiohttp server on 127.0.0.1 answering /rtc/validate with the given handler."""
    from aiohttp import web
    runners = []

    async def start(handler) -> str:
        app = web.Application()
        app.router.add_get("/rtc/validate", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        return f"ws://127.0.0.1:{runner.addresses[0][1]}"

    yield start
    for runner in runners:
        await runner.cleanup()


def assert_masked(message: str) -> None:
    assert JWT not in message and "eyJ" not in message and "c2lnbmF0dXJl" not in message, message
    assert "access_token" not in message, message


async def test_a_redirect_is_not_followed_and_names_only_the_host(local_server):
    from aiohttp import web
    seen = []

    async def moved(request):
        seen.append(request.query.get("access_token"))
        raise web.HTTPMovedPermanently(f"https://lk.example.com:7443/base/rtc/validate?access_token={JWT}#x")

    url = await local_server(moved)
    with pytest.raises(ConnectFailed) as failed:
        await probe(url, JWT, timeout=3)
    message = str(failed.value)
    assert message == (f"LiveKit at {url} answered a redirect (301) to https://lk.example.com:7443; "
                       f"use the final address as the LiveKit URL")
    assert seen == [JWT]  # asked once, the redirect target never
    assert_masked(message)


async def test_a_redirect_loop_does_not_print_the_token(local_server):
    from aiohttp import web

    async def loop(request):
        raise web.HTTPFound(f"/rtc/validate?access_token={request.query['access_token']}")

    url = await local_server(loop)
    with pytest.raises(ConnectFailed) as failed:
        await probe(url, JWT, timeout=3)
    assert str(failed.value).startswith(f"LiveKit at {url} answered a redirect (302) to http://127.0.0.1:")
    assert_masked(str(failed.value))


async def test_a_broken_http_answer_does_not_print_the_token():
    """aiohttp's own error text carries the request URL, token included."""
    async def garbage(reader, writer):
        await reader.readline()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: not-a-number\r\n\r\n")
        await writer.drain()
        writer.close()

    import asyncio
    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        with pytest.raises(ConnectFailed) as failed:
            await probe(url, JWT, timeout=3)
    finally:
        server.close()
    assert str(failed.value) == (f"cannot reach LiveKit at {url}: its answer could not be read "
                                 f"(Invalid character in Content-Length)")
    assert_masked(str(failed.value))


async def test_a_rejection_that_echoes_the_token_is_masked(local_server):
    from aiohttp import web

    async def refuse(request):
        return web.Response(status=401, text=f"invalid token {request.query['access_token']}\n"
                                             f"see /rtc/validate?access_token={request.query['access_token']}")

    with pytest.raises(ConnectFailed) as failed:
        await probe(await local_server(refuse), "opaque-not-a-jwt-token", timeout=3)
    message = str(failed.value)
    assert message.startswith("token rejected (401): invalid token <token>") and "\n" not in message
    assert "opaque-not-a-jwt-token" not in message

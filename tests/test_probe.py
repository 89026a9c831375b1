"""The first-connect check: one request to /rtc/validate turns a refused token or an
unreachable server into one clear message (the real server; no mocks)."""

from __future__ import annotations

import socket

import pytest

from runner.probe import ConnectFailed, http_url, probe
from runner.tokens import bot_token


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

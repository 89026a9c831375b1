"""Tokens carry exactly the grants a bot needs, expire in minutes, and work on a real server."""

from __future__ import annotations

import dataclasses
import uuid

import jwt
import pytest
from livekit import api, rtc

from runner.connect.tokens import CredentialsError, bot_token, person_token, resolve_credentials

# The dev server's secret is deliberately short; pyjwt's length warning is noise here.
pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

KEY, SECRET = "devkey", "secret"
EXPECTED_VIDEO = {"roomJoin", "room", "canPublish", "canSubscribe", "canPublishData",
                  "canUpdateOwnMetadata"}


def _raw(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def _expected_grants(room: str) -> dict:
    return dataclasses.asdict(api.VideoGrants(
        room_join=True, room=room, can_publish=True, can_subscribe=True,
        can_publish_data=True, can_update_own_metadata=True))


@pytest.mark.parametrize("mint, ttl", [(bot_token, 15), (person_token, 60)])
def test_exact_grants_identity_room_and_ttl(mint, ttl):
    token = mint(KEY, SECRET, room="lobby", identity="who-1", name="Who")
    claims = api.TokenVerifier(KEY, SECRET).verify(token)
    assert claims.identity == "who-1"
    assert claims.name == "Who"
    assert claims.kind == "standard"
    assert dataclasses.asdict(claims.video) == _expected_grants("lobby")
    assert not claims.video.agent
    assert not (claims.video.room_admin or claims.video.room_create
                or claims.video.room_list or claims.video.room_record)
    raw = _raw(token)
    assert set(raw["video"]) == EXPECTED_VIDEO
    assert raw["video"]["room"] == "lobby"
    assert set(raw) <= {"sub", "iss", "nbf", "exp", "name", "kind", "video", "metadata"}
    assert raw["iss"] == KEY
    assert 0 < raw["exp"] - raw["nbf"] <= ttl * 60


def test_custom_ttl_and_metadata():
    token = bot_token(KEY, SECRET, room="r", identity="b", metadata='{"role": "bot"}',
                      ttl_minutes=2)
    raw = _raw(token)
    assert raw["exp"] - raw["nbf"] <= 120
    assert api.TokenVerifier(KEY, SECRET).verify(token).metadata == '{"role": "bot"}'
    assert "name" not in raw


def test_negative_ttl_fails_verification():
    token = bot_token(KEY, SECRET, room="r", identity="b", ttl_minutes=-5)
    with pytest.raises(jwt.ExpiredSignatureError):
        api.TokenVerifier(KEY, SECRET).verify(token)


def test_wrong_secret_fails_verification():
    token = bot_token(KEY, "not-the-secret", room="r", identity="b")
    with pytest.raises(jwt.InvalidSignatureError):
        api.TokenVerifier(KEY, SECRET).verify(token)


def test_room_and_identity_are_required():
    with pytest.raises(ValueError):
        bot_token(KEY, SECRET, room="", identity="b")
    with pytest.raises(ValueError):
        person_token(KEY, SECRET, room="r", identity="")


def test_resolve_credentials_order():
    env = {"LIVEKIT_API_KEY": "env-key", "LIVEKIT_API_SECRET": "env-secret"}
    assert resolve_credentials(env=env) == ("env-key", "env-secret")
    assert resolve_credentials("k", "s", env=env) == ("k", "s")
    assert resolve_credentials("k", None, env=env) == ("k", "env-secret")


@pytest.mark.parametrize("key, env, missing", [
    (None, {"LIVEKIT_API_SECRET": "hunter2-very-secret"}, ["LIVEKIT_API_KEY"]),
    ("k", {}, ["LIVEKIT_API_SECRET"]),
    (None, {}, ["LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"]),
    (None, {"LIVEKIT_API_KEY": "  ", "LIVEKIT_API_SECRET": "hunter2-very-secret"},
     ["LIVEKIT_API_KEY"]),
])
def test_missing_credentials_name_the_env_and_hide_the_secret(key, env, missing):
    with pytest.raises(CredentialsError) as err:
        resolve_credentials(key, None, env=env)
    text = str(err.value)
    assert isinstance(err.value, ValueError)
    for name in missing:
        assert name in text
    assert "hunter2" not in text and "hunter2" not in repr(err.value)


def test_explicit_secret_never_in_message():
    with pytest.raises(CredentialsError) as err:
        resolve_credentials(None, "sekrit-value-123", env={})
    assert "sekrit-value-123" not in str(err.value)


@pytest.mark.livekit
async def test_bot_token_joins_a_real_room_as_standard_participant(livekit_server):
    room_name = f"tok-{uuid.uuid4().hex[:8]}"
    token = bot_token(livekit_server.api_key, livekit_server.api_secret,
                      room=room_name, identity="bot-1", name="Bot One")
    room = rtc.Room()
    lkapi = api.LiveKitAPI(livekit_server.http_url, livekit_server.api_key,
                           livekit_server.api_secret)
    try:
        await room.connect(livekit_server.url, token)
        assert room.isconnected()
        assert room.name == room_name
        assert room.local_participant.identity == "bot-1"
        assert room.local_participant.name == "Bot One"
        listed = await lkapi.room.list_participants(api.ListParticipantsRequest(room=room_name))
        (info,) = listed.participants
        assert info.identity == "bot-1"
        assert info.kind == api.ParticipantInfo.Kind.STANDARD
        assert info.permission.can_update_metadata
        assert info.permission.can_publish and info.permission.can_subscribe
        assert info.permission.can_publish_data
        assert not info.permission.agent and not info.permission.hidden
    finally:
        await room.disconnect()
        await lkapi.aclose()


@pytest.mark.livekit
async def test_wrong_secret_is_rejected_by_the_server(livekit_server):
    token = bot_token(livekit_server.api_key, "wrong-secret", room="r", identity="intruder")
    room = rtc.Room()
    try:
        with pytest.raises(rtc.ConnectError) as err:
            await room.connect(livekit_server.url, token)
        assert "401" in str(err.value.message)
    finally:
        await room.disconnect()

"""Join tokens with the least power that works: one room, one identity, minutes of life.

LiveKit's defaults are a 6-hour TTL and whatever grants the caller forgets to switch
off, so every token lkrun mints goes through here (see style-and-reliability.md,
"LiveKit tokens"). Expiry only gates the first connect; the server refreshes tokens.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping

from livekit import api

KEY_ENV = "LIVEKIT_API_KEY"
SECRET_ENV = "LIVEKIT_API_SECRET"


class CredentialsError(ValueError):
    """The LiveKit API key or secret is missing (the message never contains a secret)."""


def _grants(room: str) -> api.VideoGrants:
    """Join one room, publish/subscribe/data, set own metadata; nothing administrative."""
    return api.VideoGrants(
        room_join=True,
        room=room,
        can_publish=True,
        can_subscribe=True,
        can_publish_data=True,
        can_update_own_metadata=True,
    )


KINDS = ("standard", "agent")  # participant kinds a bot may ask for (livekit: {kind: ...})


def _mint(api_key: str, api_secret: str, *, room: str, identity: str, name: str | None,
          metadata: str | None, ttl_minutes: float, kind: str = "standard") -> str:
    if not room or not identity:
        raise ValueError("a join token needs both a room and an identity")
    if kind not in KINDS:
        raise ValueError(f"participant kind must be one of {', '.join(KINDS)}, not {kind!r}")
    token = (
        api.AccessToken(api_key, api_secret)
        .with_identity(identity)
        .with_kind(kind)
        .with_grants(_grants(room))
        .with_ttl(datetime.timedelta(minutes=ttl_minutes))
    )
    if name:
        token = token.with_name(name)
    if metadata:
        token = token.with_metadata(metadata)
    return token.to_jwt()


def bot_token(api_key: str, api_secret: str, *, room: str, identity: str,
              name: str | None = None, metadata: str | None = None,
              ttl_minutes: float = 15, kind: str | None = None) -> str:
    """The run-mode bot's token: by default a standard participant (not an agent), so it keeps
    an empty room open while it waits for people. ``kind="agent"`` (``livekit: {kind: agent}``)
    makes LiveKit's front ends find it as the voice assistant, at the price that LiveKit closes
    a room whose only participant is an agent (the bot then rejoins a new, empty room)."""
    return _mint(api_key, api_secret, room=room, identity=identity, name=name,
                 metadata=metadata, ttl_minutes=ttl_minutes, kind=kind or "standard")


def person_token(api_key: str, api_secret: str, *, room: str, identity: str,
                 name: str | None = None, ttl_minutes: float = 60) -> str:
    """A human's token for `lkrun token` and the dev-server banner; same grants as a bot."""
    return _mint(api_key, api_secret, room=room, identity=identity, name=name,
                 metadata=None, ttl_minutes=ttl_minutes)


def resolve_credentials(api_key: str | None = None, api_secret: str | None = None,
                        env: Mapping[str, str] = os.environ) -> tuple[str, str]:
    """Explicit values win, then LIVEKIT_API_KEY / LIVEKIT_API_SECRET."""
    key = (api_key or env.get(KEY_ENV) or "").strip()
    secret = (api_secret or env.get(SECRET_ENV) or "").strip()
    missing = [n for n, v in ((KEY_ENV, key), (SECRET_ENV, secret)) if not v]
    if missing:
        raise CredentialsError(
            f"LiveKit API credentials are missing: set {' and '.join(missing)} "
            f"(both {KEY_ENV} and {SECRET_ENV} are needed with a LiveKit URL).")
    return key, secret

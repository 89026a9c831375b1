"""Where bots connect: a URL plus credentials, or the embedded dev server."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from runner.connect.tokens import bot_token, resolve_credentials

TOKEN_TTL_MINUTES = 15


@dataclass
class Server:
    url: str
    api_key: str | None = field(default=None, repr=False)
    api_secret: str | None = field(default=None, repr=False)
    embedded: bool = False

    def token_for(self, spec) -> str:
        """A fresh token per join: re-minted on every rejoin, never logged."""
        if spec.livekit.get("token"):
            return spec.livekit["token"]
        key = spec.livekit.get("api_key") or self.api_key
        secret = spec.livekit.get("api_secret") or self.api_secret
        key, secret = resolve_credentials(key, secret)
        return bot_token(key, secret, room=spec.room, identity=spec.identity, name=spec.livekit.get("name"),
                         metadata=spec.livekit.get("metadata"), ttl_minutes=TOKEN_TTL_MINUTES,
                         kind=spec.livekit.get("kind"))


def url_for(spec, environ=os.environ) -> str | None:
    return spec.livekit.get("url") or environ.get("LIVEKIT_URL") or None


def remote_server(spec, environ=os.environ) -> Server:
    return Server(url_for(spec, environ), environ.get("LIVEKIT_API_KEY"), environ.get("LIVEKIT_API_SECRET"))

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

    def api_credentials(self, spec) -> tuple[str, str] | None:
        """The API key and secret for server calls: the bot file's, else the server's; None with only a token."""
        key = spec.livekit.get("api_key") or self.api_key
        secret = spec.livekit.get("api_secret") or self.api_secret
        return (key, secret) if key and secret else None

    def api(self, spec):
        """A ``livekit.api.LiveKitAPI`` for this bot's server (``async with``); None without credentials."""
        credentials = self.api_credentials(spec)
        if credentials is None:
            return None
        from livekit import api

        from runner.connect.probe import http_url
        return api.LiveKitAPI(http_url(self.url), *credentials)

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

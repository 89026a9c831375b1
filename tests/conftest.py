"""Shared fixtures: the real LiveKit server (one per session) and people who join rooms."""

import warnings

pytest_plugins = ["livekit_server", "room_helpers"]

warnings.filterwarnings("ignore", message=".*HMAC key.*")

"""Shared fixtures: the real LiveKit server (one per session) and people who join rooms."""

import warnings

from runner.runtime import sdk_events

# every room of the test process, the people's too, runs on lkrun's SDK callback, as lkrun's own do
sdk_events.install()

pytest_plugins = ["livekit_server", "room_helpers"]

warnings.filterwarnings("ignore", message=".*HMAC key.*")

"""pytest plugin: one real ``livekit-server --dev`` on loopback for the whole session.

A real server (not a mock) is what catches token, grant and reconnect mistakes. No skip
when the binary is missing: CI installs it, and a silent skip would hide the gap.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runner.host.devserver import DevServer, DevServerError


@pytest.fixture(scope="session")
def livekit_server() -> Iterator[DevServer]:
    """A started DevServer (url, api_key, api_secret, restart(), kill()); stopped at the end."""
    try:
        server = DevServer()
        server.start_sync()
    except DevServerError as err:
        pytest.fail(str(err), pytrace=False)
    try:
        yield server
    finally:
        server.stop_sync()

"""What the live effects do with hostile input: http from participant data, log lines."""

from __future__ import annotations

import pytest
from aiohttp import web

from runner.runtime.effects import LiveEffects, printable


@pytest.fixture
async def web_server():
    """A loopback web server that records the paths it was asked for."""
    seen: list[str] = []

    async def record(request):
        seen.append(request.raw_path)
        if request.path == "/items/redirect":
            raise web.HTTPFound("http://127.0.0.1:1/secret")
        return web.json_response({"path": request.raw_path})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


async def test_dot_segments_from_participants_stay_inside_their_slot(web_server):
    from runner.runtime.engine import _url_template
    base, seen = web_server
    url = _url_template(base + "/items/{{ data }}/info").render({"data": ".."})
    result = await LiveEffects(None).http(url, "GET", None, {}, 5)
    assert seen == ["/items/%2E%2E/info"] and result["status"] == 200  # not /info one level up


async def test_redirects_are_not_followed(web_server):
    base, seen = web_server
    with pytest.raises(ValueError, match=r"answered a redirect \(302\) to 127\.0\.0\.1:1; lkrun does not follow"):
        await LiveEffects(None).http(base + "/items/redirect", "GET", None, {"Authorization": "Bearer k"}, 5)
    assert seen == ["/items/redirect"]


def test_log_lines_cannot_be_forged_or_drive_the_terminal():
    text = "hi\n2026-12-01 09:00:00 | ERROR | forged\x1b[2J\r"
    shown = printable(text)
    assert "\n" not in shown and "\x1b" not in shown and "\r" not in shown
    assert shown == "hi\\n2026-12-01 09:00:00 | ERROR | forged\\x1b[2J\\r"

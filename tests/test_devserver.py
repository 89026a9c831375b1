"""The embedded dev server: starts on free loopback ports, answers, restarts, fails clearly."""

from __future__ import annotations

import asyncio
import socket
import stat
import time
import urllib.request
import uuid
from pathlib import Path

import jwt.warnings  # noqa: F401  (named by the warnings filter)
import pytest
from livekit import api, rtc

from runner.host import devserver
from runner.host.devserver import DevServer, DevServerError, find_livekit_server, free_port
from runner.connect.tokens import bot_token

pytestmark = [pytest.mark.livekit,
              pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")]


def _get(url: str) -> tuple[int, bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=2) as resp:
        return resp.status, resp.read()


def _fake_binary(tmp_path, body: str) -> str:
    path = tmp_path / "livekit-server"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_free_port_is_bindable():
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
    udp = free_port(udp=True)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", udp))


def test_session_server_answers_on_loopback(livekit_server):
    assert livekit_server.url == f"ws://127.0.0.1:{livekit_server.port}"
    assert livekit_server.http_url == f"http://127.0.0.1:{livekit_server.port}"
    assert (livekit_server.api_key, livekit_server.api_secret) == ("devkey", "secret")
    assert _get(livekit_server.http_url + "/") == (200, b"OK")
    assert livekit_server.running


async def test_room_service_works_with_dev_keys(livekit_server):
    name = f"room-{uuid.uuid4().hex[:8]}"
    lkapi = api.LiveKitAPI(livekit_server.http_url, livekit_server.api_key,
                           livekit_server.api_secret)
    try:
        created = await lkapi.room.create_room(api.CreateRoomRequest(name=name))
        assert created.name == name
        rooms = await lkapi.room.list_rooms(api.ListRoomsRequest(names=[name]))
        assert [r.name for r in rooms.rooms] == [name]
        await lkapi.room.delete_room(api.DeleteRoomRequest(room=name))
    finally:
        await lkapi.aclose()


async def test_data_flows_between_participants_over_loopback(livekit_server):
    """Proves ICE completes with the loopback-only rtc config, not just signalling."""
    room_name = f"data-{uuid.uuid4().hex[:8]}"
    key, secret = livekit_server.api_key, livekit_server.api_secret
    sender, receiver = rtc.Room(), rtc.Room()
    got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    @receiver.on("data_received")
    def _on_data(packet: rtc.DataPacket) -> None:
        if not got.done():
            got.set_result(packet.data)

    try:
        await receiver.connect(livekit_server.url,
                               bot_token(key, secret, room=room_name, identity="rx"))
        await sender.connect(livekit_server.url,
                             bot_token(key, secret, room=room_name, identity="tx"))
        deadline = time.monotonic() + 10
        while not got.done() and time.monotonic() < deadline:
            await sender.local_participant.publish_data(b"hello", reliable=True)
            await asyncio.sleep(0.2)
        assert await asyncio.wait_for(got, 1) == b"hello"
    finally:
        await sender.disconnect()
        await receiver.disconnect()


def test_restart_keeps_ports_and_answers_again(tmp_path):
    server = DevServer()
    try:
        server.start_sync()
        ports = (server.port, server.tcp_port, server.udp_port, server.url)
        server.restart_sync()
        assert (server.port, server.tcp_port, server.udp_port, server.url) == ports
        assert _get(server.http_url + "/") == (200, b"OK")
        server.kill()  # a crash: nothing answers any more
        assert not server.running
        with pytest.raises(OSError):
            _get(server.http_url + "/")
        server.restart_sync()
        assert _get(server.http_url + "/") == (200, b"OK")
    finally:
        server.stop_sync()
    assert not server.running


async def test_async_context_manager_and_restart():
    async with DevServer() as server:
        assert server.running
        await server.restart()
        assert await asyncio.to_thread(_get, server.http_url + "/") == (200, b"OK")
    assert not server.running


async def test_stop_is_bounded_with_participants_connected():
    """A first SIGTERM makes livekit-server wait for rooms to empty; stop() must not."""
    server = DevServer()
    room = rtc.Room()
    try:
        await server.start()
        await room.connect(server.url, bot_token(server.api_key, server.api_secret,
                                                 room="busy", identity="stay"))
        began = time.monotonic()
        await server.stop()
        assert time.monotonic() - began < 6
        assert not server.running
    finally:
        await room.disconnect()
        await server.stop()


def test_missing_binary_explains_how_to_install(monkeypatch, tmp_path):
    monkeypatch.delenv("LKRUN_LIVEKIT_SERVER", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(devserver, "TOOLS_BINARY", tmp_path / "nope" / "livekit-server")
    with pytest.raises(DevServerError) as err:
        find_livekit_server()
    text = str(err.value)
    assert "livekit-server was not found" in text
    assert "bash scripts/install-livekit-server.sh" in text
    assert "curl -sSL https://get.livekit.io | bash" in text
    assert "brew install livekit" in text
    with pytest.raises(DevServerError):
        DevServer()


def test_binary_lookup_order(monkeypatch, tmp_path):
    fake = _fake_binary(tmp_path, "exit 0")
    monkeypatch.setenv("LKRUN_LIVEKIT_SERVER", fake)
    assert find_livekit_server() == fake
    monkeypatch.setenv("LKRUN_LIVEKIT_SERVER", str(tmp_path / "missing"))
    with pytest.raises(DevServerError, match="LKRUN_LIVEKIT_SERVER"):
        find_livekit_server()
    monkeypatch.delenv("LKRUN_LIVEKIT_SERVER")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_livekit_server() == fake
    tools = tmp_path / "tools" / "livekit-server"
    tools.parent.mkdir()
    tools.write_bytes(b"")
    tools.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(devserver, "TOOLS_BINARY", tools)
    assert find_livekit_server() == str(tools)


def test_early_exit_surfaces_log_lines(tmp_path):
    fake = _fake_binary(tmp_path, 'echo "boot line one"\necho "fatal: cannot bind" >&2\nexit 3')
    server = DevServer(fake)
    with pytest.raises(DevServerError) as err:
        server.start_sync()
    text = str(err.value)
    assert "exited early (code 3)" in text
    assert "fatal: cannot bind" in text and "boot line one" in text
    assert server.log_path in text
    server.stop_sync()


def test_real_server_port_conflict_surfaces_its_error():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        server = DevServer(port=busy.getsockname()[1])
        with pytest.raises(DevServerError) as err:
            server.start_sync()
        server.stop_sync()
    assert "exited early" in str(err.value)
    assert "address already in use" in str(err.value)


def test_timeout_kills_a_server_that_never_answers(tmp_path):
    server = DevServer(_fake_binary(tmp_path, "echo waiting\nexec sleep 60"), ready_timeout=0.5)
    began = time.monotonic()
    with pytest.raises(DevServerError, match="did not answer") as err:
        server.start_sync()
    assert "waiting" in str(err.value)
    assert time.monotonic() - began < 5
    assert not server.running
    server.stop_sync()


def test_server_output_stays_out_of_our_stdout(capfd, livekit_server):
    server = DevServer()
    try:
        server.start_sync()
    finally:
        server.stop_sync(remove_log=False)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    log = Path(server.log_path)
    try:
        assert "starting LiveKit server" in log.read_text()
    finally:
        log.unlink()


def _listening(pid: int) -> list[str]:
    """Local addresses the process listens on (TCP), from ss."""
    import subprocess
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True).stdout
    return [line.split()[3] for line in out.splitlines() if f"pid={pid}," in line]


@pytest.mark.livekit
async def test_the_dev_server_listens_on_loopback_only():
    async with DevServer() as server:
        addresses = _listening(server._proc.pid)
        assert addresses, "ss shows no listening socket for livekit-server"
        assert all(a.startswith(("127.0.0.1:", "[::1]:", "[::ffff:127.0.0.1]:")) for a in addresses), addresses

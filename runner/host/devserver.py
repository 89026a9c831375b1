"""The embedded ``livekit-server --dev``: lets lkrun (and the tests) run with no LiveKit setup.

It listens on loopback only, on free ports, with LiveKit's fixed dev keys
(devkey/secret), and keeps its chatter in a log file so our own output stays clean.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

INSTALL_SCRIPT = "scripts/install-livekit-server.sh"
TOOLS_BINARY = Path(__file__).resolve().parents[2] / ".tools" / "bin" / "livekit-server"
HOST = "127.0.0.1"
# Environment variables livekit-server reads itself; a user's production values must
# not leak into the dev server (LIVEKIT_KEYS would replace devkey/secret, for example).
_SERVER_ENV = ("LIVEKIT_CONFIG", "LIVEKIT_KEYS", "LIVEKIT_REGION", "NODE_IP", "UDP_PORT",
               "REDIS_HOST", "REDIS_PASSWORD", "LIVEKIT_TURN_CERT", "LIVEKIT_TURN_KEY")
# Loopback needs no proxy, and an HTTP(S)_PROXY in the environment would break the probe.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
# The server runs in its own session (so ^C reaches lkrun, not it); never leave one behind.
_LIVE: set[subprocess.Popen] = set()
atexit.register(lambda: [p.kill() for p in list(_LIVE) if p.poll() is None])


class DevServerError(RuntimeError):
    """The local dev server is missing, would not start, or died."""


def find_livekit_server() -> str:
    """$LKRUN_LIVEKIT_SERVER, then ``livekit-server`` on PATH, then <repo>/.tools/bin."""
    override = os.environ.get("LKRUN_LIVEKIT_SERVER")
    if override:
        found = shutil.which(override)
        if found:
            return found
        raise DevServerError(f"LKRUN_LIVEKIT_SERVER={override} is not an executable file.")
    found = shutil.which("livekit-server")
    if found:
        return found
    if TOOLS_BINARY.is_file() and os.access(TOOLS_BINARY, os.X_OK):
        return str(TOOLS_BINARY)
    raise DevServerError(
        "livekit-server was not found (needed to run without a LiveKit URL).\n"
        "Install it with one of:\n"
        f"  bash {INSTALL_SCRIPT}            (builds v1.13.5 into .tools/bin, needs Go 1.26+)\n"
        "  curl -sSL https://get.livekit.io | bash      (Linux)\n"
        "  brew install livekit                         (macOS)\n"
        "or set LKRUN_LIVEKIT_SERVER to its path, or set LIVEKIT_URL to use an existing server."
    )


def free_port(*, udp: bool = False, everywhere: bool = False) -> int:
    """A port that is free on 127.0.0.1 right now (TCP by default).

    ``everywhere``: free on every address, IPv4 and IPv6. livekit-server binds its ICE/TCP
    port (``rtc.tcp_port``) on all interfaces, so a port that is only free on loopback can
    still be taken elsewhere, e.g. by a WebRTC client's passive TCP candidate on another
    interface; on a busy machine a quarter of the starts failed with "address already in use".
    """
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    if everywhere:
        try:
            with socket.socket(socket.AF_INET6, kind) as sock:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                sock.bind(("::", 0))
                return sock.getsockname()[1]
        except OSError:  # no IPv6: the IPv4 wildcard
            with socket.socket(socket.AF_INET, kind) as sock:
                sock.bind(("0.0.0.0", 0))
                return sock.getsockname()[1]
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class DevServer:
    """One ``livekit-server --dev`` process; ports are fixed at creation so restarts keep them."""

    api_key = "devkey"
    api_secret = "secret"

    def __init__(self, binary: str | None = None, *, port: int | None = None,
                 tcp_port: int | None = None, udp_port: int | None = None,
                 ready_timeout: float = 15.0, log_level: str = "info") -> None:
        self.binary = binary or find_livekit_server()
        self.port = port or free_port()
        # ICE over TCP is off unless asked for: livekit-server binds that port on every interface
        # (mediatransportutil's net.ListenTCP has no address), and on loopback UDP always works
        self.tcp_port = tcp_port
        self.udp_port = udp_port or _other_port(lambda: free_port(udp=True), set())
        self.ready_timeout = ready_timeout
        self.log_level = log_level  # --dev alone means debug: megabytes per call
        self.url = f"ws://{HOST}:{self.port}"
        self.http_url = f"http://{HOST}:{self.port}"
        fd, path = tempfile.mkstemp(prefix="lkrun-livekit-", suffix=".log")
        os.close(fd)
        self.log_path = path
        self._proc: subprocess.Popen | None = None

    def config_body(self) -> str:
        """Loopback-only config: ICE/UDP bound to 127.0.0.1, no STUN look-ups, no public IP, and no
        ICE/TCP port (it would listen on every interface) unless one was asked for."""
        return (
            f"port: {self.port}\n"
            f"logging:\n  level: {self.log_level}\n"
            "rtc:\n"
            f"  tcp_port: {self.tcp_port or 0}\n"
            f"  udp_port: {self.udp_port}\n"
            "  use_external_ip: false\n"
            f"  node_ip: {HOST}\n"
            "  enable_loopback_candidate: true\n"
            "  ips:\n"
            f"    includes: [{HOST}/32]\n"
        )

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start_sync(self) -> None:
        """Start the process and block until it answers HTTP, or raise DevServerError."""
        if self.running:
            return
        env = {k: v for k, v in os.environ.items() if k not in _SERVER_ENV}
        cmd = [self.binary, "--dev", "--bind", HOST, "--config-body", self.config_body()]
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, env=env,
                                          start_new_session=True)
        _LIVE.add(self._proc)
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                _LIVE.discard(self._proc)
                self._proc = None
                raise DevServerError(f"livekit-server exited early (code {code}).\n{self._tail()}")
            if self._answers():
                return
            time.sleep(0.05)
        self.kill()
        raise DevServerError(
            f"livekit-server did not answer on {self.http_url} within {self.ready_timeout:g} s.\n"
            f"{self._tail()}")

    def stop_sync(self, *, remove_log: bool = True) -> None:
        """SIGTERM; a second SIGTERM forces it (the first waits for rooms to empty); SIGKILL at 5 s."""
        proc, self._proc = self._proc, None
        _LIVE.discard(proc)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=4.0)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if remove_log:
            Path(self.log_path).unlink(missing_ok=True)

    def restart_sync(self) -> None:
        """Stop (if running) and start again on the same ports, keeping the log."""
        self.stop_sync(remove_log=False)
        self.start_sync()

    def kill(self) -> None:
        """SIGKILL without any shutdown, to simulate a crash."""
        proc, self._proc = self._proc, None
        _LIVE.discard(proc)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    async def start(self) -> None:
        await asyncio.to_thread(self.start_sync)

    async def stop(self) -> None:
        await asyncio.to_thread(self.stop_sync)

    async def restart(self) -> None:
        await asyncio.to_thread(self.restart_sync)

    async def __aenter__(self) -> "DevServer":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _answers(self) -> bool:
        try:
            with _OPENER.open(self.http_url + "/", timeout=1.0) as resp:
                return resp.status == 200 and resp.read().strip() == b"OK"
        except OSError:
            return False

    def _tail(self, lines: int = 20) -> str:
        try:
            text = Path(self.log_path).read_text(errors="replace")
        except OSError:
            text = ""
        tail = "\n".join(text.splitlines()[-lines:]) or "(no output)"
        return f"last lines of {self.log_path}:\n{tail}"


def _other_port(pick, taken: set[int]) -> int:
    """A free port not already chosen for another listener of this server."""
    for _ in range(20):
        port = pick()
        if port not in taken:
            return port
    raise DevServerError("could not find a free port on 127.0.0.1")

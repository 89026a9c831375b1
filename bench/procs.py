"""Processes the benchmark starts: spawn times, memory and CPU from /proc, and a sure kill.

Every process is started through a ``Procs`` group used as ``async with``; leaving the
block (normally, on an error or on ^C) terminates and then kills whatever is still alive.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
LKRUN = str(Path(PYTHON).with_name("lkrun"))
CLK_TCK = os.sysconf("SC_CLK_TCK")
LOG_DIR = Path(tempfile.gettempdir()) / "lkrun-bench-logs"


def lkrun_cmd(*paths) -> list[str]:
    return [LKRUN, "run", *map(str, paths), "--no-reload", "--no-playground"]


def baseline_cmd(name: str, *args) -> list[str]:
    return [PYTHON, str(ROOT / "bench" / "baselines" / f"{name}.py"), *map(str, args)]


class Proc:
    def __init__(self, cmd: list[str], env: dict, label: str):
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.label = label
        self.log_path = LOG_DIR / f"{label}-{os.getpid()}-{time.monotonic_ns()}.log"
        self.spawned = time.monotonic()
        with open(self.log_path, "wb") as log:
            self.popen = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, cwd=str(ROOT), start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def status_kb(self, field: str) -> int:
        """A ``kB`` field of /proc/<pid>/status (VmRSS, VmHWM)."""
        with open(f"/proc/{self.pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise KeyError(field)

    def rss_mb(self) -> float:
        return self.status_kb("VmRSS") / 1024

    def pss_mb(self) -> float:
        """Proportional set size: shared library pages split between the processes mapping them."""
        with open(f"/proc/{self.pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_s(self) -> float:
        """User + system CPU seconds of the process so far (threads included)."""
        with open(f"/proc/{self.pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        if not self.alive():
            raise RuntimeError(f"{self.label} exited early (code {self.popen.returncode}, log kept at "
                               f"{self.log_path}):\n{self.tail(6)}")

    async def stop(self, timeout: float = 4.0) -> None:
        died_on_its_own = not self.alive()
        if self.alive():
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + timeout
            while self.alive() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        if self.alive():
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.popen.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
        if not died_on_its_own and self.popen.returncode in (0, -signal.SIGTERM, -signal.SIGKILL) \
                and not os.environ.get("BENCH_KEEP_LOGS"):
            self.log_path.unlink(missing_ok=True)  # keep the logs of processes that died by themselves


class Procs:
    """A group of processes that are always stopped when the block ends."""

    def __init__(self, env: dict):
        self.env = env
        self.procs: list[Proc] = []

    def spawn(self, cmd: list[str], label: str, **env) -> Proc:
        proc = Proc(cmd, {**self.env, **env}, label)
        self.procs.append(proc)
        return proc

    async def stop_all(self) -> None:
        procs, self.procs = self.procs, []
        if procs:
            await asyncio.gather(*(p.stop() for p in procs), return_exceptions=True)

    async def __aenter__(self) -> "Procs":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop_all()


def child_env(server, **extra) -> dict:
    """The environment of a bot process: the bench's LiveKit server, loopback only, quiet."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEKIT_")}
    env.update(LIVEKIT_URL=server.url, LIVEKIT_API_KEY=server.api_key, LIVEKIT_API_SECRET=server.api_secret,
               NO_PROXY="127.0.0.1,localhost", PYTHONUNBUFFERED="1", PYTHONWARNINGS="ignore",
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")  # local models only: never the network
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        env.pop(key, None)
    env.update({k: str(v) for k, v in extra.items()})
    return env

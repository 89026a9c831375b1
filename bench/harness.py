"""The benchmark run: one LiveKit dev server, the scenarios in order, progress, table, JSON, plot.

A scenario is one module in ``bench/scenarios/`` listed in ``SCENARIOS``; it gets a
``Context`` (server, scratch folder, child environment, quick flag) and a ``Report`` to
fill with rows (one measured case of one system) and ratios (with bootstrap intervals).
"""

from __future__ import annotations

import asyncio
import compileall
import gc
import json
import math
import os
import platform
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from . import stats
from .procs import ROOT, Procs, child_env

OUT_DIR = Path(__file__).resolve().parent


def say(text: str) -> None:
    print(text, flush=True)


@dataclass
class Report:
    name: str
    title: str
    status: str = "ok"  # ok | partial | failed | not implemented yet | skipped
    rows: list = field(default_factory=list)
    failures: list = field(default_factory=list)  # cases that could not be measured (the rest were)
    ratios: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    wall_s: float = 0.0
    error: str | None = None

    def row(self, case: str, system: str, value: float, unit: str, **metrics) -> dict:
        """One result: ``value`` (in ``unit``) is the headline number; ``metrics`` the rest."""
        entry = {"case": case, "system": system, "value": value, "unit": unit, "metrics": metrics}
        self.rows.append(entry)
        say(f"  [{self.name}] {case} / {system}: {fmt_row(entry)}")
        return entry

    def ratio(self, name: str, a_label: str, a, b_label: str, b, *, stat: str = "p50", target: float | None = None,
              unit: str = "", paired: bool = False) -> dict:
        """stat(a) / stat(b); ``paired``: the median of a[i] / b[i], for runs taken side by side."""
        result = stats.bootstrap_paired_ratio(a, b) if paired else stats.bootstrap_ratio(a, b, stat)
        entry = {"name": name, "numerator": a_label, "denominator": b_label, "target": target, "unit": unit,
                 **result}
        self.ratios.append(entry)
        say(f"  [{self.name}] ratio {name}: {fmt_ratio(entry)}")
        return entry

    def fail(self, case: str, system: str, exc: BaseException) -> None:
        """One case could not be measured; the scenario goes on and ends as "partial"."""
        error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        self.failures.append({"case": case, "system": system, "error": error})
        self.status = "partial"
        say(f"  [{self.name}] {case} / {system}: FAILED: {error}")

    def note(self, text: str) -> None:
        self.notes.append(text)
        say(f"  [{self.name}] note: {text}")

    def as_dict(self) -> dict:
        return {"title": self.title, "status": self.status, "wall_s": round(self.wall_s, 2), "rows": self.rows,
                "ratios": self.ratios, "failures": self.failures, "notes": self.notes, "error": self.error}


class Context:
    def __init__(self, server, quick: bool, workdir: Path):
        self.server, self.quick, self.workdir = server, quick, workdir
        self.extra_env: dict[str, str] = {}

    def env(self, **extra) -> dict:
        return child_env(self.server, **self.extra_env, **extra)

    def procs(self, **extra) -> Procs:
        return Procs(self.env(**extra))

    def folder(self, name: str) -> Path:
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def room(self, prefix: str) -> str:
        return f"bench-{prefix}-{time.monotonic_ns() % 10**10}"


def fmt_num(value, unit: str = "") -> str:
    if not stats.finite(value):
        return "n/a"
    if abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}" if abs(value) >= 0.1 else f"{value:.3f}"
    return f"{text} {unit}".strip()


def fmt_row(entry: dict) -> str:
    parts = [fmt_num(entry["value"], entry["unit"])]
    for key, value in entry["metrics"].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            parts.append(f"{key}={fmt_num(value) if isinstance(value, float) else value}")
        elif isinstance(value, str):
            parts.append(f"{key}={value}")
    return "  ".join(parts)


def fmt_ratio(entry: dict) -> str:
    lo, hi = entry["ci95"]
    text = f"{entry['stat']} {fmt_num(entry['ratio'])}x  95% CI [{fmt_num(lo)}, {fmt_num(hi)}]"
    if entry.get("target") is not None and min(entry["n_a"], entry["n_b"]) < 5:
        text += f"  target <= {entry['target']:g}: too few samples to tell"
    elif entry.get("target") is not None:
        verdict = "meets" if stats.finite(hi) and hi <= entry["target"] else (
            "misses" if stats.finite(lo) and lo > entry["target"] else "inconclusive")
        text += f"  target <= {entry['target']:g}: {verdict}"
    return text + f"  (n={entry['n_a']}/{entry['n_b']})"


def table(reports: list[Report]) -> str:
    lines = []
    head = f"{'scenario':<17} {'case':<38} {'system':<24} result"
    lines += [head, "-" * max(len(head), 110)]
    for report in reports:
        if report.status != "ok" and not report.rows:
            lines.append(f"{report.name:<17} {'-':<38} {'-':<24} {report.status}"
                         + (f": {report.error.splitlines()[0][:80]}" if report.error else ""))
            continue
        for row in report.rows:
            lines.append(f"{report.name:<17} {row['case'][:38]:<38} {row['system'][:24]:<24} {fmt_row(row)}")
        for failure in report.failures:
            lines.append(f"{report.name:<17} {failure['case'][:38]:<38} {failure['system'][:24]:<24} "
                         f"FAILED: {failure['error'][:70]}")
        if report.status == "failed":
            lines.append(f"{report.name:<17} {'-':<38} {'-':<24} {report.status}: {(report.error or '')[:80]}")
    ratios = [(r.name, x) for r in reports for x in r.ratios]
    if ratios:
        lines += ["", f"{'scenario':<17} {'ratio':<56} result", "-" * 110]
        for name, entry in ratios:
            lines.append(f"{name:<17} {entry['name'][:56]:<56} {fmt_ratio(entry)}")
    return "\n".join(lines)


def meta(quick: bool) -> dict:
    from importlib.metadata import version
    return {"quick": quick, "python": platform.python_version(), "machine": platform.machine(),
            "cpus": os.cpu_count(), "pipecat": version("pipecat-ai"), "livekit": version("livekit"),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "argv": sys.argv,
            "loadavg_at_start": list(os.getloadavg())}


def sanitize(value):
    """JSON without NaN/inf (they become null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: sanitize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [sanitize(v) for v in value]
    return value


async def settle(quick: bool) -> None:
    """Between scenarios: collect the last one's rooms (the SDK frees them when they are collected)
    and let the machine go quiet, so one scenario's teardown is not measured in the next."""
    gc.collect()
    await asyncio.sleep(0.5 if quick else 3.0)


async def run(quick: bool, only: list[str] | None = None, out_dir: Path = OUT_DIR, plot: bool = True) -> dict:
    from runner.host.devserver import DevServer

    from .scenarios import SCENARIOS

    started = time.monotonic()
    reports: list[Report] = []
    # lkrun's bytecode as an install leaves it (PYTHONDONTWRITEBYTECODE would make every cold
    # process compile lkrun from source while the baselines' pipecat has its .pyc files)
    compileall.compile_dir(str(ROOT / "runner"), quiet=1)
    info = meta(quick)
    say(f"lkrun benchmark ({'quick' if quick else 'full'}): {len(SCENARIOS)} scenarios, "
        f"{info['cpus']} CPUs, pipecat {info['pipecat']}")
    server = DevServer(log_level="warn")
    await server.start()
    say(f"LiveKit dev server at {server.url} (one for the whole run)")
    try:
        with tempfile.TemporaryDirectory(prefix="lkrun-bench-") as scratch:
            ctx = Context(server, quick, Path(scratch))
            for module in SCENARIOS:
                report = Report(module.NAME, module.TITLE)
                reports.append(report)
                if only and module.NAME not in only:
                    report.status = "skipped"
                    continue
                if not getattr(module, "IMPLEMENTED", True):
                    report.status = "not implemented yet"
                    say(f"-- {module.NAME}: not implemented yet ({module.TITLE})")
                    continue
                say(f"-- {module.NAME}: {module.TITLE}")
                t0 = time.monotonic()
                try:
                    await asyncio.wait_for(module.run(ctx, report), module.TIME_LIMIT)
                except Exception as exc:  # one failing scenario never hides the others
                    report.status = "failed"
                    report.error = f"{type(exc).__name__}: {exc}"
                    say(f"  [{module.NAME}] FAILED: {report.error}")
                    traceback.print_exc()
                report.wall_s = time.monotonic() - t0
                say(f"   {module.NAME} done in {report.wall_s:.1f} s")
                await settle(quick)
    finally:
        await server.stop()
    info["total_wall_s"] = round(time.monotonic() - started, 1)
    info["loadavg_at_end"] = list(os.getloadavg())
    results = sanitize({"meta": info, "scenarios": {r.name: r.as_dict() for r in reports}})
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    say("")
    say(table(reports))
    say("")
    say(f"total wall time {info['total_wall_s']:.1f} s (load average at start {info['loadavg_at_start'][0]:.1f}, "
        f"at end {info['loadavg_at_end'][0]:.1f} on {info['cpus']} CPUs); wrote {out_dir / 'results.json'}")
    if plot:
        try:
            from .plot import draw
            draw(results, out_dir / "results.png")
            say(f"drew {out_dir / 'results.png'}")
        except ImportError as exc:
            say(f"no plot: {exc} (pip install matplotlib)")
    return results

"""results.json -> results.png: the same numbers as the table, for people who would rather look."""

from __future__ import annotations

import math
import re

COLORS = [("floor+audio", "#8c564b"), ("floor", "#2ca02c"), ("lkrun", "#1f77b4"), ("hand-written", "#ff7f0e"),
          ("process-per-call", "#ff7f0e"), ("pipecat", "#ff7f0e"), ("runner.botfile.yamlsafe", "#9467bd")]


def color(system: str) -> str:
    for key, value in COLORS:
        if key in system:
            return value
    return "#7f7f7f"


def ok(value) -> bool:
    return isinstance(value, (int, float)) and value is not None and math.isfinite(value)


def bars(ax, scenario: dict, title: str, *, log: bool = False, match: str = "") -> None:
    rows = [r for r in scenario.get("rows", []) if ok(r.get("value")) and match in r["case"]]
    ax.set_title(title, fontsize=9)
    if not rows:
        ax.text(0.5, 0.5, scenario.get("status", "no data"), ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    labels = [f"{r['case']}\n{r['system']}" for r in rows]
    values = [r["value"] for r in rows]
    ax.barh(range(len(rows)), values, color=[color(r["system"]) for r in rows])
    ax.set_yticks(range(len(rows)), labels, fontsize=6)
    ax.invert_yaxis()
    ax.set_xlabel(rows[0]["unit"], fontsize=8)
    if log:
        ax.set_xscale("log")
    for i, value in enumerate(values):
        ax.text(value, i, f" {value:.3g}", va="center", fontsize=6)


def ratios(ax, results: dict) -> None:
    entries = [(name, r) for name, s in results["scenarios"].items() for r in s.get("ratios", []) if ok(r.get("ratio"))]
    ax.set_title("ratios (95% bootstrap CI); dashed: target", fontsize=9)
    if not entries:
        ax.set_axis_off()
        return
    for i, (scenario, r) in enumerate(entries):
        lo, hi = r["ci95"] if r.get("ci95") and all(ok(x) for x in r["ci95"]) else (r["ratio"], r["ratio"])
        ax.errorbar(r["ratio"], i, xerr=[[r["ratio"] - lo], [hi - r["ratio"]]], fmt="o", capsize=3,
                    color=color("lkrun") if r["numerator"].startswith("lkrun") else "#555")
        if r.get("target"):
            ax.plot([r["target"]] * 2, [i - 0.4, i + 0.4], "r--", lw=1)
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_yticks(range(len(entries)), [f"{s}: {r['name']}" for s, r in entries], fontsize=6)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("ratio (log scale; < 1 means lkrun is lower)", fontsize=8)


def scale(ax, scenario: dict, title: str, metric: str, ylabel: str) -> None:
    ax.set_title(title, fontsize=9)
    series: dict[str, list] = {}
    for row in scenario.get("rows", []):
        match = re.match(r"N=(\d+)", row["case"])
        value = row["value"] if metric == "value" else row["metrics"].get(metric)
        if match and ok(value):
            series.setdefault(row["system"], []).append((int(match.group(1)), value))
    if not series:
        ax.text(0.5, 0.5, scenario.get("status", "no data"), ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    for system, points in series.items():
        points.sort()
        ax.plot([p[0] for p in points], [p[1] for p in points], "o-", label=system, color=color(system))
    ax.set_xlabel("bots (N)", fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


def draw(results: dict, path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = results["scenarios"]
    empty = {"rows": [], "status": "not run"}
    drawn = {"validate", "startup", "event_action", "scale_data", "scale_voice", "voice_round_trip"}
    others = [name for name in s if name not in drawn][:3]  # later scenarios: a generic panel each
    rows = 5 if others else 4
    fig = plt.figure(figsize=(19, 4.75 * rows))
    grid = fig.add_gridspec(rows, 3)
    ratios(fig.add_subplot(grid[0, 0:2]), results)
    bars(fig.add_subplot(grid[0, 2]), s.get("event_action", empty), "event -> action (p50)")
    bars(fig.add_subplot(grid[1, 0]), s.get("startup", empty), "start-up: spawn -> in the room (p50)")
    bars(fig.add_subplot(grid[1, 1]), s.get("validate", empty), "validate (p50, log scale)", log=True)
    bars(fig.add_subplot(grid[1, 2]), s.get("voice_round_trip", empty), "voice: end of speech -> first bot audio (p50)")
    for row, (key, label) in enumerate((("scale_data", "data bots"), ("scale_voice", "espeak voice bots")), start=2):
        latency = "p99_ms" if key == "scale_data" else "p50_ms"
        scale(fig.add_subplot(grid[row, 0]), s.get(key, empty), f"{label}: memory per bot", "value", "MB RSS per bot")
        scale(fig.add_subplot(grid[row, 1]), s.get(key, empty), f"{label}: {latency[:3]} latency under load",
              latency, "ms")
        scale(fig.add_subplot(grid[row, 2]), s.get(key, empty), f"{label}: CPU over the window", "cpu_pct",
              "% of one core")
    for column, name in enumerate(others):
        bars(fig.add_subplot(grid[4, column]), s[name], f"{name} ({s[name].get('status')})")
    meta = results.get("meta", {})
    fig.suptitle(f"lkrun benchmark ({'quick' if meta.get('quick') else 'full'}, {meta.get('cpus')} CPUs, "
                 f"pipecat {meta.get('pipecat')}, total {meta.get('total_wall_s')} s)", fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    fig.savefig(path, dpi=90)
    plt.close(fig)

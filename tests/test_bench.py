"""The benchmark harness cannot rot: `python -m bench --quick` runs and produces sane numbers.

Only that the harness works is asserted (every scenario present, numbers positive and
finite), never timings: these machines are shared and timings belong to the report.
"""

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.livekit, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
DIFFERENCES = {"marginal_mb"}  # RSS(N) - RSS(1): may dip below zero when memory is returned


def numbers(value):
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from numbers(item)
    elif isinstance(value, list):
        for item in value:
            yield from numbers(item)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=240)
    return proc, out


def test_quick_run_exits_zero_and_prints_a_table(quick_run):
    proc, _ = quick_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "total wall time" in proc.stdout
    assert "-- event_action" in proc.stdout  # progress lines as scenarios run


def test_results_json_has_every_scenario_with_sane_numbers(quick_run):
    from bench.scenarios import SCENARIOS

    _, out = quick_run
    results = json.loads((out / "results.json").read_text())
    assert results["meta"]["quick"] is True
    assert results["meta"]["total_wall_s"] > 0
    assert set(results["scenarios"]) == {m.NAME for m in SCENARIOS}
    for module in SCENARIOS:
        scenario = results["scenarios"][module.NAME]
        if not getattr(module, "IMPLEMENTED", True):
            assert scenario["status"] == "not implemented yet"
            continue
        assert scenario["status"] == "ok", (module.NAME, scenario["error"], scenario.get("failures"))
        assert scenario["rows"], module.NAME
        for row in scenario["rows"]:
            assert row["value"] is not None and math.isfinite(row["value"]) and row["value"] > 0, (module.NAME, row)
            for key, value in row["metrics"].items():
                for number in numbers(value):
                    assert number is not None and math.isfinite(number), (module.NAME, row)
                    assert number >= 0 or key in DIFFERENCES, (module.NAME, key, row)
        for ratio in scenario["ratios"]:
            assert ratio["ratio"] is not None and math.isfinite(ratio["ratio"]) and ratio["ratio"] > 0, ratio
            low, high = ratio["ci95"]
            assert 0 < low <= high, ratio


def test_the_compared_systems_all_ran(quick_run):
    _, out = quick_run
    scenarios = json.loads((out / "results.json").read_text())["scenarios"]
    systems = {s: {row["system"] for row in scenarios[s]["rows"]} for s in scenarios}
    assert {"lkrun", "hand-written pipecat", "floor (livekit SDK)"} <= systems["event_action"]
    assert {"lkrun", "hand-written pipecat"} <= systems["startup"]
    assert {"lkrun", "hand-written pipecat"} <= systems["voice_round_trip"]
    assert {"lkrun", "process-per-call"} <= systems["scale_data"]
    assert {"lkrun", "process-per-call"} <= systems["scale_voice"]
    names = {r["name"] for r in scenarios["event_action"]["ratios"]}
    assert any("lkrun / hand-written" in n for n in names) and any("lkrun / floor" in n for n in names)


def test_plot_is_drawn_when_matplotlib_is_installed(quick_run):
    _, out = quick_run
    if importlib.util.find_spec("matplotlib") is None:
        pytest.skip("matplotlib is not installed (the test extra adds it)")
    assert (out / "results.png").stat().st_size > 10_000


def test_bootstrap_ratio_is_seeded_and_brackets_the_ratio():
    from bench.stats import bootstrap_ratio

    a = [10.0 + (i % 7) * 0.1 for i in range(200)]
    b = [5.0 + (i % 5) * 0.1 for i in range(200)]
    first, second = bootstrap_ratio(a, b), bootstrap_ratio(a, b)
    assert first == second
    assert first["ci95"][0] <= first["ratio"] <= first["ci95"][1]
    assert 1.9 < first["ratio"] < 2.1


def test_a_paired_ratio_sees_through_a_machine_whose_speed_moves():
    from bench.stats import bootstrap_paired_ratio, bootstrap_ratio

    speed = [1.0 + 0.8 * ((i * 37) % 11) / 10 for i in range(30)]  # each pair shares its minute's speed
    hand = [900.0 * s for s in speed]
    lkrun = [900.0 * s * (1.03 if i % 2 else 1.01) for i, s in enumerate(speed)]
    paired, unpaired = bootstrap_paired_ratio(lkrun, hand), bootstrap_ratio(lkrun, hand)
    assert paired == bootstrap_paired_ratio(lkrun, hand)  # seeded
    assert 1.01 <= paired["ci95"][0] <= paired["ratio"] <= paired["ci95"][1] <= 1.03
    assert unpaired["ci95"][1] - unpaired["ci95"][0] > 10 * (paired["ci95"][1] - paired["ci95"][0])
    assert bootstrap_paired_ratio([], hand)["n_a"] == 0

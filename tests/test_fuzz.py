"""The loader fuzz (bench/fuzz_loader.py): its saved crash inputs, and a small fixed-seed run."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bench import fuzz_loader
from runner.botfile.check import check_document
from runner.botfile.errors import ConfigError
from runner.botfile.spec import BotSpec
from runner.botfile.yamlsafe import load_bytes

FUZZ = Path(__file__).resolve().parent / "fixtures" / "fuzz"
KNOWN: dict[str, str] = {}  # fixture name -> why it still crashes (strict xfail until fixed)


def fixture_files() -> list[Path]:
    return sorted(FUZZ.glob("*.yaml"))


def test_the_fuzz_folder_has_the_old_crash_inputs():
    names = {p.name for p in fixture_files()}
    assert {"env_default_inf.yaml", "env_default_5000_digits.yaml", "template_500_parentheses.yaml",
            "template_199_filters.yaml"} <= names


@pytest.mark.parametrize("path", [
    pytest.param(p, marks=pytest.mark.xfail(reason=KNOWN[p.name], strict=True)) if p.name in KNOWN else p
    for p in fixture_files()
], ids=lambda p: p.name)
def test_every_fuzz_input_is_a_config_error_or_a_spec(path):
    start = time.thread_time()  # CPU time: a busy shared machine does not make a case slow
    try:
        spec = check_document(load_bytes(path.read_bytes(), path.name), environ=fuzz_loader.ENV, dotenv={})
    except ConfigError as exc:
        assert exc.problems and all(p.line >= 1 and p.col >= 1 and p.message for p in exc.problems)
        assert "Traceback" not in exc.render()
    else:
        assert isinstance(spec, BotSpec)
    assert time.thread_time() - start < 2.0


def test_cases_are_reproducible():
    pool = fuzz_loader.seeds()
    assert [fuzz_loader.case(5, i, pool) for i in range(40)] == [fuzz_loader.case(5, i, pool) for i in range(40)]
    assert fuzz_loader.case(5, 1, pool) != fuzz_loader.case(6, 1, pool)


def test_a_crash_is_found_and_saved(tmp_path, monkeypatch):
    """The harness itself: a checker that raises is counted as a crash and its input written out."""
    import runner.botfile.check
    real = runner.botfile.check.check_document

    def flaky(doc, **kw):
        if b"vars" in doc.text.encode():
            raise KeyError("boom")
        return real(doc, **kw)

    monkeypatch.setattr(runner.botfile.check, "check_document", flaky)
    total = fuzz_loader.run(60, seed=3, workers=0)
    boom = [c for c in total["crashes"] if c[2] == "KeyError: 'boom'"]
    assert len(boom) >= 2
    written = fuzz_loader.save_crashes(boom, tmp_path)  # one file per distinct crash: the smallest input
    assert len(written) == 1 and written[0].read_bytes() == min((c[3] for c in boom), key=len)


def test_three_hundred_cases_in_process():
    start = time.thread_time()  # CPU time, as the bench's own per-case times
    total = fuzz_loader.run(300, seed=20240601, workers=0)
    elapsed = time.thread_time() - start
    crashes = [(i, family, outcome) for i, family, outcome, _ in total["crashes"]]
    known = [c for c in crashes if "check_actions.py" in c[2] and "RecursionError" in c[2]]
    assert crashes == known, crashes  # (see KNOWN above; nothing else may crash)
    assert total["cases"] == 300 == total["config_errors"] + total["valid"] + len(crashes)
    assert set(total["families"]) == {name for name, _ in fuzz_loader.FAMILIES}
    assert total["valid"] > 0 and total["config_errors"] > 0
    # the bench holds every case under SLOW_MS on a quiet machine; CI shares the machine with other work
    assert total["slowest"][0] < 3 * fuzz_loader.SLOW_MS and elapsed < 20, (total["slowest"], elapsed)

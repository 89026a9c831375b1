"""`lkrun test` speed: offline cases per second for the greeter's test file and a generated 200-case file.

    .venv/bin/python bench/test_speed.py            # prints the numbers
    .venv/bin/python -m pytest bench/test_speed.py -s   # the same, and checks >= 1,000 cases a minute

Not a LiveKit scenario (no room, no server): it runs the offline runner in-process, as `lkrun test` does.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGET_PER_MINUTE = 1000

CASE = """\
  - name: case {n}
    steps:
      - join: {{id: p{n}, name: Person {n}}}
      - expect: {{send: {{to: p{n}, data: {{text: "Welcome, Person {n}!"}}}}, say: "Welcome, Person {n}!"}}
      - send: {{from: p{n}, data: {{text: ping}}}}
      - expect: {{send: {{to: p{n}, data: {{text: pong}}}}}}
      - say: {{from: p{n}, text: "bye for now"}}
      - expect: {{say: Goodbye!}}
      - wait: 60
      - leave: p{n}
      - expect: {{ended: true}}
"""


def generated(folder: Path, count: int = 200) -> Path:
    shutil.copy(ROOT / "bots" / "greeter.yaml", folder / "greeter.yaml")
    path = folder / "many.test.yaml"
    path.write_text("bot: greeter.yaml\ncases:\n" + "".join(CASE.format(n=n) for n in range(count)))
    return path


def measure(path: Path, rounds: int = 3) -> tuple[int, float]:
    """(cases, best cases per second) over a few rounds (shared machines: keep the best)."""
    from runner.testing.run import run_paths
    best, cases = 0.0, 0
    for _ in range(rounds):
        started = time.perf_counter()
        outcome = run_paths([str(path)])
        elapsed = time.perf_counter() - started
        assert outcome.exit_code() == 0, [p.render() for p in outcome.problems] or outcome.failed
        cases = outcome.passed
        best = max(best, cases / elapsed)
    return cases, best


def report() -> list[tuple[str, int, float]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, path in (("bots/greeter.test.yaml", ROOT / "bots" / "greeter.test.yaml"),
                            ("generated 200-case file", generated(Path(tmp)))):
            cases, per_second = measure(path)
            rows.append((label, cases, per_second))
            print(f"{label}: {cases} cases, {per_second:,.0f} cases/s ({per_second * 60:,.0f} cases/minute; "
                  f"target {TARGET_PER_MINUTE:,}/minute)")
    return rows


def test_offline_cases_per_minute():
    for label, _cases, per_second in report():
        assert per_second * 60 >= TARGET_PER_MINUTE, label


if __name__ == "__main__":
    report()

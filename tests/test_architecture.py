"""The package layers (pyproject [tool.importlinter]) hold: lint-imports passes, and fails on a violation."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    if not LINT.exists():
        pytest.fail(f"{LINT} is missing: pip install -e '.[test]' (import-linter)")
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run([str(LINT), "--no-cache", "--no-logo", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_contracts_hold():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("where, code, contract", [
    ("botfile", "from runner.runtime import engine  # noqa: F401\n", "botfile-is-the-bottom"),
    ("voice", "def f():\n    from runner.runtime.engine import Run  # noqa: F401\n", "layers"),
    ("botfile", "import pipecat  # noqa: F401\n", "botfile-no-pipecat"),
])
def test_a_violation_fails(tmp_path, where, code, contract):
    """A deliberate upward import, in a copy of the package, is caught (lazy imports too)."""
    shutil.copytree(ROOT / "runner", tmp_path / "runner",
                    ignore=shutil.ignore_patterns("__pycache__", "static"))
    (tmp_path / "runner" / where / "_violation.py").write_text(code)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    assert contract in {c["id"] for c in tomllib.loads((ROOT / "pyproject.toml").read_text())
                        ["tool"]["importlinter"]["contracts"]}
    result = _lint(tmp_path, "--contract", contract)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"runner.{where}._violation" in result.stdout, result.stdout

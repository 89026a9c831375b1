"""``python -m runner.worker worker|dispatch ...``: the commands without runner/cli/main.py."""

from runner.worker.commands import _standalone

_standalone()

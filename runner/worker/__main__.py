"""``python -m runner.worker worker|dispatch ...``: the commands without runner/cli.py."""

from .commands import _standalone

_standalone()

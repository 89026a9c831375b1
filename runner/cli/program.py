"""The ``lkrun`` program (its console script and ``python -m runner.cli``), as opposed to the
click group that tests call in-process: only the program holds garbage collection at start-up.
"""

from __future__ import annotations


def main():
    from runner.runtime.interpreter import hold_collections
    hold_collections()  # start-up's imports make next to no garbage: collect once a bot is in its room
    from runner.cli.main import main as cli
    return cli()

"""The ``lkrun`` program (its console script and ``python -m runner.cli``), as opposed to the
click group that tests call in-process: only the program holds garbage collection at start-up
and caches the code dataclasses compile (runner/runtime/dataclass_code.py).
"""

from __future__ import annotations


def main():
    from runner.runtime import dataclass_code
    dataclass_code.install()  # before any dataclass is made: lkrun's spec, pipecat's frames
    from runner.runtime.interpreter import hold_collections
    hold_collections()  # start-up's imports make next to no garbage: collect once a bot is in its room
    from runner.cli.main import main as cli
    try:
        return cli()
    finally:  # `lkrun validate` and the like; a bot saves once it is in its room (lkrun ends with os._exit)
        dataclass_code.save()

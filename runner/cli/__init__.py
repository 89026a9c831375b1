"""The ``lkrun`` command: ``main`` holds the click group with thin wrappers, ``program`` is the
console script around it (it holds garbage collection at start-up), each other
module one command's plain function returning an exit code. Heavy layers are imported
inside the commands that need them (``lkrun validate`` never imports pipecat). It is
the top layer: it may import every other package; nothing imports it.
"""

from runner.cli.main import main

__all__ = ["main"]

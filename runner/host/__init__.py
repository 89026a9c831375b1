"""Many bots in one process (run mode): the supervisor (signals, reconnect, the start-up
banner), live reload of bot files and the embedded ``livekit-server --dev``. It may
import ``runner.playground``, ``runner.runtime`` and the layers below; it never
imports ``runner.worker`` (the other way to run bots) or ``runner.cli``.
"""

"""What the interpreter does to every bot of the process at once, kept short: full garbage
collections and the wait for the GIL while another thread works.

**Full collections.** A generation-2 collection walks every tracked object with the GIL held,
so every bot stops meanwhile. Most of a running bot's heap never becomes garbage: its modules,
and above all pydantic-core's schema validators (pipecat's frames and settings, openai's
models), which are slow to walk. A full collection cost 30-80 ms here, and a reload's check,
which allocates a whole new spec, set off several (pings stalled 90-260 ms). ``gc.freeze()``
moves what is alive to a generation the collector never walks. It is done when a bot is in its
room and modules were imported since the last time: once per process, or again when a reload
brought new services; a bot's reconnects and a worker's later jobs freeze nothing. What is
frozen is never collected (a frozen cycle that later becomes garbage stays), hence so rarely.

**Start-up.** Importing pipecat, livekit and the rest runs ~240 collections (~90 ms of a
~1 s start) that find next to nothing: ~2,400 garbage objects of ~160,000. The ``lkrun``
command holds collections until its first bot is in its room (at most HOLD_AT_MOST, so a
dead server, ``lkrun test`` or a worker waiting for jobs collect as usual after that), then
freezes the heap, that small garbage included, and collects as usual from then on.

**Work in a thread.** A check or a model load in a worker thread holds the GIL for Python's
switch interval (5 ms) each time the loop asks for it, and the loop asks several times per
packet: a ping waited ~50 ms behind a big file's check. While such work runs the interval is
1 ms, which brought those pings to 12-19 ms.
"""

from __future__ import annotations

import atexit
import gc
import sys
import threading

SWITCH_WHILE_WORKING = 0.001  # seconds
HOLD_AT_MOST = 30.0  # seconds collections wait for a first bot in its room (a dead server must not stop them)

_modules_when_frozen = 0
_held: threading.Timer | None = None
_lock = threading.Lock()
_working = 0
_saved_interval = 0.005


def hold_collections(at_most: float = HOLD_AT_MOST) -> None:
    """No garbage collection until the first freeze (or ``at_most`` seconds): start-up is faster."""
    global _held
    if _held is not None or not gc.isenabled():
        return
    gc.disable()
    _held = threading.Timer(at_most, _release)
    _held.daemon = True
    _held.start()


def _release() -> None:
    global _held
    with _lock:
        timer, _held = _held, None
    if timer is not None:
        timer.cancel()
        gc.enable()


def freeze_long_lived() -> bool:
    """Freeze what is alive now if new modules came since the last freeze; True when it did."""
    global _modules_when_frozen
    new_modules = len(sys.modules) > _modules_when_frozen
    if new_modules:
        if _modules_when_frozen == 0:  # a process that finalizes (tests; lkrun itself ends with os._exit)
            atexit.register(gc.unfreeze)  # frees what was frozen: extension types check for leaks then
        _modules_when_frozen = len(sys.modules)
        gc.freeze()
    _release()  # after the freeze: start-up's held garbage is frozen, not collected
    return new_modules


async def off_loop(func, /, *args):
    """``asyncio.to_thread`` for CPU work (checks, model loads) beside live bots: the loop stays first."""
    import asyncio
    global _working, _saved_interval
    with _lock:
        if _working == 0:
            _saved_interval = sys.getswitchinterval()
            sys.setswitchinterval(min(_saved_interval, SWITCH_WHILE_WORKING))
        _working += 1
    try:
        return await asyncio.to_thread(func, *args)
    finally:
        with _lock:
            _working -= 1
            if _working == 0:
                sys.setswitchinterval(_saved_interval)

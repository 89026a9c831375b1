"""At most a few of a process's bots connect at once.

A folder of 100 bots used to start 100 LiveKit connects together. The SDK hands every room's
events to every ``Room`` in the process, so each connect slowed all the others: none finished
within pipecat's 20 s setup timeout, every bot gave up and retried, and the herd never settled.
Joined in small groups, each connect takes well under a second. A single bot never waits.
"""

from __future__ import annotations

import asyncio
import weakref

AT_ONCE = 8  # connects in flight per process
HOLD_AT_MOST = 10.0  # seconds one connect keeps its slot (a dead server must not block the others)

_gates: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]" = weakref.WeakKeyDictionary()


def _gate() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    gate = _gates.get(loop)
    if gate is None:
        gate = _gates[loop] = asyncio.Semaphore(AT_ONCE)
    return gate


async def join_slot(connected: asyncio.Event):
    """Wait for a slot; it is given back when ``connected`` is set, when the returned ``release``
    is called (the generation ended without connecting) or after HOLD_AT_MOST, whichever is first."""
    gate = _gate()
    await gate.acquire()
    given_back = False

    def release(waited=None) -> None:
        nonlocal given_back
        if waited is not None and not waited.cancelled():
            waited.exception()  # a timeout is expected: retrieved, never logged as lost
        if not given_back:
            given_back = True
            gate.release()

    waiter = asyncio.ensure_future(asyncio.wait_for(connected.wait(), HOLD_AT_MOST))
    waiter.add_done_callback(release)

    def done() -> None:
        waiter.cancel()
        release()

    return done

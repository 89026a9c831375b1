"""runtime/join_gate.py: a process's bots connect a few at a time, and a slot always comes back."""

import asyncio

from runner.runtime import join_gate


async def test_only_a_few_connect_at_once_and_a_connect_frees_a_slot():
    events = [asyncio.Event() for _ in range(join_gate.AT_ONCE + 1)]
    releases = [await join_gate.join_slot(e) for e in events[:-1]]
    last = asyncio.ensure_future(join_gate.join_slot(events[-1]))
    await asyncio.sleep(0.05)
    assert not last.done()  # every slot is taken by a bot still connecting
    events[0].set()  # one of them is in its room
    release_last = await asyncio.wait_for(last, 1.0)
    for release in [*releases, release_last]:
        release()


async def test_a_generation_that_ends_without_connecting_gives_its_slot_back_once():
    releases = [await join_gate.join_slot(asyncio.Event()) for _ in range(join_gate.AT_ONCE)]
    for release in releases:
        release()
        release()  # connected later, or released twice: never more slots than AT_ONCE
    gate = join_gate._gate()
    await asyncio.sleep(0)
    assert gate._value == join_gate.AT_ONCE


async def test_each_event_loop_has_its_own_gate():
    here = join_gate._gate()
    other = await asyncio.to_thread(lambda: asyncio.run(_gate_of_a_new_loop()))
    assert other is not here


async def _gate_of_a_new_loop():
    return join_gate._gate()


async def test_a_connect_that_hangs_gives_its_slot_back_after_a_while(monkeypatch):
    monkeypatch.setattr(join_gate, "HOLD_AT_MOST", 0.1)
    releases = [await join_gate.join_slot(asyncio.Event()) for _ in range(join_gate.AT_ONCE)]
    release_next = await asyncio.wait_for(join_gate.join_slot(asyncio.Event()), 1.0)  # a dead server's bots
    for release in [*releases, release_next]:
        release()

"""runtime/interpreter.py: the long-lived heap is frozen when modules are new, and only then;
work in a thread leaves the event loop first in line for the GIL."""

from __future__ import annotations

import asyncio
import gc
import sys
import types

import pytest

from runner.runtime import interpreter


@pytest.fixture
def thawed(monkeypatch):
    monkeypatch.setattr(interpreter, "_modules_when_frozen", 0)
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_the_first_join_freezes_and_a_reconnect_does_not(thawed):
    assert interpreter.freeze_long_lived() is True
    frozen = gc.get_freeze_count()
    assert frozen > 10_000  # the modules and what they hold
    made_since = [[i] for i in range(1000)]
    assert interpreter.freeze_long_lived() is False  # nothing imported since: a reconnect freezes nothing
    assert gc.get_freeze_count() <= frozen  # (frozen objects can still die of their refcount)
    del made_since


def test_a_reload_that_brought_new_modules_freezes_again(thawed, monkeypatch):
    interpreter.freeze_long_lived()
    before = gc.get_freeze_count()
    monkeypatch.setitem(sys.modules, "lkrun_test_new_service", types.ModuleType("lkrun_test_new_service"))
    kept = [[i] for i in range(1000)]  # alive now: frozen with the new module
    assert interpreter.freeze_long_lived() is True
    assert gc.get_freeze_count() >= before + len(kept)


def test_a_full_collection_no_longer_walks_what_was_frozen(thawed):
    kept = [{"n": [i]} for i in range(50_000)]  # a long-lived heap of 100,000 tracked objects
    gc.collect()
    walked_before = len(gc.get_objects())
    interpreter.freeze_long_lived()
    walked_after = len(gc.get_objects())
    assert walked_before > 100_000 and walked_after < walked_before - 100_000, (walked_before, walked_after)
    del kept


async def test_work_in_a_thread_shortens_the_switch_interval_until_the_last_one_ends():
    default = sys.getswitchinterval()
    seen = []

    def work(seconds):
        seen.append(sys.getswitchinterval())
        import time
        time.sleep(seconds)
        return seconds

    long = asyncio.ensure_future(interpreter.off_loop(work, 0.3))
    assert await interpreter.off_loop(work, 0.05) == 0.05
    assert sys.getswitchinterval() == interpreter.SWITCH_WHILE_WORKING  # the long one still runs
    assert await long == 0.3
    assert seen == [interpreter.SWITCH_WHILE_WORKING] * 2
    assert sys.getswitchinterval() == default


async def test_work_that_fails_gives_the_switch_interval_back():
    default = sys.getswitchinterval()

    def broken():
        raise ValueError("bad file")

    with pytest.raises(ValueError):
        await interpreter.off_loop(broken)
    assert sys.getswitchinterval() == default


def test_collections_held_at_start_up_resume_when_the_first_bot_is_in_its_room(thawed):
    assert gc.isenabled()
    try:
        interpreter.hold_collections()
        assert not gc.isenabled()
        interpreter.freeze_long_lived()
        assert gc.isenabled()
        assert interpreter._held is None  # the deadline's timer is gone too
    finally:
        gc.enable()


def test_collections_held_resume_by_themselves_when_no_bot_gets_in(thawed):
    import time
    try:
        interpreter.hold_collections(at_most=0.2)  # a dead server: nobody joins
        assert not gc.isenabled()
        deadline = time.monotonic() + 3
        while not gc.isenabled() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert gc.isenabled()
    finally:
        gc.enable()


def test_holding_leaves_a_collector_someone_else_turned_off_alone(thawed):
    gc.disable()
    try:
        interpreter.hold_collections()
        interpreter.freeze_long_lived()
        assert not gc.isenabled()  # not ours to turn on
    finally:
        gc.enable()

"""Where the soak's memory goes: tracemalloc and gc snapshots of the measured process.

`scripts/soak.py --tracemalloc 200,500` starts tracemalloc (10 frames) a little before the first
time, takes a snapshot at each time (seconds after the people start) and, after the last one,
prints the top 25 differences grouped by traceback and the gc object counts by type that grew.
Opt-in because tracing every allocation with 10 frames costs the event loop a lot of CPU: with
20 bots on 2 busy cores the bots fell 15 s behind and lost messages (use --bots 10), and the
slopes of a traced run are not the untraced run's. `--objects 200,500` takes only the gc counts
(a second's pause each). Every soak sample also records ``sys.getallocatedblocks()`` (free):
Python's live heap blocks, whose slope says whether the growth is Python objects at all.

Tracing starts 220 s before the first snapshot, a whole trace-ring cycle (200 runs a bot at a
message a second): a bounded structure whose old entries were allocated before tracing began
shows up as "growth" until they are all replaced (with a 30 s lead, 10 bots' full rings showed
as +1,700 TraceEntry blocks, "now 2,000", although gc's counts were flat).
So `--tracemalloc 400,600 --minutes 11` on a quiet machine, or trust the gc counts.

Only Python allocations are seen: when the Python difference is far below the RSS growth, the
rest is native (the livekit FFI's Rust heap, glibc arenas) and this says so with the numbers.
"""

from __future__ import annotations

import gc
import linecache
import sys
import tracemalloc
from collections import Counter

FRAMES = 10
TOP = 25
NOISE = (tracemalloc.__file__, linecache.__file__, "<frozen importlib._bootstrap>",
         "<frozen importlib._bootstrap_external>", "<unknown>")


def object_counts() -> Counter:
    """Live objects gc tracks, by type name (containers only: ints and strs are not tracked)."""
    return Counter(type(obj).__name__ for obj in gc.get_objects())


class MemoryProbe:
    """Snapshots at the given times; the report compares the last one with the first."""

    def __init__(self, times: list[float], trace: bool = True, lead: float = 220.0):
        self.times = sorted(times)
        self.trace = trace
        self.start_at = max(0.0, self.times[0] - lead)
        self.snapshots: list[tuple[float, tracemalloc.Snapshot, Counter, int, float]] = []  # t, heap, objects, answered, rss
        self.reported = False

    def tick(self, t: float, rss_mib: float, messages: int) -> None:
        """Called at every sample of the soak (t: seconds since the people started)."""
        if self.trace and not tracemalloc.is_tracing() and t >= self.start_at and not self.snapshots:
            tracemalloc.start(FRAMES)
            print(f"tracemalloc: tracing ({FRAMES} frames) from t={t:.0f} s", flush=True)
        if len(self.snapshots) < len(self.times) and t >= self.times[len(self.snapshots)]:
            gc.collect()
            snap = tracemalloc.take_snapshot() if self.trace else None  # filtered in report(): slow
            self.snapshots.append((t, snap, object_counts(), messages, rss_mib))
            traced = tracemalloc.get_traced_memory()[0] if self.trace else 0
            print(f"memory: snapshot at t={t:.0f} s: traced {traced / 2**20:.2f} MiB, rss {rss_mib:.1f} MiB, "
                  f"{messages} messages answered, {sys.getallocatedblocks()} Python blocks, "
                  f"tracemalloc's own {tracemalloc.get_tracemalloc_memory() / 2**20:.1f} MiB", flush=True)
            if self.trace and len(self.snapshots) == len(self.times):
                tracemalloc.stop()  # the snapshots stay; report() after the soak (comparing pauses the loop)

    def report(self) -> None:
        if len(self.snapshots) < 2:
            print(f"memory: {len(self.snapshots)} snapshot(s) taken, two are needed (a longer --minutes?)")
            return
        (t0, old, counts0, m0, rss0), (t1, new, counts1, m1, rss1) = self.snapshots[0], self.snapshots[-1]
        messages = max(1, m1 - m0)
        print(f"\nmemory: t={t0:.0f} -> {t1:.0f} s, {m1 - m0} messages answered: RSS {rss1 - rss0:+.2f} MiB "
              f"({(rss1 - rss0) * 2**20 / messages:+.1f} B/message)")
        if self.trace:
            self.report_heap(old, new, messages)
        self.report_objects(counts0, counts1)
        self.reported = True

    @staticmethod
    def report_heap(old, new, messages: int) -> None:
        noise = [tracemalloc.Filter(False, f) for f in NOISE]
        diffs = new.filter_traces(noise).compare_to(old.filter_traces(noise), "traceback")
        grown = sum(d.size_diff for d in diffs)
        print(f"tracemalloc: Python heap {grown / 1024:+.1f} KiB ({grown / messages:+.1f} B/message)")
        for rank, diff in enumerate(diffs[:TOP], 1):
            print(f"\n#{rank}: {diff.size_diff / 1024:+.1f} KiB ({diff.size_diff / messages:+.1f} B/message), "
                  f"{diff.count_diff:+d} blocks (now {diff.size / 1024:.1f} KiB in {diff.count} blocks)")
            for line in diff.traceback.format(most_recent_first=True)[:2 * FRAMES]:
                print("    " + line)

    @staticmethod
    def report_objects(counts0: Counter, counts1: Counter) -> None:
        growth = counts1.copy()
        growth.subtract(counts0)
        print("\ngc objects by type that grew:")
        for name, delta in sorted(growth.items(), key=lambda kv: -kv[1])[:20]:
            if delta > 0:
                print(f"  {name:40s} {delta:+8d}  (now {counts1[name]})")
        print(flush=True)

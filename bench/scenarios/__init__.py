"""The scenarios, in the order they run. Adding one = a module here + one line in SCENARIOS.

A scenario module defines NAME, TITLE, TIME_LIMIT (seconds, a hard bound) and
``async def run(ctx, report)``; ``IMPLEMENTED = False`` records a "not implemented yet" row.
"""

from . import (event_action, flow_check, flow_transition, hot_reload, scale_data, scale_voice, startup, validate,
               voice_round_trip, worker_dispatch)

SCENARIOS = [
    validate,
    flow_check,        # cold `lkrun validate` of a 50-node flow
    startup,
    event_action,
    scale_data,
    scale_voice,
    voice_round_trip,
    flow_transition,   # function call answered -> next node's LLM request, vs a hand-written FlowManager bot
    hot_reload,        # file write -> new behaviour live, p50/p95 over 50 edits
    worker_dispatch,   # `lkrun worker` job dispatch (see bench/worker_bench.py)
]

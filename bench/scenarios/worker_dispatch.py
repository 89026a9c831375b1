"""Worker dispatch: room created -> bot joined via LiveKit agent dispatch. Not written yet.

To implement once ``lkrun worker`` exists: start one worker, create rooms (or dispatches)
through the server API, time until the bot joins each (a Peer's participant_connected),
p50/p95; then SIGTERM drain time with calls running. Set IMPLEMENTED = True and fill ``run``.
"""

NAME = "worker_dispatch"
TITLE = "worker dispatch: dispatch -> bot in the room"
TIME_LIMIT = 120
IMPLEMENTED = False


async def run(ctx, report):
    raise NotImplementedError("not implemented yet")

"""``lkrun worker`` and ``lkrun dispatch``: scale out on LiveKit's own agent dispatch (docs/worker.md).

- protocol: the /agent websocket (register, availability, job and worker status)
- registration: one per agent name (bot), reconnects with backoff
- pool: capacity, load, drain, the running jobs
- jobs / children / child: a job in this process, or in a warm child process
- ops: Prometheus metrics, /healthz, JSON logs
- main: the Worker and ``run_worker``; dispatch: ``lkrun dispatch``; commands: the click commands

Nothing heavy is imported here, so ``lkrun --help`` stays fast.
"""


def run_worker(*args, **kwargs) -> int:
    from runner.worker.main import run_worker as run
    return run(*args, **kwargs)


def dispatch_cli(*args, **kwargs) -> int:
    from runner.worker.dispatch import dispatch_cli as run
    return run(*args, **kwargs)

"""Flow check: a cold `lkrun validate` of a bot with a 50-node flow (target < 0.3 s), beside a cold
python process loading the same flow with pipecat's own `FlowConfig.from_file` (the anchor:
what pipecat pays for structural validation alone, without positions or handler checks).
"""

from __future__ import annotations

from .. import stats
from ..procs import LKRUN, PYTHON
from .validate import cold, warm_up

NAME = "flow_check"
TITLE = "flows: cold `lkrun validate` of a 50-node flow vs pipecat FlowConfig.from_file"
TIME_LIMIT = 90
NODES = 50


def flow_bot(nodes: int = NODES) -> tuple[str, str]:
    """(bot file, pipecat flow file): a chain of intake nodes, each with a handler, a branch and a prompt."""
    lines = ["initial_node: n0", "nodes:"]
    for i in range(nodes):
        last = i == nodes - 1
        lines += [f"  n{i}:",
                  f"    role_message: You are step {i} of the intake.",
                  "    task_messages:",
                  "      - role: developer",
                  f"        content: Ask the caller for answer {i}; answers so far {{{{ answer_{max(i - 1, 0)} }}}}.",
                  ]
        if last:
            lines += ["    post_actions: [{type: end_conversation}]"]
            continue
        lines += ["    functions:",
                  f"      - name: record_{i}",
                  f"        transition_to: {{field: status, cases: {{ok: n{i + 1}, retry: n{i}}}, default: n{i + 1}}}"]
    flow = "\n".join(lines) + "\n"
    handlers = ["  handlers:"]
    for i in range(nodes - 1):
        handlers += [f"    record_{i}:",
                     f"      description: Record answer {i}.",
                     "      parameters: {type: object, properties: {answer: {type: string}}, required: [answer]}",
                     f"      do: [{{set: {{values: {{answer_{i}: \"{{{{ args.answer }}}}\"}}}}}}]",
                     "      result: {status: ok}"]
    bot = ("version: 1\nname: flow50\nlivekit: {room: bench}\npipeline:\n"
           "  - llm: {type: openai_llm, api_key: \"${OPENAI_API_KEY:-unused}\"}\n"
           "flow:\n  file: flow50.flow.yaml\n" + "\n".join(handlers) + "\n")
    return bot, flow


async def run(ctx, report):
    folder = ctx.folder("flow_check")
    bot, flow = flow_bot()
    (folder / "flow50.yaml").write_text(bot)
    (folder / "flow50.flow.yaml").write_text(flow)
    env = ctx.env()
    flow_cmd = [PYTHON, "-c", "import sys; from pipecat.flows import FlowConfig; FlowConfig.from_file(sys.argv[1])"]
    lk, fl = [], []
    if not ctx.quick:
        await warm_up([LKRUN, "validate", str(folder / "flow50.yaml")], flow_cmd + [str(folder / "flow50.flow.yaml")],
                      env=env)
    for _ in range(3 if ctx.quick else 7):  # interleaved, so the machine's load hits both alike
        lk.append(await cold([LKRUN, "validate", str(folder / "flow50.yaml")], env))
        fl.append(await cold(flow_cmd + [str(folder / "flow50.flow.yaml")], env))
    s = stats.summary(lk)
    report.row(f"cold process: {NODES}-node flow", "lkrun validate", s["p50"], "ms", min=s["min"], n=s["n"],
               target="< 300 ms", met="yes" if s["p50"] < 300 else "NO")
    s = stats.summary(fl)
    report.row(f"cold process: {NODES}-node flow", "python + FlowConfig.from_file", s["p50"], "ms", min=s["min"],
               n=s["n"])
    report.ratio(f"cold: lkrun validate / FlowConfig.from_file ({NODES} nodes)", "lkrun", lk, "FlowConfig", fl)
    report.note("lkrun validate checks handlers, templates and positions and never imports pipecat; the "
                "pipecat process pays its import (about 1 s) for structure alone")

"""Validate: how long checking a bot file takes, in-process and as a cold `lkrun validate`.

Anchors: pipecat's own ``FlowConfig.from_yaml`` on a flow file of about the same size,
in-process and as a cold process. Also the loader's rejection time for an alias bomb and
30,000-deep nesting (``runner.botfile.yamlsafe.load_text`` raising ``ConfigError``).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time

from .. import botfiles, stats
from ..procs import LKRUN, PYTHON, ROOT

NAME = "validate"
TITLE = "validate: in-process p50, cold `lkrun validate`, loader rejections"
TIME_LIMIT = 120


def prepare(ctx):
    folder = ctx.folder("validate")
    shutil.copy(botfiles.BOTS / "greeter.yaml", folder / "greeter.yaml")
    (folder / "big.yaml").write_text(botfiles.big_bot(1000))
    (folder / "flow_small.yaml").write_text(botfiles.flow_config((folder / "greeter.yaml").stat().st_size))
    (folder / "flow_big.yaml").write_text(botfiles.flow_config((folder / "big.yaml").stat().st_size))
    return folder


async def cold(cmd, env, timeout: float = 30.0) -> float:
    """Wall time of one process from spawn to exit, in ms (it must exit 0)."""
    t0 = time.monotonic()
    proc = await asyncio.create_subprocess_exec(*cmd, env=env, cwd=str(ROOT), stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.PIPE)
    try:
        _, err = await asyncio.wait_for(proc.communicate(), timeout)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} exited {proc.returncode}: {err.decode()[-400:]}")
    return (time.monotonic() - t0) * 1000


async def warm_up(*commands, env) -> None:
    """One untimed run of each: lkrun's schema-check cache and the OS file cache as after any first
    run (as installed .pyc files are: neither is part of what a cold process costs later)."""
    for cmd in commands:
        await cold(cmd, env)


async def run(ctx, report):
    folder = prepare(ctx)
    env = ctx.env()
    proc = await asyncio.create_subprocess_exec(PYTHON, "-m", "bench.inproc", str(folder), "1" if ctx.quick else "0",
                                                cwd=str(ROOT), env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 90)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"bench.inproc failed: {err.decode()[-600:]}")
    found = json.loads(out.decode().strip().splitlines()[-1])
    sizes = {name: (folder / f"{name}.yaml").stat().st_size for name in ("greeter", "big", "flow_small", "flow_big")}

    def inproc_row(case, system, key, size):
        samples = found[key]["samples_ms"]
        s = stats.summary(samples)
        report.row(case, system, s["p50"], "ms", p95=s["p95"], cold_ms=found[key]["cold_ms"], n=s["n"],
                   file_kb=size / 1024)
        return samples

    greeter = inproc_row("in-process: greeter", "lkrun check_file", "check_greeter", sizes["greeter"])
    flow_small = inproc_row("in-process: greeter-size flow", "pipecat FlowConfig", "flow_small", sizes["flow_small"])
    big = inproc_row("in-process: 1,000 actions", "lkrun check_file", "check_big", sizes["big"])
    flow_big = inproc_row("in-process: 1,000-action-size flow", "pipecat FlowConfig", "flow_big", sizes["flow_big"])
    new = inproc_row("in-process: 1,000 actions, templates unseen", "lkrun check_file", "check_big_new", sizes["big"])
    flow_big_2 = inproc_row("in-process: 1,000-action-size flow (2)", "pipecat FlowConfig", "flow_big_2",
                            sizes["flow_big"])
    report.ratio("lkrun check / FlowConfig.from_yaml (greeter size)", "lkrun", greeter, "FlowConfig", flow_small)
    report.ratio("lkrun check / FlowConfig.from_yaml (1,000 actions)", "lkrun", big, "FlowConfig", flow_big,
                 target=2.0)
    report.ratio("lkrun check, templates unseen / FlowConfig (1,000 actions)", "lkrun", new, "FlowConfig",
                 flow_big_2, target=2.0)

    for key, label in (("alias_bomb", "alias bomb (billion laughs)"), ("deep_flow_30000", "30,000-deep [[[...]]]"),
                       ("deep_block_30000", "30,000-deep '- - - ...'")):
        s = stats.summary(found[key]["samples_ms"])
        report.row(f"loader rejects {label}", "runner.botfile.yamlsafe", s["p50"], "ms", p95=s["p95"], n=s["n"],
                   rejected="yes" if found[key]["rejected"] else "NO")
        if not found[key]["rejected"]:
            report.note(f"the loader did NOT reject the {label} with a ConfigError")

    # cold processes, interleaved: lkrun validate vs a python process loading a FlowConfig file
    repeats = 2 if ctx.quick else 5
    flow_cmd = [PYTHON, "-c", "import sys; from pipecat.flows import FlowConfig; FlowConfig.from_file(sys.argv[1])"]
    cases = {"greeter": ("greeter.yaml", "flow_small.yaml"), "1,000 actions": ("big.yaml", "flow_big.yaml")}
    for case, (bot, flow) in cases.items():
        lk, fl = [], []
        if not ctx.quick:
            await warm_up([LKRUN, "validate", str(folder / bot)], flow_cmd + [str(folder / flow)], env=env)
        for _ in range(repeats):
            lk.append(await cold([LKRUN, "validate", str(folder / bot)], env))
            fl.append(await cold(flow_cmd + [str(folder / flow)], env))
        s = stats.summary(lk)
        report.row(f"cold process: {case}", "lkrun validate", s["p50"], "ms", min=s["min"], n=s["n"])
        s = stats.summary(fl)
        report.row(f"cold process: {case}-size flow", "python + FlowConfig", s["p50"], "ms", min=s["min"], n=s["n"])
        report.ratio(f"cold: lkrun validate / FlowConfig load ({case})", "lkrun", lk, "FlowConfig", fl)
    report.note("templates are parsed and checked once per distinct text per process (a reload of an unchanged "
                "template costs a lookup); 'templates unseen' clears those caches before every run")
    report.note("in-process rows: p50 of warm runs in one process (the first, cold run is cold_ms); "
                "cold rows: spawn -> exit of a fresh process")

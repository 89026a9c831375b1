"""In-process timings for the validate scenario, run in a child process so a hang is bounded.

    python -m bench.inproc FOLDER QUICK   ->  one JSON object on stdout

FOLDER holds greeter.yaml, big.yaml, flow_small.yaml, flow_big.yaml. Each measurement
repeats until its count or its time budget is used up (at least 3 runs); the first
(cold) run of each is reported separately and left out of the samples. lkrun's check and
pipecat's FlowConfig load are interleaved (A B A B ...).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def timed(fn, count: int, budget: float) -> dict:
    t0 = time.perf_counter()
    fn()
    cold = (time.perf_counter() - t0) * 1000
    samples = []
    end = time.perf_counter() + budget
    while len(samples) < count and (len(samples) < 3 or time.perf_counter() < end):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return {"cold_ms": cold, "samples_ms": samples}


def paired(fn_a, fn_b, count: int, budget: float) -> tuple[dict, dict]:
    """Two compared measurements interleaved (A B A B ...), so machine noise hits both alike."""
    cold = []
    for fn in (fn_a, fn_b):
        t0 = time.perf_counter()
        fn()
        cold.append((time.perf_counter() - t0) * 1000)
    samples: tuple[list, list] = ([], [])
    end = time.perf_counter() + budget
    while len(samples[0]) < count and (len(samples[0]) < 3 or time.perf_counter() < end):
        for fn, out in zip((fn_a, fn_b), samples):
            t0 = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t0) * 1000)
    return ({"cold_ms": cold[0], "samples_ms": samples[0]}, {"cold_ms": cold[1], "samples_ms": samples[1]})


def rejected(load, text: str) -> bool:
    from runner.botfile.errors import ConfigError
    try:
        load(text, "bomb.yaml")
    except ConfigError:
        return True
    return False


def main(folder: Path, quick: bool) -> dict:
    import logging
    import warnings
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    from loguru import logger
    logger.remove()

    from runner.botfile.check import check_file
    from runner.botfile.yamlsafe import load_text

    from . import botfiles

    count, budget = (10, 1.0) if quick else (40, 6.0)
    from pipecat.flows import FlowConfig

    out: dict = {}
    small, big = (folder / "flow_small.yaml").read_text(), (folder / "flow_big.yaml").read_text()
    out["check_greeter"], out["flow_small"] = paired(lambda: check_file(folder / "greeter.yaml"),
                                                     lambda: FlowConfig.from_yaml(small), count, budget)
    out["check_big"], out["flow_big"] = paired(lambda: check_file(folder / "big.yaml"),
                                               lambda: FlowConfig.from_yaml(big), count, budget)
    from runner.botfile.template_check import clear_facts
    from runner.botfile.templates import clear_compiled

    from runner.botfile.check_actions import clear_body_problems

    def first_check():  # every template and action body unseen: what a file never checked costs
        clear_facts()
        clear_compiled()
        clear_body_problems()
        check_file(folder / "big.yaml")

    out["check_big_new"], out["flow_big_2"] = paired(first_check, lambda: FlowConfig.from_yaml(big), count, budget)

    bombs = {"alias_bomb": botfiles.alias_bomb(), "deep_flow_30000": botfiles.deep_flow(30000),
             "deep_block_30000": botfiles.deep_block(30000)}
    for name, text in bombs.items():
        ok = rejected(load_text, text)
        result = timed(lambda t=text: rejected(load_text, t), count, budget)
        result["rejected"] = ok
        result["bytes"] = len(text)
        out[name] = result
    return out


if __name__ == "__main__":
    result = main(Path(sys.argv[1]), sys.argv[2] == "1")
    sys.stdout.write(json.dumps(result) + "\n")

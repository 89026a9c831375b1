"""python -m bench [--quick] [--only NAME ...]: run the benchmark, print a table, write results.json/png."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from .harness import OUT_DIR, run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run (~1 minute): fewer samples and bots")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these scenarios (others: skipped)")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="folder for results.json and results.png")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)
    try:
        results = asyncio.run(run(args.quick, args.only, args.out, plot=not args.no_plot))
    except KeyboardInterrupt:
        return 130
    failed = [n for n, s in results["scenarios"].items() if s["status"] == "failed"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

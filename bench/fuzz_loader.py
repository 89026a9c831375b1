"""python -m bench.fuzz_loader [--cases N] [--seed S] [--workers W] [--case ID]: fuzz the checker.

Every case is bytes -> ``yamlsafe.load_bytes`` (which decodes and calls ``load_text``) ->
``check.check_document``, the whole path a bot file takes at validate and reload time. The
cases: mutations of every fixture in tests/fixtures/ (byte flips, line deletions and
duplications, indentation changes, quote deletions, inserted fragments, truncation), random
YAML from the bot vocabulary, deep nesting, huge scalars, and the template/env inputs that
used to crash the checker. Pass: no exception but ConfigError, no case over 1 s. A crashing
input is written to tests/fixtures/fuzz/ (tests/test_fuzz.py checks every file there).
Case ``i`` of seed ``s`` is always the same input (for the same fixtures): ``--case i`` prints it.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import random
import signal
import sys
import time
import traceback
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
OUT = FIXTURES / "fuzz"
ENV = {"LIVEKIT_ROOM": "lobby", "OPENAI_API_KEY": "sk-fuzz-not-a-real-key-0123", "RATE": "24000", "EMPTY": ""}
SLOW_MS = 1000.0
HANG_S = 20  # CPU seconds: a case still running after this is a crash ("hang"), in worker processes

BOT = "version: 1\nname: fuzz\nlivekit: {room: lobby, identity: fuzz}\n"
FRAGMENTS = [
    "${X:-.inf}", "${X:-.nan}", "${X:--.inf}", "${X:-+.INF}", "${N:-" + "9" * 5000 + "}", "${OPENAI_API_KEY}",
    "${", "$${X}", "${ bad name }", "${X:-${Y}}", "{{", "}}", "{%", "%}", "{#", "{{ data }}", "{{ participant.nme }}",
    "{% for x in data %}", "{% endfor %}", "{{ 1" + "0" * 5000 + " }}", "&a", "*a", "<<: {}", "!!python/object:os.system",
    "!tag", "? [a]\n: b", "- ", ": ", " # ", "'", '"', "|", ">-", "---", "...", "%YAML 1.1", "\t", "\x00", "\x1b",
    "\ufeff", "\u2028", "\u201c", "é", "1e999", "0x1F", "0o17", "1_000", "yes", "on", "~", "null", "[", "]", "{", "}",
]
KEYS = ["version", "name", "description", "livekit", "params", "session", "pipeline", "vars", "on", "tools",
        "room", "identity", "url", "api_key", "token", "participant_connected", "data_received", "timer",
        "user_said", "idle", "say", "send", "log", "if", "then", "else", "set", "wait", "http", "end", "to", "data",
        "match", "every", "after", "do", "mode", "tts", "stt", "llm", "vad", "type", "settings", "voice"]
STRINGS = ["lobby", "hello", "{{ participant.id }}", "{{ vars.x }}", "{{ data }}", "${LIVEKIT_ROOM}", "${RATE}",
           "${UNSET}", "{{ message.text == 'ping' }}", "espeak_tts", "openai_llm", "queued", "", " ", "é", "0.5"]
NESTERS = ["(", "[", "not ", "-", "1 + ", "data.a", "|string", " and data", "1 if data else "]


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def mutate(rng: random.Random, data: bytes) -> bytes:
    for _ in range(rng.choice([1, 1, 2, 3, 5])):
        lines, kind = _lines(data), rng.randrange(9)
        k = rng.randrange(len(lines))
        if kind == 0 and data:  # flip a bit
            i = rng.randrange(len(data))
            data = data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1:]
            continue
        if kind == 1:
            del lines[k]
        elif kind == 2:
            lines.insert(k, lines[k])
        elif kind == 3:  # indentation
            lines[k] = rng.choice([b" ", b"  ", b"    ", b"\t"]) + lines[k] if rng.random() < 0.6 else lines[k].lstrip()
        elif kind == 4:  # quotes
            lines[k] = lines[k].replace(rng.choice([b'"', b"'"]), b"", rng.choice([1, -1]))
        elif kind == 5:
            j = rng.randrange(len(lines))
            lines[k], lines[j] = lines[j], lines[k]
        elif kind == 6 and lines[k]:
            i = rng.randrange(len(lines[k]) + 1)
            lines[k] = lines[k][:i] + rng.choice(FRAGMENTS).encode() + lines[k][i:]
        elif kind == 7:
            data = data[:rng.randrange(len(data) + 1)]
            continue
        else:
            i = rng.randrange(len(data) + 1)
            data = data[:i] + bytes([rng.choice(b":-[]{}\"'#&*!|>%@`\t\n \\$,?")]) + data[i:]
            continue
        data = b"\n".join(lines)
    return data


def _value(rng: random.Random, depth: int):
    roll = rng.random()
    if depth > 5 or roll < 0.45:
        return rng.choice([rng.choice(STRINGS), rng.randint(-5, 100000), rng.random() * 10, True, False, None,
                           rng.choice(FRAGMENTS)])
    if roll < 0.7:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(KEYS): _value(rng, depth + 1) for _ in range(rng.randrange(5))}


def random_yaml(rng: random.Random) -> bytes:
    if rng.random() < 0.25:  # token soup
        parts = [rng.choice(KEYS + STRINGS + FRAGMENTS + [":", "\n", "  ", "- "]) for _ in range(rng.randrange(80))]
        return " ".join(parts).encode()
    doc = {"version": rng.choice([1, 1, 1, 2, "1", None]), "livekit": {"room": rng.choice(STRINGS)}}
    for _ in range(rng.randrange(6)):
        doc[rng.choice(KEYS)] = _value(rng, 1)
    flow = rng.choice([None, True, False])
    return yaml.safe_dump(doc, default_flow_style=flow, allow_unicode=True, sort_keys=False).encode()


def deep(rng: random.Random) -> bytes:
    n = rng.choice([10, 30, 32, 33, 63, 64, 65, 100, 199, 500, 3000])
    kind = rng.randrange(5)
    if kind == 0:
        return (BOT + "vars:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(n)) + "  " * (n + 1) + "v\n").encode()
    if kind == 1:
        return (BOT + "vars: {x: " + "[" * n + "1" + "]" * n + "}\n").encode()
    if kind == 2:
        steps = "".join("  " * i + f"{'- ' if i else '    - '}if: '{{{{ data }}}}'\n" + "  " * (i + 2) + "then:\n"
                        for i in range(min(n, 70)))
        return (BOT + "on:\n  data_received:\n" + steps).encode()
    piece = rng.choice(NESTERS)
    closing = {"(": ")", "[": "]"}.get(piece, "")
    expression = piece * n + "data" + closing * n if piece not in ("data.a", "|string", " and data") else \
        "data" + piece * n
    where = rng.choice(["log", "say", "if"])
    return (BOT + f"on:\n  data_received:\n    - {where}: \"{{{{ {expression} }}}}\"\n").encode()


def huge(rng: random.Random) -> bytes:
    size = int(10 ** rng.uniform(3, 5.5))  # 1 KB .. 316 KB, log-uniform
    kind = rng.randrange(6)
    if kind == 0:
        return (BOT + "vars:\n  x: " + "a" * size + "\n").encode()
    if kind == 1:
        return (BOT + 'vars:\n  x: "' + "é\\n" * (size // 4) + '"\n').encode()
    if kind == 2:
        return (BOT + "vars:\n  x: |\n" + ("    line of text\n" * (size // 17))).encode()
    if kind == 3:
        return (BOT + "vars:\n  x: " + "7" * min(size, 20000) + "\n").encode()
    if kind == 4:
        return (BOT + "# " + "c" * size + "\n").encode()
    return (BOT + f"on:\n  data_received:\n    - log: \"{'{{ data }} ' * (size // 11)}\"\n").encode()


def crash_class(rng: random.Random) -> bytes:
    kind = rng.randrange(4)
    if kind == 0:
        value = "${X:-" + rng.choice([".inf", "-.inf", "+.inf", ".Inf", ".nan", ".NaN", "1e999", "-0.0"]) + "}"
    elif kind == 1:
        value = "${N:-" + "1" * rng.choice([4300, 4301, 5000, 20000]) + "}"
    elif kind == 2:
        n = rng.choice([33, 100, 500, 3000])
        value = "'{{ " + rng.choice(["(" * n + "1" + ")" * n, " + ".join(["1"] * n)]) + " }}'"
    else:
        n = rng.choice([150, 199, 250])
        value = "'{{ " + rng.choice(["data" + ".a" * n, "data" + "|string" * n, "not " * n + "data",
                                      " and ".join(["data"] * n)]) + " }}'"
    if value.startswith("'"):
        where = rng.choice(["on:\n  data_received:\n    - log: {v}\n", "on:\n  data_received:\n    - if: {v}\n"
                                                                         "      then: [{{end: {{}}}}]\n",
                            "on:\n  data_received:\n    - send: {{to: {v}, data: {{t: {v}}}}}\n"])
    else:
        where = rng.choice(["vars:\n  x: {v}\n", "session: {{idle_timeout: '{v}'}}\n",
                            "on:\n  data_received:\n    - wait: '{v}'\n"])
    return (BOT + where.format(v=value)).encode()


FAMILIES = [("mutation", 0.55), ("random", 0.2), ("deep", 0.08), ("huge", 0.02), ("crash_class", 0.15)]


def seeds() -> list[bytes]:
    return [p.read_bytes() for p in sorted(FIXTURES.glob("*/*.yaml"))]


def case(seed: int, index: int, pool: list[bytes]) -> tuple[str, bytes]:
    rng = random.Random(seed * 1_000_003 + index)
    roll, family = rng.random(), FAMILIES[-1][0]
    for name, weight in FAMILIES:
        if roll < weight:
            family = name
            break
        roll -= weight
    if family == "mutation":
        return family, mutate(rng, rng.choice(pool))
    return family, {"random": random_yaml, "deep": deep, "huge": huge, "crash_class": crash_class}[family](rng)


class _Hang(BaseException):
    pass


def check(raw: bytes) -> str | None:
    """None for a ConfigError or a spec; otherwise the crash, as one line."""
    from runner.botfile.check import check_document
    from runner.botfile.errors import ConfigError
    from runner.botfile.yamlsafe import load_bytes
    try:
        check_document(load_bytes(raw, "fuzz.yaml"), environ=ENV, dotenv={})
        return None
    except ConfigError as exc:
        bad = [p for p in exc.problems if p.line < 1 or p.col < 1 or not p.message or "Traceback" in p.message]
        return f"malformed problem: {bad[0].render()[:200]}" if bad else "config_error"
    except _Hang:
        return f"hang: still checking after {HANG_S} s"
    except Exception as exc:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/runner/" in f.filename]
        where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
        return f"{type(exc).__name__}{where}: {str(exc)[:160]}"


def _alarm(*_):
    raise _Hang()


def run_chunk(job: tuple[int, int, int, bool]) -> dict:
    seed, start, stop, guard = job
    pool = seeds()
    stats = {"cases": 0, "config_errors": 0, "valid": 0, "crashes": [], "slow": [], "slowest": (0.0, -1, ""),
             "families": {}}
    if guard:
        signal.signal(signal.SIGPROF, _alarm)  # CPU time: a starved process (nice, a loaded machine) is not a hang
    for index in range(start, stop):
        family, raw = case(seed, index, pool)
        if guard:
            signal.setitimer(signal.ITIMER_PROF, HANG_S)
        began = time.thread_time()  # CPU time of this case: a busy shared machine does not make it "slow"
        outcome = check(raw)
        ms = (time.thread_time() - began) * 1000
        if guard:
            signal.setitimer(signal.ITIMER_PROF, 0)
        stats["cases"] += 1
        stats["families"][family] = stats["families"].get(family, 0) + 1
        if outcome == "config_error":
            stats["config_errors"] += 1
        elif outcome is None:
            stats["valid"] += 1
        else:
            stats["crashes"].append((index, family, outcome, raw))
        if ms > SLOW_MS:
            stats["slow"].append((round(ms), index, family))
        if ms > stats["slowest"][0]:
            stats["slowest"] = (ms, index, family)
    return stats


def _merge(total: dict, part: dict) -> None:
    for key in ("cases", "config_errors", "valid"):
        total[key] += part[key]
    total["crashes"] += part["crashes"]
    total["slow"] += part["slow"]
    total["slowest"] = max(total["slowest"], part["slowest"])
    for family, n in part["families"].items():
        total["families"][family] = total["families"].get(family, 0) + n


def run(cases: int, seed: int = 0, workers: int = 2, chunk: int = 250, progress=None) -> dict:
    """Run ``cases`` cases; ``workers=0`` runs in this process (no hang guard: pytest-timeout owns SIGALRM)."""
    total = {"cases": 0, "config_errors": 0, "valid": 0, "crashes": [], "slow": [], "slowest": (0.0, -1, ""),
             "families": {}}
    jobs = [(seed, i, min(i + chunk, cases), workers > 0) for i in range(0, cases, chunk)]
    if workers <= 0:
        parts = map(run_chunk, jobs)
    else:
        pool = multiprocessing.get_context("fork").Pool(workers, maxtasksperchild=40)
        parts = pool.imap_unordered(run_chunk, jobs)
    try:
        for part in parts:
            _merge(total, part)
            if progress:
                progress(total)
    finally:
        if workers > 0:
            pool.close()
            pool.join()
    return total


def save_crashes(crashes: list, folder: Path = OUT) -> list[Path]:
    """The smallest input of each distinct crash, as a fixture."""
    smallest: dict[str, tuple] = {}
    for index, family, outcome, raw in crashes:
        signature = outcome.split(":", 1)[0] + outcome.split(":", 1)[-1][:60]
        if signature not in smallest or len(raw) < len(smallest[signature][3]):
            smallest[signature] = (index, family, outcome, raw)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for index, family, outcome, raw in smallest.values():
        path = folder / f"crash-{family}-{hashlib.sha1(raw).hexdigest()[:10]}.yaml"
        path.write_bytes(raw)
        written.append(path)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz_loader", description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="processes (0: in this process)")
    parser.add_argument("--case", type=int, help="print case ID's input and outcome, then stop")
    args = parser.parse_args(argv)
    if args.case is not None:
        family, raw = case(args.seed, args.case, seeds())
        sys.stdout.buffer.write(raw + b"\n")
        print(f"# case {args.case} ({family}, {len(raw)} bytes): {check(raw) or 'valid'}", file=sys.stderr)
        return 0
    began, step = time.monotonic(), max(args.cases // 10, 1)
    marks = iter(range(step, args.cases + step, step))
    mark = [next(marks)]

    def progress(total):
        if total["cases"] >= mark[0]:
            print(f"  {total['cases']:>7} cases, {len(total['crashes'])} crashes, "
                  f"{time.monotonic() - began:.0f} s", file=sys.stderr, flush=True)
            mark[0] = next(marks, args.cases + 1)

    total = run(args.cases, args.seed, args.workers, progress=progress)
    ms, index, family = total["slowest"]
    print(f"cases {total['cases']}  config errors {total['config_errors']}  valid {total['valid']}  "
          f"crashes {len(total['crashes'])}  over {SLOW_MS:.0f} ms {len(total['slow'])}  "
          f"slowest {ms:.0f} ms (case {index}, {family})  in {time.monotonic() - began:.0f} s "
          f"on {max(args.workers, 1)} process(es), seed {args.seed}")
    print("families: " + ", ".join(f"{k} {v}" for k, v in sorted(total["families"].items())))
    for slow_ms, slow_index, slow_family in sorted(total["slow"], reverse=True)[:10]:
        print(f"slow: case {slow_index} ({slow_family}) {slow_ms} ms")
    kinds: dict[str, list] = {}
    for index, family, outcome, _ in total["crashes"]:
        kinds.setdefault(outcome.split(": ", 1)[0], []).append(index)
    for kind, indexes in sorted(kinds.items(), key=lambda item: -len(item[1])):
        print(f"crash: {len(indexes)} x {kind} (cases {', '.join(map(str, indexes[:5]))}, ...)")
    for path in save_crashes(total["crashes"]) if total["crashes"] else ():
        print(f"wrote {path.relative_to(ROOT)}")
    return 1 if total["crashes"] or total["slow"] else 0


if __name__ == "__main__":
    sys.exit(main())

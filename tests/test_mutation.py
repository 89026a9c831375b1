"""Are the examples' tests any good? Mutate each text value and each condition of every example
bot, one at a time, run its test file offline, and count the mutants the tests catch (and check
each failure names the mutated line). Run with: .venv/bin/python -m pytest -m slow tests/test_mutation.py -s
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from runner.botfile.yamlsafe import load_file
from runner.testing.report import failure_lines
from runner.testing.run import run_paths

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = [p for p in sorted((ROOT / "examples").glob("*.yaml")) if not p.name.endswith(".test.yaml")]
BOTS = [p for p in EXAMPLES + [ROOT / "bots" / "greeter.yaml"] if p.with_name(p.stem + ".test.yaml").exists()]
NOT_OBSERVABLE = {"headers", "level", "method", "scope", "role", "mode", "timeout", "save_as", "url"}
# url: a mutated host is refused by the checker (not a mutant that runs); headers: never recorded (secrets)
# flow: the graph's names (nodes, functions, branch fields and cases) and schemas make another graph or
# an invalid one, not a changed text; descriptions only guide a real LLM
FLOW_STRUCTURE = {"name", "description", "type", "transition_to", "cases", "field", "default",
                  "context_strategy", "initial_node", "required", "enum", "parameters"}


def _condition(path: tuple) -> bool:
    return path[-1] in ("if", "when", "condition")


def flip(text: str) -> str:
    for old, new in (("==", "!="), ("!=", "=="), (" and ", " or "), (" or ", " and ")):
        if old in text:
            return text.replace(old, new, 1)
    inner = text.strip()[2:-2]
    return "{{ not (" + inner + ") }}"


def targets(doc):
    """(path, new value) for each string under on:, tools:, vars: and flow: that a test can observe."""
    found = []

    def walk(value, path):
        if isinstance(value, dict):
            for key, inner in value.items():
                if key not in NOT_OBSERVABLE and not (path[0] == "flow" and key in FLOW_STRUCTURE):
                    walk(inner, path + (key,))
        elif isinstance(value, list):
            for index, inner in enumerate(value):
                walk(inner, path + (index,))
        elif isinstance(value, str) and value:
            found.append((path, flip(value) if _condition(path) else "MUTATED"))

    for section in ("on", "tools", "vars", "flow"):
        if section in (doc.data or {}):
            walk(doc.data[section], (section,))
    return [t for t in found if not (t[0][0] == "tools" and t[0][2] in ("name", "description", "parameters"))]


def _scalar_end(line: str, start: int, flow: bool) -> int:
    quote = line[start]
    if quote in "\"'":
        index = start + 1
        while index < len(line):
            if quote == '"' and line[index] == "\\":
                index += 2
                continue
            if line[index] == quote:
                if quote == "'" and line[index + 1:index + 2] == "'":
                    index += 2
                    continue
                return index + 1
            index += 1
        raise ValueError("a multi-line quoted value")
    stop = re.compile(r"\s#|,\s|[,}\]]" if flow else r"\s#").search(line, start)
    return stop.start() if stop else len(line.rstrip("\n"))


def mutate(text: str, doc, path: tuple, value: str) -> str:
    line_no, col = doc.where(path)
    lines = text.splitlines(keepends=True)
    line = lines[line_no - 1]
    start = col - 1
    before = line[:start]
    flow = before.count("{") + before.count("[") > before.count("}") + before.count("]")
    end = _scalar_end(line, start, flow)
    lines[line_no - 1] = line[:start] + json.dumps(value, ensure_ascii=False) + line[end:]
    return "".join(lines)


def acceptable_lines(doc, path: tuple) -> set[int]:
    """The mutated value's line and the lines of the actions around it (a condition's if/choose);
    for a var, the lines of the actions that use it."""
    if path[0] == "vars":
        return {n for n, line in enumerate(doc.text.splitlines(), 1) if f"vars.{path[1]}" in line}
    lines = set()
    for length in range(2, len(path) + 1):
        lines.add(doc.where(path[:length])[0])
        lines.add(doc.where(path[:length], key=True)[0])
    return lines


def run_mutants(bot: Path, tmp: Path) -> tuple[int, int, list[str]]:
    doc = load_file(bot)
    text = bot.read_text()
    test_text = bot.with_name(bot.stem + ".test.yaml").read_text()
    killed = total = 0
    notes = []
    for index, (path, value) in enumerate(targets(doc)):
        folder = tmp / f"{bot.stem}_{index}"
        folder.mkdir()
        mutant = folder / bot.name
        mutant.write_text(mutate(text, doc, path, value))
        (folder / (bot.stem + ".test.yaml")).write_text(test_text)
        outcome = run_paths([str(folder / (bot.stem + ".test.yaml"))])
        where = f"line {doc.where(path)[0]} {'/'.join(map(str, path))} -> {value!r}"
        if outcome.problems:
            notes.append(f"  not a valid bot (skipped): {where}")
            continue
        total += 1
        failures = [c.failure for f in outcome.files for c in f.cases if c.failure]
        if not failures:
            notes.append(f"  survived: {where}")
            continue
        killed += 1
        report = "\n".join("\n".join(failure_lines(f)) for f in failures)
        lines = acceptable_lines(doc, path)
        named = any(f"{mutant}:{n}" in report or f"at line {n}" in report for n in lines)
        if path[0] == "vars":  # a var has no action of its own: the failure names an action that used it
            named = named or f"{mutant}:" in report
        assert named, f"{bot.name}: no failure names the mutated {where}:\n{report}"
    return killed, total, notes


@pytest.mark.slow
def test_the_examples_tests_catch_mutants(tmp_path):
    grand_killed = grand_total = 0
    low = []
    print()
    for bot in BOTS:
        killed, total, notes = run_mutants(bot, tmp_path)
        grand_killed += killed
        grand_total += total
        share = 100 * killed / total if total else 100.0
        print(f"{bot.relative_to(ROOT)}: {killed}/{total} mutants caught ({share:.0f} %)")
        if share < 90:
            low.append(f"{bot.name} {share:.0f} %")
        for note in notes:
            print(note)
    share = 100 * grand_killed / grand_total
    print(f"overall: {grand_killed}/{grand_total} mutants caught ({share:.1f} %)")
    assert grand_total >= 40 and share >= 90, f"only {share:.1f} % of the mutants were caught"
    assert not low, f"under 90 % of an example's mutants caught: {', '.join(low)}"

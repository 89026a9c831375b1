"""What ``lkrun test`` prints: one line per case, the failures in detail, ``N passed, N failed``;
or the same as JSON; and a JUnit XML file for CI."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from runner.testing.run import Outcome


def failure_lines(failure) -> list[str]:
    lines = [f"    {failure.step}: {failure.what}", f"      expected: {failure.expected}"]
    for index, actual in enumerate(failure.actual):
        lines.append(f"      {'actual:  ' if index == 0 else '         '} {actual}")
    if failure.bot_line:
        lines.append(f"      from the bot's action at {failure.bot_line}")
    if failure.ran:
        lines.append("      runs since the last matched step:")
        lines += [f"        {ran}" for ran in failure.ran]
    if failure.hint:
        lines.append(f"      hint: {failure.hint}")
    return lines


def text(outcome: Outcome) -> tuple[list[str], list[str]]:
    """-> (stdout lines, stderr lines)."""
    out, err = [], [p.render() for p in outcome.problems]
    for result in outcome.files:
        out.append(f"{result.file} (bot: {result.bot})")
        for case in result.cases:
            if case.skipped:
                out.append(f"  SKIP {case.name} ({case.skipped})")
                continue
            out.append(f"  {'PASS' if case.passed else 'FAIL'} {case.name}")
            if case.failure is not None:
                out += failure_lines(case.failure)
    errors = [p for p in outcome.problems if p.severity == "error"]
    summary = f"{outcome.passed} passed, {outcome.failed} failed"
    if outcome.skipped:
        summary += f", {outcome.skipped} skipped"
    if errors:
        summary += f", {len(errors)} error{'s' * (len(errors) != 1)} in test files"
    out.append(summary)
    return out, err


def as_json(outcome: Outcome) -> str:
    return json.dumps({
        "passed": outcome.passed, "failed": outcome.failed, "skipped": outcome.skipped,
        "ok": outcome.exit_code() == 0,
        "problems": [p.as_dict() for p in outcome.problems],
        "files": [{"file": f.file, "bot": f.bot, "seconds": round(f.seconds, 4), "cases": [
            {"name": c.name, "line": c.line, "passed": c.passed, "skipped": c.skipped, "seconds": round(c.seconds, 4),
             "virtual_seconds": round(c.virtual, 3), "failure": c.failure.as_dict() if c.failure else None}
            for c in f.cases]} for f in outcome.files],
    }, indent=2, ensure_ascii=False)


def junit(outcome: Outcome) -> str:
    suites = ET.Element("testsuites", tests=str(outcome.passed + outcome.failed + outcome.skipped), failures=str(outcome.failed),
                        errors=str(len([p for p in outcome.problems if p.severity == "error"])))
    for result in outcome.files:
        suite = ET.SubElement(suites, "testsuite", name=result.file, tests=str(len(result.cases)),
                              failures=str(sum(c.failure is not None for c in result.cases)), errors="0",
                              skipped=str(sum(c.skipped is not None for c in result.cases)),
                              time=f"{result.seconds:.4f}")
        for case in result.cases:
            element = ET.SubElement(suite, "testcase", classname=result.bot, name=case.name,
                                    file=result.file, line=str(case.line), time=f"{case.seconds:.4f}")
            if case.skipped:
                ET.SubElement(element, "skipped", message=case.skipped)
            if case.failure is not None:
                failure = ET.SubElement(element, "failure", message=f"{case.failure.step}: expected "
                                                                    f"{case.failure.expected}")
                failure.text = "\n".join(line.strip() for line in failure_lines(case.failure))
    if outcome.problems:
        suite = ET.SubElement(suites, "testsuite", name="test files", tests="0", failures="0",
                              errors=str(len(outcome.problems)))
        for problem in outcome.problems:
            case = ET.SubElement(suite, "testcase", classname="lkrun test", name=f"{problem.file}:{problem.line}")
            ET.SubElement(case, "error", message=problem.message).text = problem.render()
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"

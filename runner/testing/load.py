"""Test file -> ``TestFile`` (cases of located steps), or a ``ConfigError`` with every problem.

Bot files' loader does the YAML (``runner.botfile.yamlsafe``: positions, no surprises) and
``runner.botfile.humanize`` words the schema errors; each step is dispatched on its key so a
misspelt step gets a did-you-mean of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from runner.botfile import humanize
from runner.botfile.errors import ConfigError, Problem, did_you_mean
from runner.botfile.yamlsafe import Document, load_file
from runner.testing import flow_checks
from runner.testing.schema import CASE, STEP_COMPANIONS, STEPS, TOP

TEST_SUFFIX = ".test.yaml"
DEFAULT_TIMEOUT = 5.0


@dataclass
class Step:
    kind: str
    body: object
    line: int
    col: int
    path: tuple
    timeout: float | None = None

    def where(self, file: str) -> str:
        return f"{file}:{self.line}:{self.col}"


@dataclass
class Case:
    name: str
    line: int
    steps: list[Step] = field(default_factory=list)
    live: bool = True  # `live: false`: offline only (--live skips it)


@dataclass
class TestFile:
    file: str  # as given / shown
    bot: Path  # resolved next to the test file
    bot_shown: str
    cases: list[Case]
    doc: Document

    __test__ = False  # not a pytest class


def _report(doc: Document, problems: list, base: tuple, found) -> None:
    for rel, message, hint, at_key in found:
        problems.append(doc.problem(base + tuple(rel), message, hint, key=at_key))


def load_test_file(path, display: str | None = None) -> TestFile:
    """Load and check one test file (its shape only; ``check_against_bot`` checks what needs the bot)."""
    display = display or str(path)
    doc = load_file(path, display)
    data = doc.data
    hint = "a test file has 'bot: FILE' and 'cases:'; see 'lkrun new NAME' for a starter"
    if data is None:
        raise ConfigError(doc.problem((), "the file is empty", hint))
    if not isinstance(data, dict):
        raise ConfigError(doc.problem((), "a test file must be a mapping with 'bot:' and 'cases:'", hint))
    problems: list[Problem] = []
    _report(doc, problems, (), humanize.validate(TOP, data, "test file"))
    cases, names = [], {}
    for index, item in enumerate(data.get("cases") if isinstance(data.get("cases"), list) else []):
        where = ("cases", index)
        if not isinstance(item, dict):
            problems.append(doc.problem(where, f"case {index + 1}: expected a mapping with 'name:' and 'steps:', "
                                               f"got {humanize.describe(item)}"))
            continue
        _report(doc, problems, where, humanize.validate(CASE, item, f"case {index + 1}"))
        name = item.get("name") if isinstance(item.get("name"), str) else f"case {index + 1}"
        if name in names:
            problems.append(doc.problem(where + ("name",), f"a second case named '{name}' (the first is at "
                                                           f"line {names[name]})", "give each case its own name"))
        names[name] = doc.where(where)[0]
        case = Case(name, doc.where(where)[0], live=item.get("live") is not False)
        steps = item.get("steps") if isinstance(item.get("steps"), list) else []
        if not steps and isinstance(item.get("steps"), list):
            problems.append(doc.problem(where + ("steps",), f"case '{name}' has no steps"))
        for number, raw in enumerate(steps):
            step = _step(doc, problems, where + ("steps", number), raw)
            if step is not None:
                case.steps.append(step)
        cases.append(case)
    if any(p.severity == "error" for p in problems):
        raise ConfigError(problems)
    bot_path = (Path(path).parent / data["bot"])
    shown = str(Path(display).parent / data["bot"])
    return TestFile(display, bot_path, shown, cases, doc)


def _step(doc: Document, problems: list, path: tuple, raw) -> Step | None:
    keys = list(STEPS)
    if not isinstance(raw, dict) or not raw:
        problems.append(doc.problem(path, f"a step must be one of {', '.join(keys)}, got {humanize.describe(raw)}",
                                    "write each step as '- KEY: VALUE', e.g. '- join: {id: ada, name: Ada}'"))
        return None
    kinds = [k for k in raw if k in STEPS]
    for key in raw:
        if key not in STEPS and key not in STEP_COMPANIONS:
            guess = did_you_mean(key, keys + list(STEP_COMPANIONS))
            problems.append(doc.problem(path + (key,), f"unknown step '{key}'{guess}",
                                        None if guess else "steps: " + ", ".join(keys), key=True))
    if len(kinds) > 1:
        problems.append(doc.problem(path + (kinds[1],), f"one step per '- ' item: '{kinds[0]}' and '{kinds[1]}' "
                                                        "are in the same item", "put a '- ' before each step", key=True))
    if not kinds:
        if all(k in STEP_COMPANIONS for k in raw):
            problems.append(doc.problem(path, "this step has only 'timeout:'; it belongs beside 'expect:'"))
        return None
    kind = kinds[0]
    body = raw[kind]
    _report(doc, problems, path + (kind,), humanize.validate(STEPS[kind], body, kind))
    timeout = raw.get("timeout")
    _report(doc, problems, path + ("timeout",), humanize.validate(STEP_COMPANIONS["timeout"], timeout, "timeout")
            if "timeout" in raw else [])
    if "timeout" in raw and kind != "expect":
        problems.append(doc.problem(path + ("timeout",), f"'timeout' goes with 'expect', not '{kind}'", key=True))
    if kind == "expect" and isinstance(body, dict):
        timeout = body.get("timeout", timeout)
        body = {k: v for k, v in body.items() if k != "timeout"}
        if not body:
            problems.append(doc.problem(path + (kind,), "expect: say what to expect (say, send, state, ...)"))
    line, col = doc.where(path + (kind,), key=True)
    return Step(kind, body, line, col, path, float(timeout) if isinstance(timeout, (int, float)) else None)


def check_against_bot(test: TestFile, spec) -> list[Problem]:
    """What a step asks of the bot that the bot cannot do (an llm step for a bot without an llm, ...)."""
    doc, problems = test.doc, []
    has = {s.kind for s in spec.pipeline}
    tools = [t.name for t in spec.tools] + flow_checks.function_names(spec)  # a flow's functions too
    for case in test.cases:
        for step in case.steps:
            body = step.body if isinstance(step.body, dict) else {}
            if step.kind == "say" and "stt" not in has:
                problems.append(doc.problem(step.path + ("say",), f"{test.bot_shown} has no stt stage, so it cannot "
                                            "hear a 'say' step", "use 'chat' or 'send' for a bot without ears",
                                            key=True))
            if step.kind == "llm" and "llm" not in has:
                problems.append(doc.problem(step.path + ("llm",), f"{test.bot_shown} has no llm stage", key=True))
            call = body.get("call") if step.kind == "llm" else body.get("llm_called") if step.kind == "expect" else None
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, str) and function not in tools:
                where = step.path + (step.kind, "call" if step.kind == "llm" else "llm_called", "function")
                kind = "tool or flow function" if getattr(spec, "flow", None) is not None else "tool"
                problems.append(doc.problem(where, f"the bot has no {kind} '{function}'{did_you_mean(function, tools)}",
                                            ("its tools: " + ", ".join(tools)) if tools else
                                            f"{test.bot_shown} has no tools: section"))
    return problems + flow_checks.check_steps(test, spec)  # expect: {node: NAME}

"""Run test files offline: find them, check the bot, run each case in virtual time, collect results."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from runner.botfile.errors import ConfigError, Problem
from runner.testing import clock, expect
from runner.testing.load import DEFAULT_TIMEOUT, TEST_SUFFIX, Case, Step, TestFile, check_against_bot, load_test_file
from runner.testing.offline import OfflineBot, StepFailed


@dataclass
class CaseResult:
    name: str
    line: int
    failure: expect.Failure | None = None
    seconds: float = 0.0
    virtual: float = 0.0

    @property
    def passed(self) -> bool:
        return self.failure is None


@dataclass
class FileResult:
    file: str
    bot: str
    cases: list[CaseResult] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class Outcome:
    files: list[FileResult] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)  # test-file (and bot-file) errors: exit 2

    @property
    def passed(self) -> int:
        return sum(c.passed for f in self.files for c in f.cases)

    @property
    def failed(self) -> int:
        return sum(not c.passed for f in self.files for c in f.cases)

    def exit_code(self) -> int:
        return 2 if any(p.severity == "error" for p in self.problems) or not self.files else \
            1 if self.failed else 0


def find_test_files(paths: list[str]) -> tuple[list[Path], list[Problem]]:
    """Test files as given, folders as their *.test.yaml files, a bot file as its sibling NAME.test.yaml."""
    files, problems = [], []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.glob(f"*{TEST_SUFFIX}") if p.is_file())
            if not found:
                problems.append(Problem(raw, 1, 1, f"no {TEST_SUFFIX} test files in this folder", severity="warning"))
            files.extend(found)
        elif path.name.endswith(TEST_SUFFIX):
            files.append(path) if path.exists() else problems.append(Problem(raw, 1, 1, "file not found"))
        elif path.exists():
            sibling = path.with_name(path.name.rsplit(".", 1)[0] + TEST_SUFFIX)
            if sibling.exists():
                files.append(sibling)
            else:
                problems.append(Problem(raw, 1, 1, f"this bot has no test file {sibling}",
                                        f"write one: a '{sibling.name}' with 'bot: {path.name}' and 'cases:'"))
        else:
            problems.append(Problem(raw, 1, 1, "file not found"))
    return list(dict.fromkeys(files)), problems


def load_all(files: list[Path], environ=None) -> tuple[list[tuple[TestFile, object]], list[Problem]]:
    """(test file, bot spec) pairs ready to run, and the problems of the others."""
    from runner.botfile.check import check_file
    ready, problems = [], []
    for path in files:
        try:
            test = load_test_file(path)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        env = test.doc.data.get("env") or {}
        try:
            spec = check_file(test.bot, allow_missing_env=True, display=test.bot_shown,
                              environ={**(os.environ if environ is None else environ), **env})
        except ConfigError as exc:
            if any(p.message == "file not found" for p in exc.problems):
                problems.append(test.doc.problem(("bot",), f"bot file {test.bot_shown} not found",
                                                 "'bot:' is relative to the test file's folder"))
            else:
                problems.extend(exc.problems)
            continue
        found = check_against_bot(test, spec)
        if found:
            problems.extend(found)
            continue
        ready.append((test, spec))
    return ready, problems


async def run_case(test: TestFile, spec, case: Case) -> CaseResult:
    started, result = time.perf_counter(), CaseResult(case.name, case.line)
    bot = OfflineBot(spec)
    begin = bot.loop.time()
    marks = {"run": 0, "record": 0, "step": 0}
    try:
        for step in case.steps:
            failure = await run_step(bot, test, step, marks)
            if failure is not None:
                result.failure = failure
                break
    except clock.BusyBot as exc:
        result.failure = expect.Failure(f"{test.file}", "the case", "the bot to finish its work", [str(exc)])
    finally:
        await bot.close()
    result.seconds = time.perf_counter() - started
    result.virtual = bot.loop.time() - begin
    return result


def _shown(step: Step) -> str:
    return f"{step.kind}: {expect.show_value(step.body)}"


async def run_step(bot: OfflineBot, test: TestFile, step: Step, marks: dict):
    where = step.where(test.file)
    if step.kind != "expect":
        marks["step"] = len(bot.effects.records)
    try:
        if step.kind in ("join", "leave", "send", "chat", "press"):
            await getattr(bot, step.kind)(step.body)
        elif step.kind == "say":
            await bot.say(step.body, where)
        elif step.kind == "wait":
            await bot.advance_until(bot.loop.time() + float(step.body))
        elif step.kind == "llm":
            bot.answers.append((step.body, where))
        elif step.kind == "http":
            bot.http_answers.append(step.body or {})
        elif step.kind == "expect":
            return await expect_step(bot, step, where, marks)
        await bot.settle()
    except StepFailed as exc:
        return expect.Failure(where, _shown(step), f"{step.kind} can be done", [str(exc)])
    return None


async def expect_step(bot: OfflineBot, step: Step, where: str, marks: dict):
    body = dict(step.body)
    no = body.pop("no", None)
    timeout = step.timeout if step.timeout is not None else (0.0 if not body else DEFAULT_TIMEOUT)
    pending = list(body.items())

    def satisfied() -> bool:
        pending[:] = [(k, v) for k, v in pending if not expect.check(bot, k, v)]
        return not pending

    if not body and step.timeout:  # only 'no': let the time pass first
        await bot.advance_until(bot.loop.time() + timeout)
    elif not await bot.advance_until(bot.loop.time() + timeout, satisfied):
        key, value = pending[0]
        return expect.explain(bot, key, value, where, f"expect {key}", marks["run"], marks["record"],
                              marks["step"])
    if no:
        extra = expect.leftovers(bot, no)
        if extra:
            failure = expect.Failure(where, "expect no", f"nothing else of: {', '.join(no)}",
                                     [r.show() for r in extra[:5]], extra[0].origin() if extra[0].line else None)
            failure.ran = [expect.show_run(e) for e in bot.runs[marks["run"]:]][:8]
            return failure
    marks["run"], marks["record"] = len(bot.runs), len(bot.effects.records)
    return None


async def run_files(ready) -> list[FileResult]:
    from loguru import logger
    logger.disable("runner")  # the bot's own log lines are recorded effects here, not noise on stderr
    try:
        results = []
        for test, spec in ready:
            started = time.perf_counter()
            result = FileResult(test.file, test.bot_shown)
            for case in test.cases:
                result.cases.append(await run_case(test, spec, case))
            result.seconds = time.perf_counter() - started
            results.append(result)
        return results
    finally:
        logger.enable("runner")


def run_paths(paths: list[str], environ=None) -> Outcome:
    files, problems = find_test_files(paths)
    ready, found = load_all(files, environ)
    outcome = Outcome(problems=problems + found)
    with asyncio.Runner(loop_factory=clock.VirtualLoop) as runner:
        outcome.files = runner.run(run_files(ready))
    return outcome

"""Run test files offline: find them, check the bot, run each case in virtual time, collect results."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from runner.botfile.errors import ConfigError, Problem
from runner.testing import clock, expect
from runner.testing.load import TEST_SUFFIX, Case, Step, TestFile, check_against_bot, load_test_file
from runner.testing.offline import OfflineBot, StepFailed


@dataclass
class CaseResult:
    name: str
    line: int
    failure: expect.Failure | None = None
    seconds: float = 0.0
    virtual: float = 0.0
    skipped: str | None = None  # why the case did not run (--live: it scripts offline-only answers)

    @property
    def passed(self) -> bool:
        return self.failure is None and self.skipped is None


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
        return sum(c.failure is not None for f in self.files for c in f.cases)

    @property
    def skipped(self) -> int:
        return sum(c.skipped is not None for f in self.files for c in f.cases)

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


async def run_case(test: TestFile, spec, case: Case, llm_url: str | None = None, live=None) -> CaseResult:
    """One case: offline (virtual time), or with ``live`` (a LiveKit server) in a real room."""
    started, result = time.perf_counter(), CaseResult(case.name, case.line)
    if live is not None:
        from runner.testing.live import LiveBot, skip_reason
        result.skipped = skip_reason(case)
        if result.skipped:
            return result
        bot = LiveBot(spec, live)
    elif getattr(spec, "flow", None) is not None:  # pipecat's FlowManager, no transport (flow_case.py)
        from runner.testing.flow_case import FlowBot
        bot = FlowBot(spec, llm_url)
    else:
        bot = OfflineBot(spec, llm_url)
    begin = bot.loop.time()
    marks = {"run": 0, "record": 0, "step": 0}
    try:
        if live is not None:
            await bot.start()
        for step in case.steps:
            failure = await run_step(bot, test, step, marks)
            if failure is not None:
                result.failure = failure
                break
    except clock.BusyBot as exc:
        result.failure = expect.Failure(f"{test.file}", "the case", "the bot to finish its work", [str(exc)])
    except Exception as exc:  # noqa: BLE001 - live: a room or a bot that failed is this case's failure
        if live is None:
            raise
        result.failure = expect.Failure(f"{test.file}:{case.line}", "the case", "the bot and the room to work",
                                        [f"{type(exc).__name__}: {exc}"])
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
        elif step.kind == "fail":
            bot.effects.script_failure(step.body, where)
        elif step.kind == "expect":
            return await expect_step(bot, step, where, marks)
        await bot.settle()
    except StepFailed as exc:
        return expect.Failure(where, _shown(step), f"{step.kind} can be done", [str(exc)])
    return None


async def expect_step(bot: OfflineBot, step: Step, where: str, marks: dict):
    body = dict(step.body)
    no = body.pop("no", None)
    timeout = step.timeout if step.timeout is not None else bot.expect_timeout(body)
    pending = list(body.items())

    def satisfied() -> bool:
        pending[:] = [(k, v) for k, v in pending if not expect.check(bot, k, v)]
        return not pending

    if not body and timeout:  # only 'no': let the time pass first
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


async def run_files(ready, llm_url: str | None = None, live=None) -> list[FileResult]:
    from loguru import logger
    quiet = ("runner", "pipecat") if live is not None else ("runner",)
    if os.environ.get("LKRUN_TEST_LOG"):  # the bot's log on stderr too, for a case that fails unexplained
        quiet = ()
    for name in quiet:  # the bot's own log lines are recorded effects here, not noise on stderr
        logger.disable(name)
    if live is not None:
        import logging
        import warnings
        logging.getLogger("livekit").setLevel(logging.ERROR)  # the SDK's notes on handles it dropped
        warnings.filterwarnings("ignore", message=".*HMAC key.*")  # the dev server's short key
    try:
        results = []
        for test, spec in ready:
            started = time.perf_counter()
            result = FileResult(test.file, test.bot_shown)
            for case in test.cases:
                result.cases.append(await run_case(test, spec, case, llm_url, live))
            result.seconds = time.perf_counter() - started
            results.append(result)
        return results
    finally:
        for name in quiet:
            logger.enable(name)


def run_paths(paths: list[str], environ=None, llm_url: str | None = None, live=None,
              only: list[str] | tuple = ()) -> Outcome:
    """Every case of the test files found in ``paths``: offline in virtual time, or with ``live``
    (a ``connect.endpoint.Server``) against the real bot in real rooms, in real time. ``only``:
    just the cases whose name contains one of these texts (any case)."""
    files, problems = find_test_files(paths)
    ready, found = load_all(files, environ)
    if only:
        wanted = [text.lower() for text in only]
        for test, _spec in ready:
            test.cases = [c for c in test.cases if any(w in c.name.lower() for w in wanted)]
        ready = [(test, spec) for test, spec in ready if test.cases]
        if not ready:
            found.append(Problem(paths[0] if paths else ".", 1, 1, f"no case named like {', '.join(only)}"))
    outcome = Outcome(problems=problems + found)
    with asyncio.Runner(loop_factory=None if live is not None else clock.VirtualLoop) as runner:
        outcome.files = runner.run(run_files(ready, llm_url, live))
    return outcome

"""Log masking: a secret registered once never reaches a sink, tracebacks and chained exceptions included."""

from __future__ import annotations

import io
import sys
import types

import pytest
from loguru import logger

from runner.runtime import logs

SECRET = "sk-proj-THIS-KEY-MUST-NEVER-PRINT"


@pytest.fixture
def sink():
    saved = set(logs._SECRETS)
    stream = io.StringIO()
    logs.setup(sink=stream)
    logs.register_secrets([SECRET])
    yield stream
    logs._SECRETS.clear()
    logs._SECRETS.update(saved)
    logger.remove()


def stage_crash():
    """What a `type: python` stage does when its service refuses the key."""
    raise ValueError(f"401 Unauthorized: incorrect API key provided: {SECRET}")


def test_the_message_is_masked(sink):
    logger.info(f"calling the LLM with {SECRET}")
    assert SECRET not in sink.getvalue() and "calling the LLM with ***" in sink.getvalue()


def test_an_exception_and_its_traceback_are_masked(sink):
    try:
        stage_crash()
    except ValueError as exc:
        logger.opt(exception=exc).error(f"stage crashed: {exc}")
        original = exc
    out = sink.getvalue()
    assert "Traceback (most recent call last)" in out and "in stage_crash" in out  # still a useful traceback
    assert "ValueError: 401 Unauthorized: incorrect API key provided: ***" in out
    assert SECRET not in out
    assert SECRET in str(original)  # the program's own exception is left alone


def test_chained_exceptions_and_notes_are_masked(sink):
    class KeyRejected(Exception):
        def __init__(self, key):
            super().__init__("rejected")
            self.key = key

        def __str__(self):
            return f"key {self.key} rejected"

    try:
        try:
            raise OSError(13, "Permission denied", f"/run/keys/{SECRET}")
        except OSError as inner:
            error = KeyRejected(SECRET)
            error.add_note(f"while sending {SECRET}")
            raise error from inner
    except KeyRejected:
        logger.exception("stage failed")
    out = sink.getvalue()
    assert SECRET not in out, out
    assert "The above exception was the direct cause" in out
    assert "key *** rejected" in out and "while sending ***" in out and "/run/keys/***" in out


def test_every_sink_gets_the_masked_exception(sink):
    """Other sinks (the JSON log lines of the worker) read record['exception'] themselves."""
    seen = []
    logger.add(lambda message: seen.append((str(message), repr(message.record["exception"].value))),
               format="{message}", diagnose=False, backtrace=False)
    try:
        stage_crash()
    except ValueError as exc:
        logger.opt(exception=exc).error("stage crashed")
    (formatted, value), = seen
    assert SECRET not in formatted and SECRET not in value
    assert value == "ValueError('401 Unauthorized: incorrect API key provided: ***')"


def test_an_exception_without_secrets_is_passed_through(sink):
    seen = []
    logger.add(lambda message: seen.append(message.record["exception"].value), format="{message}")
    error = RuntimeError("nothing to hide")
    logger.opt(exception=error).error("x")
    assert seen == [error]


def test_the_stream_masks_what_loguru_adds_around_the_message(sink):
    logger.bind(key=SECRET).opt(exception=RuntimeError(SECRET)).error("{}", "plain")
    assert SECRET not in sink.getvalue()
    stream = logs.MaskedStream(io.StringIO())
    stream.write(f"source line: api_key = '{SECRET}'\n")
    assert stream.stream.getvalue() == "source line: api_key = '***'\n"
    assert stream.isatty() is False


def test_a_custom_exception_keeps_its_type_when_masked(sink):
    class StageError(Exception):
        def __init__(self, key):
            super().__init__()
            self.key = key

        def __str__(self):
            return f"stage refused {self.key}"

    seen = []
    logger.add(lambda message: seen.append(message.record["exception"].value), format="{message}")
    error = StageError(SECRET)
    error.add_note(f"key was {SECRET}")
    logger.opt(exception=error).error("x")
    assert type(seen[0]) is StageError and str(seen[0]) == "stage refused ***"
    assert seen[0].__notes__ == ["key was ***"] and error.key == SECRET


def _third_party_module(monkeypatch):
    """A module named like pipecat's, logging with loguru's global logger as pipecat's modules do."""
    module = types.ModuleType("pipecat.lkrun_test_module")
    exec("from loguru import logger\n"
         "def chatter():\n    logger.info('setting the LLM up')\n    logger.warning('a retry')\n"
         "def failure():\n    logger.error('the LLM refused the key')\n"
         "def failure_with_options():\n    logger.opt(depth=0).error('with options')\n", module.__dict__)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return module


def test_third_party_chatter_costs_nothing_and_errors_still_print(sink, monkeypatch):
    module = _third_party_module(monkeypatch)
    logs.quiet_third_party()
    assert isinstance(module.logger, logs._ErrorsOnly)
    records = []
    logger.add(lambda message: records.append(message.record), level="DEBUG")  # a sink below INFO sees all
    module.chatter()
    assert records == []  # never built: not even a DEBUG sink receives them
    module.failure()
    module.failure_with_options()
    assert [(r["name"], r["function"], r["message"]) for r in records] == [
        ("pipecat.lkrun_test_module", "failure", "the LLM refused the key"),
        ("pipecat.lkrun_test_module", "failure_with_options", "with options")]
    assert "the LLM refused the key" in sink.getvalue() and "setting the LLM up" not in sink.getvalue()


def test_verbose_shows_third_party_chatter_from_its_own_module(monkeypatch):
    module = _third_party_module(monkeypatch)
    logs.setup(sink=io.StringIO())
    logs.quiet_third_party()  # patched while quiet, then the process is set up again with --verbose
    stream = io.StringIO()
    logs.setup(verbose=True, sink=stream)
    records = []
    logger.add(lambda message: records.append(message.record), level="DEBUG")
    try:
        module.chatter()
    finally:
        logger.remove()
    assert [(r["name"], r["function"], r["level"].name) for r in records] == [
        ("pipecat.lkrun_test_module", "chatter", "INFO"), ("pipecat.lkrun_test_module", "chatter", "WARNING")]
    assert "setting the LLM up" in stream.getvalue()


def test_verbose_leaves_third_party_loggers_alone(monkeypatch):
    module = _third_party_module(monkeypatch)
    logs.setup(verbose=True, sink=io.StringIO())
    try:
        logs.quiet_third_party()
        assert module.logger is logger
    finally:
        logger.remove()

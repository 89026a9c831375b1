"""Logging for the running process: short lines, no local variables, secrets masked.

loguru's defaults print local variables in tracebacks (``diagnose=True``), which would
leak API secrets; lkrun turns that off and masks every known secret value: in the message,
in the exception (its text, its notes and the exceptions chained to it, which every sink
formats) and, for lkrun's own sink, in the whole formatted output, traceback included.
"""

from __future__ import annotations

import copy
import sys
import warnings

from loguru import logger

from runner.botfile.env import mask

_SECRETS: set[str] = set()
_QUIET = {"on": False}  # third-party records below ERROR are shown nowhere (not --verbose)
THIRD_PARTY = ("pipecat", "livekit")


def register_secrets(values) -> None:
    _SECRETS.update(v for v in values if v and len(v) >= 3)


def _leaks(text: str) -> bool:
    return any(s in text for s in _SECRETS)


def _text(exc: BaseException) -> str:
    try:
        return f"{exc}\n{exc!r}\n" + "\n".join(map(str, getattr(exc, "__notes__", None) or ()))
    except Exception:  # a broken __str__: loguru prints a placeholder for it, nothing to mask
        return ""


def _stand_in(exc: BaseException) -> BaseException:
    """An exception that prints like ``exc`` with the secrets masked (for types whose text is not args)."""
    kind = type(exc)
    cls = type(kind.__name__, (Exception,), {"__module__": kind.__module__, "__qualname__": kind.__qualname__})
    return cls(mask(str(exc), _SECRETS))


def _copy(exc: BaseException) -> BaseException:
    try:
        return copy.copy(exc)
    except Exception:  # an __init__ with other arguments than args: build it without calling it
        clone = type(exc).__new__(type(exc), *exc.args)
        vars(clone).update(vars(exc))
        return clone


def _masked(exc: BaseException | None, memo: dict | None = None) -> BaseException | None:
    """``exc`` itself when nothing in it or its chain holds a secret; otherwise a masked copy."""
    memo = {} if memo is None else memo
    if exc is None or id(exc) in memo:
        return memo.get(id(exc), exc)  # (a cycle in the chain: the original, already being masked)
    memo[id(exc)] = exc
    memo[id(exc)] = _masked_one(exc, _masked(exc.__cause__, memo), _masked(exc.__context__, memo))
    return memo[id(exc)]


def _masked_one(exc: BaseException, cause, context) -> BaseException:
    leaks = _leaks(_text(exc))
    if not leaks and cause is exc.__cause__ and context is exc.__context__:
        return exc
    notes = [mask(str(n), _SECRETS) for n in getattr(exc, "__notes__", None) or ()]
    try:  # the same type, its text arguments and attributes masked
        clone = _copy(exc)
        clone.args = tuple(mask(a, _SECRETS) if isinstance(a, str) else a for a in exc.args)
        for name, value in list(vars(clone).items()):
            if isinstance(value, str):
                setattr(clone, name, mask(value, _SECRETS))
        if notes:
            clone.__notes__ = notes
    except Exception:
        clone = _stand_in(exc)
    if _leaks(_text(clone)):
        clone = _stand_in(exc)
    if notes:
        clone.__notes__ = notes
    clone.__traceback__, clone.__cause__, clone.__context__ = exc.__traceback__, cause, context
    clone.__suppress_context__ = exc.__suppress_context__
    return clone


def _patch(record) -> None:
    if not _SECRETS:
        return
    record["message"] = mask(record["message"], _SECRETS)
    for key, value in record["extra"].items():
        if isinstance(value, str):
            record["extra"][key] = mask(value, _SECRETS)
    if record["exception"] is not None:
        value = record["exception"].value
        masked = _masked(value) if isinstance(value, BaseException) else value
        if masked is not value:
            record["exception"] = record["exception"]._replace(value=masked)
        record["extra"]["masked"] = True


class MaskedStream:
    """A stream that masks every secret in what is written (the traceback's source lines too)."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> None:
        self.stream.write(mask(text, _SECRETS) if _SECRETS else text)

    def flush(self) -> None:
        if hasattr(self.stream, "flush"):
            self.stream.flush()

    def isatty(self) -> bool:
        try:
            return self.stream.isatty()
        except Exception:
            return False


def _filter(verbose: bool):
    def keep(record) -> bool:
        name = record["name"] or ""
        if not verbose and name.startswith(THIRD_PARTY):
            return record["level"].no >= 40  # third-party chatter: errors only
        return True
    return keep


def setup(verbose: bool = False, sink=None) -> None:
    """Configure loguru once for the process (call before importing pipecat)."""
    logger.remove()
    logger.configure(patcher=_patch)
    _QUIET["on"] = not verbose
    target = sink or sys.stderr
    if hasattr(target, "write"):
        target = MaskedStream(target)
    logger.add(target, level="DEBUG" if verbose else "INFO", diagnose=False, backtrace=False,
               colorize=None if sink is None else False, filter=_filter(verbose),
               format="<dim>{time:HH:mm:ss}</dim> <level>{level: <7}</level> {message}")
    warnings.filterwarnings("ignore", message=".*HMAC key.*")  # the dev server's short 'secret'
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="pipecat")


def _below_error(level: str):
    def call(self, message, *args, **kwargs):
        if not _QUIET["on"]:  # set up again with --verbose (tests do): the record, from the caller
            getattr(self._logger.opt(depth=1), level)(message, *args, **kwargs)
    call.__name__ = level
    return call


class _ErrorsOnly:
    """A third-party module's ``logger`` while lkrun shows only their errors: a call below ERROR
    returns at once. loguru builds every record at or above the lowest sink level (INFO) before
    the filter drops it: ~6 us each, paid by pipecat on every node transition and LLM run."""

    __slots__ = ("_logger",)

    def __init__(self, real):
        self._logger = real

    def __getattr__(self, name):  # error, exception, critical, opt, bind, log, ...: loguru's own
        return getattr(self._logger, name)

    trace, debug, info = _below_error("trace"), _below_error("debug"), _below_error("info")
    success, warning = _below_error("success"), _below_error("warning")


_ERRORS_ONLY = _ErrorsOnly(logger)


def quiet_third_party() -> None:
    """Give every loaded pipecat module the errors-only logger (modules loaded later keep loguru's,
    which is only slower). Call after a pipeline is built; cheap to repeat."""
    if not _QUIET["on"]:
        return
    for name, module in list(sys.modules.items()):
        if name.startswith(THIRD_PARTY) and getattr(module, "logger", None) is logger:
            module.logger = _ERRORS_ONLY

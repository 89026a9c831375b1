"""Logging for the running process: short lines, no local variables, secrets masked.

loguru's defaults print local variables in tracebacks (``diagnose=True``), which would
leak API secrets; lkrun turns that off and masks every known secret value.
"""

from __future__ import annotations

import sys
import warnings

from loguru import logger

from .env import mask

_SECRETS: set[str] = set()


def register_secrets(values) -> None:
    _SECRETS.update(v for v in values if v and len(v) >= 3)


def _patch(record) -> None:
    if _SECRETS:
        record["message"] = mask(record["message"], _SECRETS)
        if record["exception"] is not None:
            record["extra"]["masked"] = True


def _filter(verbose: bool):
    def keep(record) -> bool:
        name = record["name"] or ""
        if not verbose and (name.startswith("pipecat") or name.startswith("livekit")):
            return record["level"].no >= 40  # third-party chatter: errors only
        return True
    return keep


def setup(verbose: bool = False, sink=None) -> None:
    """Configure loguru once for the process (call before importing pipecat)."""
    logger.remove()
    logger.configure(patcher=_patch)
    logger.add(sink or sys.stderr, level="DEBUG" if verbose else "INFO", diagnose=False, backtrace=False,
               colorize=None if sink is None else False, filter=_filter(verbose),
               format="<dim>{time:HH:mm:ss}</dim> <level>{level: <7}</level> {message}")
    warnings.filterwarnings("ignore", message=".*HMAC key.*")  # the dev server's short 'secret'
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="pipecat")

"""Actions that wait for input: `wait_for` (an answer by speech, keypad, data or chat) and
`collect_digits` (keypad entry). The waiting itself is the runtime's (``runtime/waits.py``):
a run function only says what it waits for and reads what came."""

from __future__ import annotations

import re

from runner.botfile.actions import TEXT, _obj, action, templated
from runner.botfile.registry import StopRun

WAITABLE = ["user_said", "dtmf_event", "data_received", "chat_received", "participant_connected",
            "participant_left"]
SECONDS = templated({"type": "number", "exclusiveMinimum": 0, "maximum": 3600})
_ONE = {"event": {"enum": WAITABLE}, "match": {"type": "string", "description": "a regular expression"},
        "from": TEXT}
_NAME = {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}


def can_yield_digit(name: str, body) -> bool:
    """Whether this action (a wait) can leave a digit in ``wait.digit``."""
    if name == "collect_digits":
        return True
    if name != "wait_for" or not isinstance(body, dict):
        return False
    return "dtmf_event" in waited_events(body)


def waited_events(body: dict) -> list[str]:
    """The events a wait_for body waits for (as written; unknown or broken entries left out)."""
    options = body.get("any") if isinstance(body.get("any"), list) else [body]
    return [o["event"] for o in options if isinstance(o, dict) and isinstance(o.get("event"), str)]


def _check_wait_for(body: dict, report, context) -> None:
    if "event" in body and "any" in body:
        report(("any",), "wait_for takes either 'event:' or 'any:', not both",
               "wait for one event with 'event:', or for the first of several with 'any: [...]'")
    if "event" not in body and "any" not in body:
        report((), "wait_for needs 'event:' (what to wait for) or 'any:' (a list of them)",
               "for example: wait_for: {event: dtmf_event, timeout: 5}")
    options = [body] if "event" in body else (body.get("any") if isinstance(body.get("any"), list) else [])
    for index, option in enumerate(options):
        where = () if option is body else ("any", index)
        if not isinstance(option, dict):
            continue
        own = option.get("from") in (None, "") or str(option.get("from")).replace(" ", "") == "{{participant.id}}"
        if option.get("event") == "participant_left" and own and context.person:
            # a timer's run has no person: waiting for anyone to leave is fine there (unknown in a script)
            report(where + ("event",), "a run cannot wait for its own person to leave: it stops when they do",
                   "wait for someone else (from: ID), or put the actions under on: participant_left")
        if option.get("event") == "user_said" and "stt" not in context.capabilities:
            report(where + ("event",), "wait_for 'user_said' needs an stt stage in this bot: without one "
                                       "nobody's speech is heard, so the wait always times out",
                   "add an stt stage under pipeline: (for example '- stt: {type: whisper_stt}'), or wait for "
                   "dtmf_event, data_received or chat_received")
        pattern = option.get("match")
        if isinstance(pattern, str):
            try:
                re.compile(pattern)
            except re.error as exc:
                report(where + ("match",), f"invalid pattern: {exc.msg} (at position {exc.pos})",
                       "this is a Python regular expression: a literal ( ) [ ] . ? * + needs a backslash")


@action("wait_for", "pause this run until a person answers (speech, keypad, data or chat), or a timeout",
        _obj({**_ONE, "any": {"type": "array", "minItems": 1, "items": _obj(_ONE, ["event"])},
              "timeout": SECONDS, "continue_on_timeout": templated({"type": "boolean"}), "save_as": _NAME}),
        check=_check_wait_for,
        example='wait_for: {any: [{event: dtmf_event, match: "[12]"}, {event: user_said, match: "(?i)sales"}], '
                'timeout: 5, continue_on_timeout: true}')
async def _wait_for(run, body):
    options = body["any"] if body.get("any") else [body]
    matchers = [(o["event"], re.compile(o["match"]) if o.get("match") else None, _sender(run, o))
                for o in options]
    seen = await _wait(run, matchers, body.get("timeout"))
    run.wait = seen
    if body.get("save_as"):
        run.results[body["save_as"]] = seen
    run.show(waited=[o["event"] for o in options], got=seen.get("event"), timed_out=seen["timed_out"])
    if seen["timed_out"] and not body.get("continue_on_timeout"):
        raise StopRun(f"wait_for timed out after {body.get('timeout'):g} s")


@action("collect_digits", "collect keypad digits (count, or up to a terminator like #) with timeouts",
        _obj({"count": templated({"type": "integer", "minimum": 1, "maximum": 64}),
              "terminator": {"type": "string", "pattern": r"^[0-9*#]$",
                             "description": "one keypad key that ends the entry: 0-9, * or #"},
              "first_timeout": SECONDS, "timeout": SECONDS, "from": TEXT, "save_as": _NAME}, ["save_as"]),
        example='collect_digits: {count: 6, terminator: "#", timeout: 3, save_as: account}')
async def _collect_digits(run, body):
    sender = _sender(run, {"event": "dtmf_event", "from": body.get("from")})
    count, terminator = body.get("count"), body.get("terminator")
    digits, timed_out, who = "", False, None
    while count is None or len(digits) < count:
        seconds = body.get("first_timeout", 5) if not digits else body.get("timeout", 3)
        seen = await _wait(run, [("dtmf_event", None, sender)], seconds)
        if seen["timed_out"]:
            timed_out = True
            break
        who = seen.get("participant")
        digit = str(seen.get("digit") or "")
        if terminator and digit == terminator:
            break
        digits += digit
    run.results[body["save_as"]] = {"digits": digits, "timed_out": timed_out}
    # `wait` as after a wait_for: wait.digit holds the digits entered (None when none were)
    run.wait = {**timed_out_wait(), "event": "dtmf_event" if digits else None, "participant": who,
                "digit": digits or None, "timed_out": timed_out}
    run.show(digits=digits, timed_out=timed_out)


def timed_out_wait() -> dict:
    """What `wait` holds after a wait that timed out."""
    return {"event": None, "participant": None, "text": None, "digit": None, "message": {}, "timed_out": True}


async def _wait(run, matchers, timeout) -> dict:
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))):
        raise ValueError(f"timeout needs a number of seconds, got {timeout!r}")
    if run.waits is None:  # simulate: nothing arrives; the wait shows as its timeout
        if timeout is not None:
            await run.effects.wait(timeout)
        return timed_out_wait()
    seen = await run.waits.wait(matchers, timeout, run.effects)
    return timed_out_wait() if seen is None else seen


def _sender(run, option) -> str | None:
    """Whose input counts: `from:`, else the run's own person (anyone for a join, or in a timer run)."""
    if option.get("from"):
        return str(option["from"])
    if option.get("event") == "participant_connected":
        return None
    return run.participant

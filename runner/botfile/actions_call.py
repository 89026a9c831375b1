"""Actions: call (registered into runner.botfile.actions.ACTIONS when actions is imported).

Phone-call control through LiveKit's server API (``livekit.api``): ``dial`` calls a number
through a SIP trunk, ``transfer`` hands a caller to another number, ``hangup`` removes a
participant; ``end: {hangup: true}`` (in actions.py) deletes the room. Each is one server
call made with the bot's API key and secret, so a bot that has only ``livekit.token`` cannot
use them: that is a validation error here, not a failure during a call.
"""

from __future__ import annotations

import re

from runner.botfile.actions import TEXT, _obj, action, templated
from runner.botfile.templates import is_template

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
TRANSFER_SCHEMES = ("tel:", "sip:")
NAME = {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}
# in the schema, so the editor flags them too; a template is checked when it has been filled in
PHONE_NUMBER = {"type": "string", "pattern": r"^(\+[1-9][0-9]{6,14}|[\s\S]*\{\{[\s\S]*\}\}[\s\S]*)$",
                "description": "write a phone number in international form: + and the country code, digits "
                               "only, e.g. \"+15551234567\""}
TRANSFER_TO = {"type": "string", "pattern": "^(tel|sip):",
               "description": 'write tel: or sip: first, e.g. "tel:+15551234567" or "sip:sales@pbx.example.com"'}
CREDENTIALS_HINT = ("add 'api_key: ${LIVEKIT_API_KEY}' and 'api_secret: ${LIVEKIT_API_SECRET}' under livekit: "
                    "(a join token cannot make server calls)")


def uses_call_control(name: str, body: dict) -> bool:
    """Whether this action makes a LiveKit server call that needs the API key and secret."""
    if name in ("dial", "transfer", "hangup"):
        return True
    return name == "end" and isinstance(body, dict) and body.get("hangup") not in (None, False)


def token_only(bot: dict | None) -> bool:
    """A bot file whose livekit: section has a join token but not both the API key and secret."""
    livekit = bot.get("livekit") if isinstance(bot, dict) else None
    if not isinstance(livekit, dict) or not livekit.get("token"):
        return False
    return not (livekit.get("api_key") and livekit.get("api_secret"))


def check_credentials(name: str, body: dict, report, context, at: tuple = ()) -> None:
    """Call control with only livekit.token is an error at the action (or at ``at`` in its body)."""
    if uses_call_control(name, body) and token_only(context.file):
        report(at, f"'{name}{': {hangup: true}' if name == 'end' else ''}' needs the LiveKit API key and "
                   "secret, but this bot has only livekit.token", CREDENTIALS_HINT)


def _check_dial(body: dict, report, context) -> None:
    check_credentials("dial", body, report, context)  # the number's form is in the schema (PHONE_NUMBER)


def _check_transfer(body: dict, report, context) -> None:
    to = body.get("to")
    if isinstance(to, str) and is_template(to) and not to.startswith(TRANSFER_SCHEMES):
        # a literal is checked by the schema (TRANSFER_TO); a template must start with the scheme
        report(("to",), f"transfer: 'to' must start with tel: or sip: written in the file, got '{to}'",
               f'write the scheme before the template, e.g. to: "tel:{to}"')
    check_credentials("transfer", body, report, context)


def _check_hangup(body: dict, report, context) -> None:
    check_credentials("hangup", body, report, context)


def check_end(body: dict, report, context) -> None:
    """`end: {hangup: true}` deletes the room: the same rule (the end action in actions.py uses it)."""
    check_credentials("end", body, report, context, ("hangup",))


def _who(run, body, name: str) -> str:
    """The participant an action is about: the one written, else the run's own."""
    who = body.get("participant")
    who = run.participant if who in (None, "") else str(who)
    if not who:
        form = "transfer: {to: ..., participant: ID}" if name == "transfer" else "hangup: ID"
        raise ValueError(f"{name} needs a participant: this event has none, so write {form}")
    return who


def _seconds(value, name: str, low: float, high: float) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"{name} must be a number of seconds between {low:g} and {high:g}, got {value!r}")
    return float(value)


@action("dial", "call a phone number through a SIP trunk; the callee joins this room (needs LiveKit SIP)",
        _obj({"number": PHONE_NUMBER, "trunk": TEXT, "identity": TEXT, "name": TEXT,
              "wait_until_answered": templated({"type": "boolean"}),
              "timeout": templated({"type": "number", "minimum": 1, "maximum": 600}),
              "save_as": NAME}, ["number", "trunk"]),
        check=_check_dial,
        example='dial: {number: "+15551234567", trunk: ST_abc123, wait_until_answered: true, save_as: call}')
async def _dial(run, body):
    number = str(body["number"]).strip()
    if not E164.match(number):
        raise ValueError(f"dial: '{number}' is not a phone number in international form (+ and digits)")
    result = await run.effects.dial(number, str(body["trunk"]), str(body.get("identity") or "") or None,
                                    str(body.get("name") or "") or None, bool(body.get("wait_until_answered")),
                                    _seconds(body.get("timeout"), "dial timeout", 1, 600))
    if body.get("save_as"):
        run.results[body["save_as"]] = result


@action("transfer", "transfer a phone caller to another number (tel:) or SIP address (sip:)",
        _obj({"to": TRANSFER_TO, "participant": TEXT, "play_dialtone": templated({"type": "boolean"})}, ["to"]),
        shorthand="to", check=_check_transfer, example='transfer: "tel:+15551234567"')
async def _transfer(run, body):
    to = str(body["to"]).strip()
    if not to.startswith(TRANSFER_SCHEMES):
        raise ValueError(f"transfer: 'to' must start with tel: or sip:, got '{to}'")
    await run.effects.transfer(_who(run, body, "transfer"), to, bool(body.get("play_dialtone")))


@action("hangup", "hang up on a participant: remove them from the room (default: the run's participant)",
        _obj({"participant": TEXT}), shorthand="participant", check=_check_hangup,
        example='hangup: "{{ participant.id }}"')
async def _hangup(run, body):
    await run.effects.hangup(_who(run, body, "hangup"))

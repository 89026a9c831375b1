"""The test file format as JSON Schema: one sub-schema per step and per ``expect`` key.

The loader (``load.py``) dispatches on each step's key and checks the body against that key's
own schema (specific messages, did-you-mean); ``build()`` assembles the same pieces into
``schemas/test.schema.json`` for editors, and a test keeps the committed copy current.
Write it with: ``.venv/bin/python -m runner.testing.schema --write``.
"""

from __future__ import annotations

import json
import sys

SCHEMA_ID = "https://lkrun.dev/schemas/test.schema.json"

TEXT = {"type": "string"}
ID = {"type": "string", "minLength": 1, "description": "a participant identity"}
IDS = {"anyOf": [ID, {"type": "array", "items": ID, "minItems": 1}]}
DATA = {"anyOf": [TEXT, {"type": "object"}], "description": "text, or a JSON object (fields compared one by one)"}
MATCHER = {"type": "object", "additionalProperties": False, "minProperties": 1, "maxProperties": 1,
           "properties": {"contains": TEXT, "regex": {"type": "string", "format": "regex"}, "exact": TEXT}}
_HAS_MATCHER = {"anyOf": [{"required": [key]} for key in ("contains", "regex", "exact")]}


def text_or(other: dict | None = None, doc: str = "the exact text, or {contains: TEXT}, {regex: PATTERN} "
                                               "or {exact: TEXT}") -> dict:
    """Text, a {contains|regex|exact} matcher, or (``other``) a mapping of fields; if/then, not anyOf,
    so a mistake gets the message of the form it was meant as."""
    mapping = MATCHER if other is None else {"if": _HAS_MATCHER, "then": MATCHER, "else": other}
    return {"if": {"type": "object"}, "then": mapping, "else": TEXT, "description": doc}


TEXT_MATCH = text_or()
SECONDS = {"type": "number", "minimum": 0, "maximum": 86400}


def _obj(properties: dict, required=(), doc: str = "", **extra) -> dict:
    schema = {"type": "object", "additionalProperties": False, "properties": properties,
              "required": list(required), **extra}
    return {**schema, "description": doc} if doc else schema


# step key -> (schema of its body, doc)
STEPS = {
    "join": {"anyOf": [ID, _obj({"id": ID, "name": TEXT, "metadata": TEXT}, ["id"])],
             "description": "a person joins the room (participant_connected, first_participant_joined)"},
    "leave": {"anyOf": [ID, _obj({"id": ID, "reason": TEXT}, ["id"])],
              "description": "a person leaves (participant_disconnected, participant_left)"},
    "send": _obj({"from": ID, "data": DATA}, ["from", "data"],
                 "a person sends a data message (data_received, and app_message for a JSON object)"),
    "chat": _obj({"from": ID, "text": TEXT}, ["from", "text"], "a person sends a chat message (chat_received)"),
    "say": _obj({"from": ID, "text": TEXT}, ["from", "text"],
                "a user turn: offline, its final transcript (user_said, or the LLM when nothing matches)"),
    "press": _obj({"from": ID, "digits": {"type": "string", "pattern": r"^[0-9*#A-Da-d]+$",
                                          "description": "keypad digits: 0-9, *, #, A-D"}},
                  ["from", "digits"], "a person presses keys on a phone keypad (one dtmf_event per digit)"),
    "wait": {**SECONDS, "description": "let virtual time pass (timer and idle triggers fire); no real waiting"},
    "llm": {"anyOf": [_obj({"reply": TEXT}, ["reply"]), _obj({"call": _obj(
        {"function": TEXT, "args": {"type": "object"}}, ["function"])}, ["call"])],
        "description": "the scripted answer to the next LLM request: {reply: TEXT} or {call: {function, args}}"},
    "http": _obj({"status": {"type": "integer", "minimum": 100, "maximum": 599}, "json": {},
                  "text": TEXT}, (), "the answer to the bot's next http request (offline nothing is sent; "
                  "without this step the answer is status 200 with no body); a status of 400 or more fails it"),
    "fail": {"if": {"type": "object"}, "then": _obj({"action": {"enum": None}, "message": TEXT}, ["action"]),
             "else": {"enum": None},
             "description": "the bot's next action of this kind fails, as a transfer with no SIP trunk or a full "
                            "line would: its run stops and the error event fires ({action, message}, or the action "
                            "alone); offline only"},
    "expect": None,  # filled in below
}

NO_KINDS = ["send", "chat", "say", "play", "log", "http", "mute", "unmute", "dtmf", "metadata",
            "llm_append", "llm_called", "transfer", "hangup", "dial", "ended", "error", "stopped"]

# expect key -> schema
EXPECT = {
    "send": _obj({"to": {"anyOf": [IDS, {"const": "everyone"}]}, "data": DATA}, (),
                 "a data message was sent (to: one id, a list, or everyone; data: fields compared)"),
    "chat": text_or(_obj({"to": {"anyOf": [IDS, {"const": "everyone"}]}, "text": TEXT_MATCH}),
                    "a chat message was sent: its text, a matcher, or {to, text}"),
    "say": {**TEXT_MATCH, "description": "the bot spoke: the exact text, or {contains|regex|exact}"},
    "play": {**TEXT, "description": "an audio file was played (its name)"},
    "log": text_or(_obj({"message": TEXT_MATCH, "level": {"enum": ["debug", "info", "warning", "error"]}}),
                   "a log line was written: its message, a matcher, or {message, level}"),
    "http": text_or(_obj({"url": TEXT_MATCH, "method": TEXT, "json": {"type": "object"}}),
                    "a web request was made (offline it is recorded, never sent): its url, a matcher, "
                    "or {url, method, json}"),
    "mute": {**ID, "description": "the bot stopped listening to this person"},
    "unmute": {**ID, "description": "the bot listens to this person again"},
    "dtmf": {**TEXT, "description": "the bot sent these keypad tones"},
    "transfer": _obj({"participant": ID, "to": TEXT_MATCH}, (), "a phone call was transferred (to: tel:... or sip:...)"),
    "hangup": {**ID, "description": "the bot hung up on this person (removed them from the room)"},
    "dial": _obj({"number": TEXT, "trunk": TEXT}, (), "the bot dialled a phone number"),
    "metadata": {**TEXT_MATCH, "description": "the bot set its participant metadata"},
    "state": _obj({"room": {"type": "object"}, "participant": {
        "type": "object", "additionalProperties": {"type": "object"}}}, (),
        "state now holds these values (room: {...}, participant: {ID: {...}}); other keys may exist too"),
    "llm_append": {**TEXT_MATCH, "description": "an llm action added a message with this content to the context "
                                                "(with a flow, also a node's role_message and task messages as "
                                                "filled in for the LLM)"},
    "llm_called": _obj({"function": TEXT, "args": {"type": "object"}, "result": {"anyOf": [TEXT, {"type": "object"}]}},
                       ["function"], "the LLM called this tool (args: fields compared; result: what the tool returned)"),
    "node": {"type": "string", "minLength": 1, "description": "a bot with a flow is in this node now (the node "
                                                               "pipecat's FlowManager entered last)"},
    "ended": {"type": "boolean", "description": "true: the session ended (end); false: it has not"},
    "error": {**TEXT_MATCH, "description": "a run failed (text: part of the message, or {contains|regex|exact})"},
    "stopped": {**TEXT_MATCH, "description": "a run ended at a stop action with this reason (stop: REASON)"},
    "no": {"type": "array", "minItems": 1, "items": {"enum": NO_KINDS},
           "description": "nothing else of these kinds happened (besides what earlier expects matched)"},
    "timeout": {**SECONDS, "description": "how long (virtual seconds) to wait for it; default 5"},
}
# actions a fail: step can make fail (the ones that reach a room or the outside world)
FAILABLE = ["say", "play", "send", "chat", "http", "dtmf", "dial", "transfer", "hangup", "set_metadata", "mute",
            "unmute"]
STEPS["fail"]["else"]["enum"] = STEPS["fail"]["then"]["properties"]["action"]["enum"] = FAILABLE
STEPS["expect"] = {"type": "object", "minProperties": 1, "additionalProperties": False,
                   "properties": EXPECT, "description": "what the bot did (waits up to timeout, virtual time)"}
STEP_COMPANIONS = {"timeout": EXPECT["timeout"]}

CASE = _obj({"name": {"type": "string", "minLength": 1}, "steps": {"type": "array"},
             "live": {"type": "boolean", "description": "false: run this case only offline (lkrun test --live "
                                                        "skips it, e.g. when it depends on exact wording of speech)"}},
            ["name", "steps"])
TOP = _obj({"$schema": TEXT, "bot": {"type": "string", "minLength": 1,
                                      "description": "the bot file, relative to this test file"},
            "description": TEXT, "env": {"type": "object", "additionalProperties": {"type": "string"},
                                         "description": "environment values for the bot's ${VAR}s in these tests"},
            "cases": {"type": "array", "minItems": 1}}, ["bot", "cases"])


def _step_item() -> dict:
    keys = list(STEPS) + list(STEP_COMPANIONS)
    return {"type": "object", "minProperties": 1, "propertyNames": {"enum": keys},
            "properties": {**{k: {"$ref": f"#/$defs/steps/{k}"} for k in STEPS}, **STEP_COMPANIONS},
            "description": "one step: " + ", ".join(STEPS)}


def build() -> dict:
    case = json.loads(json.dumps(CASE))
    case["properties"]["steps"]["items"] = {"$ref": "#/$defs/step"}
    top = json.loads(json.dumps(TOP))
    top["properties"]["cases"]["items"] = case
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
            "title": "lkrun test file", **top,
            "$defs": {"step": _step_item(), "steps": STEPS}}


def render() -> str:
    return json.dumps(build(), indent=1, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    from runner.botfile.schema import main as schema_main
    return schema_main(argv, render(), "test.schema.json")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

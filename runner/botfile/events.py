"""The events a bot can react to under ``on:``, with the template variables each one adds."""

from __future__ import annotations

from runner.botfile.registry import EventDef, Registry
from runner.botfile.templates import LEAF

EVENTS: Registry[EventDef] = Registry("event")

# kind: standard, sip, agent, ingress, egress, connector or bridge (LiveKit's participant kind);
# attributes: the participant's LiveKit attributes (a phone caller's sip.phoneNumber, sip.callStatus, ...)
PARTICIPANT = {"participant": {"id": LEAF, "name": LEAF, "metadata": LEAF, "kind": LEAF, "attributes": LEAF,
                               "state": LEAF}}

COMMON_DOC = {
    "bot": "name, identity, room",
    "vars": "the file's vars",
    "state": "room-scoped values set by `set`",
    "room": "name, participants (identities, bot excluded)",
    "now": "the current time (ISO 8601, UTC)",
    "event": "name",
    "results": "responses saved by `http` (save_as) earlier in this run",
    "wait": "what the last wait_for of this run saw: event, participant, text, digit, message, timed_out",
}


def common_variables(vars_shape: dict) -> dict:
    return {
        "bot": {"name": LEAF, "identity": LEAF, "room": LEAF},
        "vars": vars_shape,
        "state": LEAF,
        "room": {"name": LEAF, "participants": LEAF},
        "now": LEAF,
        "event": {"name": LEAF},
        "results": LEAF,
        "wait": {"event": LEAF, "participant": LEAF, "text": LEAF, "digit": LEAF, "message": LEAF,
                 "timed_out": LEAF},
    }


def _event(name, doc, variables=None, **kw) -> EventDef:
    return EVENTS.register(EventDef(name=name, doc=doc, variables=variables or {}, **kw))


def _lk(name, doc, variables=None, **kw):
    return _event(name, doc, variables, pipecat=f"on_{name}", **kw)


_TRIGGER_DO = {"type": "array", "description": "actions to run"}

_lk("connected", "the bot joined the room (again after each reconnect)")
_lk("disconnected", "the bot left the room or lost its connection")
_lk("before_disconnect", "the bot is about to leave (sending data still works)")
_lk("participant_connected", "a person joined (once per identity per session)", PARTICIPANT,
    per_participant=True, once="participant")
_lk("participant_disconnected", "a person left the room", PARTICIPANT, per_participant=True, leave=True)
_lk("participant_left", "a person left the room (after participant_disconnected)",
    {**PARTICIPANT, "reason": LEAF}, per_participant=True, leave=True)
_lk("first_participant_joined", "the first person joined (once per session)", PARTICIPANT,
    per_participant=True, once="session")
_lk("audio_track_subscribed", "the bot started receiving a person's audio", PARTICIPANT,
    per_participant=True)
_lk("audio_track_unsubscribed", "the bot stopped receiving a person's audio", PARTICIPANT,
    per_participant=True)
_lk("video_track_subscribed", "the bot started receiving a person's video", PARTICIPANT,
    per_participant=True)
_lk("video_track_unsubscribed", "the bot stopped receiving a person's video", PARTICIPANT,
    per_participant=True)
_lk("data_received", "a data message arrived (data: the text; message: the JSON object or {})",
    {**PARTICIPANT, "data": LEAF, "message": LEAF}, per_participant=True, untrusted=True, activity=True)
_lk("app_message", "a data message whose payload is a JSON object arrived",
    {**PARTICIPANT, "message": LEAF}, per_participant=True, untrusted=True, activity=True)
_lk("dtmf_event", "a phone keypad digit arrived (SIP participants)",
    {**PARTICIPANT, "digit": LEAF}, per_participant=True, untrusted=True, activity=True)
_lk("active_speaker_changed", "the loudest speaker changed", PARTICIPANT, per_participant=True)
_lk("call_state_updated", "never fired by LiveKit (accepted for compatibility)", {"state": LEAF},
    from_args=lambda state, *_: (None, {"state": state}),
    warning="LiveKit never fires call_state_updated; these actions will not run")
_event("chat_received", "a chat message arrived (LiveKit text stream on topic lk.chat)",
       {**PARTICIPANT, "text": LEAF}, per_participant=True, untrusted=True, activity=True)
_event("participant_attributes_changed", "a participant's LiveKit attributes changed (changed: the new values; "
       "a phone caller's sip.callStatus)", {**PARTICIPANT, "changed": LEAF}, per_participant=True, untrusted=True)
_event("pipeline_started", "the bot's pipeline started (once per generation)")
_event("idle", "nobody spoke for a while: steps escalate (after: seconds), speech resets them",
       kind="triggers", trigger={
           "type": "object", "additionalProperties": False, "required": ["after", "do"],
           "properties": {"after": {"type": "number", "exclusiveMinimum": 0}, "do": _TRIGGER_DO}})
_event("user_said", "a user turn's final transcript matched a pattern (first match wins)",
       {**PARTICIPANT, "text": LEAF, "groups": LEAF}, kind="triggers", needs="stt", trigger={
           "type": "object", "additionalProperties": False, "required": ["match", "do"],
           "properties": {"match": {"type": "string", "format": "regex"}, "do": _TRIGGER_DO,
                          "continue": {"type": "boolean"}}}, per_participant=True, activity=True)
_event("user_turn_started", "a person started speaking (a user turn began)", PARTICIPANT, needs="vad",
       activity=True)
_event("user_turn_stopped", "a person's turn ended", {**PARTICIPANT, "text": LEAF}, needs="vad", activity=True)
_event("bot_started_speaking", "the bot's audio started", needs="tts", bot_speech=True)
_event("bot_stopped_speaking", "the bot's audio stopped", needs="tts", bot_speech=True)
_event("timer", "a timer fired (every: seconds repeats, after: seconds once per session)",
       kind="triggers", trigger={
           "type": "object", "additionalProperties": False, "required": ["do"],
           "properties": {"every": {"type": "number", "exclusiveMinimum": 0},
                          "after": {"type": "number", "minimum": 0}, "do": _TRIGGER_DO}})
_event("reloaded", "this bot file was edited and the new version is live", {"changes": LEAF})
_FLOW = {"flow": {"node": LEAF, "previous": LEAF}}
_event("node_entered", "the flow entered a node (flow.node; flow.previous: the node it came from, or null)", _FLOW)
_event("flow_ended", "the flow reached end_conversation (the session ends after it)", _FLOW)
_event("error", "an action or stage failed (the run that failed has stopped)",
       {"error": {"message": LEAF, "event": LEAF, "action": LEAF, "line": LEAF, "file": LEAF}})
_event("session_ended", "the session is over and the bot has left the room (its record is written): "
       "post it to a webhook with http",
       {"session": {"id": LEAF, "transcript": LEAF, "summary": LEAF, "record": LEAF, "audio": LEAF,
                    "state": LEAF}}, after_leaving=True)

MODES = ("queued", "parallel", "restart", "single")


def variables_for(event: EventDef, vars_shape: dict) -> dict:
    return {**common_variables(vars_shape), **event.variables}


def where_available() -> dict[str, str]:
    """variable -> 'only in a, b' for event-specific variables (better error messages)."""
    found: dict[str, list[str]] = {}
    for event in EVENTS:
        for name in event.variables:
            found.setdefault(name, []).append(event.name)
    return {name: "only in " + ", ".join(names) for name, names in found.items()}

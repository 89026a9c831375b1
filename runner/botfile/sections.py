"""The top-level sections of a bot file (a registry) and the JSON sub-schemas of the built-in ones."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from runner.botfile.registry import Registry, SectionDef


VERSION = 1

SECTIONS: Registry[SectionDef] = Registry("top-level key")


def _builtin(name: str, doc: str, live: bool = False) -> None:
    SECTIONS.register(SectionDef(name=name, doc=doc, live=live, builtin=True))


_builtin("version", "file format version (1)")
_builtin("name", "the bot's name (defaults to the file name)", live=True)
_builtin("description", "what the bot does, for people", live=True)
_builtin("livekit", "room, identity and credentials")
_builtin("params", "pipecat LiveKitParams (every field, same names)")
_builtin("session", "conversation settings: interruptions, turn ending, idle, max duration")
_builtin("pipeline", "the stages in the order audio flows: vad, stt, llm, tts")
_builtin("vars", "constants for templates ({{ vars.NAME }})", live=True)
_builtin("tools", "LLM function calls whose handlers are action lists")
_builtin("on", "events -> actions", live=True)
_builtin("flow", "a conversation flow: pipecat's FlowConfig nodes and functions, handlers as action lists", live=True)
_builtin("scripts", "named action lists that the run action starts, with fields as inputs", live=True)


def top_level_doc() -> dict[str, str]:
    return {entry.name: entry.doc for entry in SECTIONS}


def live_keys() -> set[str]:
    """Top-level keys that reload applies in place (the bot stays in its room)."""
    return {entry.name for entry in SECTIONS if entry.live}


def schemas_dir() -> Path:
    """The schemas folder: inside the installed package, or at the repository root."""
    packaged = Path(__file__).resolve().parents[1] / "schemas"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "schemas"


@lru_cache(maxsize=1)
def livekit_params() -> dict:
    return json.loads((schemas_dir() / "livekit_params.json").read_text())


def params_schema() -> dict:
    data = livekit_params()
    return {"type": "object", "additionalProperties": False, "properties": data["properties"],
            "description": "pipecat LiveKitParams; object-typed fields are not supported in YAML: "
                           + ", ".join(sorted(data["unsupported"]))}


LIVEKIT = {
    "type": "object", "additionalProperties": False, "required": ["room"],
    "properties": {
        "url": {"type": "string", "pattern": r"^(wss?|https?)://[^\s/]+",
                "description": "LiveKit server URL; falls back to LIVEKIT_URL, then the embedded dev server"},
        "room": {"type": "string", "minLength": 1, "maxLength": 256},
        "identity": {"type": "string", "minLength": 1, "maxLength": 256,
                     "description": "the bot's participant identity (defaults to the bot's name)"},
        "name": {"type": "string", "description": "display name"},
        "metadata": {"type": "string"},
        "api_key": {"type": "string", "description": "secret: only ${VAR} (default LIVEKIT_API_KEY)"},
        "api_secret": {"type": "string", "description": "secret: only ${VAR} (default LIVEKIT_API_SECRET)"},
        "token": {"type": "string", "description": "secret: a ready-made join token, only ${VAR}"},
        "kind": {"enum": ["standard", "agent"], "default": "standard",
                 "description": "participant kind of the bot's token in run mode: agent makes LiveKit's "
                                "front ends treat it as the voice assistant, but LiveKit closes a room whose "
                                "only participant is an agent (the default, standard, keeps an empty room open)"},
    },
}

SESSION_DEFAULTS = {
    "interruptions": True,
    "vad_stop_secs": 0.5,
    "turn_stop": "speech_timeout",
    "speech_timeout": 0.3,
    "idle_timeout": None,
    "max_duration": None,
    "rtvi": False,
    "metrics": False,
    "rate_limit": 10,
    "rate_burst": 50,
    "transcripts": True,
    "record": None,
    "record_audio": False,
}

RECORD = {
    "anyOf": [
        {"type": "string", "minLength": 1, "description": "the folder for session records"},
        {"type": "object", "additionalProperties": False, "required": ["dir"], "properties": {
            "dir": {"type": "string", "minLength": 1,
                    "description": "the folder for session records (relative: to the bot file's folder)"},
            "keep_days": {"type": "number", "exclusiveMinimum": 0,
                          "description": "delete this bot's records older than this many days"},
            "max_files": {"type": "integer", "minimum": 1,
                          "description": "keep at most this many of this bot's records (the newest)"},
            "redact": {"type": "array", "items": {"type": "string", "format": "regex"},
                       "description": "regular expressions: matching text is blanked in records and in "
                                      "session_ended's variables (card numbers, dates of birth)"}}},
        {"type": "null"},
    ],
    "description": "write one JSON record per session into this folder (see schemas/record.schema.json)",
}

SESSION = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "interruptions": {"type": "boolean", "default": True,
                          "description": "a person speaking interrupts the bot"},
        "vad_stop_secs": {"type": "number", "minimum": 0.05, "maximum": 5, "default": 0.5,
                          "description": "silence that ends a stretch of speech"},
        "turn_stop": {"enum": ["speech_timeout", "smart_turn"], "default": "speech_timeout",
                      "description": "how a user turn ends: a fixed timeout (predictable) or pipecat's smart-turn model"},
        "speech_timeout": {"type": "number", "minimum": 0, "maximum": 10, "default": 0.3,
                           "description": "extra seconds of silence before the turn ends (turn_stop: speech_timeout)"},
        "idle_timeout": {"type": ["number", "null"], "exclusiveMinimum": 0,
                         "description": "end the session after this many seconds with no activity (default: never)"},
        "max_duration": {"type": ["number", "null"], "exclusiveMinimum": 0,
                         "description": "end the session after this many seconds"},
        "rtvi": {"type": "boolean", "default": False, "description": "pipecat RTVI messages (for Pipecat clients)"},
        "metrics": {"type": "boolean", "default": False},
        "rate_limit": {"type": "number", "exclusiveMinimum": 0, "default": 10,
                       "description": "event runs per second per participant, sustained, before runs are dropped"},
        "rate_burst": {"type": "integer", "minimum": 1, "default": 50,
                       "description": "runs a participant may send at once above rate_limit (a UI sending a "
                                      "burst of messages never hits the limit)"},
        "transcripts": {"type": "boolean", "default": True,
                        "description": "publish both sides' transcripts on lk.transcription and the bot's "
                                       "lk.agent.state attribute, as LiveKit Agents does (bots with audio)"},
        "record": RECORD,
        "record_audio": {"type": "boolean", "default": False,
                         "description": "with record: also write the call's audio as a stereo WAV beside the "
                                        "record (caller left, bot right)"},
    },
}

VARS = {"type": "object", "description": "constants for templates"}

ON_EVENT_FORM = {
    "type": "object", "additionalProperties": False, "required": ["do"],
    "properties": {"mode": {"enum": ["queued", "parallel", "restart", "single"]}, "do": {"type": "array"}},
}


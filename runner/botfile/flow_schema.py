"""JSON Schema of `flow:`: pipecat 1.14's FlowConfig shape plus lkrun's additions (marked).

Structure only; references between nodes, handlers and templates are checked in flows.py.
Kept by hand beside pipecat's models (pipecat/flows/config.py); tests/test_flows_check.py
compares the pipecat part with `FlowConfig.model_json_schema()` so a pipecat upgrade that adds
or renames a key fails there.
"""

from __future__ import annotations

NAME = {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"}
PYTHON = {"type": "string", "pattern": r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
          "description": "lkrun: a Python handler, 'package.module:function' (for programmers)"}
LKRUN_HANDLER_KEYS = ("parameters", "do", "result", "python")  # plus description on a non-transition_only function

HANDLER = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "description": {"type": "string", "description": "when the LLM should call it (the tool's description)"},
        "parameters": {"type": "object",
                       "description": "the arguments, as a JSON Schema object: exactly the tool schema the LLM sees"},
        "do": {"type": "array", "description": "lkrun actions to run; the call's arguments are `args`"},
        "result": {"description": "what the LLM gets back: a template, or a mapping when "
                                  "transition_to: {field: ...} reads one of its fields (default: done)"},
        "python": PYTHON,
    },
}

BRANCH = {
    "type": "object", "additionalProperties": False, "required": ["field", "cases"],
    "properties": {
        "field": {"type": "string", "description": "the key of the function's result that picks the case"},
        "cases": {"type": "object", "minProperties": 1, "additionalProperties": {"type": "string"},
                  "description": "result value -> node"},
        "default": {"type": "string", "description": "the node when no case matches (default: stay)"},
    },
}

FUNCTION = {
    "type": "object", "additionalProperties": False, "required": ["name"],
    "properties": {
        "name": {**NAME, "description": "the function name the LLM calls (and the handler's name)"},
        "transition_only": {"type": "boolean", "description": "only moves to transition_to; needs a description"},
        "description": {"type": "string", "description": "what the function is for, for the LLM"},
        "transition_to": {"anyOf": [{"type": "string"}, BRANCH],
                          "description": "the node to go to after the call, or {field, cases, default}"},
        **{key: HANDLER["properties"][key] for key in LKRUN_HANDLER_KEYS},
    },
}

ACTION = {
    "type": "object", "required": ["type"],
    "properties": {
        "type": {"type": "string", "description": "tts_say, end_conversation, function, or a custom type with a handler"},
        "handler": {"type": "string", "description": "the handler (under flow.handlers) for function and custom types"},
        "text": {"type": "string", "description": "tts_say: what to say (a template)"},
    },
}

MESSAGE = {
    "type": "object", "additionalProperties": False, "required": ["role", "content"],
    "properties": {"role": {"type": "string", "description": "developer, system, user or assistant"},
                   "content": {"type": "string", "description": "the text (a template)"}},
}

NODE = {
    "type": "object", "additionalProperties": False, "required": ["task_messages"],
    "properties": {
        "role_message": {"type": "string", "description": "the bot's role on entering this node (a template); "
                                                          "replaces the llm stage's system_instruction"},
        "task_messages": {"type": "array", "items": MESSAGE, "description": "what the LLM should do at this node"},
        "functions": {"type": "array", "items": FUNCTION, "description": "the functions offered at this node"},
        "pre_actions": {"type": "array", "items": ACTION, "description": "run before the LLM answers"},
        "post_actions": {"type": "array", "items": ACTION, "description": "run after the LLM answers"},
        "context_strategy": {"enum": ["append", "reset"],
                             "description": "append (keep the conversation) or reset (start the context over)"},
        "respond_immediately": {"type": "boolean", "description": "the LLM answers on entering (default true)"},
        "on_enter": {"type": "array", "description": "lkrun: actions run on entering, before the messages are rendered"},
        "on_exit": {"type": "array", "description": "lkrun: actions run when the flow leaves this node"},
    },
}

LKRUN_NODE_KEYS = ("on_enter", "on_exit")
LKRUN_TOP_KEYS = ("handlers", "state")

STATE = {"type": "object", "description": "lkrun: initial values of the flow state (= the room's state)"}
HANDLERS = {"type": "object", "propertyNames": NAME, "additionalProperties": HANDLER,
            "description": "lkrun: the handlers functions and actions name, as action lists"}

CONFIG = {
    "type": "object", "additionalProperties": False, "required": ["initial_node", "nodes"],
    "properties": {
        "initial_node": {"type": "string", "description": "the node the flow starts in"},
        "nodes": {"type": "object", "minProperties": 1, "additionalProperties": NODE, "propertyNames": NAME,
                  "description": "the nodes, by name"},
        "global_functions": {"type": "array", "items": FUNCTION, "description": "functions offered at every node"},
        "handlers": HANDLERS,
        "state": STATE,
    },
}

FILE_FORM = {
    "type": "object", "additionalProperties": False, "required": ["file"],
    "properties": {
        "file": {"type": "string", "minLength": 1,
                 "description": "a Pipecat Flows YAML file (relative to the bot file's folder)"},
        "handlers": HANDLERS,
        "state": STATE,
    },
}

SECTION = {
    "description": "a conversation flow: pipecat's FlowConfig (nodes, functions, transitions) with handlers "
                   "that are action lists; inline, a file name, or {file, handlers, state}",
    "anyOf": [{"type": "string", "minLength": 1, "description": "a Pipecat Flows YAML file"}, FILE_FORM, CONFIG],
}


def editor_schema(action_ref: dict) -> dict:
    """The section for bot.schema.json, with every `do`/`on_enter`/`on_exit` list typed as actions."""
    import copy
    schema = copy.deepcopy(SECTION)
    items = {"type": "array", "items": action_ref}

    def typed(obj):
        if isinstance(obj, dict):
            for key, value in obj.items():
                if key in ("do", "on_enter", "on_exit") and isinstance(value, dict) and value.get("type") == "array":
                    obj[key] = {**items, "description": value.get("description", "")}
                else:
                    typed(value)
        elif isinstance(obj, list):
            for value in obj:
                typed(value)
    typed(schema)
    return schema

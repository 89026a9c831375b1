"""`tools:` — LLM function calls whose handlers are action lists.

A non-programmer's voice bot transfers a call, looks something up over `http`, or ends
the call when the LLM decides. The call's arguments are `args`; `result:` (a template)
is what the LLM receives back.
"""

from __future__ import annotations

import asyncio

from . import humanize
from .check_actions import ActionChecker
from .errors import did_you_mean
from .spec import ToolSpec
from .events import PARTICIPANT
from .templates import LEAF

TOOL = {
    "type": "object", "additionalProperties": False, "required": ["name", "do"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$",
                 "description": "the function name the LLM calls"},
        "description": {"type": "string", "description": "when the LLM should call it"},
        "parameters": {"type": "object", "description": "the arguments, as a JSON Schema object"},
        "do": {"type": "array", "description": "actions to run; the call's arguments are `args`"},
        "result": {"type": "string", "description": "template of what the LLM gets back (default: done)"},
    },
}
SCHEMA = {"type": "array", "items": TOOL}


def check_tools(checker, value, variables: dict) -> tuple:
    if value is None:
        return ()
    if not isinstance(value, list):
        checker.report(("tools",), "tools: expected a list of tools",
                       "for example: tools: [{name: end_call, description: End the call, do: [{end: {}}]}]")
        return ()
    if "llm" not in checker.capabilities:
        checker.report(("tools",), "tools need an llm stage in pipeline:", key=True)
    tools, names = [], set()
    for index, item in enumerate(value):
        path = ("tools", index)
        for rel, message, hint, at_key in humanize.validate(TOOL, item, "tool"):
            checker.report(path + rel, message, hint, key=at_key)
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        if item["name"] in names:
            checker.report(path + ("name",), f"a second tool named '{item['name']}'")
        names.add(item["name"])
        parameters = item.get("parameters") or {"type": "object", "properties": {}}
        if not isinstance(parameters, dict):
            continue  # reported by the schema above
        _check_parameters(checker, parameters, path + ("parameters",))
        scope = {**variables, **PARTICIPANT, "args": _args_shape(parameters)}  # participant: the last speaker
        actions = ActionChecker(checker, scope, f"tool '{item['name']}'").actions(item.get("do"), path + ("do",))
        result = item.get("result", "done")
        if isinstance(result, str):
            from .templates import is_template
            if is_template(result):
                checker.check_template(result, path + ("result",), scope)
            result = checker.compile(result, path + ("result",))
        tools.append(ToolSpec(item["name"], item.get("description") or "", dict(parameters), actions, result))
    return tuple(tools)


def _args_shape(parameters):
    properties = parameters.get("properties") if isinstance(parameters, dict) else None
    return {str(k): LEAF for k in properties} if isinstance(properties, dict) else LEAF


def _check_parameters(checker, parameters: dict, path: tuple) -> None:
    import jsonschema
    if parameters.get("type", "object") != "object":
        checker.report(path + ("type",), "tool parameters must be a JSON Schema of type object")
        return
    try:
        jsonschema.Draft202012Validator.check_schema(parameters)
    except jsonschema.SchemaError as exc:
        checker.report(path + tuple(exc.absolute_path), f"tool parameters are not a valid JSON Schema: {exc.message}")
    for name in parameters.get("required", []) or []:
        if name not in (parameters.get("properties") or {}):
            checker.report(path + ("required",), f"required argument '{name}' is not in properties"
                                                 f"{did_you_mean(name, parameters.get('properties') or {})}")


def tools_schema(tools):
    """pipecat's ToolsSchema for the LLM context."""
    from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
    from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
    return ToolsSchema(standard_tools=[
        FunctionSchema(name=t.name, description=t.description or t.name,
                       properties=dict(t.parameters.get("properties") or {}),
                       required=list(t.parameters.get("required") or [])) for t in tools])


def register_tools(llm, bot) -> None:
    """Each tool call runs its actions in the bot's engine and returns the rendered result."""
    from .engine import Run
    from .templates import TemplateError, render_value

    for tool in bot.spec.tools:
        async def handler(params, _name=tool.name):
            current = next((t for t in bot.spec.tools if t.name == _name), None)  # reload-safe
            args = dict(params.arguments or {})
            if current is None:
                await params.result_callback({"error": f"tool {_name} no longer exists"})
                return
            speaker = getattr(bot, "last_speaker", None)
            info = bot.state.names.get(speaker, {}) if speaker else {}
            variables = {"args": args, "participant": {"id": speaker, "name": info.get("name"),
                                                       "metadata": info.get("metadata")}}
            run = Run(bot.spec, bot.state, bot.effects, f"tool:{_name}", variables, speaker,
                      bot.participants(), bot.trace)
            # the run belongs to the caller: if they leave, it stops and the LLM hears why
            task = bot.dispatcher.own(speaker, asyncio.ensure_future(run.execute(current.actions)))
            try:
                entry = await asyncio.shield(task)
            except asyncio.CancelledError:
                if not task.cancelled():
                    task.cancel()
                    raise
                await params.result_callback({"error": "the caller left"})
                return
            if entry.error:
                await params.result_callback({"error": entry.error.split("error in action", 1)[-1].strip()})
                return
            try:
                context = {**run.context(), "args": args}
                result = render_value(current.result, context)
            except TemplateError as exc:
                result = {"error": str(exc)}
            await params.result_callback(result if isinstance(result, (dict, list)) else {"result": result})
        llm.register_function(tool.name, handler)

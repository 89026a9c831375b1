"""The actions a bot can run: each entry is its schema, its doc line and how it runs.

A run function receives the run context (``engine.Run``) and the rendered body; the
context's ``effects`` is the live room (``bot.LiveEffects``) or ``simulate``'s printer.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from runner.botfile.registry import ActionDef, Registry, templated

ACTIONS: Registry[ActionDef] = Registry("action")

TEXT = {"type": "string"}
IDS = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]}
ACTION_LIST = {"type": "array", "items": {"$ref": "#/$defs/action"}}
HTTP_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]


def _obj(properties: dict, required=(), **extra) -> dict:
    return {"type": "object", "additionalProperties": False, "properties": properties,
            "required": list(required), **extra}


def action(name, doc, body, **kw):
    def decorate(run):
        return ACTIONS.register(ActionDef(name=name, doc=doc, body=body, run=run, **kw))
    return decorate


@action("say", "speak text (needs a tts stage)", _obj({"text": TEXT}, ["text"]),
        shorthand="text", needs="tts", example='say: "Hello {{ participant.name }}!"')
async def _say(run, body):
    await run.effects.say(str(body["text"]))


@action("play", "play a WAV/OGG file from the bot's folder", _obj({"file": TEXT}, ["file"]),
        shorthand="file", needs="audio_out", example="play: sounds/chime.wav")
async def _play(run, body):
    await run.effects.play(run.resolve_file(str(body["file"])))


@action("send", "send a data message (to one id, a list of ids, or everyone)",
        _obj({"data": {"anyOf": [TEXT, {"type": "object"}]}, "to": IDS,
              "after_speech": templated({"type": "boolean"})}, ["data"]),
        example='send: {to: "{{ participant.id }}", data: {text: pong}}')
async def _send(run, body):
    await run.effects.send(body["data"], run.recipients(body.get("to")), bool(body.get("after_speech")))


@action("chat", "send a chat message (LiveKit text stream on lk.chat)",
        _obj({"text": TEXT, "to": IDS}, ["text"]), shorthand="text", example="chat: Hi there!")
async def _chat(run, body):
    await run.effects.chat(str(body["text"]), run.recipients(body.get("to")))


@action("llm", "append messages to the LLM context and optionally run it (needs an llm stage)",
        _obj({"append": {"type": "array", "items": _obj(
            {"role": {"enum": ["user", "developer", "assistant", "system"]}, "content": TEXT},
            ["role", "content"])}, "run": templated({"type": "boolean"})}),
        needs="llm", example='llm: {append: [{role: developer, content: "Greet the user"}], run: true}')
async def _llm(run, body):
    await run.effects.llm(list(body.get("append") or []), bool(body.get("run", False)))


@action("interrupt", "stop the bot's current speech", _obj({}), example="interrupt: {}")
async def _interrupt(run, body):
    await run.effects.interrupt()


def _check_end(body: dict, report, context) -> None:
    from runner.botfile.actions_call import check_end  # hangup: true is call control (needs the API key)
    check_end(body, report, context)


@action("end", "end the session (after queued speech, or now: true; hangup: true removes everyone)",
        _obj({"now": templated({"type": "boolean"}), "hangup": templated({"type": "boolean"})}),
        check=_check_end, example="end: {}")
async def _end(run, body):
    await run.effects.end(now=bool(body.get("now", False)), hangup=bool(body.get("hangup", False)))


@action("mute", "stop receiving a participant's audio", _obj({"participant": TEXT}, ["participant"]),
        shorthand="participant", example='mute: "{{ participant.id }}"')
async def _mute(run, body):
    await run.effects.mute(str(body["participant"]), True)


@action("unmute", "receive a participant's audio again", _obj({"participant": TEXT}, ["participant"]),
        shorthand="participant", example='unmute: "{{ participant.id }}"')
async def _unmute(run, body):
    await run.effects.mute(str(body["participant"]), False)


@action("set_metadata", "set the bot's participant metadata", _obj({"metadata": TEXT}, ["metadata"]),
        shorthand="metadata", example='set_metadata: "busy"')
async def _set_metadata(run, body):
    await run.effects.set_metadata(str(body["metadata"]))


@action("set", "remember values in state (scope: room or participant)",
        _obj({"scope": {"enum": ["room", "participant"]}, "values": {"type": "object"}}, ["values"]),
        example="set: {values: {count: \"{{ (state.count or 0) + 1 }}\"}}")
async def _set(run, body):
    scope = body.get("scope", "room")
    run.set_state(scope, dict(body["values"]))
    run.effects.state_changed(scope, run.participant, run.masked(dict(body["values"])))


@action("log", "write a line to lkrun's log",
        _obj({"message": TEXT, "level": {"enum": ["debug", "info", "warning", "error"]}}, ["message"]),
        shorthand="message", example='log: "{{ participant.id }} said {{ data }}"')
async def _log(run, body):
    await run.effects.log(str(body["message"]), body.get("level", "info"))


@action("wait", "pause this run for some seconds",
        _obj({"seconds": templated({"type": "number", "minimum": 0, "maximum": 3600})}, ["seconds"]),
        shorthand="seconds", example="wait: 1.5")
async def _wait(run, body):
    seconds = body["seconds"]
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= 3600:
        raise ValueError(f"wait needs a number of seconds between 0 and 3600, got {seconds!r}")
    await run.effects.wait(seconds)


@action("if", "run 'then' when the condition is true, else 'else'", _obj({"condition": TEXT}, ["condition"]),
        shorthand="condition", companions={"then": ACTION_LIST, "else": ACTION_LIST},
        nested=(("then",), ("else",)), conditions=(("condition",),), example='if: "{{ data == \'ping\' }}"\nthen: [...]\nelse: [...]')
async def _if(run, body):
    condition = run.render(body["condition"])
    branch = "then" if run.truthy(condition) else "else"
    run.show(condition=condition, branch=branch)
    await run.run_actions(run.node.branch(branch))


_BRANCH = _obj({"when": TEXT, "do": ACTION_LIST}, ["when", "do"])


@action("choose", "run the first branch whose 'when' is true, else 'default'",
        _obj({"branches": {"type": "array", "items": _BRANCH, "minItems": 1}}, ["branches"]),
        shorthand="branches", companions={"default": ACTION_LIST},
        nested=(("choose", "*", "do"), ("default",)), conditions=(("branches", "*", "when"),),
        example='choose:\n  - when: "{{ digit == \'1\' }}"\n    do: [...]\ndefault: [...]')
async def _choose(run, body):
    node = run.node
    for index, branch in enumerate(body["branches"]):
        when = run.render(branch["when"])
        if run.truthy(when):
            run.show(branch=index + 1, when=when)
            await run.run_actions(node.branch("choose", index, "do"))
            return
    run.show(branch="default")
    await run.run_actions(node.branch("default"))


def _check_http(body: dict, report, context) -> None:
    url = body.get("url")
    if not isinstance(url, str):
        return
    head = url.split("{", 1)[0] if ("{{" in url or "{%" in url) else url
    try:
        parts = urlsplit(head)
    except ValueError:
        report(("url",), "this http url is not a valid web address", "write it like https://api.example.com/path")
        return
    if parts.scheme not in ("http", "https") or not parts.netloc or ("{" in url and "/" not in
                                                                    head[len(parts.scheme) + 3:]):
        report(("url",), "the scheme and host of an http url must be written literally in the file",
               "template only the path and query, e.g. https://api.example.com/items/{{ data }}")


@action("http", "call a web API; the response is results.<save_as> for later actions",
        _obj({"url": TEXT, "method": {"enum": HTTP_METHODS}, "json": {"type": "object"},
              "headers": {"type": "object", "additionalProperties": TEXT},
              "timeout": templated({"type": "number", "exclusiveMinimum": 0, "maximum": 60}),
              "save_as": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}}, ["url"]),
        check=_check_http, example='http: {url: "https://example.com/hook", method: POST, json: {who: "{{ participant.id }}"}}')
async def _http(run, body):
    result = await run.effects.http(run.safe_url(body["url"]), body.get("method", "GET"),
                                    body.get("json"), body.get("headers") or {}, float(body.get("timeout", 10)))
    if body.get("save_as"):
        run.results[body["save_as"]] = result


@action("dtmf", "send phone keypad tones", _obj({"digits": {"type": "string", "pattern": r"^[0-9*#A-Da-d]+$"}},
                                                ["digits"]), shorthand="digits", example='dtmf: "123#"')
async def _dtmf(run, body):
    await run.effects.dtmf(str(body["digits"]))


# more actions, one module per family (each registers with @action above)
from runner.botfile import actions_call, actions_control, actions_wait  # noqa: E402,F401

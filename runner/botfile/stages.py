"""Pipeline stages: the kinds a user lists, with types from pipecat's own service catalog.

The catalog is generated into ``schemas/stages.catalog.json`` (see ``catalog_gen``), so
checking a pipeline never imports pipecat.
"""

from __future__ import annotations

from types import MappingProxyType

from runner.botfile import catalog, humanize, templates
from runner.botfile.errors import did_you_mean
from runner.botfile.spec import StageSpec

KINDS = {
    "vad": "voice activity detection: notices when someone speaks",
    "stt": "speech to text",
    "llm": "a language model that writes the replies",
    "tts": "text to speech",
}
ORDER = list(KINDS)
PYTHON = "python"
PYTHON_SCHEMA = {
    "type": "object", "required": ["type", "factory"],
    "properties": {"type": {"const": PYTHON},
                   "factory": {"type": "string", "pattern": r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
                               "description": "package.module:function returning a pipecat FrameProcessor"}},
}


def _kind_of(value) -> str | None:
    try:
        return catalog.stage_entry(str(value))["kind"]
    except KeyError:
        return None


def types_for(kind: str) -> list[str]:
    return catalog.stage_types(kind) + [PYTHON]


def check_pipeline(checker, value, variables: dict) -> list[StageSpec]:
    if value is None:
        return []
    if not isinstance(value, list):
        checker.report(("pipeline",), "pipeline: expected a list of stages",
                       "write one stage per '- ', e.g. '- stt: {type: whisper_stt}'")
        return []
    found: list[StageSpec] = []
    for index, item in enumerate(value):
        path = ("pipeline", index)
        if not isinstance(item, dict) or len(item) != 1:
            checker.report(path, "each stage is written as 'kind: {type: ...}' with one kind per '- '",
                           "kinds: " + ", ".join(KINDS))
            continue
        kind, body = next(iter(item.items()))
        if kind not in KINDS:
            checker.report(path + (kind,), f"unknown stage kind '{kind}'{did_you_mean(kind, KINDS)}",
                           "kinds: " + ", ".join(KINDS), key=True)
            continue
        if any(s.kind == kind for s in found):
            checker.report(path + (kind,), f"a second '{kind}' stage; a pipeline has at most one of each kind",
                           key=True)
            continue
        if found and ORDER.index(kind) < ORDER.index(found[-1].kind):
            checker.report(path + (kind,), f"'{kind}' must come before '{found[-1].kind}' "
                                           f"(stages go in the order audio flows: {', '.join(ORDER)})", key=True)
        stage = _check_stage(checker, kind, body, path + (kind,), variables)
        if stage is not None:
            found.append(stage)
    return found


def _check_stage(checker, kind, body, path, variables) -> StageSpec | None:
    if isinstance(body, str):
        body = {"type": body}
    if not isinstance(body, dict) or "type" not in body:
        checker.report(path, f"stage '{kind}' needs a type, e.g. '{kind}: {{type: {catalog.stage_types(kind)[0]}}}'",
                       f"see 'lkrun stages' ({kind} types: {', '.join(types_for(kind)[:6])}, ...)")
        return None
    stage_type = body["type"]
    options = types_for(kind)
    if stage_type not in options:
        other = _kind_of(stage_type)
        if other:
            message = f"'{stage_type}' is a {other} type, not a {kind} type"
        else:
            message = f"unknown {kind} type {humanize.describe(stage_type)}{did_you_mean(str(stage_type), options)}"
        checker.report(path + ("type",), message, f"see 'lkrun stages {kind}'")
        return None
    schema = PYTHON_SCHEMA if stage_type == PYTHON else catalog.stage_body_schema(stage_type)
    where = f"{kind} stage '{stage_type}'"
    for rel, message, hint, at_key in humanize.validate(schema, body, where):
        if at_key and rel[:1] != ("settings",) and rel and rel[-1] in catalog.deprecated_params(stage_type):
            new_place = catalog.deprecated_params(stage_type)[rel[-1]] or "settings"
            message, hint = f"'{rel[-1]}' is deprecated in {where}; it moved to {new_place}", \
                f"write it under settings: ({new_place})"
        checker.report(path + rel, message, hint, key=at_key)
    for param, new_place in catalog.deprecated_params(stage_type).items() if stage_type != PYTHON else ():
        if param in body:
            checker.report(path + (param,), f"'{param}' is deprecated in {where}; write it as {new_place or 'settings'}",
                           key=True, severity="warning")
    if stage_type != PYTHON:
        _check_api_key(checker, stage_type, body, path)
    for rel, text in templates.template_strings(body):
        checker.check_template(text, path + rel, variables)
    compiled = checker.compile(dict(body), path)
    if compiled is None:
        return None
    return StageSpec(kind, stage_type, MappingProxyType(compiled), checker.doc.where(path)[0])


def _check_api_key(checker, stage_type: str, body: dict, path: tuple) -> None:
    info = catalog.stage_entry(stage_type)  # one entry: load_catalog() deep-copies all of them
    param = info.get("params", {}).get("api_key")
    if not param or "api_key" in body or not info.get("env_prefix"):
        return
    variable = f"{info['env_prefix']}_API_KEY"
    if checker.env.lookup(variable) is None and param.get("required", False):
        checker.report(path, f"{stage_type} needs an API key: set {variable} or add 'api_key: ${{{variable}}}'",
                       f"put {variable}=... in the environment or in a .env file beside the bot",
                       severity="warning" if checker.env.allow_missing else "error")



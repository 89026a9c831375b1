"""The stage catalog at runtime: ``type:`` values, their JSON sub-schemas, install hints.

Reads the committed ``schemas/stages.catalog.json`` (generated from pipecat's own service
registry by ``python -m runner.devtools.catalog_gen --write``). Never imports pipecat: ``lkrun validate``
must stay fast and free of pipecat's import side effects.
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path

KINDS = ("vad", "stt", "llm", "tts")
_INSTALLED = Path(__file__).parents[1] / "schemas" / "stages.catalog.json"  # inside a wheel
_REPO = Path(__file__).resolve().parents[2] / "schemas" / "stages.catalog.json"


def catalog_path() -> Path:
    return _INSTALLED if _INSTALLED.is_file() else _REPO


@lru_cache(maxsize=1)
def _load() -> dict:
    with catalog_path().open(encoding="utf-8") as fh:
        return json.load(fh)


def load_catalog() -> dict:
    """The whole catalog: ``{"pipecat_version": ..., "stages": {value: entry}}`` (a copy)."""
    return copy.deepcopy(_load())


def _entry(value: str) -> dict:
    try:
        return _load()["stages"][value]
    except KeyError:
        raise KeyError(f"unknown stage type {value!r}") from None


def stage_entry(value: str) -> dict:
    """One catalog entry (kind, label, class, module, extra, pip, params, settings, ...)."""
    return copy.deepcopy(_entry(value))


def stage_types(kind: str | None = None) -> list[str]:
    """Every ``type:`` value, or those of one kind (``vad``/``stt``/``llm``/``tts``), sorted."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown stage kind {kind!r}; expected one of {', '.join(KINDS)}")
    stages = _load()["stages"]
    return sorted(v for v, e in stages.items() if kind is None or e["kind"] == kind)


def deprecated_params(value: str) -> dict[str, str | None]:
    """``{ctor param: where it moved}`` e.g. ``{"model": "settings.model"}``.

    The target is ``settings.<field>``, ``settings`` (the whole block, e.g. ``params``),
    another ctor param name, or None when pipecat names no replacement.
    """
    return {p: e["deprecated_to"] for p, e in _entry(value)["params"].items() if e["deprecated"]}


def install_hint(value: str) -> str:
    """How to install what this stage needs, e.g. ``pip install "pipecat-ai[deepgram]"``."""
    entry = _entry(value)
    if entry.get("pip"):
        return entry["pip"]
    if entry.get("system_package"):
        pkg = entry["system_package"]
        return f"install the {pkg} program (apt-get install {pkg}, or brew install {pkg})"
    return "no extra install needed"


def stage_body_schema(value: str) -> dict:
    """JSON Schema (draft 2020-12) for the YAML body of one stage, e.g. ``{type: openai_llm, ...}``."""
    return body_schema(value, _entry(value))


def _prop(spec: dict, *, param: bool) -> dict:
    prop: dict = {}
    if spec.get("type") is not None:
        prop["type"] = spec["type"]
    for key in ("default", "minimum", "maximum"):
        if key in spec:
            prop[key] = spec[key]
    if spec.get("deprecated"):
        prop["deprecated"] = True
        if param:
            to = spec.get("deprecated_to")
            prop["description"] = f"Deprecated: use {to} instead." if to else "Deprecated (no replacement)."
    return prop


def body_schema(value: str, entry: dict) -> dict:
    """The sub-schema of a catalog entry (also used by the generator on fresh data)."""
    settings = {name: _prop(f, param=False) for name, f in sorted(entry["settings"].items())}
    props: dict = {"type": {"const": value}}
    props.update((name, _prop(p, param=True)) for name, p in sorted(entry["params"].items()))
    if not entry.get("native"):
        props["api_key"] = {"type": "string"}  # may also come from <ENV_PREFIX>_API_KEY
    props["settings"] = {"type": "object", "properties": settings, "additionalProperties": False}
    # Not required here: api_key (the runner can fall back to <ENV_PREFIX>_API_KEY) and params
    # with no JSON type (e.g. aiohttp_session): YAML cannot spell them, the builder supplies them.
    required = ["type"] + sorted(n for n, p in entry["params"].items()
                                 if p["required"] and n != "api_key" and p["type"] is not None)
    where = f"{entry['class']} ({entry['module']})" if entry.get("class") else "built into lkrun"
    desc = f"{entry['label']} {entry['kind'].upper()}: {where}."
    if entry.get("pip"):
        desc += f" Needs: {entry['pip']}"
    return {"title": value, "description": desc, "type": "object", "properties": props,
            "required": required, "additionalProperties": False}

"""The committed stage catalog matches pipecat's registry and rejects what pipecat would drop."""

from __future__ import annotations

import difflib
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from runner.botfile import catalog

REPO = Path(__file__).resolve().parent.parent
REGEN = "python -m runner.devtools.catalog_gen --write"
ALL_STAGES = catalog.stage_types()


@pytest.fixture(scope="module")
def gen():
    from runner.devtools import catalog_gen  # imports pipecat.cli.registry: only the generator may

    return catalog_gen


@pytest.fixture(scope="module")
def generated(gen):
    return gen.generate()


def _first_diff(old: str, new: str, name: str) -> str:
    diff = difflib.unified_diff(old.splitlines(), new.splitlines(), f"committed/{name}", f"fresh/{name}",
                                lineterm="")
    return "\n".join(list(diff)[:30])


def test_catalog_is_fresh(generated, gen):
    files, _ = generated
    committed = (REPO / gen.CATALOG_REL).read_text(encoding="utf-8")
    if committed != files[gen.CATALOG_REL]:
        pytest.fail(f"{gen.CATALOG_REL} is stale (pipecat changed?): run `{REGEN}`\n"
                    + _first_diff(committed, files[gen.CATALOG_REL], gen.CATALOG_REL), pytrace=False)


def test_stage_schemas_are_fresh(generated, gen):
    files, _ = generated
    stale = gen.stale_files(files)
    assert not stale, f"stale or stray stage schemas {stale[:5]} ({len(stale)} in all): run `{REGEN}`"


def test_every_class_found_via_ast(generated):
    _, missing = generated
    assert missing == []


@pytest.mark.parametrize("kind", ["stt", "llm", "tts"])
def test_every_registry_value_present(kind):
    from pipecat.cli.registry import ServiceRegistry

    values = [d.value for d in getattr(ServiceRegistry, f"{kind.upper()}_SERVICES")]
    assert values, kind
    assert sorted(set(values) - set(catalog.stage_types(kind))) == []


def test_catalog_shape():
    data = catalog.load_catalog()
    assert data["pipecat_version"].startswith("1.14")
    for value, entry in data["stages"].items():
        assert entry["kind"] in catalog.KINDS, value
        assert entry["settings"], f"{value} has no settings fields"
        for name, p in entry["params"].items():
            assert set(p) >= {"type", "required", "deprecated", "deprecated_to"}, (value, name)
            assert name not in ("self", "kwargs", "settings", "type"), (value, name)
    assert catalog.stage_types("vad") == ["silero"]
    with pytest.raises(ValueError):
        catalog.stage_types("asr")
    with pytest.raises(KeyError):
        catalog.stage_body_schema("no_such_tts")


@pytest.mark.parametrize("value", ALL_STAGES)
def test_stage_schema_is_valid_draft_2020_12(value):
    schema = catalog.stage_body_schema(value)
    jsonschema.Draft202012Validator.check_schema(schema)
    committed = json.loads((REPO / "schemas" / "stages" / f"{value}.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(committed)
    assert committed["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert {k: v for k, v in committed.items() if not k.startswith("$")} == schema


def _typo(word: str, fields: list[str]) -> str:
    """Drop one letter (not the first) so the result is no other field's name."""
    for i in range(1, len(word)):
        typo = word[:i] + word[i + 1:]
        if typo not in fields:
            return typo
    return word + "x"


def test_every_stage_rejects_a_misspelled_settings_key():
    """Walk all catalog values: pipecat's Settings.from_mapping would silently keep a typo in
    ``extra``; the schema must reject it, and the real name must be close enough to suggest."""
    assert len(ALL_STAGES) >= 90
    for value in ALL_STAGES:
        fields = sorted(catalog.stage_entry(value)["settings"])
        typo = _typo(fields[0], fields)
        errors = list(jsonschema.Draft202012Validator(catalog.stage_body_schema(value)).iter_errors(
            {"type": value, "settings": {typo: 1}}))
        rejected = [e for e in errors if e.validator == "additionalProperties"
                    and list(e.absolute_path) == ["settings"] and repr(typo) in e.message]
        assert rejected, (value, typo, [e.message for e in errors])
        assert fields[0] in difflib.get_close_matches(typo, fields), (value, typo)


def test_unknown_top_level_key_rejected():
    errors = list(jsonschema.Draft202012Validator(catalog.stage_body_schema("openai_llm")).iter_errors(
        {"type": "openai_llm", "temprature": 0.2}))
    assert [e.validator for e in errors] == ["additionalProperties"]


@pytest.mark.parametrize("body", [
    {"type": "deepgram_stt", "api_key": "${DEEPGRAM_API_KEY}", "settings": {"model": "nova-3"}},
    {"type": "openai_llm", "api_key": "${OPENAI_API_KEY}", "base_url": "http://127.0.0.1:8080/v1",
     "settings": {"model": "gpt-4o-mini", "system_instruction": "Be brief.", "temperature": 0.2}},
    {"type": "cartesia_tts", "api_key": "${CARTESIA_API_KEY}", "settings": {"voice": "abc"}},
    {"type": "piper_tts", "settings": {"voice": "en_US-joe-medium"}, "download_dir": "/tmp/voices"},
    {"type": "whisper_stt", "settings": {"model": "/models/tiny.en", "language": "en"}, "device": "cpu"},
    {"type": "espeak_tts", "settings": {"voice": "en-us", "rate": 160, "pitch": 40}},
    {"type": "silero", "settings": {"confidence": 0.6, "stop_secs": 0.3}},
])
def test_spec_examples_validate(body):
    jsonschema.Draft202012Validator(catalog.stage_body_schema(body["type"])).validate(body)


def test_openai_llm():
    entry = catalog.stage_entry("openai_llm")
    assert {"model", "system_instruction", "temperature"} <= set(entry["settings"])
    assert entry["settings"]["model"]["default"] == "gpt-4.1"
    assert "base_url" in entry["params"] and "api_key" in entry["params"]
    assert entry["class"] == "OpenAILLMService" and entry["module"] == "pipecat.services.openai.llm"
    assert entry["extra"] == "openai" and entry["env_prefix"] == "OPENAI"
    deprecated = catalog.deprecated_params("openai_llm")
    assert deprecated["model"] == "settings.model"
    assert deprecated["params"] == "settings"
    assert "base_url" not in deprecated
    assert catalog.stage_body_schema("openai_llm")["properties"]["model"]["deprecated"] is True


@pytest.mark.parametrize("value, kind, fields", [
    ("deepgram_stt", "stt", {"model", "language"}),
    ("whisper_stt", "stt", {"model", "language", "no_speech_prob"}),
    ("cartesia_tts", "tts", {"model", "voice", "language"}),
    ("piper_tts", "tts", {"voice"}),
])
def test_known_services(value, kind, fields):
    entry = catalog.stage_entry(value)
    assert entry["kind"] == kind and not entry["native"]
    assert fields <= set(entry["settings"])


def test_deprecations_point_into_settings():
    assert catalog.deprecated_params("cartesia_tts")["voice_id"] == "settings.voice"
    assert catalog.deprecated_params("piper_tts")["voice_id"] == "settings.voice"
    assert catalog.deprecated_params("whisper_stt")["model"] == "settings.model"
    assert catalog.deprecated_params("deepgram_stt")["live_options"] == "settings"
    assert catalog.stage_entry("cartesia_tts")["settings_aliases"] == {"voice_id": "voice"}


def test_install_hints():
    assert catalog.install_hint("deepgram_stt") == 'pip install "pipecat-ai[deepgram]"'
    assert catalog.install_hint("ollama_llm") == 'pip install "pipecat-ai"'
    assert catalog.stage_entry("ollama_llm")["extra"] is None
    assert catalog.install_hint("silero") == 'pip install "pipecat-ai[silero]"'
    assert "espeak-ng" in catalog.install_hint("espeak_tts")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pipecat.audio imports audioop
def test_native_stages():
    espeak = catalog.stage_entry("espeak_tts")
    assert espeak["native"] and espeak["kind"] == "tts" and espeak["params"] == {}
    defaults = {k: v["default"] for k, v in espeak["settings"].items()}
    assert defaults == {"voice": "en-us", "rate": 175, "pitch": 50}
    schema = catalog.stage_body_schema("espeak_tts")
    assert "api_key" not in schema["properties"]
    bad = {"type": "espeak_tts", "settings": {"pitch": 120}}
    assert not jsonschema.Draft202012Validator(schema).is_valid(bad)

    from pipecat.audio.vad.vad_analyzer import VADParams

    silero = catalog.stage_entry("silero")
    assert silero["native"] and silero["kind"] == "vad" and silero["params"] == {}
    assert {k: v["default"] for k, v in silero["settings"].items()} == VADParams().model_dump()


def test_importing_runner_catalog_does_not_import_pipecat():
    code = ("import sys, runner.botfile.catalog as c; c.load_catalog(); c.stage_body_schema('openai_llm'); "
            "c.install_hint('deepgram_stt'); "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'pipecat'); "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_check_mode_reports_stale(gen, generated, tmp_path, monkeypatch, capsys):
    files, missing = generated
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text, encoding="utf-8")
    monkeypatch.setattr(gen, "REPO", tmp_path)
    monkeypatch.setattr(gen, "generate", lambda: (files, missing))
    assert gen.main([]) == 0
    (tmp_path / gen.CATALOG_REL).write_text("{}\n", encoding="utf-8")
    (tmp_path / gen.STAGES_REL / "gone_tts.schema.json").write_text("{}\n", encoding="utf-8")
    assert gen.main([]) == 1
    out = capsys.readouterr().out
    assert REGEN in out and gen.CATALOG_REL in out and "gone_tts" in out
    assert gen.main(["--write"]) == 0
    assert gen.stale_files(files) == []

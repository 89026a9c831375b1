"""runner/voice/services.py without a room: how Whisper is asked to transcribe, and the start-up warm-up."""

from __future__ import annotations

import numpy as np

from runner.voice.services import FastWhisper, warm_up


class Model:
    supported_languages = ["en"]

    def __init__(self, fail=False):
        self.calls, self.fail = [], fail

    def transcribe(self, audio, **kwargs):
        self.calls.append((len(audio), kwargs))
        if self.fail:
            raise RuntimeError("no")
        return iter(()), None


def test_a_turn_is_transcribed_greedily_in_a_window_fitted_to_it():
    model = Model()
    whisper = FastWhisper(model)
    whisper.transcribe(np.zeros(3 * 16000, np.float32), language="en", hotwords=None, initial_prompt=None)
    whisper.transcribe(np.zeros(20 * 16000, np.float32), language="en")
    whisper.transcribe(np.zeros(45 * 16000, np.float32))
    (_, short), (_, medium), (_, long) = model.calls
    assert short["beam_size"] == 1 and short["without_timestamps"] is True
    assert short["condition_on_previous_text"] is False and short["language"] == "en"
    assert (short["chunk_length"], medium["chunk_length"], long["chunk_length"]) == (5, 22, 30)
    assert whisper.supported_languages == ["en"]  # everything else is the model's own


def test_what_the_caller_asks_for_wins():
    model = Model()
    FastWhisper(model).transcribe(np.zeros(16000, np.float32), beam_size=5, chunk_length=30)
    assert model.calls[0][1]["beam_size"] == 5 and model.calls[0][1]["chunk_length"] == 30


class Voice:
    def __init__(self):
        self.texts = []

    def synthesize(self, text):
        self.texts.append(text)
        yield b"\0\0"


class Analyzer:
    def __init__(self):
        self.seen = []

    def _predict_endpoint(self, audio):
        self.seen.append(len(audio))
        raise ValueError("a model that cannot warm up still works")


class Service:
    def __init__(self, **attrs):
        self.__dict__.update(attrs)


def test_warm_up_runs_each_local_model_once_and_ignores_failures():
    model, voice, analyzer = Model(fail=True), Voice(), Analyzer()
    warm_up({"stt": Service(_model=model), "tts": Service(_voice=voice), "llm": object()}, [analyzer])
    assert len(model.calls) == 1 and voice.texts == ["Hello."] and analyzer.seen == [16000]
    warm_up({})  # nothing to warm

"""The pipeline lkrun builds: the taps are there only where they can see something (each is a hop
that every frame of a turn takes; with all three a flow's node transition took 1.19x a hand-written
bot's)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from runner.botfile.check import check_document
from runner.botfile.yamlsafe import load_text

LLM_BOT = """\
version: 1
livekit: {room: r, identity: b}
pipeline:
  - llm: {type: openai_llm, api_key: "${FAKE_KEY:-not-needed}", settings: {model: m}}
"""


class _Transport:
    def __init__(self):
        from pipecat.processors.frame_processor import FrameProcessor
        self._input, self._output = FrameProcessor(name="input"), FrameProcessor(name="output")

    def input(self):
        return self._input

    def output(self):
        return self._output


def processor_names(text: str) -> list[str]:
    from runner.voice.pipeline import build_voice_processors
    spec = check_document(load_text(text, "bot.yaml"))
    bot = SimpleNamespace(spec=spec)
    processors = asyncio.run(build_voice_processors(spec, _Transport(), bot))
    return [type(p).__name__ if type(p).__name__ != "FrameProcessor" else p.name for p in processors]


@pytest.mark.parametrize("params, taps", [
    ("", []),
    ("params: {audio_out_enabled: true}\n", ["LLMStateTap", "SpeechEvents", "BotTranscriptTap"]),
])
def test_the_bots_speech_taps_are_there_only_with_audio(params, taps):
    names = processor_names(LLM_BOT + params)
    assert [n for n in names if n in ("LLMStateTap", "SpeechEvents", "BotTranscriptTap")] == taps
    assert names[0] == "input" and "OpenAILLMService" in names
    assert names.index("output") > names.index("OpenAILLMService")
    assert names[-1] == "LLMAssistantAggregator"  # the context's last word: after the output and the taps

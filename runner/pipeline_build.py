"""Build the pipecat processors for a spec: transport in/out around the user's stages.

A data-only bot is just the transport's input and output (the output must be in the
pipeline for pipecat to set it up). Voice stages are built by ``voice.py``.
"""

from __future__ import annotations


async def build_processors(spec, transport, bot) -> list:
    if not spec.pipeline:
        return [transport.input(), transport.output()]
    from .voice import build_voice_processors
    return await build_voice_processors(spec, transport, bot)

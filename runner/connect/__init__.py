"""Reaching a LiveKit server: where it is and with which credentials (``endpoint``),
the least-power join tokens (``tokens``) and the pre-connect probe (``probe``). It
may import ``runner.botfile`` only (in practice nothing from runner); livekit's SDK
is allowed, pipecat is not.
"""

"""lkrun: YAML-configured bots for pipecat LiveKitTransport."""
__version__ = "0.1.0"

"""Hand-written baselines: each is a standalone script, written the way pipecat's own examples are."""

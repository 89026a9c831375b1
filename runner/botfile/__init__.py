"""Reading and checking a bot file: the hardened YAML loader, ${VAR} resolution, the
registries (events, actions, stages, sections), the sandboxed templates, the checker
that turns a file into an immutable BotSpec, and the JSON Schema for editors. It is
the bottom layer: it imports nothing else from ``runner`` and never pipecat or
livekit, so ``lkrun validate`` stays fast.
"""

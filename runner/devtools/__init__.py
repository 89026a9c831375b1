"""Dev-time generators of the committed schemas (``python -m
runner.devtools.catalog_gen --write``, ``python -m runner.devtools.params_gen
--write``). They import pipecat to read it; nothing in ``runner`` imports them (only
tests do). They may import ``runner.botfile``.
"""

"""``lkrun test``: conversation tests for bot files (docs: ../shared/design/conversations.md section 4).

Owns the test file format (its JSON Schema, loading it with file:line:col errors), the offline
runner (the bot's real checker, engine and scheduler with recorded effects and a virtual clock),
matching ``expect`` steps against what the bot did, and the text, JSON and JUnit reports.
It may import ``runner.botfile`` and ``runner.runtime``; never pipecat (a data bot's tests run
without it) except ``flow_case`` (a bot with a flow runs pipecat's FlowManager; imported lazily,
only when such a case runs), never ``runner.voice``, ``runner.playground``, ``runner.host``,
``runner.worker`` or ``runner.cli``.
"""

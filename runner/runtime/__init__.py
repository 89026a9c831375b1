"""One running bot: BotRuntime and its generations (one LiveKitTransport each), the
transport-event wiring, the scheduler that runs event handlers (modes, rate limits,
owners), the action engine with its session state and trace, live effects, timers,
tools, ``lkrun simulate``'s room-less run and process logging. It may import
``runner.voice``, ``runner.connect`` and ``runner.botfile``; never ``runner.host``,
``runner.worker``, ``runner.playground`` or ``runner.cli``.
"""

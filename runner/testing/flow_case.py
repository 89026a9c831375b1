"""Offline cases for bots with a `flow:`: pipecat's real FlowManager in a pipeline with no transport.

The case runs everything ``OfflineBot`` runs (the bot's engine and scheduler, recorded effects,
virtual time) plus the flow exactly as ``lkrun run`` runs it: ``runtime.flows.FlowRun`` (pipecat's
``FlowManager`` with lkrun's hooks, handlers and rendering) attached to a pipecat pipeline

    [flow tap] -> user context aggregator -> ScriptedOpenAILLM -> speech tap -> assistant aggregator

in a ``PipelineWorker``. Where the live bot has a transport, STT and TTS, this one has nothing
(``NoTransport`` only holds the first-join hook FlowRun registers; the case fires it at the first
``join``): ``say`` steps reach pipecat's context as user messages (run the LLM), and the speech tap
records what would reach the TTS (the LLM's text, ``tts_say``) as the bot's speech.

The LLM is pipecat's real ``OpenAILLMService``: its requests are built by pipecat's OpenAI adapter
from the flow's context and tools, its function calls go through pipecat's function-calling path
(so FlowManager's handlers run lkrun's action lists and decide transitions). Only its network call,
``get_chat_completions``, is replaced: it is the stand-in for the paid API, answering with OpenAI
``ChatCompletionChunk`` objects built from the case's ``llm:`` steps (``reply`` -> content,
``call`` -> a tool call). No request leaves the machine, except with ``lkrun test --llm-url URL``:
then a request no ``llm:`` step answers is sent by pipecat's own OpenAI client to that
OpenAI-compatible server, and its streamed chunks go on into pipecat the same way.

pipecat runs on the virtual-clock loop (``clock.VirtualLoop``) unchanged: the worker has no idle
timeout and no heartbeats, and the user aggregator gets turn strategies that never poll (pipecat's
default ones wake every 0.5 s, which an hour of ``wait:`` would step through 7,200 times), so the
pipeline waits on queues only and ``clock.settle`` sees it finish its work; the timers pipecat does
set (function-call timeouts, turn tracking) are virtual too, so a ``wait: 3600`` takes no real time.
pipecat is imported only here, when a case for a flow bot runs (``lkrun validate`` and data bots'
tests never import it).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from types import SimpleNamespace

from runner.runtime.flows import FlowRun, FlowSession
from runner.testing.llm import FOLLOW_UPS
from runner.testing.offline import OfflineBot, drive
from runner.testing.recorder import RecordingEffects

_ids = itertools.count(1)
NEVER = 10.0 ** 9  # virtual seconds: a pipecat timeout no case lives to see


class NoTransport:
    """What FlowRun needs of a transport: somewhere to hook "the first participant joined"
    (``FlowRun.attach``). There is no room; the case fires the hook at the session's first join,
    as pipecat's LiveKitTransport would. (pipecat's FlowManager holds it as its ``transport``.)"""

    def __init__(self):
        self.handlers: dict[str, list] = {}

    def add_event_handler(self, event: str, handler) -> None:
        self.handlers.setdefault(event, []).append(handler)

    async def fire(self, event: str, *args) -> None:
        for handler in self.handlers.get(event, []):
            await handler(self, *args)


class CaseFlowRun(FlowRun):
    """runtime.flows.FlowRun as is, noting the path of nodes for failure reports."""

    async def before_node(self, node_id, node_config, current):
        self.bot.path.append(node_id)
        return await super().before_node(node_id, node_config, current)


class FlowEffects(RecordingEffects):
    """Recorded effects whose ``llm`` action reaches pipecat's context (the flow's LLM)."""

    async def llm(self, messages: list[dict], run: bool) -> None:
        self._record("llm", messages=messages, run=run, text="\n".join(str(m.get("content", "")) for m in messages))
        self.bot.context.extend(messages)
        await self.bot.push_context(run, "an llm action")


class FlowBot(OfflineBot):
    """``OfflineBot`` with the bot's flow running in pipecat (see the module docstring)."""

    def __init__(self, spec, llm_url: str | None = None):
        super().__init__(spec, llm_url)
        self.effects = FlowEffects(self)
        self.flow = FlowSession()  # what runtime.flows.FlowRun reads as the session's flow
        self.services: dict = {}
        self.context_aggregator = None
        self.run_flow: FlowRun | None = None
        self.worker = None
        self._runner = None
        self.pushed = 0  # how much of self.context pipecat's context has
        self.asking = "the flow's first node"  # why the next LLM request happens (for failure reports)
        self.reply_source = ""
        self.own_frames: set[int] = set()
        self.path: list[str] = []  # the nodes the flow entered this session, in order
        self.server_turns = 0  # --llm-url: the server's answers since the case last asked
        self.carried = False  # the session ended with people in the room: the next flow starts with them

    # -- the pipeline --------------------------------------------------------------------------------
    async def open(self) -> None:
        """Build the pipeline, attach the flow (FlowRun: pipecat's FlowManager) and start the worker."""
        from loguru import logger
        logger.disable("pipecat")  # pipecat's own log lines are not the case's output (close() enables them)
        from pipecat.pipeline.pipeline import Pipeline
        from pipecat.pipeline.worker import PipelineParams, PipelineWorker
        from pipecat.processors.aggregators.llm_context import LLMContext
        from pipecat.processors.aggregators.llm_response_universal import (LLMContextAggregatorPair,
                                                                           LLMUserAggregatorParams)
        from pipecat.turns.user_start.external_user_turn_start_strategy import ExternalUserTurnStartStrategy
        from pipecat.turns.user_stop.external_user_turn_completion_stop_strategy import (
            ExternalUserTurnCompletionStopStrategy)
        from pipecat.turns.user_turn_strategies import UserTurnStrategies
        from pipecat.workers.runner import WorkerRunner

        llm = _classes().ScriptedOpenAILLM(self)
        # User turns arrive as whole messages (push_context): no VAD, no turn model to load, and turn
        # strategies that never poll a clock (pipecat's default ones wake every 0.5 s, which virtual
        # time would have to step through one by one); the turn-stop timeout is never due in a case.
        pair = LLMContextAggregatorPair(LLMContext(), user_params=LLMUserAggregatorParams(
            user_turn_strategies=UserTurnStrategies(start=[ExternalUserTurnStartStrategy()],
                                                    stop=[ExternalUserTurnCompletionStopStrategy()]),
            user_turn_stop_timeout=NEVER))
        user, assistant = pair
        self.services, self.context_aggregator = {"llm": llm}, pair
        self.worker = PipelineWorker(Pipeline([_classes().FlowTap(self), user, llm, _classes().SpeechTap(self),
                                               assistant]),
                                     params=PipelineParams(), enable_rtvi=False, idle_timeout_secs=None,
                                     cancel_on_idle_timeout=False, name=f"{self.spec.name}#test")
        started = asyncio.Event()

        @self.worker.event_handler("on_pipeline_started")
        async def _started(_worker, _frame):
            started.set()

        self.transport = NoTransport()
        self.run_flow = CaseFlowRun(SimpleNamespace(bot=self, worker=self.worker, transport=self.transport))
        self.run_flow.attach()
        # pipecat 1.14 warns (under an `always` filter) that its own built-in tts_say handler has the
        # old signature; a warning about pipecat itself is noise in a test report. Harmless if renamed.
        actions = getattr(self.run_flow.manager, "_action_manager", None)
        if hasattr(actions, "_showed_deprecation_warning_for_legacy_action_handler"):
            actions._showed_deprecation_warning_for_legacy_action_handler = True
        self._runner = WorkerRunner(handle_sigint=False, handle_sigterm=False)
        await self._runner.add_workers(self.worker)
        self._runner_task = asyncio.ensure_future(self._runner.run())
        await drive(started.wait())

    async def shut(self) -> None:
        """Stop the worker (as a generation ends): the next session gets a new pipeline and FlowManager."""
        worker, self.worker, self.run_flow = self.worker, None, None
        if worker is None:
            return
        await drive(worker.cancel(reason="the case is over"))
        await drive(self._runner_task)

    async def push_context(self, run: bool, why: str) -> None:
        """What the case added to the LLM context since last time, into pipecat's context."""
        if self.worker is None:
            return
        from pipecat.frames.frames import LLMMessagesAppendFrame
        messages, self.pushed = self.context[self.pushed:], len(self.context)
        if run:
            self.asking, self.server_turns = why, 0
        if messages or run:
            frame = LLMMessagesAppendFrame(messages=[dict(m) for m in messages], run_llm=run)
            self.own_frames.add(frame.id)  # the case's, not the flow's: FlowTap does not record it
            await self.worker.queue_frame(frame)

    async def llm_request(self, why: str) -> None:
        """A user turn nothing else answered (OfflineBot.say): the user message goes to the flow's LLM."""
        await self.push_context(True, why)

    # -- what people do --------------------------------------------------------------------------------
    async def join(self, body) -> None:
        await self.resume()
        first = not self.present
        if self.worker is None:  # the first session, or one after an `end` that left nobody in the room
            self.flow.reset()
            self.path.clear()
            self.carried = False
            await self.open()
        await super().join(body)
        if first and not self.flow.started:  # the flow starts at the session's first join (FlowRun.first_join)
            who = body if isinstance(body, str) else body["id"]
            self.spawn(self.transport.fire("on_first_participant_joined", who))

    async def resume(self) -> None:
        """After `end`, people still in the room are carried over and, as in a room (the next
        generation's transport sees them), the next session's flow starts with them: here at the
        case's next step that does something, so expect steps first see how the flow ended."""
        if self.carried and self.present and self.worker is None:
            self.carried = False
            self.flow.reset()
            self.path.clear()
            await self.open()
            self.spawn(self.transport.fire("on_first_participant_joined", self.participants()[0]))
            await self.settle()

    async def leave(self, body) -> None:
        await self.resume()
        await super().leave(body)

    async def send(self, body) -> None:
        await self.resume()
        await super().send(body)

    async def chat(self, body) -> None:
        await self.resume()
        await super().chat(body)

    async def press(self, body) -> None:
        await self.resume()
        await super().press(body)

    async def say(self, body, where: str) -> None:
        await self.resume()
        await super().say(body, where)

    # -- the session -----------------------------------------------------------------------------------
    def end_session(self, hangup: bool = False, reason: str = "end", record=None):
        """OfflineBot's end, also awaitable: FlowRun.end_conversation awaits the bot's end_session."""
        if record is None and reason == "end" and self.flow.ended:  # the flow's end_conversation
            node = self.flow.node
            file, line, _col = self.spec.flow.where(("nodes", node, "post_actions")) if node else (None, None, None)
            record = self.effects.add("ended", line, file or self.spec.file, now=False, hangup=hangup,
                                      reason=f"end_conversation in node {node}")
        super().end_session(hangup=hangup, reason=reason, record=record)
        done = self.loop.create_future()
        done.set_result(None)
        return done

    async def _finish_session(self) -> None:
        """The session ended: its pipeline stops; the flow keeps its last node until the next one
        starts (``resume``), so ``expect: {node: ...}`` after the end sees where it ended."""
        await self.shut()
        await super()._finish_session()
        self.pushed = 0
        self.carried = bool(self.present)

    async def close(self) -> None:
        from loguru import logger
        await self.shut()
        await super().close()
        logger.enable("pipecat")

    # -- the stand-in for the paid API -------------------------------------------------------------------
    def answer(self, params: dict):
        """One LLM request pipecat built (``params``: model, messages, tools) -> the chunks that answer it."""
        messages = [dict(m) for m in params.get("messages") or []]
        tools = [t.get("function", t) for t in _given(params.get("tools")) or []]
        node = self.flow.node
        why = self.asking
        self.asking = f"the LLM's follow-up in node {node}" if node else "the LLM's follow-up"
        if not self.answers:
            self.effects.add("llm_request", None, why, answered=False, messages=messages, tools=tools, node=node)
            return _stream([])
        answer, where = self.answers.popleft()
        self.effects.add("llm_request", None, why, answered=True, messages=messages, tools=tools, node=node)
        model = str(params.get("model") or "lkrun-test")
        if "reply" in answer:
            self.reply_source = f"the scripted LLM reply ({where})"
            return _stream(_reply_chunks(model, str(answer["reply"])))
        call = answer["call"]
        name, args = call["function"], dict(call.get("args") or {})
        call_id = f"call_lkrun_{next(_ids)}"
        offered = [t.get("name") for t in tools]
        self.effects.add("llm_called", None, f"the scripted LLM call ({where})", function=name, args=args,
                         call_id=call_id, node=node, offered=name in offered)
        if name not in offered:  # pipecat would ignore it: say so where a failure can show it
            self.effects.add("error", None, f"the scripted LLM call ({where})",
                             message=f"the LLM called {name}, which node {node} does not offer "
                                     f"(it offers {', '.join(n for n in offered if n) or 'no functions'})")
        return _stream(_call_chunks(model, call_id, name, args))

    async def ask_server(self, params: dict, request):
        """``--llm-url``: pipecat's own request to the server (real I/O: ``settle`` waits for it in
        real time while virtual time stands still); its chunks are replayed into pipecat and recorded
        like a scripted answer's."""
        messages = [dict(m) for m in params.get("messages") or []]
        tools = [t.get("function", t) for t in _given(params.get("tools")) or []]
        node, why, source = self.flow.node, self.asking, f"the LLM at {self.llm_url}"
        self.asking = f"the LLM's follow-up in node {node}" if node else "the LLM's follow-up"
        self.server_turns += 1
        if self.server_turns > FOLLOW_UPS:
            self.effects.add("error", None, source, message=f"the LLM at {self.llm_url} asked for {FOLLOW_UPS} "
                                                            "function calls in a row without a reply; stopped")
            return _stream([])

        async def fetch():
            return [chunk async for chunk in await request()]
        task = asyncio.ensure_future(fetch())
        self.pending.add(task)
        try:
            chunks = await task
        except Exception as exc:  # noqa: BLE001 - the server's failure is the case's error record
            self.effects.add("llm_request", None, why, answered=False, messages=messages, tools=tools, node=node)
            self.effects.add("error", None, source, message=f"the LLM request failed: {exc}")
            return _stream([])
        finally:
            self.pending.discard(task)
        self.effects.add("llm_request", None, why, answered=True, messages=messages, tools=tools, node=node)
        self.reply_source = source
        calls: dict = {}
        for chunk in chunks:
            for choice in chunk.choices or []:
                for call in (choice.delta.tool_calls if choice.delta else None) or []:
                    slot = calls.setdefault(call.index, {"id": None, "name": "", "arguments": ""})
                    slot["id"] = call.id or slot["id"]
                    if call.function is not None:
                        slot["name"] += call.function.name or ""
                        slot["arguments"] += call.function.arguments or ""
        for slot in (calls[k] for k in sorted(calls)):
            try:
                args = json.loads(slot["arguments"] or "{}")
            except ValueError:
                args = {}
            self.effects.add("llm_called", None, source, function=slot["name"],
                             args=args if isinstance(args, dict) else {}, call_id=slot["id"], node=node,
                             offered=slot["name"] in [t.get("name") for t in tools])
        return _stream(chunks)

    def function_result(self, call_id: str, name: str, result) -> None:
        """pipecat's FunctionCallResultFrame passed the speech tap: what the handler returned to the LLM."""
        for record in reversed(self.effects.records):
            if record.kind == "llm_called" and record.fields.get("call_id") == call_id:
                record.fields["result"] = result
                handler = (self.spec.flow.handlers or {}).get(name)
                record.fields["result_at"] = f"{handler.file or self.spec.file}:{handler.line}" if handler \
                    else self.spec.file
                break
        self.effects.add("tool_result", None, f"flow function '{name}'", function=name, result=result)


def _given(value):
    return value if isinstance(value, list) else None


async def _stream(chunks):
    for chunk in chunks:
        yield chunk


def _chunk(model: str, delta: dict, finish: str | None = None):
    from openai.types.chat import ChatCompletionChunk
    return ChatCompletionChunk.model_validate({
        "id": "chatcmpl-lkrun-test", "object": "chat.completion.chunk", "created": 0, "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


def _reply_chunks(model: str, text: str) -> list:
    return [_chunk(model, {"role": "assistant", "content": text}), _chunk(model, {}, "stop")]


def _call_chunks(model: str, call_id: str, name: str, args: dict) -> list:
    call = {"index": 0, "id": call_id, "type": "function",
            "function": {"name": name, "arguments": json.dumps(args, ensure_ascii=False)}}
    return [_chunk(model, {"role": "assistant", "tool_calls": [call]}), _chunk(model, {}, "tool_calls")]


_CLASSES = None


def _classes():
    """The pipecat subclasses, defined on first use (importing pipecat takes a second)."""
    global _CLASSES
    if _CLASSES is None:
        _CLASSES = _define()
    return _CLASSES


def _define():
    from pipecat.frames.frames import (BotStartedSpeakingFrame, BotStoppedSpeakingFrame, FunctionCallResultFrame,
                                       LLMFullResponseEndFrame, LLMFullResponseStartFrame, LLMMessagesAppendFrame,
                                       LLMMessagesUpdateFrame, LLMTextFrame, LLMUpdateSettingsFrame,
                                       TTSSpeakFrame)
    from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
    from pipecat.services.openai.llm import OpenAILLMService

    class ScriptedOpenAILLM(OpenAILLMService):
        """pipecat's OpenAILLMService with its network call replaced by the case's ``llm:`` steps.

        ``get_chat_completions`` is the stand-in for the paid API: the request is built by pipecat
        (its OpenAI adapter: the system instruction a node's role_message set, the context, the
        node's tools) and answered from the script; nothing is sent anywhere."""

        def __init__(self, bot):
            stage = bot.spec.stage("llm")
            settings = dict((stage.body.get("settings") if stage is not None else None) or {})
            instruction = settings.get("system_instruction")
            self._lkrun_bot = bot
            url = bot.llm_url  # lkrun test --llm-url: what no llm: step answers goes to that server
            super().__init__(api_key=os.environ.get("OPENAI_API_KEY", "lkrun-test") if url else "lkrun-test-no-network",
                             base_url=url or "http://127.0.0.1:9/not-used",
                             settings=OpenAILLMService.Settings(model=str(settings.get("model") or "lkrun-test"),
                                                                system_instruction=_instruction(bot, instruction)))

        def create_client(self, *args, **kwargs):
            if self._lkrun_bot.llm_url:
                return super().create_client(*args, **kwargs)  # pipecat's own client, to the user's server
            return None  # no HTTP client: get_chat_completions below never reaches a network

        async def get_chat_completions(self, context):
            bot = self._lkrun_bot
            adapter = self.get_llm_adapter()
            invocation = await adapter.get_llm_invocation_params(
                context, system_instruction=self._settings.system_instruction,
                convert_developer_to_user=not self.supports_developer_role)
            params = self.build_chat_completion_params(invocation)
            if bot.answers or not bot.llm_url:
                return bot.answer(params)
            return await bot.ask_server(params, lambda: OpenAILLMService.get_chat_completions(self, context))

    class FlowTap(FrameProcessor):
        """First in the pipeline: what the flow gives the LLM at a node is recorded as ``llm``
        (``expect: {llm_append: ...}``): its role_message (pipecat sets it as the LLM's system
        instruction) and its rendered task messages (pipecat's append, or reset)."""

        def __init__(self, bot):
            super().__init__(name="lkrun-flow-tap")
            self._bot = bot

        def _record(self, key: str, messages: list, **fields) -> None:
            bot = self._bot
            node = bot.flow.node
            file, line, _ = bot.spec.flow.where(("nodes", node, key))
            bot.effects.add("llm", line, file or bot.spec.file, messages=messages, run=False, node=node,
                            text="\n".join(str(m.get("content", "")) for m in messages), **fields)

        async def process_frame(self, frame, direction):
            await super().process_frame(frame, direction)
            node = self._bot.flow.node
            if direction == FrameDirection.DOWNSTREAM and node is not None:
                if isinstance(frame, (LLMMessagesAppendFrame, LLMMessagesUpdateFrame)) and frame.messages and \
                        frame.id not in self._bot.own_frames:  # FlowManager's: a node's task messages
                    self._record("task_messages", list(frame.messages),
                                 reset=isinstance(frame, LLMMessagesUpdateFrame))
                elif isinstance(frame, LLMUpdateSettingsFrame) and \
                        isinstance(getattr(frame.delta, "system_instruction", None), str):
                    self._record("role_message", [{"role": "system", "content": frame.delta.system_instruction}])
            await self.push_frame(frame, direction)

    class SpeechTap(FrameProcessor):
        """Where the TTS and the transport would be: the LLM's text and ``tts_say`` are the bot's
        speech (``say`` records; ``reply`` for a bot without tts). Speech takes no time offline: the
        bot starts and stops speaking at once (deferred post_actions wait for that)."""

        def __init__(self, bot):
            super().__init__(name="lkrun-speech-tap")
            self._bot = bot
            self._text: list[str] | None = None

        async def process_frame(self, frame, direction):
            await super().process_frame(frame, direction)
            bot = self._bot
            spoke = None
            if direction == FrameDirection.DOWNSTREAM:
                if isinstance(frame, LLMFullResponseStartFrame):
                    self._text = []
                elif isinstance(frame, LLMTextFrame) and self._text is not None:
                    self._text.append(frame.text)
                elif isinstance(frame, LLMFullResponseEndFrame) and self._text is not None:
                    text, self._text = "".join(self._text).strip(), None
                    if text:
                        spoke = text
                        bot.effects.add("say" if bot.spec.stage("tts") else "reply", None, bot.reply_source,
                                        text=text)
                elif isinstance(frame, TTSSpeakFrame):
                    spoke = frame.text
                    node = bot.flow.node
                    file, line, _ = bot.spec.flow.where(("nodes", node, "pre_actions")) if node else (None, 0, 0)
                    bot.effects.add("say", line, file or bot.spec.file, text=frame.text)
                elif isinstance(frame, FunctionCallResultFrame):
                    bot.function_result(frame.tool_call_id, frame.function_name, frame.result)
            await self.push_frame(frame, direction)
            if spoke is not None:
                bot.idle.touch()
                for speaking in (BotStartedSpeakingFrame, BotStoppedSpeakingFrame):
                    await self.push_frame(speaking(), FrameDirection.DOWNSTREAM)
                    await self.push_frame(speaking(), FrameDirection.UPSTREAM)

    return SimpleNamespace(ScriptedOpenAILLM=ScriptedOpenAILLM, FlowTap=FlowTap, SpeechTap=SpeechTap)


def _instruction(bot, instruction):
    if not instruction:
        return None
    from runner.botfile.templates import TemplateError, render_value
    try:
        return str(render_value(instruction, {"vars": bot.spec.vars, "bot": {
            "name": bot.spec.name, "identity": bot.spec.identity, "room": bot.spec.room}}))
    except TemplateError:
        return str(instruction)

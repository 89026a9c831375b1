"""OpenTelemetry traces: one span per session, per event run and per action, beside pipecat's own.

Off unless the standard variables ask for it: ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (OTLP over HTTP/protobuf; the exporter reads the rest of
``OTEL_EXPORTER_OTLP_*`` itself: headers, timeout, compression, certificates), or
``OTEL_TRACES_EXPORTER=otlp|console``; ``OTEL_SDK_DISABLED=true`` and
``OTEL_TRACES_EXPORTER=none`` turn it off. ``OTEL_SERVICE_NAME`` (default ``lkrun``) and
``OTEL_RESOURCE_ATTRIBUTES`` name the service. The SDK and the exporter are an optional extra
(``pip install 'lkrun[otel]'``); without them lkrun says so once and runs untraced.

The provider is installed as the global one, so pipecat's own spans (``conversation``,
``turn``, and its services' ``stt``/``llm``/``tts``: pipecat's ``enable_tracing``, which a
generation turns on when tracing is on) go to the same exporter. Parents:

    conversation                      pipecat's, one per connection (conversation.id = the record's id)
      lkrun.session                   one per session
        event <name>                  a run outside a turn (participant_connected, data_received, ...)
          action <name>
            action <name>             an if's branch, a repeat's body, ...
      turn                            pipecat's, one per spoken turn (with its stt/llm/tts spans)
        event user_said               a run that starts during a turn
          action say

An event run that starts during one of pipecat's turns is a child of that turn; otherwise it is
a child of the session span, itself a child of pipecat's conversation span when pipecat traces
(one trace per connection). Without pipecat's spans (a bot with no pipeline stages still has
them; ``session_started`` before the pipeline) the session span is the root.
Attributes: ``lkrun.bot``, ``lkrun.event``, ``lkrun.participant``, ``lkrun.outcome``,
``lkrun.action``, ``code.filepath``, ``code.lineno``, ``lkrun.session.id``. Rendered values are
never attributes (they may hold what people said, or secrets); an error's message is masked
with the bot's secrets before it becomes the span's status.
"""

from __future__ import annotations

import os
import threading
import uuid

from loguru import logger

from runner.botfile.env import mask

SCOPE = "lkrun"
_lock = threading.Lock()
_state = {"tried": False, "provider": None, "tracer": None}


def wanted(environ=os.environ) -> bool:
    """The OTEL_* variables ask for traces."""
    if (environ.get("OTEL_SDK_DISABLED") or "").strip().lower() == "true":
        return False
    exporters = {e.strip().lower() for e in (environ.get("OTEL_TRACES_EXPORTER") or "").split(",") if e.strip()}
    if exporters and exporters <= {"none"}:
        return False
    return bool(exporters or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def setup(environ=os.environ) -> bool:
    """Install the tracer provider from the environment (once per process); True when tracing."""
    with _lock:
        if _state["tried"]:
            return _state["tracer"] is not None
        _state["tried"] = True
        if not wanted(environ):
            return False
        try:
            from opentelemetry import trace
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
        except ImportError:
            logger.warning("OTEL_* variables are set but OpenTelemetry is not installed: "
                           "pip install 'lkrun[otel]' (running without traces)")
            return False
        # OTEL_RESOURCE_ATTRIBUTES is read by Resource.create; the exporter reads OTEL_EXPORTER_OTLP_*
        provider = TracerProvider(resource=Resource.create(
            {"service.name": environ.get("OTEL_SERVICE_NAME") or "lkrun"}))
        exporters = {e.strip().lower() for e in (environ.get("OTEL_TRACES_EXPORTER") or "otlp").split(",")}
        if "console" in exporters:
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        if "otlp" in exporters:
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            except ImportError:
                logger.warning("OTEL_EXPORTER_OTLP_* is set but the OTLP exporter is not installed: "
                               "pip install 'lkrun[otel]'")
            else:
                provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
        _install(provider)
        return True


def use(provider) -> None:
    """Trace into this provider (tests: an SDK provider with an in-memory exporter); None: off."""
    with _lock:
        _state["tried"] = True
        if provider is None:
            _state["provider"] = _state["tracer"] = None
        else:
            _install(provider)


def _install(provider) -> None:
    _state["provider"] = provider
    _state["tracer"] = provider.get_tracer(SCOPE)


def tracer():
    """The tracer, or None when tracing is off (the first call reads the environment)."""
    if not _state["tried"]:
        setup()
    return _state["tracer"]


def enabled() -> bool:
    return tracer() is not None


def shutdown() -> None:
    """Send what is queued (lkrun ends its process with os._exit: nothing else would)."""
    provider = _state["provider"]
    if provider is not None:
        try:
            provider.force_flush(5000)
        except Exception:  # an exporter that cannot reach its collector must not block the exit
            pass


# -- the session ----------------------------------------------------------------------------------
def session_started(bot, record) -> None:
    """A session began: its span (the parent of the runs that are not in a pipecat turn)."""
    tracer_ = tracer()
    if tracer_ is None or getattr(bot, "otel_session", None) is not None:
        return
    spec = bot.spec
    bot.otel_session = tracer_.start_span("lkrun.session", context=_pipecat_context(bot, turn=False), attributes={
        "lkrun.bot": spec.name, "lkrun.room": spec.room, "lkrun.session.id": record.id,
        "code.filepath": str(spec.file)})


def session_ended(bot, summary: dict | None = None) -> None:
    span = getattr(bot, "otel_session", None)
    if span is None:
        return
    bot.otel_session = None
    for key in ("duration", "turns", "runs", "errors", "participants"):
        value = (summary or {}).get(key)
        if isinstance(value, (int, float)):
            span.set_attribute(f"lkrun.session.{key}", value)
    span.end()


def conversation_id(bot) -> str:
    """pipecat's conversation id for a generation: the session record's id (the same in both).
    Before the session's first connection there is no record yet: the id is chosen now and
    the record takes it (``records.SessionRecord``)."""
    record = getattr(bot, "session_record", None)
    if record is not None:
        return record.id
    if not getattr(bot, "next_session_id", None):
        bot.next_session_id = uuid.uuid4().hex
    return bot.next_session_id


def _pipecat_context(bot, turn: bool = True):
    """pipecat's current turn (``turn``) or conversation context of the bot's generation, if traced."""
    gen = getattr(bot, "generation", None)
    worker = getattr(gen, "worker", None)
    context = getattr(worker, "_tracing_context", None)  # pipecat's PipelineWorker, enable_tracing
    if context is None:
        return None
    return (context.get_turn_context() if turn else context.get_conversation_context()) or None


def _parent(run):
    from opentelemetry import context as otel_context, trace
    current = trace.get_current_span(otel_context.get_current())
    if current.get_span_context().is_valid:
        return None  # inside another span of ours (a tool run inside an action): keep it
    bot = getattr(run.effects, "bot", None)  # LiveEffects knows its bot; simulate has none
    if bot is None:
        return None
    found = _pipecat_context(bot)
    if found is not None:
        return found
    session = getattr(bot, "otel_session", None)
    return trace.set_span_in_context(session) if session is not None else None


# -- runs and actions -----------------------------------------------------------------------------
class _Span:
    """A span made current for the block (the block's awaits keep it: same task)."""

    __slots__ = ("span", "token", "secrets")

    def __init__(self, span, secrets):
        from opentelemetry import context as otel_context, trace
        self.span, self.secrets = span, secrets
        self.token = otel_context.attach(trace.set_span_in_context(span))

    def close(self, error: str | None = None) -> None:
        from opentelemetry import context as otel_context
        from opentelemetry.trace import Status, StatusCode
        if error:
            self.span.set_status(Status(StatusCode.ERROR, mask(error, self.secrets) if self.secrets else error))
        try:
            otel_context.detach(self.token)
        except Exception:  # detached in another context (a cancelled task): the span still ends
            pass
        self.span.end()


class RunSpan:
    """``with RunSpan(run):`` around an event run; nothing at all when tracing is off."""

    __slots__ = ("run", "span")

    def __init__(self, run):
        self.run, self.span = run, None

    def __enter__(self):
        tracer_ = tracer()
        if tracer_ is None:
            return self
        run, spec = self.run, self.run.spec
        attributes = {"lkrun.bot": spec.name, "lkrun.event": run.event, "code.filepath": str(spec.file)}
        if run.participant:
            attributes["lkrun.participant"] = run.participant
        line = getattr(spec.on.get(run.event), "line", None) if hasattr(spec, "on") else None
        if isinstance(line, int):
            attributes["code.lineno"] = line
        record = getattr(getattr(run.effects, "bot", None), "session_record", None)
        if record is not None:
            attributes["lkrun.session.id"] = record.id
        span = tracer_.start_span(f"event {run.event}", context=_parent(run), attributes=attributes)
        self.span = _Span(span, spec.secrets)
        return self

    def __exit__(self, kind, exc, tb):
        if self.span is None:
            return False
        entry = self.run.trace_entry
        outcome = str(entry.outcome)
        if kind is not None and issubclass(kind, BaseException) and outcome == "ok":
            outcome = "cancelled"
        span = self.span.span
        span.set_attribute("lkrun.outcome", outcome)
        span.set_attribute("lkrun.actions", len(entry.steps))
        if entry.note:
            span.set_attribute("lkrun.note", mask(entry.note, self.run.spec.secrets) if self.run.spec.secrets else entry.note)
        self.span.close(entry.error if outcome == "error" else None)
        return False


class ActionSpan:
    """``with ActionSpan(run, node):`` around one action (its nested actions are its children)."""

    __slots__ = ("run", "node", "span")

    def __init__(self, run, node):
        self.run, self.node, self.span = run, node, None

    def __enter__(self):
        tracer_ = tracer()
        if tracer_ is None:
            return self
        spec, node = self.run.spec, self.node
        attributes = {"lkrun.bot": spec.name, "lkrun.event": self.run.event, "lkrun.action": node.name,
                      "code.filepath": str(spec.file)}
        if isinstance(node.line, int):
            attributes["code.lineno"] = node.line
        self.span = _Span(tracer_.start_span(f"action {node.name}", attributes=attributes), spec.secrets)
        return self

    def __exit__(self, kind, exc, tb):
        if self.span is None:
            return False
        error = None
        if kind is not None:
            name = kind.__name__
            if name == "ActionFailed":
                error = getattr(exc, "message", None) or str(exc)
            elif name not in ("StopRun", "CancelledError"):
                error = name  # never the text of an unexpected exception: it is masked where it is caught
            self.span.span.set_attribute("lkrun.outcome", "error" if error else
                                         ("cancelled" if name == "CancelledError" else "stopped"))
        self.span.close(error)
        return False

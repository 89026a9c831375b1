"""OpenTelemetry: a span per session, per event run and per action, children of pipecat's own spans,
exported by the standard OTEL_* variables; secrets never in a span."""

from __future__ import annotations

import asyncio
import json

import pytest

from room_helpers import seen_by, wait_for

from runner.runtime import telemetry

SECRET = "trace-secret-7d1e90b2c4"

TRACED = """
version: 1
name: traced
livekit: {room: ROOM, identity: traced}
vars: {token: "${TRACE_SECRET}"}
on:
  participant_connected:
    - send: {to: "{{ participant.id }}", data: {hello: "{{ participant.id }}"}}
  data_received:
    - if: "{{ data == 'ping' }}"
      then:
        - send: {to: "{{ participant.id }}", data: {text: pong, auth: "{{ vars.token }}"}}
    - if: "{{ data == 'fail' }}"
      then:
        - send: {to: "{{ participant.id }}", data: "{{ vars.token ~ (1 / 0) }}"}
    - if: "{{ data == 'bye' }}"
      then:
        - end: {}
"""


@pytest.fixture(scope="module")
def exported():
    """An SDK provider with an in-memory exporter; the global one too, so pipecat's spans land here."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # once per process: later calls are refused by the API
    telemetry.use(provider)
    yield exporter
    telemetry.use(None)


def _everything(span) -> str:
    """Every string a span carries to a collector: name, attributes, status, events, links."""
    return json.dumps({"name": span.name, "attributes": dict(span.attributes or {}),
                       "status": span.status.description, "resource": dict(span.resource.attributes),
                       "events": [(e.name, dict(e.attributes or {})) for e in span.events]}, default=str)


@pytest.mark.livekit
async def test_spans_per_session_run_and_action_under_pipecats_conversation(exported, run_bot, people,
                                                                           room_name):
    exported.clear()
    bot, _ = await run_bot(TRACED.replace("ROOM", room_name), name="traced", environ={"TRACE_SECRET": SECRET})
    session_id = bot.session_record.id
    alice = await people(room_name, "alice")
    assert await alice.next_data(10, sender="traced") == {"hello": "alice"}
    await seen_by(bot, alice)
    await alice.send("ping")
    assert (await alice.next_data(10, sender="traced"))["text"] == "pong"
    await alice.send("fail")
    await wait_for(lambda: any(e.outcome == "error" for e in bot.trace.entries), 10, what="the failing run")
    await alice.send("bye")  # the session ends: its span and pipecat's conversation span end
    await wait_for(lambda: any(s.name == "lkrun.session" for s in exported.get_finished_spans()), 15,
                   what="the session span")
    await wait_for(lambda: any(s.name == "conversation" and s.attributes.get("conversation.id") == session_id
                               for s in exported.get_finished_spans()), 15, what="pipecat's conversation span")
    spans = [s for s in exported.get_finished_spans()
             if s.attributes.get("lkrun.bot") == "traced" or s.attributes.get("conversation.id") == session_id]
    by_id = {s.context.span_id: s for s in spans}

    def parent(span):
        return by_id.get(span.parent.span_id) if span.parent is not None else None

    conversation = next(s for s in spans if s.name == "conversation" and s.attributes["conversation.id"] == session_id)
    session = next(s for s in spans if s.name == "lkrun.session" and s.attributes["lkrun.session.id"] == session_id)
    assert parent(session) is conversation  # joined with pipecat's own trace
    runs = [s for s in spans if s.name.startswith("event ") and s.attributes.get("lkrun.session.id") == session_id]
    assert sorted(s.name for s in runs) == ["event data_received"] * 3 + ["event participant_connected"]
    # a run is a child of pipecat's turn when one is open (pipecat opens one even without speech),
    # else of the session: in both cases inside pipecat's conversation, in one trace
    for run in runs:
        assert parent(run) is session or (parent(run).name == "turn" and parent(parent(run)) is conversation), \
            (run.name, parent(run) and parent(run).name)
        assert run.context.trace_id == conversation.context.trace_id
    assert all(s.attributes["lkrun.participant"] == "alice" for s in runs)
    assert {s.attributes["code.lineno"] for s in runs} == {7, 9}  # the handlers' lines

    def children(span):
        return sorted((s for s in spans if parent(s) is span), key=lambda s: s.start_time)
    ping = next(r for r in runs if r.name == "event data_received"
                and any(c.name == "action send" for a in children(r) for c in children(a)))
    ifs = children(ping)
    assert [a.name for a in ifs] == ["action if", "action if", "action if"]
    assert [a.attributes["code.lineno"] for a in ifs] == [10, 13, 16]
    (send,) = children(ifs[0])
    assert send.name == "action send" and send.attributes["code.lineno"] == 12
    assert send.start_time >= ifs[0].start_time and send.end_time <= ifs[0].end_time <= ping.end_time

    from opentelemetry.trace import StatusCode
    failed = next(r for r in runs if r.attributes["lkrun.outcome"] == "error")
    assert failed.status.status_code is StatusCode.ERROR and "division by zero" in failed.status.description
    failed_send = next(c for a in children(failed) for c in children(a))
    assert failed_send.status.status_code is StatusCode.ERROR
    assert all(SECRET not in _everything(s) for s in exported.get_finished_spans())


async def test_spans_reach_an_otlp_http_collector_named_by_the_standard_variables(monkeypatch, aiohttp_receiver):
    """OTEL_EXPORTER_OTLP_ENDPOINT and OTEL_SERVICE_NAME only: the spans arrive as OTLP/HTTP protobuf."""
    from opentelemetry import trace
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from runner.botfile.check import check_document
    from runner.botfile.yamlsafe import load_text
    from runner.runtime.effects import NullEffects
    from runner.runtime.engine import Run
    from runner.runtime.state import SessionState

    url, bodies = aiohttp_receiver
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "lkrun-under-test")
    monkeypatch.setattr(trace, "set_tracer_provider", lambda provider: None)  # leave the process's alone
    saved = dict(telemetry._state)
    monkeypatch.setattr(telemetry, "_state", {"tried": False, "provider": None, "tracer": None})
    try:
        assert telemetry.setup()
        spec = check_document(load_text(TRACED.replace("ROOM", "r"), "traced.yaml"), environ={"TRACE_SECRET": SECRET})
        run = Run(spec, SessionState(), NullEffects(), "data_received", {"data": "ping", "message": {}},
                  participant="alice")
        await run.execute(spec.on["data_received"].actions)
        await asyncio.to_thread(telemetry.shutdown)
        await wait_for(lambda: bodies, 10, what="an OTLP export")
    finally:
        telemetry._state["provider"] and telemetry._state["provider"].shutdown()
        telemetry._state.update(saved)
    request = ExportTraceServiceRequest()
    for body in bodies:
        request.MergeFromString(body)
    (resource_spans,) = request.resource_spans
    service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}["service.name"]
    assert service == "lkrun-under-test"
    spans = [s for scope in resource_spans.scope_spans for s in scope.spans]
    by_name = {s.name: s for s in spans}
    assert {"event data_received", "action if", "action send"} <= set(by_name)
    assert by_name["action send"].parent_span_id in {s.span_id for s in spans if s.name == "action if"}
    first_if = next(s for s in spans if s.name == "action if" and s.span_id == by_name["action send"].parent_span_id)
    assert first_if.parent_span_id == by_name["event data_received"].span_id
    assert by_name["event data_received"].parent_span_id == b""  # no session, no pipecat: the root
    assert SECRET.encode() not in b"".join(bodies)


@pytest.fixture
async def aiohttp_receiver():
    """An in-process OTLP/HTTP collector: POST /v1/traces with protobuf bodies."""
    from aiohttp import web
    bodies: list[bytes] = []

    async def traces(request):
        assert request.content_type == "application/x-protobuf"
        bodies.append(await request.read())
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}", bodies
    await runner.cleanup()


def test_tracing_is_off_without_the_variables_and_with_them_turned_off():
    assert not telemetry.wanted({})
    assert telemetry.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert telemetry.wanted({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"})
    assert telemetry.wanted({"OTEL_TRACES_EXPORTER": "console"})
    assert not telemetry.wanted({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"})
    assert not telemetry.wanted({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"})


@pytest.mark.livekit
async def test_a_worker_sends_its_jobs_spans_before_it_exits(livekit_server, aiohttp_receiver, tmp_path, monkeypatch):
    """``lkrun worker --process-per-job`` with OTEL_EXPORTER_OTLP_ENDPOINT: a job's spans, its session's
    too, reach the collector when the worker is stopped (the batch exporter's delay is an hour: only
    the flush at exit sends them). When the server ended a job, its process used to exit with the
    session span open (bot.stop(), which ends it, was cancelled with the loop): no lkrun.session.
    (In the worker's own process the SDK's exit hook flushes as well: that mode is not run here.)
    On the way: the job's bot is an AGENT participant to a person's SDK, as LiveKit's components
    look for it."""
    import signal
    import uuid

    from livekit import api
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from room_helpers import Person
    from test_worker import ECHO, WorkerProc, until

    url, bodies = aiohttp_receiver
    name = f"wk-otel-{uuid.uuid4().hex[:6]}"
    bot = tmp_path / f"{name}.yaml"
    bot.write_text(ECHO.replace("NAME", name))
    for key, value in {"OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_SERVICE_NAME": "lkrun-worker-under-test",
                       "OTEL_BSP_SCHEDULE_DELAY": "3600000"}.items():
        monkeypatch.setenv(key, value)  # the worker's environment (and its job processes')
    worker = WorkerProc(livekit_server, bot, "--process-per-job")
    person = None
    try:
        await worker.wait_registered()
        room = f"room-{uuid.uuid4().hex[:8]}"
        async with api.LiveKitAPI(livekit_server.url, livekit_server.api_key, livekit_server.api_secret) as lk:
            await lk.agent_dispatch.create_dispatch(api.CreateAgentDispatchRequest(agent_name=name, room=room))
        person = await Person(livekit_server, room, "alice").join()

        async def answered():
            await person.send("ping")
            try:
                return await person.next_data(1.0) == {"text": "pong"}
            except asyncio.TimeoutError:
                return False
        try:
            await until(answered, 30, "the job's answer")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{worker.tail()}") from None
        # the job's bot is an agent as a participant's SDK sees it (how LiveKit's components find it)
        from livekit import rtc

        async def job_bot():  # a packet can outrun its sender's announcement
            return [p for p in person.room.remote_participants.values() if p.identity.startswith(name)]
        (bot_participant,) = await until(job_bot, 10, "the job's bot among the participants")
        assert bot_participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
        assert not bodies  # nothing exported yet: the spans wait in the batch
        await person.leave()  # the room empties: the server ends the job (after its departure timeout)
        person = None
        worker.signal(signal.SIGTERM)  # drains: waits for that, then exits
        assert await worker.wait_exit(60) == 0
        log = worker.tail(80)
    finally:
        if person is not None:
            await person.leave()
        worker.kill()
    request = ExportTraceServiceRequest()
    for body in bodies:
        request.MergeFromString(body)
    names = {s.name for rs in request.resource_spans for scope in rs.scope_spans for s in scope.spans}
    services = {a.value.string_value for rs in request.resource_spans for a in rs.resource.attributes
                if a.key == "service.name"}
    assert {"event data_received", "action send", "lkrun.session"} <= names, f"{names}\n{log}"
    assert services == {"lkrun-worker-under-test"}

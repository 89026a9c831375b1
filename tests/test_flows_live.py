"""`flow:` in a real room: pipecat's FlowManager runs the graph, lkrun's actions are the handlers.

The LLM is pipecat's real OpenAILLMService against the loopback OpenAI-protocol server
(bench/fake_openai.py) scripted to call the flow's functions; the records service is a
loopback web service; a real participant speaks Piper speech or chats on lk.chat.
"""

import asyncio
import re
from pathlib import Path

import pytest

from audio_helpers import Microphone, silence, speech
from room_helpers import wait_for

pytestmark = [pytest.mark.livekit, pytest.mark.slow]

CLINIC = (Path(__file__).parent / "fixtures" / "flows_runtime" / "clinic.yaml").read_text()
VOICE_STAGES = re.compile(r"  - (vad|stt|tts): .*\n")


def chat_only(text: str) -> str:
    """The clinic without ears or voice (people chat): no Whisper to wait for."""
    return VOICE_STAGES.sub("", text).replace("params: {audio_in_enabled: true, audio_out_enabled: true}\n", "") \
        .replace("        - type: tts_say\n          text: \"Thank you {{ name }}, goodbye.\"\n", "") \
        .replace("      pre_actions:\n      post_actions:", "      post_actions:")


@pytest.fixture
async def records():
    """The clinic's records service (a customer's web API), on loopback: records each call."""
    from aiohttp import web

    class Records:
        calls: list = []
        url = ""

    async def lookup(request):
        Records.calls.append(("lookup", await request.json()))
        return web.json_response({"id": "P-17", "last_visit": "2026-03-02"})

    async def callback(request):
        Records.calls.append(("callback", await request.json()))
        return web.json_response({"ticket": "T-5"})

    app = web.Application()
    app.router.add_post("/lookup", lookup)
    app.router.add_post("/callback", callback)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    Records.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    yield Records
    await runner.cleanup()


def scripted(**extra):
    from bench.fake_openai import FakeOpenAI
    return FakeOpenAI(instruction_triggers={
        "Ask for the reason of the visit": ("record_reason", {"reason": "fever", "urgency": "urgent"}),
        "Promise a nurse callback": ("request_callback", {}),
    }, **extra)


def env(room, llm, records):
    return {"ROOM": room, "LLM_URL": llm.base_url, "RECORDS": records.url}


async def request_with(llm, text: str, timeout: float = 10.0) -> dict:
    """The first LLM request whose system/developer messages contain `text` (waiting for it)."""
    def find():
        return next((body for body in llm.requests if any(
            text in str(m.get("content")) for m in body["messages"] if m.get("role") in ("system", "developer"))),
            None)
    try:
        return await wait_for(find, timeout, what=f"an LLM request carrying {text!r}")
    except AssertionError:
        raise AssertionError(f"no LLM request carried {text!r}: {[m['messages'] for m in llm.requests]}") from None


ROLE = "You are the intake assistant of Riverside Clinic."


def system(body) -> str:
    """The request's system instruction (pipecat appends its own notes after the role_message)."""
    assert body["messages"][0]["role"] == "system"
    return body["messages"][0]["content"].split("\n\n")[0]


def tools_of(body) -> dict:
    return {t["function"]["name"]: t["function"] for t in body.get("tools") or []}


async def packets(person, count: int, timeout: float = 30.0) -> list:
    return [await person.next_data(timeout, sender="clinic") for _ in range(count)]


async def test_clinic_intake_end_to_end(run_bot, people, room_name, records):
    llm = await scripted(tool_triggers={"alice": ("record_name", {"name": "Alice Smith"})}).start()
    try:
        text = CLINIC.replace("on:\n  node_entered:\n    - send: {data: {node: \"{{ flow.node }}\", previous: "
                              "\"{{ flow.previous }}\"}}",
                              "on:\n  node_entered:\n    - send: {data: {node: \"{{ flow.node }}\", previous: "
                              "\"{{ flow.previous }}\", state: \"{{ state }}\"}}\n"
                              "  user_said:\n    - match: \"(?i)smith\"\n      continue: true\n"
                              "      do: [{send: {data: {heard: \"{{ text }}\"}}}]")
        bot, task = await run_bot(text, "clinic", once=True, environ=env(room_name, llm, records))
        spec = bot.spec
        assert not llm.requests  # never in an empty room
        alice = await people(room_name, "alice", mic=False)
        mic = await Microphone(alice.room).publish()
        first = await alice.next_data(15, sender="clinic")
        assert first == {"node": "greet", "previous": None, "state": {"secret": "hunter2"}}
        greet = await request_with(llm, "Greet the caller and ask for their full name.")
        await asyncio.sleep(1.5)  # the greeting is spoken (espeak)
        await mic.play(silence(0.3))
        await mic.play(speech("My name is Alice Smith."))
        await mic.play(silence(1.2))
        got = await packets(alice, 5, timeout=40)
        heard = [p for p in got if "heard" in p]
        path = [p for p in got if "heard" not in p]
        assert len(heard) == 1 and "smith" in heard[0]["heard"].lower()  # user_said works beside the flow
        # the node path, and the state each handler left behind (node_entered fires after each one)
        assert path == [
            {"node": "lookup", "previous": "greet",
             "state": {"secret": "hunter2", "name": "Alice Smith", "patient_id": "P-17"}},
            {"node": "triage", "previous": "lookup",
             "state": {"secret": "hunter2", "name": "Alice Smith", "patient_id": "P-17", "reason": "fever"}},
            {"node": "goodbye", "previous": "triage",
             "state": {"secret": "hunter2", "name": "Alice Smith", "patient_id": "P-17", "reason": "fever"}},
            {"flow_ended": "goodbye"},
        ], path
        # end_conversation ended the session: the bot left (with --once, lkrun is done)
        assert await asyncio.wait_for(task, 15) == "ended"
        # the http calls, with rendered bodies (on_enter's lookup, request_callback's)
        assert records.calls == [("lookup", {"name": "Alice Smith"}),
                                 ("callback", {"patient": "P-17", "reason": "fever"})]
        # each node's LLM request carries that node's rendered task message; role_message is the
        # system instruction (it replaced the llm stage's); reset nodes start over
        assert system(greet) == ROLE
        lookup = await request_with(llm, "The caller is Alice Smith")
        assert system(lookup) == ROLE and lookup["messages"][1:] == [
            {"role": "developer", "content": "The caller is Alice Smith, patient P-17 (last visit 2026-03-02). "
                                             "Ask for the reason of the visit."}]
        triage = await request_with(llm, "has an urgent problem")
        assert triage["messages"][1:] == [
            {"role": "developer", "content": "Alice Smith has an urgent problem (fever). Promise a nurse callback."}]
        goodbye = await request_with(llm, "Say goodbye to Alice Smith.")
        assert not any("You are a generic assistant" in str(m.get("content")) for body in llm.requests
                       for m in body["messages"])
        assert "hunter2" not in str(llm.requests)
        # the tools of each request: the node's functions and the bot's tools, exactly as written
        handlers, hours = spec.flow.handlers, spec.tools[0]
        for body, names in ((greet, ["record_name"]), (lookup, ["record_reason"]),
                            (triage, ["request_callback"]), (goodbye, [])):
            offered = tools_of(body)
            assert set(offered) == {*names, "opening_hours"}, offered
            for name in names:
                assert offered[name] == {"name": name, "description": handlers[name].description,
                                         "parameters": handlers[name].parameters}
            assert offered["opening_hours"]["parameters"] == hours.parameters
        assert handlers["record_name"].parameters["additionalProperties"] is False  # kept, not re-derived
    finally:
        await llm.stop()


async def send_chat(person, text: str) -> None:
    await person.room.local_participant.send_text(text, topic="lk.chat")


async def test_caller_text_with_braces_reaches_the_llm_verbatim(run_bot, people, room_name, records):
    """A caller who says "{{ secret }}": text from people is never rendered, by lkrun or by pipecat."""
    llm = await scripted(tool_triggers={"name is": ("record_name", lambda said: {
        "name": said.split("name is ", 1)[1]})}).start()
    try:
        bot, _ = await run_bot(chat_only(CLINIC), "clinic", environ=env(room_name, llm, records))
        alice = await people(room_name, "alice")
        assert await alice.next_data(15, sender="clinic") == {"node": "greet", "previous": None}
        await send_chat(alice, "my name is {{ secret }}")
        assert await alice.next_data(15, sender="clinic") == {"node": "lookup", "previous": "greet"}
        # verbatim in the context (the greeting's reply may land after it when the caller is quick)
        users = [m for body in llm.requests for m in body["messages"] if m.get("role") == "user"]
        assert users and users[0] == {"role": "user", "content": "my name is {{ secret }}"}, users
        lookup = await request_with(llm, "The caller is")
        assert lookup["messages"][1]["content"].startswith("The caller is {{ secret }}, patient P-17")
        assert records.calls[0] == ("lookup", {"name": "{{ secret }}"})
        await wait_for(lambda: len(records.calls) == 2, 15, what="the callback")
        assert "hunter2" not in str(llm.requests) and "hunter2" not in str(records.calls)
        # the flow ran on to its end node: the session ended, and the next one (alice is still
        # there) starts the flow over with fresh state
        await alice.wait_left("clinic", timeout=15)
        assert await packets(alice, 4, timeout=20) == [{"node": "triage", "previous": "lookup"},
                                                       {"node": "goodbye", "previous": "triage"},
                                                       {"flow_ended": "goodbye"},
                                                       {"node": "greet", "previous": None}]
        assert bot.flow.node == "greet" and bot.state.room == {"secret": "hunter2"}
    finally:
        await llm.stop()


async def test_live_edit_of_the_current_node_and_deleting_it(run_bot, people, room_name, records, tmp_path):
    from bench.fake_openai import FakeOpenAI
    from runner.botfile.check import check_file
    llm = await FakeOpenAI(tool_triggers={"name is": ("record_name", {"name": "Bob"})}).start()  # stays in lookup
    try:
        environ = env(room_name, llm, records)
        text = chat_only(CLINIC)
        bot, _ = await run_bot(text, "clinic", environ=environ)
        generation = bot.generation
        alice = await people(room_name, "alice")
        assert await alice.next_data(15, sender="clinic") == {"node": "greet", "previous": None}
        await wait_for(lambda: llm.requests, 10, what="the greeting request")

        old = "Greet the caller and ask for their full name."
        new = "Greet the caller warmly and ask for their full name and date of birth."
        path = tmp_path / "clinic.yaml"
        path.write_text(text.replace(old, new))
        change = await bot.apply(check_file(path, environ=environ))
        assert change["tier"] == "live" and "flow.nodes.greet" in change["changes"]
        assert [c for c in change["changes"] if c.startswith("flow.nodes.")] == ["flow.nodes.greet"]
        before = len(llm.requests)
        await send_chat(alice, "hello there")
        said = {"role": "user", "content": "hello there"}

        def answering():  # a request still owed for the greeting may come first (seen once in CI)
            return next((r["messages"] for r in llm.requests[before:] if r["messages"][-1] == said), None)
        await wait_for(answering, 10, what="the LLM request with alice's message")
        edited = answering()
        assert {"role": "developer", "content": new} in edited and not any(m.get("content") == old for m in edited)
        assert bot.flow.node == "greet" and bot.generation is generation  # node kept, no rejoin

        # delete the current node (and edit the next one): the call stays in greet until it moves on
        renamed = text.replace(old, new).replace("initial_node: greet", "initial_node: lookup")
        start, end = renamed.index("    greet:\n"), renamed.index("    lookup:\n")
        deleted = renamed[:start] + renamed[end:]
        deleted = deleted.replace("Ask for the reason of the visit.", "Ask for the reason of the visit, kindly.") \
            .replace("state: {secret: hunter2}", "state: {secret: hunter2, name: nobody}")  # greet's set is gone
        path.write_text(deleted)
        change = await bot.apply(check_file(path, environ=environ))
        assert {"flow.nodes.greet", "flow.nodes.lookup"} <= set(change["changes"])
        assert bot.flow.node == "greet"
        before = len(llm.requests)
        await send_chat(alice, "my name is Bob")
        assert await alice.next_data(15, sender="clinic") == {"node": "lookup", "previous": "greet"}
        still = llm.requests[before]
        assert "record_name" in tools_of(still)  # the deleted node's functions until it left
        assert {"role": "developer", "content": new} in still["messages"]
        assert "kindly" in (await request_with(llm, "The caller is Bob"))["messages"][1]["content"]
        assert bot.state.room["name"] == "Bob" and bot.generation is generation

        # an edit that needs a new generation (the bot rejoins): the flow carries on in its node, with
        # the same text and state; on_enter does not run again, and no node_entered fires
        before = len(llm.requests)
        path.write_text(deleted.replace("identity: clinic}", "identity: clinic, name: Clinic desk}"))
        change = await bot.apply(check_file(path, environ=environ))
        assert change["tier"] == "generation"
        await wait_for(lambda: bot.generation is not None and bot.generation is not generation, 15,
                       what="the new generation")
        await wait_for(lambda: len(llm.requests) > before, 20, what="the resumed node's LLM request")
        resumed = llm.requests[before]["messages"]
        assert resumed[-1] == {"role": "developer", "content": "The caller is Bob, patient P-17 (last visit "
                                                                "2026-03-02). Ask for the reason of the visit, kindly."}
        assert bot.flow.node == "lookup" and bot.state.room["patient_id"] == "P-17"
        assert [c[0] for c in records.calls] == ["lookup"]
        assert await alice.no_data(0.5, sender="clinic")
    finally:
        await llm.stop()


SHOP = (Path(__file__).parent / "fixtures" / "flows_runtime" / "shop.yaml").read_text()


async def test_failing_handler_fires_error_and_python_handlers_run(run_bot, people, room_name):
    from bench.fake_openai import FakeOpenAI
    llm = await FakeOpenAI(tool_triggers={"stock": ("check_stock", {"item": "apples"}),
                                          "price": ("price_of", {"item": "pears"})}).start()
    try:
        bot, _ = await run_bot(SHOP, "shop", environ={"ROOM": room_name, "LLM_URL": llm.base_url})
        alice = await people(room_name, "alice")
        assert await alice.next_data(15, sender="shop") == {"node": "order"}
        await send_chat(alice, "is there stock of apples?")
        # pipecat would turn the failure into a tool result and say nothing: lkrun fires `error`
        error = await alice.next_data(15, sender="shop")
        assert error["event"] == "flow:check_stock" and "the stock service is down" in error["error"]
        assert "shop.yaml:35:" in error["error"]  # where the failing action is written
        answered = await wait_for(lambda: next((b for b in llm.requests if b["messages"][-1].get("role") == "tool"),
                                               None), 10, what="the LLM hearing the failure")
        assert "the stock service is down" in answered["messages"][-1]["content"]
        assert bot.flow.node == "order"  # no transition after a failed handler
        # a programmer's Python handler: pipecat derives its schema from the signature and docstring
        await send_chat(alice, "what is the price of pears?")
        await wait_for(lambda: bot.state.room.get("priced") == "pears", 10, what="the Python handler")
        offered = tools_of(llm.requests[-1])
        assert offered["price_of"]["parameters"]["properties"]["item"]["type"] == "string"
        assert offered["check_stock"]["parameters"] == bot.spec.flow.handlers["check_stock"].parameters
    finally:
        await llm.stop()


FLOWS = Path(__file__).parent / "fixtures" / "flows"


async def test_a_pipecat_flows_file_with_include_runs_unedited(run_bot, people, room_name, tmp_path):
    """pipecat's docstring flow, completed as a Pipecat Flows file with !include, read with no edits;
    the bot file around it only points the LLM at the loopback server and reports the nodes."""
    import shutil
    from bench.fake_openai import FakeOpenAI
    shutil.copytree(FLOWS, tmp_path, dirs_exist_ok=True)
    llm = await FakeOpenAI(instruction_triggers={
        "ask whether they want pizza or sushi": ("choose_pizza", {}),
        "Take a pizza order.": ("select_pizza_order", {"size": "large"}),
    }).start()
    try:
        text = (tmp_path / "include_bot.yaml").read_text().replace("room: pizza-or-sushi", f"room: {room_name}") \
            .replace('"${OPENAI_API_KEY:-unused}"}', f'"${{OPENAI_API_KEY:-unused}}", base_url: "{llm.base_url}"}}') \
            + "on:\n  node_entered:\n    - send: {data: {node: \"{{ flow.node }}\", pizza: \"{{ state.pizza }}\"}}\n"
        bot, _ = await run_bot(text, "include_bot")
        assert bot.spec.flow.files and any(f.endswith("sushi_node.yaml") for f in bot.spec.flow.files)
        alice = await people(room_name, "alice")
        seen = [await alice.next_data(15, sender="include-flow") for _ in range(3)]
        assert seen == [{"node": "greet", "pizza": None}, {"node": "pizza", "pizza": None},
                        {"node": "confirm", "pizza": "large"}]
        await alice.wait_left("include-flow", timeout=15)  # end_conversation ended the session
        pizza = await request_with(llm, "Take a pizza order.")
        offered = tools_of(pizza)
        assert offered["select_pizza_order"]["parameters"]["properties"]["size"]["enum"] == ["small", "medium", "large"]
        assert offered["get_delivery_estimate"]["description"] == "How long delivery takes."
        assert system(pizza) == "You are a friendly order-taking assistant."  # greet's role_message persists
    finally:
        await llm.stop()


def test_pipecats_own_docstring_flow_names_nodes_it_does_not_define():
    """Kept byte for byte (tests/fixtures/flows/pipecat_docstring_flow.yaml): pipecat itself refuses
    it, as lkrun's checker does, so the runnable form is the !include one above."""
    import pipecat.flows.config as config
    from pipecat.flows import FlowConfig
    example = config.__doc__.split("Example YAML::\n\n", 1)[1]
    example = "\n".join(line[4:] for line in example.splitlines()) + "\n"
    assert (FLOWS / "pipecat_docstring_flow.yaml").read_text().endswith(example)
    with pytest.raises(ValueError, match="unknown node 'sushi'"):
        FlowConfig.from_yaml(example)


async def test_a_handler_whose_caller_leaves_stops_and_the_llm_hears_why(run_bot, people, room_name):
    """The run belongs to the person who spoke: when they leave, it stops inside pipecat's function call,
    which goes on to answer the LLM "the caller left" (lkrun's rule for tools, kept for flows)."""
    from bench.fake_openai import FakeOpenAI
    llm = await FakeOpenAI(tool_triggers={"warehouse": ("ask_the_warehouse", {})}).start()
    try:
        bot, _ = await run_bot(SHOP, "shop", environ={"ROOM": room_name, "LLM_URL": llm.base_url})
        alice = await people(room_name, "alice")
        assert await alice.next_data(15, sender="shop") == {"node": "order"}
        bot.last_speaker = "alice"  # as if she had said it (SpeakerTap sets it from her transcript; no STT here)
        await send_chat(alice, "please ask the warehouse")
        await wait_for(lambda: bot.dispatcher.owned.get("alice"), 10, what="the handler running for alice")
        left = asyncio.get_running_loop().time()
        await alice.leave()
        answered = await wait_for(lambda: next((b for b in llm.requests if b["messages"][-1].get("role") == "tool"),
                                               None), 10, what="the LLM hearing why")
        assert "the caller left" in answered["messages"][-1]["content"]
        await asyncio.sleep(max(0.0, left + 2.5 - asyncio.get_running_loop().time()))  # past the wait: 2
        assert "warehouse" not in bot.state.room and not bot.dispatcher.owned.get("alice")
    finally:
        await llm.stop()

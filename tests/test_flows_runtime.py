"""The runtime side of `flow:` without a room: one rendering, pipecat's own checks, what reload sees."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from runner.botfile.check import check_file
from runner.runtime.engine import Run
from runner.runtime.flow_hooks import escape
from runner.runtime.flow_reload import changed_nodes, replacer
from runner.runtime.flows import FlowRun, FlowSession, build_flow, pipecat_problems
from runner.runtime.state import SessionState

CLINIC = Path(__file__).parent / "fixtures" / "flows_runtime" / "clinic.yaml"
ENV = {"ROOM": "r", "LLM_URL": "http://127.0.0.1:9/v1", "RECORDS": "http://127.0.0.1:8"}

PROMPTS = """
version: 1
name: prompts
livekit: {room: r}
pipeline:
  - llm: {type: openai_llm, api_key: "${K:-x}"}
vars: {clinic: Riverside, greeting: Hello}
flow:
  state: {clinic: Hillside}
  initial_node: a
  nodes:
    a:
      role_message: "{{ greeting }} from {{ clinic }} ({{ vars.clinic }}, {{ bot.name }})"
      task_messages:
        - role: developer
          content: "Caller {{ name }} on {{ flow.node }} after {{ flow.previous }}; {{ results.r.json.x }}"
      pre_actions:
        - type: tts_say
          text: "Hi {{ name }}"
      functions:
        - name: take
          description: take it
          parameters: {type: object, properties: {name: {type: string}}}
          do: [{set: {values: {name: "{{ args.name }}"}}}]
          transition_to: b
    b:
      task_messages: [{role: developer, content: bye}]
      post_actions:
        - type: end_conversation
          text: "Bye {{ name }}"
"""


def spec_of(tmp_path, text, name="bot.yaml", environ=None):
    path = tmp_path / name
    path.write_text(text)
    return check_file(path, environ=environ)


def flow_run(spec, room: dict, node="a", previous="z"):
    bot = SimpleNamespace(spec=spec, state=SessionState(room=room), last_speaker=None, services={},
                          participants=lambda: [], trace=None, effects=None, flow=FlowSession(node=node,
                                                                                              previous=previous))
    run = FlowRun.__new__(FlowRun)
    run.bot, run.session = bot, bot.flow
    return run


def test_one_rendering_with_bare_state_keys_vars_fallback_and_no_shadowing(tmp_path):
    from pipecat.flows.manager import FlowManager
    spec = spec_of(tmp_path, PROMPTS)
    room = {"name": "{{ secret }}", "secret": "hunter2", "vars": "not vars", "bot": "not bot",
            "clinic": spec.flow.state["clinic"]}  # flow: state: gives initial values (FlowRun.start)
    run = flow_run(spec, room)
    engine = run.new_run("flow:a", {"participant": {"id": None}}, None)
    engine.results["r"] = {"json": {"x": "from on_enter"}}
    flow, _ = build_flow(spec.flow, _namespace(spec))
    out = run.render(spec.flow.nodes["a"], flow.node("a"), engine)
    # bare keys: state first (clinic), vars as fallback (greeting); state never shadows vars or bot
    assert run.rendered["role_message"] == "Hello from Hillside (Riverside, prompts)"
    assert run.rendered["task_messages"] == [
        {"role": "developer", "content": "Caller {{ secret }} on a after z; from on_enter"}]
    # escaped for pipecat, whose own renderer gives the text back unchanged (one rendering)
    fm = FlowManager.__new__(FlowManager)
    fm._state = room
    back = fm._render_node("a", out)
    assert back["task_messages"][0]["content"] == "Caller {{ secret }} on a after z; from on_enter"
    assert back["pre_actions"][0]["text"] == "Hi {{ secret }}"
    assert "hunter2" not in str(back)
    # the original node config is untouched (the next entry renders afresh)
    assert flow.node("a")["task_messages"][0]["content"].startswith("Caller {{ name }}")
    end = run.render(spec.flow.nodes["b"], flow.node("b"), engine)["post_actions"][0]
    # an end_conversation goodbye is a template like tts_say's, rendered once by lkrun: the caller's own
    # "{{ secret }}" (the state's name) stays text, and lkrun's `say` never renders it again
    assert end == {"type": "end_conversation", "text": "Bye {{ secret }}"}


def _namespace(spec):
    from runner.runtime.flow_handlers import Handlers
    return Handlers(None, spec.flow).namespace()


def test_build_flow_gives_pipecat_the_files_tool_schemas(tmp_path):
    spec = check_file(CLINIC, environ=ENV)
    flow, globals_ = build_flow(spec.flow, _namespace(spec))
    (schema,) = flow.node("greet")["functions"]
    assert schema.to_function_schema().to_default_dict() == {
        "name": "record_name", "description": "Record the caller's full name",
        "parameters": spec.flow.handlers["record_name"].parameters}
    book = flow.node("schedule")["functions"][0]  # transition_only: pipecat's own (no parameters)
    assert book.to_function_schema().to_default_dict()["parameters"] == {"type": "object", "properties": {},
                                                                           "required": []}
    assert globals_ == []
    assert pipecat_problems(spec.flow) == []


def test_pipecat_refusal_is_reported_with_positions(tmp_path):
    import dataclasses
    spec = check_file(CLINIC, environ=ENV)
    broken = dataclasses.replace(spec.flow, config={**spec.flow.config, "nodes": {
        **spec.flow.config["nodes"], "greet": {**spec.flow.config["nodes"]["greet"], "surprise": 1}}})
    problems = pipecat_problems(broken)
    assert len(problems) == 1 and "clinic.yaml:" in problems[0] and "surprise" in problems[0] \
        and "Extra inputs are not permitted" in problems[0]


def test_changed_nodes_names_what_an_edit_touched(tmp_path):
    text = CLINIC.read_text()
    old = spec_of(tmp_path, text, "a.yaml", ENV).flow
    assert changed_nodes(old, spec_of(tmp_path, text, "b.yaml", ENV).flow) == []
    edited = text.replace("Promise a nurse callback.", "Promise a callback within the hour.")
    assert changed_nodes(old, spec_of(tmp_path, edited, "c.yaml", ENV).flow) == ["triage"]
    handler = text.replace("noted: \"{{ args.reason }}\"", "noted: \"{{ args.reason | upper }}\"")
    assert changed_nodes(old, spec_of(tmp_path, handler, "d.yaml", ENV).flow) == ["lookup"]
    hook = text.replace("save_as: patient}", "save_as: patient, timeout: 3}")
    assert changed_nodes(old, spec_of(tmp_path, hook, "e.yaml", ENV).flow) == ["lookup"]
    # lines moving (a comment added above) is not a change
    moved = text.replace("  nodes:\n", "  # the nodes\n  nodes:\n", 1)
    assert changed_nodes(old, spec_of(tmp_path, moved, "f.yaml", ENV).flow) == []


@pytest.mark.parametrize("context, expected", [
    ([{"role": "developer", "content": "old"}, {"role": "user", "content": "hi"}],
     [{"role": "developer", "content": "new"}, {"role": "user", "content": "hi"}]),
    ([{"role": "developer", "content": "old"}, {"role": "user", "content": "x"}, {"role": "developer", "content": "old"}],
     [{"role": "developer", "content": "old"}, {"role": "user", "content": "x"}, {"role": "developer", "content": "new"}]),
    ([{"role": "user", "content": "hi"}], [{"role": "user", "content": "hi"}, {"role": "developer", "content": "new"}]),
])
def test_live_edit_replaces_the_latest_copy_of_the_nodes_messages(context, expected):
    transform = replacer([{"role": "developer", "content": "old"}], [{"role": "developer", "content": "new"}])
    assert transform(context) == expected


def test_escape_is_idempotent_under_pipecats_reading():
    assert escape("{{ a }} and {{b.c}}") == "\\{{ a }} and \\{{b.c}}"
    assert escape("no placeholders { here }") == "no placeholders { here }"


WAITER = """
version: 1
name: waiter
livekit: {room: r}
scripts:
  slow: {do: [{wait: 5}, {set: {values: {done: true}}}]}
"""


async def test_a_handler_run_inline_stops_when_its_caller_leaves(tmp_path):
    """Tool and flow handler runs happen in pipecat's function-call task (no task of their own, which
    cost two event-loop hops per call); the person's leaving still stops them, and only them."""
    import asyncio
    from runner.runtime.bot import BotRuntime
    from runner.runtime.tools import run_owned
    spec = spec_of(tmp_path, WAITER)
    bot = BotRuntime(spec, server=None)
    actions = spec.scripts["slow"].actions

    async def call():  # what a pipecat function call task does with the handler
        run = Run(spec, bot.state, bot.effects, "tool:slow", {}, "alice", [], None)
        entry = await run_owned(bot, run, actions, "alice")
        return "the caller left" if entry is None else "finished"
    left = asyncio.ensure_future(call())
    await asyncio.sleep(0.05)
    assert left in bot.dispatcher.owned["alice"]
    bot.dispatcher.cancel_runs_of("alice")
    assert await left == "the caller left" and not left.cancelled()
    assert "done" not in bot.state.room and left not in bot.dispatcher.owned.get("alice", set())
    # a cancellation that is not the caller leaving (an interruption, the pipeline stopping) goes through
    other = asyncio.ensure_future(call())
    await asyncio.sleep(0.05)
    other.cancel()
    with pytest.raises(asyncio.CancelledError):
        await other
    assert not bot.dispatcher.owned.get("alice")

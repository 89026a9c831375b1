"""Canary: the pipecat-flows internals runtime/flow_hooks.py relies on still behave as it expects.

When one of these fails after a pipecat upgrade, read runtime/flow_hooks.py's docstring: each
internal it touches is listed there, and this is where they are pinned.
"""

import inspect

import pytest
from pipecat.flows import Flow, FlowConfig
from pipecat.flows import manager as manager_module
from pipecat.flows.manager import FlowManager
from pipecat.flows.types import TRANSITION_IN_YAML, FlowsDirectFunctionWrapper, FlowsFunctionSchema

from runner.runtime.flow_hooks import ExactFlowsFunction, ExactFunctionSchema, HookedFlowManager, escape, exact


def test_set_node_is_the_one_path_into_a_node():
    params = list(inspect.signature(FlowManager._set_node).parameters)
    assert params == ["self", "node_id", "node_config"]
    assert inspect.iscoroutinefunction(FlowManager._set_node)
    # the initial node and every transition come through it (lkrun's on_exit/on_enter/render hook)
    assert "self._set_node(" in inspect.getsource(FlowManager.initialize)
    assert "self._set_node(" in inspect.getsource(FlowManager._execute_transition)
    # inside it, pipecat renders the node, then builds each function's schema
    body = inspect.getsource(FlowManager._set_node)
    assert "self._render_node(node_id, node_config)" in body
    assert "await self._create_function_schema(tool)" in body
    assert "self._current_node = node_id" in body


def test_create_function_schema_returns_what_the_llm_sees():
    params = list(inspect.signature(FlowManager._create_function_schema).parameters)
    assert params == ["self", "tool"]
    source = inspect.getsource(FlowManager._create_function_schema)
    assert "tool.to_function_schema()" in source and "handler=transition_func" in source


def test_state_and_current_node_are_plain_attributes():
    source = inspect.getsource(FlowManager.__init__)
    assert "self._state: dict[str, Any] = {}" in source
    assert "self._current_node: str | None = None" in source
    assert "return self._state" in inspect.getsource(FlowManager.state.fget)
    assert "return self._current_node" in inspect.getsource(FlowManager.current_node.fget)


def test_placeholder_escape_survives_pipecats_rendering():
    """lkrun escapes what it rendered; pipecat's renderer must give it back byte for byte."""
    assert manager_module._PLACEHOLDER.pattern.startswith(r"(\\?)\{\{")
    fm = FlowManager.__new__(FlowManager)
    fm._state = {"secret": "hunter2", "order": {"size": "L"}}
    for text in ["Your name is {{ secret }}.", "{{secret}} and {{ order.size }}", r"a \{{ secret }} b",
                 "prose { { braces } } {{ 1 + 2 }} {{", "plain text", "{{ missing_key }}"]:
        node = {"task_messages": [{"role": "developer", "content": escape(text)}], "role_message": escape(text),
                "pre_actions": [{"type": "tts_say", "text": escape(text)}]}
        rendered = fm._render_node("n", node)
        assert rendered["task_messages"][0]["content"] == text
        assert rendered["role_message"] == text
        assert rendered["pre_actions"][0]["text"] == text
    assert "hunter2" not in str(fm._render_node("n", {"task_messages": [{"role": "x", "content": escape("{{ secret }}")}]}))
    # and unescaped, it would have been filled in: the escape is what keeps one rendering
    assert fm._render_node("n", {"task_messages": [{"role": "x", "content": "{{ secret }}"}]})[
        "task_messages"][0]["content"] == "hunter2"


def test_flow_accepts_a_kwargs_direct_function_and_shares_node_dicts():
    async def record(flow_manager, **args):
        return args, TRANSITION_IN_YAML
    FlowsDirectFunctionWrapper.validate_function(record)
    config = FlowConfig.model_validate({"initial_node": "a", "nodes": {
        "a": {"task_messages": [{"role": "developer", "content": "x"}],
              "functions": [{"name": "record", "transition_to": "b"}]},
        "b": {"task_messages": [{"role": "developer", "content": "y"}]}}})
    flow = Flow(config, handlers={"record": record})
    assert flow.node("a") is flow.node("a")  # build_flow swaps the schemas in place
    schema = flow.node("a")["functions"][0]
    assert isinstance(schema, FlowsFunctionSchema) and schema.name == "record"
    assert schema.properties == {"args": {}}  # what pipecat derives from the signature: lkrun overwrites it


async def test_exact_schema_reaches_the_llm_verbatim():
    parameters = {"type": "object", "properties": {"size": {"type": "string", "enum": ["s", "l"]},
                                                   "extras": {"type": "object", "properties": {"x": {"type": "integer"}}}},
                  "required": ["size"], "additionalProperties": False}

    async def handler(args, flow_manager):
        return "ok"
    base = FlowsFunctionSchema(name="pick", description="d", properties={}, required=[], handler=handler)
    tool = exact(base, "Pick a size", parameters)
    assert isinstance(tool, ExactFlowsFunction)
    fm = HookedFlowManager.__new__(HookedFlowManager)
    schema = await HookedFlowManager._create_function_schema(fm, tool)
    assert isinstance(schema, ExactFunctionSchema) and schema.handler is not None
    assert schema.to_default_dict() == {"name": "pick", "description": "Pick a size", "parameters": parameters}
    from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
    from pipecat.adapters.llm.services.open_ai_adapter import OpenAILLMAdapter
    sent = OpenAILLMAdapter().to_provider_tools_format(ToolsSchema(standard_tools=[schema]))
    assert sent[0]["function"]["parameters"] == parameters


def test_end_conversation_is_replaceable_by_register_action():
    from pipecat.flows.actions import ActionManager
    source = inspect.getsource(ActionManager.__init__)
    assert '"end_conversation"' in source
    assert "self._action_handlers[action_type] = handler" in inspect.getsource(ActionManager._register_action)
    assert "self._action_manager._register_action(action_type, handler)" in inspect.getsource(FlowManager.register_action)
    # a node's actions are only registered from config when the type is not registered yet
    assert "not in self._action_manager._action_handlers" in inspect.getsource(FlowManager._register_action_from_config)


@pytest.mark.parametrize("text", ["{{ a }}", "x"])
def test_escape_only_touches_placeholders(text):
    assert escape(text) == ("\\{{ a }}" if "{{" in text else text)

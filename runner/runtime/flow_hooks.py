"""The pipecat-flows internals lkrun relies on, in one place (tests/test_flow_hooks.py is their canary).

pipecat's ``FlowManager`` offers no public seam for what a `flow:` section needs, so this
module subclasses it and touches exactly these internals:

- ``FlowManager._set_node(node_id, node_config)``: every node entry (the initial node, each
  transition) goes through it; lkrun runs ``on_exit`` / ``on_enter``, renders the node and fires
  ``node_entered`` around it, and resolves the node by name in the *current* flow (hot reload).
- ``FlowManager._create_function_schema(tool)``: builds the FunctionSchema the LLM sees; lkrun
  swaps it for one whose parameters are the file's JSON Schema verbatim (pipecat keeps only
  ``properties`` and ``required``, derived from a Python signature).
- ``FlowManager._state`` (behind the public ``state``): made the session's room state dict.
- ``FlowManager._current_node``: the node the flow is in (public read: ``current_node``).
- ``pipecat.flows.manager._PLACEHOLDER``: the ``{{ key }}`` pattern pipecat fills from state
  on entry; lkrun escapes every match (``\\{{``, pipecat's documented escape) so what lkrun
  rendered is never filled in a second time.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.flows import manager as _manager
from pipecat.flows.manager import FlowManager
from pipecat.flows.types import FlowsFunctionSchema

PLACEHOLDER = _manager._PLACEHOLDER


def escape(text: str) -> str:
    """Text pipecat's renderer gives back unchanged (each placeholder-looking match gets a backslash)."""
    return PLACEHOLDER.sub(lambda m: "\\" + m.group(0), text) if "{{" in text else text


class ExactFunctionSchema(FunctionSchema):
    """A FunctionSchema whose ``parameters`` are the bot file's JSON Schema, key for key."""

    def __init__(self, name: str, description: str, parameters: dict, handler=None):
        parameters = dict(parameters or {"type": "object", "properties": {}})
        super().__init__(name=name, description=description, properties=dict(parameters.get("properties") or {}),
                         required=list(parameters.get("required") or []), handler=handler)
        self.parameters = parameters

    def to_default_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "parameters": self.parameters}


@dataclasses.dataclass
class ExactFlowsFunction(FlowsFunctionSchema):
    """A FlowsFunctionSchema that carries the exact tool schema through pipecat's node set-up."""

    parameters: dict | None = None

    def to_function_schema(self) -> FunctionSchema:
        return ExactFunctionSchema(self.name, self.description, self.parameters or {})


def exact(schema: FlowsFunctionSchema, description: str, parameters: dict) -> ExactFlowsFunction:
    """The same function (handler, call options) with the file's description and parameters."""
    return ExactFlowsFunction(name=schema.name, description=description or schema.description,
                              properties=dict(parameters.get("properties") or {}),
                              required=list(parameters.get("required") or []), handler=schema.handler,
                              cancel_on_interruption=schema.cancel_on_interruption,
                              timeout_secs=schema.timeout_secs, parameters=parameters)


class HookedFlowManager(FlowManager):
    """pipecat's FlowManager with lkrun's node hooks (``hooks`` is a runtime.flows.FlowRun)."""

    def __init__(self, *, hooks, state: dict, **kwargs):
        super().__init__(**kwargs)
        self._lkrun = hooks
        self._state = state  # flow state IS the session's room state

    async def _set_node(self, node_id: str, node_config) -> None:
        node_id, node_config, previous = await self._lkrun.before_node(node_id, node_config, self._current_node)
        await super()._set_node(node_id, node_config)
        await self._lkrun.after_node(node_id, previous)

    async def _create_function_schema(self, tool) -> FunctionSchema:
        base = await super()._create_function_schema(tool)
        if isinstance(tool, ExactFlowsFunction):
            return ExactFunctionSchema(base.name, base.description, tool.parameters or {}, handler=base.handler)
        return base

    def set_current(self, node_id: str | None) -> None:
        """A new generation resumes the session's flow at the node it was in."""
        self._current_node = node_id

"""pipecat's ToolsSchema for a bot's ``tools:`` (the LLM context)."""

from __future__ import annotations


def tools_schema(tools):
    """pipecat's ToolsSchema for the LLM context."""
    from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
    from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
    return ToolsSchema(standard_tools=[
        FunctionSchema(name=t.name, description=t.description or t.name,
                       properties=dict(t.parameters.get("properties") or {}),
                       required=list(t.parameters.get("required") or [])) for t in tools])

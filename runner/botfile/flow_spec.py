"""What a checked `flow:` section becomes: pipecat's FlowConfig data plus lkrun's compiled additions.

`config` is exactly what pipecat's `FlowConfig.model_validate` accepts (lkrun's keys stripped,
handler entries resolved); everything lkrun itself runs or renders is compiled beside it, so
the runtime never re-reads the file and pipecat never renders a template.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType


def _frozen() -> MappingProxyType:
    return MappingProxyType({})


@dataclass(frozen=True)
class FlowNode:
    """One node's lkrun side. Templates are compiled (render with the flow's variables)."""

    name: str
    role_message: object = None  # compiled template or None
    task_messages: tuple = ()  # ((role, compiled template), ...) in the file's order
    tts_say: MappingProxyType = field(default_factory=_frozen)  # ("pre_actions"|"post_actions", index) -> compiled
    on_enter: tuple = ()  # ActionNode: run by lkrun's engine before the node's messages are rendered
    on_exit: tuple = ()  # ActionNode: run when the flow leaves the node
    file: str = ""
    line: int = 0


@dataclass(frozen=True)
class FlowHandler:
    """A handler named by a function (or by a `function`/custom action): lkrun actions or Python.

    For a function, `parameters` is the tool schema the LLM sees, verbatim. `result` is a
    compiled template, or a mapping of compiled templates when a branch reads a field of it.
    """

    name: str
    description: str = ""
    parameters: dict = field(default_factory=lambda: {"type": "object", "properties": {}})
    actions: tuple = ()  # ActionNode
    result: object = "done"
    python: str | None = None  # "package.module:function" for programmers
    file: str = ""
    line: int = 0


@dataclass(frozen=True)
class FlowSpec:
    config: dict  # pipecat FlowConfig shape: initial_node, nodes, global_functions (lkrun keys removed)
    nodes: MappingProxyType  # node name -> FlowNode
    handlers: MappingProxyType  # handler name -> FlowHandler (function and action handlers; one namespace)
    state: dict = field(default_factory=dict)  # initial flow (= room) state values
    files: tuple = ()  # every file the flow was read from (the bot file, flow files, includes)
    positions: MappingProxyType = field(default_factory=_frozen)  # config path tuple -> (file, line, col)

    @property
    def initial_node(self) -> str:
        return self.config["initial_node"]

    def where(self, path: tuple) -> tuple:
        """(file, line, col) of a config path, or of its nearest written parent."""
        path = tuple(path)
        while path:
            if path in self.positions:
                return self.positions[path]
            path = path[:-1]
        return self.positions.get((), (self.files[0] if self.files else "", 1, 1))

    def transitions(self) -> list[tuple[str, str, str]]:
        """(from node, function label, to node) for every transition."""
        from runner.botfile.flow_graph import edges
        return edges(self.config)

    def end_nodes(self) -> set[str]:
        """Nodes whose pre/post actions end the conversation."""
        from runner.botfile.flow_graph import ends
        return ends(self.config)

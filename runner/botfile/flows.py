"""`flow:` -> FlowSpec: pipecat's FlowConfig shape checked in lkrun's style, with no pipecat import.

Every problem at once, each in the file that holds it (the bot file, the flow file or an
included file), with did-you-mean. pipecat's own validation runs later as a second net
(runtime and `lkrun test`); this check is what `lkrun validate` and the editor see.
"""

from __future__ import annotations

from types import MappingProxyType

from runner.botfile import flow_graph, flow_load, humanize
from runner.botfile.check_actions import ActionChecker
from runner.botfile.errors import did_you_mean
from runner.botfile.events import PARTICIPANT
from runner.botfile.flow_checker import FlowChecker, case_key_problems, state_keys
from runner.botfile.flow_schema import CONFIG, FILE_FORM, LKRUN_HANDLER_KEYS, LKRUN_NODE_KEYS, LKRUN_TOP_KEYS
from runner.botfile.flow_spec import FlowHandler, FlowNode, FlowSpec
from runner.botfile.templates import LEAF, is_template, template_strings

BUILT_IN_ACTIONS = ("tts_say", "end_conversation", "function")
FLOW_VARIABLES = {"flow": {"node": LEAF, "previous": LEAF}}


def check_flow(checker, value, variables: dict, tool_names=()) -> FlowSpec | None:
    """The `flow:` section (None when absent or broken; problems go to ``checker``)."""
    if value is None:
        return None
    if "llm" not in checker.capabilities:
        checker.report(("flow",), "a flow needs an llm stage in pipeline:", "add '- llm: {type: openai_llm}' "
                       "under pipeline: (the LLM calls the flow's functions)", key=True)
    here = FlowChecker.over(checker, flow_load.inline(checker.doc, value))
    if isinstance(value, str):
        value = {"file": value}
        here.shorthand = True
    if not isinstance(value, dict):
        checker.report(("flow",), f"flow: expected a mapping (the flow) or a file name, got {humanize.describe(value)}")
        return None
    extra = {}  # handlers and state written in the bot file beside `file:`
    if "file" in value:
        for rel, message, hint, at_key in humanize.validate(FILE_FORM, value, "flow"):
            here.report(() if getattr(here, "shorthand", False) else rel, message, hint, key=at_key)
        problems: list = []
        doc = flow_load.from_file(checker.doc, value.get("file"), ("flow",) if getattr(here, "shorthand", False)
                                  else ("flow", "file"), problems)
        checker.problems.extend(problems)
        if doc is None:
            return None
        there = FlowChecker.over(checker, doc)
        extra = {k: value[k] for k in LKRUN_TOP_KEYS if k in value}
        data = doc.data
    else:
        there, data = here, value
    if not isinstance(data, dict):
        there.report((), f"a flow file holds a mapping (initial_node, nodes), got {humanize.describe(data)}")
        return None
    for rel, message, hint, at_key in humanize.validate(CONFIG, data, "flow"):
        there.report(rel, message, hint, key=at_key)
    case_key_problems(there, data)
    return _Flow(checker, here, there, data, extra, variables, set(tool_names)).build()


class _Flow:
    def __init__(self, checker, here, there, data, extra, variables, tool_names):
        self.checker, self.here, self.there, self.data = checker, here, there, data
        self.extra, self.variables, self.tool_names = extra, variables, tool_names
        self.nodes = data.get("nodes") if isinstance(data.get("nodes"), dict) else {}
        self.handlers: dict[str, FlowHandler] = {}
        self.bodies: dict[str, tuple] = {}  # handler name -> (raw body, where it was written)
        self.state = {}
        bare = state_keys(checker.doc.data) | state_keys(data)
        for source in (data.get("state"), extra.get("state")):
            if isinstance(source, dict):
                self.state.update(source)
                bare |= set(source)
        bare |= set(checker.doc.data.get("vars") or {}) if isinstance(checker.doc.data, dict) else set()
        self.base = {**variables, **PARTICIPANT, **FLOW_VARIABLES}
        self.prompt_scope = {**{k: LEAF for k in bare if isinstance(k, str)}, **self.base}  # never shadows

    def build(self) -> FlowSpec | None:
        for owner, source, at in ((self.here, self.extra.get("handlers"), ("handlers",)),
                                  (self.there, self.data.get("handlers"), ("handlers",))):
            if isinstance(source, dict):
                for name, body in source.items():
                    if isinstance(body, dict):
                        self._define(owner, str(name), body, at + (name,))
        functions = self._functions()
        self._references(functions)
        nodes = {name: self._node(name, node) for name, node in self.nodes.items() if isinstance(node, dict)}
        self._graph()
        if any(p.severity == "error" for p in self.checker.problems):
            return None
        config = _pipecat_config(self.data)
        return FlowSpec(config=config, nodes=MappingProxyType(nodes), handlers=MappingProxyType(self.handlers),
                        state=dict(self.state), files=self.there.doc.files(),
                        positions=MappingProxyType(self.there.positions()))

    # handlers -----------------------------------------------------------------------------
    def _define(self, owner, name: str, body: dict, path: tuple) -> None:
        written = {k: body[k] for k in ("description",) + LKRUN_HANDLER_KEYS if k in body}
        if name in self.bodies:
            first, first_at = self.bodies[name]
            if first != written:
                owner.report(path, f"a second, different handler named '{name}' (first at {first_at})",
                             "pipecat finds handlers by name: give one of them another name, or make them equal")
            return
        self.bodies[name] = (written, "{}:{}".format(*owner.doc.where(path)))
        if "python" in body and "do" in body:
            owner.report(path + ("python",), f"handler '{name}' has both do: and python:", "keep one of them")
        elif "python" in body and "parameters" not in body:
            owner.report(path + ("python",), f"handler '{name}': the LLM sees the arguments pipecat reads from the "
                                             f"Python function's signature", "give parameters: to show it an exact "
                                             "schema instead", severity="warning")
        parameters = body.get("parameters") or {"type": "object", "properties": {}}
        if isinstance(parameters, dict):
            from runner.botfile.tools import _check_parameters
            _check_parameters(owner, parameters, path + ("parameters",))
        properties = parameters.get("properties") if isinstance(parameters, dict) else None
        args = {str(k): LEAF for k in properties} if isinstance(properties, dict) else LEAF
        scope = {**self.base, "args": args}
        actions = ActionChecker(owner, scope, f"flow function '{name}'").actions(body.get("do"), path + ("do",))
        result = body.get("result", "done")
        for rel, text in template_strings(result):
            owner.check_template(text, path + ("result",) + rel, scope)
        result = owner.compile(result, path + ("result",))
        line, _ = owner.doc.where(path)
        self.handlers[name] = FlowHandler(name, str(body.get("description") or ""),
                                          dict(parameters) if isinstance(parameters, dict) else {},
                                          actions, result, body.get("python"), owner.doc.file_of(path), line)

    def _functions(self) -> list[tuple[tuple, dict]]:
        """Every function entry (path, entry); inline handler bodies defined on the way."""
        found = []
        for index, entry in enumerate(self.data.get("global_functions") or []):
            found.append((("global_functions", index), entry))
        for name, node in self.nodes.items():
            if isinstance(node, dict) and isinstance(node.get("functions"), list):
                found.extend(((("nodes", name, "functions", i), f) for i, f in enumerate(node["functions"])))
        for path, entry in found:
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                continue
            name = entry["name"]
            if name in self.tool_names:
                self.there.report(path + ("name",), f"'{name}' is also a tool under tools:, which the flow offers "
                                                    f"at every node", "rename one of them")
            inline = any(k in entry for k in LKRUN_HANDLER_KEYS) or (
                "description" in entry and not entry.get("transition_only"))
            if entry.get("transition_only"):
                stray = [k for k in LKRUN_HANDLER_KEYS if k in entry]
                if stray:
                    self.there.report(path + (stray[0],), f"function '{name}' is transition_only, so it runs "
                                                          f"nothing: '{stray[0]}' is never used",
                                      "remove transition_only: true to make it a function with a handler")
            elif inline:
                self._define(self.there, name, entry, path)
        return found

    def _references(self, functions) -> None:
        seen_global = {e.get("name") for p, e in functions if p[0] == "global_functions" and isinstance(e, dict)}
        per_node: dict = {}
        for path, entry in functions:
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                continue
            name = entry["name"]
            if path[0] == "nodes":
                names = per_node.setdefault(path[1], set())
                if name in names:
                    self.there.report(path + ("name",), f"a second function named '{name}' in node '{path[1]}'")
                names.add(name)
                if name in seen_global:
                    self.there.report(path + ("name",), f"function '{name}' is also a global function",
                                      "remove it here (global functions are offered at every node) or rename it")
            if entry.get("transition_only"):
                if not entry.get("description"):
                    self.there.report(path + ("name",), f"function '{name}' is transition_only and needs a "
                                                        f"description (the LLM reads it to decide when to call it)",
                                      key=False)
                if not isinstance(entry.get("transition_to"), str):
                    at = path + (("transition_to",) if "transition_to" in entry else ("transition_only",))
                    self.there.report(at, f"function '{name}' is transition_only and "
                                                                   f"must name the node it goes to in transition_to")
            elif name not in self.handlers:
                self.there.report(path + ("name",), f"function '{name}' has nothing to do: give it do: (actions) "
                                                    f"or transition_only: true, or define handlers: {name}"
                                  + did_you_mean(name, self.handlers),
                                  "for example: do: [{set: {values: {answer: \"{{ args.answer }}\"}}}]")
            self._targets(path, entry)

    def _targets(self, path: tuple, entry: dict) -> None:
        to = entry.get("transition_to")
        if isinstance(to, str):
            self._node_name(path + ("transition_to",), to)
        elif isinstance(to, dict):
            cases = to.get("cases") if isinstance(to.get("cases"), dict) else {}
            for key, target in cases.items():
                self._node_name(path + ("transition_to", "cases", key), target)
            if "default" in to:
                self._node_name(path + ("transition_to", "default"), to["default"])
            field = to.get("field")
            handler = self.handlers.get(entry.get("name"))
            if isinstance(field, str) and handler is not None and handler.python is None:
                if not isinstance(handler.result, dict):
                    self.there.report(path + ("transition_to", "field"),
                                      f"the branch reads '{field}' from the result of '{entry['name']}', but its "
                                      f"result is not a mapping", f"write result: {{{field}: ...}}")
                elif field not in handler.result:
                    self.there.report(path + ("transition_to", "field"),
                                      f"the branch reads '{field}', which the result of '{entry['name']}' does not "
                                      f"have{did_you_mean(field, handler.result)}",
                                      f"add {field}: to its result mapping")

    def _node_name(self, path: tuple, name) -> None:
        if isinstance(name, str) and name not in self.nodes:
            self.there.report(path, f"there is no node named '{name}'{did_you_mean(name, self.nodes)}",
                              "nodes: lists the flow's nodes")

    # nodes --------------------------------------------------------------------------------
    def _node(self, name: str, node: dict) -> FlowNode:
        at = ("nodes", name)
        there = self.there
        role = self._prompt(node.get("role_message"), at + ("role_message",))
        messages = []
        for index, message in enumerate(node.get("task_messages") or []):
            if isinstance(message, dict):
                messages.append((str(message.get("role", "")),
                                 self._prompt(message.get("content"), at + ("task_messages", index, "content"))))
        says = {}
        for which in ("pre_actions", "post_actions"):
            for index, item in enumerate(node.get(which) or []):
                if not isinstance(item, dict):
                    continue
                compiled = self._action(item, at + (which, index))
                if compiled is not None:
                    says[(which, index)] = compiled
        scope = {**self.base}
        hooks = {key: ActionChecker(there, scope, f"node '{name}' {key}").actions(node.get(key), at + (key,))
                 for key in LKRUN_NODE_KEYS}
        line, _ = there.doc.where(at)
        return FlowNode(name, role, tuple(messages), MappingProxyType(says), hooks["on_enter"], hooks["on_exit"],
                        there.doc.file_of(at), line)

    def _prompt(self, text, path: tuple):
        if not isinstance(text, str):
            return None
        if is_template(text):
            self.there.check_template(text, path, self.prompt_scope)
        return self.there.compile(text, path)

    def _action(self, item: dict, path: tuple):
        kind = item.get("type")
        if not isinstance(kind, str):
            return None
        handler = item.get("handler")
        if kind in ("tts_say", "end_conversation") and handler is not None:
            self.there.report(path + ("handler",), f"the built-in '{kind}' action does not take a handler")
        if kind == "tts_say":
            if not isinstance(item.get("text"), str):
                self.there.report(path, "a tts_say action needs text:", "for example: {type: tts_say, text: One moment}")
                return None
            return self._prompt(item["text"], path + ("text",))
        if kind == "end_conversation":  # its optional text is said before the session ends
            return self._prompt(item["text"], path + ("text",)) if isinstance(item.get("text"), str) else None
        if kind == "function" or handler is not None:
            if not isinstance(handler, str):
                self.there.report(path, f"a '{kind}' action needs handler: NAME (defined under flow.handlers)")
            elif handler not in self.handlers:
                self.there.report(path + ("handler",), f"there is no handler named '{handler}'"
                                  f"{did_you_mean(handler, self.handlers)}", "define it under flow: handlers:")
            return None
        self.there.report(path + ("type",), f"unknown action type '{kind}'{did_you_mean(kind, BUILT_IN_ACTIONS)}",
                          "use tts_say, end_conversation or function, or name a handler: under flow.handlers "
                          "(a custom type without a handler needs Python code)")
        return None

    def _graph(self) -> None:
        start = self.data.get("initial_node")
        if isinstance(start, str) and start not in self.nodes:
            self.there.report(("initial_node",), f"initial_node '{start}' is not a node{did_you_mean(start, self.nodes)}")
            return
        if not self.nodes:
            return
        reached = flow_graph.reachable(self.data)
        for name in self.nodes:
            if name not in reached:
                self.there.report(("nodes", name), f"node '{name}' can never be reached from '{start}'",
                                  "no function moves to it; add a transition_to it or remove the node",
                                  key=True, severity="warning")
        for name in flow_graph.dead_ends(self.data):
            if name in reached:
                self.there.report(("nodes", name), f"node '{name}' is a dead end: no function moves on and it "
                                                   f"does not end the conversation",
                                  "add a function with transition_to, or post_actions: [{type: end_conversation}]",
                                  key=True, severity="warning")


def _pipecat_config(data: dict) -> dict:
    """The data pipecat's FlowConfig accepts: lkrun's keys and inline handler bodies removed."""
    def function(entry: dict) -> dict:
        drop = set(LKRUN_HANDLER_KEYS) | (set() if entry.get("transition_only") else {"description"})
        return {k: v for k, v in entry.items() if k not in drop}

    nodes = {}
    for name, node in data["nodes"].items():
        node = {k: v for k, v in node.items() if k not in LKRUN_NODE_KEYS}
        if "functions" in node:
            node["functions"] = [function(f) for f in node["functions"]]
        nodes[name] = node
    config = {"initial_node": data["initial_node"], "nodes": nodes}
    if data.get("global_functions"):
        config["global_functions"] = [function(f) for f in data["global_functions"]]
    return config

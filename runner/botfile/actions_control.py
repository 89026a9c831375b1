"""Control actions: `repeat`, `parallel`, `stop`, `variables` and `run` (a script from `scripts:`).

They steer the run they are in: loops and branches run their nested actions through
``run.run_actions`` (so the trace shows each iteration and branch), run-local values live in
``run.frame.scope`` and the innermost loop in ``run.frame.loops``.
"""

from __future__ import annotations


from runner.botfile.actions import ACTION_LIST, TEXT, _obj, action, templated
from runner.botfile.registry import StopRun
from runner.botfile.templates import LEAF

MAX_ITERATIONS = 1000  # per run, all repeats together
LOOPS = ("count", "while", "until", "for_each")
NAME = {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$",
        "description": "a name of letters, digits and _ that does not start with a digit"}
CONTINUE = "continue_on_error"  # accepted beside every action: a failure is logged, the run goes on
EXACTLY_ONE = "x-lkrun-exactly-one"  # a body annotation: exactly one of these keys (checker and editor schema)
REPEAT_VARIABLES = {"repeat": {"index": LEAF, "item": LEAF, "first": LEAF, "last": LEAF}}
# action -> (variables its nested lists see, body keys that see them too)
SCOPED = {"repeat": (REPEAT_VARIABLES, ("while", "until"))}
RENDERS_ITSELF = frozenset({"repeat", "parallel", "variables"})  # the engine hands them the unrendered body
# names a `variables` entry or a script field may not take (besides the variables of where it is)
RESERVED = ("bot", "vars", "state", "room", "now", "event", "results", "participant", "repeat", "wait",
            "args", "flow", "error", "session")


@action("repeat", "run actions several times: count, while, until or for_each (repeat.index, .item, .first, .last)",
        {**_obj({"count": templated({"type": "integer", "minimum": 0, "maximum": MAX_ITERATIONS}),
                 "while": TEXT, "until": TEXT,
                 "for_each": templated({"type": "array"}),
                 "do": ACTION_LIST}, ["do"]), EXACTLY_ONE: list(LOOPS)},
        nested=(("repeat", "do"),), conditions=(("while",), ("until",)),
        example='repeat: {count: 3, do: [{say: "Ring {{ repeat.index }}"}]}')
async def _repeat(run, body):
    kind = next(k for k in LOOPS if k in body)
    nodes = run.node.branch("repeat", "do")
    items = None
    if kind == "count":
        items = [None] * _count(run.render(body["count"]))
    elif kind == "for_each":
        items = _items(run.render(body["for_each"]))
    run.show(loop=kind, **({"times": len(items)} if items is not None else {}))
    frame = run.frame
    outer, index, condition = frame.loops, 0, None
    try:
        while items is None or index < len(items):
            frame.loops = outer + ({"index": index + 1, "item": items[index] if items else None,
                                    "first": index == 0, "last": index + 1 == len(items) if items else None},)
            if kind == "while":
                condition = run.render(body["while"])
                if not run.truthy(condition):
                    break
            run.iterations += 1
            if run.iterations > MAX_ITERATIONS:
                raise ValueError(f"a run may repeat at most {MAX_ITERATIONS:,} times in all, and this repeat "
                                 f"would go past that (check its {kind} condition)")
            index += 1
            run.mark(iteration=index, **({"item": items[index - 1]} if kind == "for_each" else {}))
            await run.run_actions(nodes)
            if kind == "until":
                condition = run.render(body["until"])
                if run.truthy(condition):
                    break
    finally:
        frame.loops = outer
    run.mark(iterations=index, **({kind: condition} if kind in ("while", "until") else {}))


def _count(value) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ITERATIONS:
        raise ValueError(f"repeat count must be a whole number from 0 to {MAX_ITERATIONS}, got {value!r}")
    return value


def _items(value) -> list:
    if isinstance(value, (list, tuple)):
        return list(value)
    raise ValueError(f"repeat for_each needs a list, got {type(value).__name__} {value!r:.60}")


@action("parallel", "run several lists of actions at the same time; the run goes on when all have finished",
        _obj({"branches": {"type": "array", "minItems": 1, "items": ACTION_LIST,
                           "description": "each branch is its own list: [[{log: a}], [{log: b}]]"}}, ["branches"]),
        shorthand="branches", nested=(("parallel", "*"), ("parallel", "branches", "*")),
        example='parallel: [[{say: "One moment"}], [{http: {url: "https://example.com/lookup", save_as: r}}]]')
async def _parallel(run, body):
    branches = list(run.node.nested.values())
    run.show(branches=len(branches))

    async def branch(number: int, nodes) -> None:
        run.branch_off()  # this task's own current action and loops; the same run, state and variables
        run.mark(branch=number)
        await run.run_actions(nodes)

    import asyncio  # here: `lkrun validate` reads this module and never runs an action (asyncio is 35 ms)
    try:
        async with asyncio.TaskGroup() as group:  # one fails: the others are cancelled; so is a cancelled run
            for number, nodes in enumerate(branches, 1):
                group.create_task(branch(number, nodes))
    except BaseExceptionGroup as failed:
        raise _first(failed) from None


def _first(group: BaseExceptionGroup) -> BaseException:
    """The first failure of a parallel (a stop in a branch stops the whole run too)."""
    from asyncio import CancelledError
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first(exc)
        if not isinstance(exc, CancelledError):
            return exc
    return group.exceptions[0]


@action("stop", "end this run here (quietly, or with error: true as a failure that fires 'error')",
        _obj({"reason": TEXT, "error": templated({"type": "boolean"})}), shorthand="reason",
        example='stop: "nothing more to do"')
async def _stop(run, body):
    reason = str(body.get("reason") or "").strip()
    if run.truthy(body.get("error", False)):
        raise ValueError(reason or "stopped (error: true)")
    raise StopRun(f"stop: {reason}" if reason else "stop")


@action("variables", "set run-local values, visible by name to the later actions of this run",
        {"type": "object", "propertyNames": NAME},
        example='variables: {tries: 0, greeting: "Hello {{ participant.name }}"}')
async def _variables(run, body):
    scope = run.frame.scope
    for name, value in body.items():  # in order: a value may use the ones before it
        scope[name] = run.render(value)
    run.show(**{name: scope[name] for name in body})


@action("run", "run a script from the scripts: section (with: gives its fields)",
        _obj({"script": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_-]*$",
                         "description": "the name of a script under scripts:"},
              "with": {"type": "object", "propertyNames": NAME}}, ["script"]),
        shorthand="script", example='run: {script: menu, with: {prompt: "Press 1 for sales"}}')
async def _run(run, body):
    name = str(body["script"])
    script = run.spec.scripts.get(name)
    if script is None:
        raise ValueError(f"there is no script named '{name}'")
    given, values = dict(body.get("with") or {}), {}
    for field, spec in script.fields.items():
        if field in given:
            values[field] = given[field]
        elif spec.default is not None:
            values[field] = run.render(spec.default)
        elif spec.required:
            raise ValueError(f"script '{name}' needs the field '{field}'")
        else:
            values[field] = None
    frame = run.frame
    saved = frame.scope, frame.loops
    frame.scope, frame.loops = values, ()  # the script sees its fields, not the caller's variables
    try:
        await run.run_actions(script.actions)
    finally:
        frame.scope, frame.loops = saved

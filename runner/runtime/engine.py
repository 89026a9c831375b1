"""Running one event's actions: context, rendering, state, tracing, failure handling.

The same engine runs in a live room (``bot.LiveEffects``) and in ``lkrun simulate``
(``simulate.PrintEffects``): what a user simulates is what the bot does.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as _dt
import time
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from runner.runtime.state import SessionState

from runner.runtime.telemetry import ActionSpan, RunSpan
from runner.runtime.trace import RunOutcome, Trace, TraceEntry
from runner.botfile.actions import ACTIONS
from runner.botfile.actions_control import RENDERS_ITSELF
from runner.botfile.registry import StopRun
from runner.botfile.env import mask
from runner.botfile.spec import ActionNode, BotSpec
from runner.botfile.templates import TemplateError, render_value


MAX_PACKET = 15 * 1024


class ActionFailed(Exception):
    """An action or its template failed; the run stops and the `error` event fires."""

    def __init__(self, node: ActionNode, message: str, file: str):
        self.node, self.message, self.file = node, message, file
        super().__init__(f"{file}:{node.line}:{node.col}: error in action '{node.name}': {message}")


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _mask_tree(value, secrets):
    if isinstance(value, str):
        return mask(value, secrets)
    if isinstance(value, dict):
        return {k: _mask_tree(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_tree(v, secrets) for v in value]
    return value


class Frame:
    """What one line of a run's execution has to itself: the action running, the repeats it is in
    (innermost last) and the run-local variables (a script's own; parallel branches share them)."""

    __slots__ = ("node", "loops", "scope")

    def __init__(self, node=None, loops=(), scope=None):
        self.node, self.loops, self.scope = node, loops, {} if scope is None else scope


_BRANCH: contextvars.ContextVar = contextvars.ContextVar("lkrun_branch", default=None)  # (run, Frame)
_CURRENT: contextvars.ContextVar = contextvars.ContextVar("lkrun_run", default=None)


def current_run() -> "Run | None":
    """The run whose actions are executing in this task (its parallel branches' tasks inherit it):
    lets an effects implementation say which action produced an effect (``lkrun test`` does)."""
    return _CURRENT.get()


class Run:
    """One event run: renders each action against the current state and executes it."""

    def __init__(self, spec: BotSpec, state: SessionState, effects, event: str, variables: dict,
                 participant: str | None = None, participants=(), trace: Trace | None = None):
        self.spec, self.state, self.effects = spec, state, effects
        self.event, self.event_variables = event, variables
        self.participant = participant
        self.participants = list(participants)
        self.results: dict = {}
        self.wait: dict = {}
        self.waits = None  # the scheduler's Waits (wait_for, collect_digits); None in simulate
        self._frame = Frame()
        self.iterations = 0  # repeat iterations so far (all repeats of the run together)
        self.trace_entry = TraceEntry(time.time(), spec.name, event, participant)
        self.trace = trace
        wall = getattr(effects, "wall_time", time.time)  # lkrun test's effects give virtual wall time
        self.now = _dt.datetime.fromtimestamp(wall(), _dt.timezone.utc).isoformat(timespec="seconds")  # one per run

    def context(self) -> dict:
        context = {
            "bot": {"name": self.spec.name, "identity": self.spec.identity, "room": self.spec.room},
            "vars": self.spec.vars,
            "state": dict(self.state.room),
            "room": {"name": self.spec.room, "participants": self.participants},
            "now": self.now,
            "event": {"name": self.event},
            "results": dict(self.results),
            "wait": self.wait,  # what the last wait_for saw (event, text, digit, message, timed_out)
        }
        context.update(self.event_variables)
        frame = self.frame
        context.update(frame.scope)  # `variables` and a script's fields (they never shadow the above)
        if frame.loops:
            context["repeat"] = frame.loops[-1]
        if "participant" in context and self.participant is not None:
            context["participant"] = {**context["participant"],
                                      "state": dict(self.state.participant(self.participant))}
        return context

    @property
    def frame(self) -> Frame:
        branch = _BRANCH.get()
        return branch[1] if branch is not None and branch[0] is self else self._frame

    @property
    def node(self) -> ActionNode | None:
        return self.frame.node

    @node.setter
    def node(self, node: ActionNode | None) -> None:
        self.frame.node = node

    def branch_off(self) -> None:
        """First thing in a parallel branch's task: its own current action and loops from here on."""
        frame = self.frame
        _BRANCH.set((self, Frame(frame.node, frame.loops, frame.scope)))

    async def run_actions(self, nodes) -> None:
        for node in nodes:
            await self.run_action(node)

    def render(self, value, node: ActionNode | None = None):
        """Render a value now (conditions render lazily: only what is evaluated, when it is)."""
        try:
            return render_value(value, self.context())
        except TemplateError as exc:
            raise ActionFailed(node or self.node, mask(str(exc), self.spec.secrets), self.spec.file) from None

    def show(self, **values) -> None:
        """What a lazily rendered action evaluated, for the trace (the chosen branch, not all of them)."""
        step = self.trace_entry.steps[-1]
        step[2] = {**(step[2] or {}), **self.masked(values)}

    def mark(self, **values) -> None:
        """A trace line of the current action of its own (a repeat's iteration, a parallel branch)."""
        self.trace_entry.steps.append([self.node.name, self.node.line, self.masked(values), 0.0])

    async def run_action(self, node: ActionNode) -> None:
        with ActionSpan(self, node):  # OpenTelemetry (runtime/telemetry.py): nothing when tracing is off
            await self._run_action(node)

    async def _run_action(self, node: ActionNode) -> None:
        previous, self.node = self.node, node
        started = time.perf_counter()
        entry = ACTIONS[node.name]
        # if/choose/repeat/...: the run function renders what it evaluates, when it does
        lazy = bool(entry.conditions) or node.name in RENDERS_ITSELF
        step = None
        try:
            body = node.body if lazy else self.render(node.body, node)
            step = [node.name, node.line, {} if lazy else self.masked(body), 0.0]
            self.trace_entry.steps.append(step)
            await entry.run(self, body)
        except StopRun:
            raise
        except Exception as exc:  # an action's failure stops only this run
            failed = exc if isinstance(exc, ActionFailed) else ActionFailed(
                node, mask(str(exc) or type(exc).__name__, self.spec.secrets), self.spec.file)
            if not node.continue_on_error:
                raise failed from None
            await self._continued(node, failed, step)
        finally:
            if step is not None:
                step[3] = round((time.perf_counter() - started) * 1000, 2)
            self.node = previous

    async def _continued(self, node: ActionNode, failed: ActionFailed, step) -> None:
        """continue_on_error: the failure goes to the trace and the log, and the run goes on."""
        if step is None:
            step = [node.name, node.line, {}, 0.0]
            self.trace_entry.steps.append(step)
        step[2] = {**(step[2] or {}), "error": str(failed), "continued": True}
        try:
            await self.effects.log(f"{failed} (continue_on_error: the run goes on)", "warning")
        except Exception:  # noqa: BLE001 - the log line is a courtesy; the run must go on
            pass

    async def execute(self, nodes) -> TraceEntry:
        """Run a handler's actions; failures are recorded, never raised."""
        with RunSpan(self):  # OpenTelemetry (runtime/telemetry.py): nothing when tracing is off
            return await self._execute(nodes)

    async def _execute(self, nodes) -> TraceEntry:
        started = time.perf_counter()
        token = _CURRENT.set(self)
        try:
            await self.run_actions(nodes)
        except StopRun as exc:  # a quiet end: `stop`, or a wait that timed out
            self.trace_entry.note = exc.reason or None
        except ActionFailed as exc:
            self.trace_entry.outcome = RunOutcome.ERROR
            self.trace_entry.error, self.trace_entry.message = str(exc), exc.message
            self.trace_entry.action, self.trace_entry.line = exc.node.name, exc.node.line
        except asyncio.CancelledError:
            self.trace_entry.outcome = RunOutcome.CANCELLED
            raise
        finally:
            _CURRENT.reset(token)
            self.trace_entry.ms = round((time.perf_counter() - started) * 1000, 2)
            if self.trace is not None:
                self.trace.add(self.trace_entry)
        return self.trace_entry

    def masked(self, value):
        """A JSON-able copy for the trace, with secret values masked (when the bot has any)."""
        value = _jsonable(value)
        return _mask_tree(value, self.spec.secrets) if self.spec.secrets else value

    # helpers used by action run functions
    def truthy(self, value) -> bool:
        if isinstance(value, str):
            return value.strip().lower() not in ("", "false", "none", "0", "no")
        return bool(value)

    def set_state(self, scope: str, values: dict) -> None:
        if scope == "participant":
            if self.participant is None:
                raise ValueError("set with scope: participant needs an event that has a participant")
            self.state.participant(self.participant).update(_jsonable(values))
        else:
            self.state.room.update(_jsonable(values))

    def recipients(self, to) -> list[str] | None:
        """None means everyone, but only when the file has no `to`: a `to` that renders to
        nothing (``{{ participant.id }}`` of a packet whose sender the bot does not know yet,
        e.g. right after a reconnect) is an error, never a broadcast of a private reply."""
        written = self.node is not None and isinstance(self.node.body, dict) and "to" in self.node.body
        if to is None or to == "" or to == []:
            if written:
                raise ValueError("'to' rendered to no participant (the event may have no participant)")
            return None
        ids = [to] if isinstance(to, str) else list(to)
        ids = [str(i) for i in ids if i not in (None, "")]
        if not ids:
            raise ValueError("'to' rendered to no participant (the event may have no participant)")
        return ids

    def resolve_file(self, name: str) -> Path:
        folder = Path(self.spec.file).resolve().parent
        target = (folder / name).resolve()
        if folder not in target.parents:
            raise ValueError(f"play: '{name}' is outside the bot file's folder")
        if not target.is_file():
            raise ValueError(f"play: file '{name}' not found next to the bot file")
        return target

    def safe_url(self, rendered: str) -> str:
        """Keep the literal scheme and host; URL-encode what templates put into path and query.

        Each ``{{ }}`` value is percent-encoded whole (``/ ? & # =`` included), so text from
        other people can fill a path segment or a query value but never add segments,
        parameters or a fragment (``x?admin=1`` or ``../admin`` stay inside their slot).
        """
        url = self.node.body.get("url") if self.node is not None and isinstance(self.node.body, dict) else None
        source = getattr(url, "source", None)
        if source is not None:
            rendered = _url_template(source).render(self.context())
        literal = urlsplit((source or rendered).split("{", 1)[0])
        parts = urlsplit(rendered)
        if (parts.scheme, parts.netloc) != (literal.scheme, literal.netloc):
            raise ValueError("the http url's scheme and host changed after templating; refusing to call it")
        return urlunsplit((parts.scheme, parts.netloc, quote(parts.path, safe="/%:@!$&'()*+,;="),
                           quote(parts.query, safe="=&%+:@/?,"), ""))


_URL_TEMPLATES: dict = {}


def _url_template(source: str):
    """The url template compiled in the bot sandbox with every output percent-encoded."""
    if source not in _URL_TEMPLATES:
        from runner.botfile.templates import Sandbox
        env = Sandbox().env
        # dots too: a value of ".." must stay a name, not climb a level once the client collapses it
        env.finalize = lambda value: quote("" if value is None else str(value), safe="").replace(".", "%2E")
        _URL_TEMPLATES[source] = env.from_string(source)
    return _URL_TEMPLATES[source]


def encode_packet(data) -> str | dict:
    """Data payloads are text or JSON objects, capped at LiveKit's reliable packet size."""
    return packet_text(data)[0]


def packet_text(data) -> tuple[str | dict, str]:
    """(the payload, the text that goes out): encoded once, and capped on the bytes really sent."""
    import json
    if isinstance(data, str):
        payload = text = data
    elif isinstance(data, dict):
        payload = _jsonable(data)
        text = json.dumps(payload, ensure_ascii=False)
    else:
        payload = text = json.dumps(_jsonable(data))
    size = len(text) if text.isascii() else len(text.encode())
    if size > MAX_PACKET:
        raise ValueError(f"the data message is {size} bytes; LiveKit's limit is {MAX_PACKET} bytes")
    return payload, text


def parse_message(payload: bytes | str) -> tuple[str, dict]:
    """Untrusted data -> (text, JSON object or {}). Never raises."""
    if isinstance(payload, bytes):
        text = payload.decode("utf-8", "replace")
    else:
        text = str(payload)
    import json
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        parsed = None
    return text, parsed if isinstance(parsed, dict) else {}


def event_variables(event: str, participant: str | None = None, *, name=None, metadata=None, kind=None,
                    attributes=None, payload=None, message=None, text=None, digit=None, groups=None, extra=None) -> dict:
    """The event-specific template variables (the registry declares them, and missing ones read as null)."""
    from runner.botfile.events import EVENTS
    entry = EVENTS.get(event)
    variables: dict = {}
    if participant is not None or (entry is not None and entry.per_participant):
        variables["participant"] = {"id": participant, "name": name, "metadata": metadata, "kind": kind,
                                    "attributes": dict(attributes or {})}
    if payload is not None:
        variables["data"], parsed = parse_message(payload)
        variables["message"] = parsed
    if message is not None:
        variables["message"] = message if isinstance(message, dict) else {}
    if text is not None:
        variables["text"] = text
    if digit is not None:
        variables["digit"] = digit
    if groups is not None:
        variables["groups"] = groups
    variables.update(extra or {})
    for key, shape in (entry.variables.items() if entry is not None else ()):
        if key not in variables and key != "participant":  # missing fields read as null, never 'undefined'
            variables[key] = _empty(key, shape)
    return variables


def _empty(name: str, shape):
    if name == "message":
        return {}
    return {key: None for key in shape} if isinstance(shape, dict) else None

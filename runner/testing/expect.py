"""``expect`` steps: match what the bot did (the recorder, its state) and explain a mismatch."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from runner.testing import flow_checks

# expect key -> (record kind, the field a plain value means)
PRIMARY = {"say": "text", "chat": "text", "log": "message", "http": "url", "mute": "participant",
           "unmute": "participant", "play": "file", "dtmf": "digits", "metadata": "text", "error": "message",
           "llm_append": "text", "hangup": "participant", "stopped": "reason"}
TEXT_FIELDS = {"text", "message", "url", "file", "digits", "participant", "function", "method", "level",
               "number", "trunk", "reason"}
MATCHERS = {"contains", "regex", "exact"}
RECORD_KINDS = {"llm_called": "llm_called", "ended": "ended", **{k: k for k in PRIMARY}, "send": "send",
                "transfer": "transfer", "dial": "dial",
                "llm_append": "llm"}


@dataclass
class Failure:
    step: str  # test file:line:col
    what: str  # the step, shown
    expected: str
    actual: list[str] = field(default_factory=list)
    bot_line: str | None = None  # bot file:line of the action that produced the closest actual value
    ran: list[str] = field(default_factory=list)  # the runs since the last step that matched
    hint: str | None = None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _is_matcher(value) -> bool:
    return isinstance(value, dict) and len(value) == 1 and set(value) <= MATCHERS


def normalise(key: str, value) -> dict:
    """An expect value -> the fields it constrains."""
    if key in PRIMARY and (not isinstance(value, dict) or _is_matcher(value)):
        return {PRIMARY[key]: value}
    return dict(value) if isinstance(value, dict) else {}


def spoken(text) -> str:
    """The form speech is compared in (--live): lower case, words only."""
    return " ".join(re.findall(r"[a-z0-9']+", str(text).lower().replace("\u2019", "'")))


def speech_left(expected, heard: str) -> str | None:
    """--live: match an expected text against a stretch of the bot's speech (a transcript) word by
    word, in the spoken form (lower case, words only): a plain text must be what comes first,
    ``contains`` may be anywhere, a ``regex`` is searched case-insensitively. The words left after
    the match (what the next expectation can match), or None when it does not match."""
    mode, wanted = (next(iter(expected.items())) if _is_matcher(expected) else ("exact", expected))
    words = spoken(heard)
    if mode == "regex":
        found = re.search(str(wanted), words, re.IGNORECASE)
        if found is not None:
            return words[found.end():].strip()
        return "" if re.search(str(wanted), heard, re.IGNORECASE) else None  # as heard: it takes all
    wanted = spoken(wanted)
    if not wanted:
        return None
    if mode == "contains":
        at = f" {words} ".find(f" {wanted} ")
        return None if at < 0 else (words[:at] + " " + words[at + len(wanted):]).strip()
    if words == wanted or words.startswith(wanted + " "):
        return words[len(wanted):].strip()
    return None


def text_match(expected, actual, plain: str = "exact", heard: bool = False) -> bool:
    """``heard``: ``actual`` is a transcript of the bot's speech (--live): see ``speech_left``."""
    if actual is None:
        return False
    actual = str(actual)
    if heard:
        return speech_left(expected if _is_matcher(expected) or plain == "exact" else {plain: expected},
                           actual) is not None
    mode, wanted = (next(iter(expected.items())) if _is_matcher(expected) else (plain, expected))
    if mode == "regex":
        return re.search(str(wanted), actual) is not None
    if mode == "contains":
        return str(wanted) in actual
    return actual.strip() == str(wanted).strip()


def loose_equal(expected, actual) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected == actual and type(expected) is type(actual) or str(expected).lower() == str(actual).lower()
    if expected == actual:
        return True
    if isinstance(expected, (int, float, str)) and isinstance(actual, (int, float, str)):
        return str(expected).strip() == str(actual).strip()
    return False


def subset(expected, actual) -> bool:
    """Every field written in the test has this value (other fields may exist)."""
    if isinstance(expected, dict):
        if isinstance(actual, str):
            try:
                actual = json.loads(actual)
            except ValueError:
                return False
        return isinstance(actual, dict) and all(k in actual and subset(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and len(actual) == len(expected) and \
            all(subset(e, a) for e, a in zip(expected, actual))
    return loose_equal(expected, actual)


def _recipients(expected, actual, record=None) -> bool:
    want = None if expected in ("everyone", None) else [expected] if isinstance(expected, str) else list(expected)
    if record is not None and "present" in record.fields:  # --live: `actual` is who received it
        return bool(record.fields.get("everyone")) if want is None else sorted(want) == sorted(actual or [])
    return (want is None and actual is None) or (want is not None and actual is not None and
                                                 sorted(want) == sorted(actual))


def record_matches(key: str, wanted: dict, record) -> bool:
    for name, expected in wanted.items():
        actual = record.fields.get(name)
        if name == "to" and key == "transfer":
            ok = text_match(expected, actual)
        elif name == "to":
            ok = _recipients(expected, actual, record)
        elif name == "result" and not isinstance(expected, dict):
            ok = isinstance(actual, dict) and text_match(expected, actual.get("result"))
        elif name in TEXT_FIELDS:
            ok = text_match(expected, actual, "contains" if key == "error" else "exact",
                            heard=bool(record.fields.get("heard")))
        else:
            ok = subset(expected, actual)
        if not ok:
            return False
    return True


def find(bot, key: str, value):
    """The first unused record this expectation matches, or None."""
    wanted = normalise(key, value)
    kind = RECORD_KINDS[key]
    for record in bot.effects.records:
        if record.kind == kind and not record.used and record_matches(key, wanted, record):
            return record
    return None


def state_matches(bot, value: dict) -> bool:
    if "room" in value and not subset(value["room"], bot.state.room):
        return False
    for who, values in (value.get("participant") or {}).items():
        if not subset(values, bot.state.participants.get(who, {})):
            return False
    return True


def check(bot, key: str, value) -> bool:
    """True when satisfied now (a matched record is marked used)."""
    if key == "state":
        return state_matches(bot, value)
    if key == "node":
        return flow_checks.node_matches(bot, value)
    if key == "ended" and value is False:
        return not any(r.kind == "ended" for r in bot.effects.records)
    if key == "ended":
        value = {}
    record = find(bot, key, value)
    if record is not None and record.fields.get("heard") and "text" in normalise(key, value):
        left = speech_left(normalise(key, value)["text"], record.fields["text"])
        record.fields["text"] = left or ""  # the words after the match are still to be matched
        record.used = not left
        return True
    if record is not None:
        record.used = True
    return record is not None


def leftovers(bot, kinds) -> list:
    kinds = {RECORD_KINDS.get(k, k) for k in kinds}
    return [r for r in bot.effects.records if r.kind in kinds and not r.used]


# -- explaining ------------------------------------------------------------------------------------
def show_value(value) -> str:
    if _is_matcher(value):
        mode, text = next(iter(value.items()))
        return f"{mode} {json.dumps(text, ensure_ascii=False)}"
    return json.dumps(value, ensure_ascii=False, sort_keys=True) if not isinstance(value, str) else \
        json.dumps(value, ensure_ascii=False)


def show_expected(key: str, value) -> str:
    if key == "ended":
        return "the session ended" if value else "the session has not ended"
    if key == "state":
        return "state " + show_value(value)
    fields = normalise(key, value)
    if key in PRIMARY and set(fields) == {PRIMARY[key]}:
        return f"{key} {show_value(fields[PRIMARY[key]])}"
    return f"{key} " + ", ".join(f"{k}: {show_value(v)}" for k, v in fields.items()) if fields else f"any {key}"


def show_record(record) -> str:
    f = record.fields
    to = lambda: "everyone" if not f.get("to") else ", ".join(f["to"])  # noqa: E731
    shown = {
        "say": lambda: f"say {show_value(f['text'])}",
        "reply": lambda: f"LLM reply {show_value(f['text'])} (the bot has no tts)",
        "send": lambda: f"send to {to()}: {show_value(f['data'])}",
        "chat": lambda: f"chat to {to()}: {show_value(f['text'])}",
        "log": lambda: f"log ({f['level']}): {show_value(f['message'])}",
        "http": lambda: f"http {f['method']} {f['url']}" + (f" json={show_value(f['json'])}" if f.get("json") else ""),
        "ended": lambda: "ended the session" + (" (hang up)" if f.get("hangup") else ""),
        "error": lambda: f"error: {f['message']}",
        "stopped": lambda: f"stopped: {show_value(f['reason'])}",
        "llm_called": lambda: f"llm_called {f['function']} {show_value(f['args'])}" + (
            f", the tool returned {show_value(f['result'])} (its result: {f['result_at']})" if "result" in f else ""),
        "llm_request": lambda: "LLM request" + ("" if f.get("answered") else " with no scripted answer"),
        "set": lambda: f"set {f['scope']}: {show_value(f['values'])}",
        "llm": lambda: f"llm append {show_value(f['messages'])}" + (" and run" if f.get("run") else ""),
        "heard": lambda: f"heard {show_value(f['text'])}: no user_said pattern matched",
        "tool_result": lambda: f"tool {f['function']} returned {show_value(f['result'])}",
    }.get(record.kind)
    text = shown() if shown else f"{record.kind} {show_value(next(iter(f.values()), ''))}".strip()
    origin = record.origin()
    return f"{text}  ({origin})" if origin else text


def show_run(entry) -> str:
    who = f" ({entry.participant})" if entry.participant else ""
    steps = []
    for name, line, rendered, _ms in entry.steps:
        branch = ""
        if isinstance(rendered, dict) and "branch" in rendered and name in ("if", "choose"):
            branch = f" -> {rendered['branch']}"
        steps.append(f"{name} at line {line}{branch}")
    outcome = "" if str(entry.outcome) == "ok" else f" [{entry.outcome}]"
    return f"{entry.event}{who}: {', '.join(steps) or 'no actions'}{outcome}"


def explain(bot, key: str, value, step_where: str, what: str, since_run: int, since_record: int,
            since_step: int = 0) -> Failure:
    kind = RECORD_KINDS.get(key, key)
    failure = Failure(step_where, what, show_expected(key, value))
    if key == "node":
        flow_checks.explain_node(bot, value, failure)
    elif key == "state":
        failure.actual = [f"room state {show_value(bot.state.room)}"] + [
            f"{who}'s state {show_value(bot.state.participants.get(who, {}))}"
            for who in (value.get("participant") or {})]
        sets = [r for r in bot.effects.records if r.kind == "set"]
        failure.bot_line = sets[-1].origin() if sets else None
        flow_checks.explain_state(bot, value, failure)  # a flow's initial state: its line
    else:
        records = bot.effects.records
        same = [r for r in records[since_step:] + records[:since_step]  # what the last step caused first
                if r.kind == kind and not (r.used and key != "ended")]
        failure.actual = [r.show() for r in same[:3]] or [f"no {key} happened"]
        failure.bot_line = same[0].origin() if same and same[0].line is not None else None
        others = [r for r in bot.effects.records[since_record:] if r.kind != kind and not r.used
                  and r.kind not in ("llm_request", "tool_result")]
        failure.actual += [f"(also: {r.show()})" for r in others[:4]]
        if same:  # a value the bot stored earlier and used here: where it was stored
            shown = same[0].show().rsplit("  (", 1)[0]
            for record in records:
                values = record.fields.get("values") if record.kind == "set" else None
                if values and record not in others[:4] and any(
                        isinstance(v, (str, int, float)) and str(v) and
                        re.search(rf"(?<!\w){re.escape(str(v))}(?!\w)", shown) for v in values.values()):
                    failure.actual.append(f"(stored by: {record.show()})")
    failure.ran = [show_run(e) for e in bot.runs[since_run:]][:8]
    unanswered = [r for r in bot.effects.records[since_record:] if r.kind == "llm_request"
                  and not r.fields.get("answered")]
    if unanswered:
        failure.hint = (f"the LLM was asked ({unanswered[0].source}) but the case scripted no answer: "
                        "add '- llm: {reply: ...}' before the step that asks")
    return failure

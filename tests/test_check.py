"""The checker: every problem in one pass, sorted by position, and a typed BotSpec when all is well."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.botfile import templates
from runner.botfile.check import check_document, check_file
from runner.botfile.errors import ConfigError
from runner.botfile.spec import BotSpec
from runner.botfile.yamlsafe import load_text

ROOT = Path(__file__).resolve().parent.parent
VALID = ROOT / "tests" / "fixtures" / "valid"


def check(text: str, environ=None, **kw) -> BotSpec:
    return check_document(load_text(text, "bot.yaml"), environ=environ or {}, dotenv={}, **kw)


def problems(text: str, environ=None, **kw) -> list[str]:
    with pytest.raises(ConfigError) as info:
        check(text, environ, **kw)
    return [p.render().splitlines()[0] for p in info.value.problems]


HEAD = "version: 1\nlivekit: {room: lobby}\n"


def test_all_errors_in_one_pass_sorted_by_position():
    text = ("vars: {greeting: hi}\n"       # 1
            "on:\n"                         # 2
            "  participant_connected:\n"    # 3
            "    - wait: 2s\n"              # 4
            "    - sya: hi\n"               # 5
            "    - log: '{{ vars.greting }}'\n"  # 6
            "version: 1\n"                  # 7
            "livekit: {room: lobby, identiy: x}\n"  # 8
            "session: {turn_stop: smart}\n"  # 9
            "bogus: 1\n")                   # 10
    assert problems(text) == [
        "bot.yaml:4:13: error: action 'wait': expected a number, got '2s'",
        "bot.yaml:5:7: error: unknown action 'sya' (did you mean 'say'?)",
        "bot.yaml:6:21: error: unknown attribute 'greting' of 'vars' (did you mean 'greeting'?)",
        "bot.yaml:8:24: error: unknown key 'identiy' in livekit (did you mean 'identity'?)",
        "bot.yaml:9:22: error: session.turn_stop: 'smart' is not one of: speech_timeout, smart_turn "
        "(did you mean 'smart_turn'?)",
        "bot.yaml:10:1: error: unknown top-level key 'bogus'",
    ]


def test_the_greeter_fixture_becomes_a_typed_spec():
    spec = check_file(VALID / "greeter.yaml", environ={})
    assert spec.name == "greeter" and spec.room == "lobby" and spec.identity == "greeter"
    assert [(s.kind, s.type) for s in spec.pipeline] == [("vad", "silero"), ("stt", "whisper_stt"),
                                                         ("llm", "openai_llm"), ("tts", "piper_tts")]
    assert spec.capabilities() >= {"vad", "stt", "llm", "tts", "audio_in", "audio_out"}
    assert set(spec.on) == {"participant_connected", "data_received", "user_said", "participant_left"}
    connected = spec.on["participant_connected"]
    assert [a.name for a in connected.actions] == ["send", "say", "wait"]
    assert isinstance(connected.actions[2].body["seconds"], templates.Template)
    (trigger,) = spec.on["user_said"].triggers
    assert trigger.pattern.search("ok Goodbye now") and [a.name for a in trigger.actions] == ["say", "end"]
    branch = spec.on["data_received"].actions[0]
    assert [a.name for a in branch.branch("then")] == ["send"] and [a.name for a in branch.branch("else")] == ["log"]
    assert spec.warnings == () and spec.text_hash
    assert isinstance(spec.pipeline[2].body["settings"]["system_instruction"], templates.Template)


@pytest.mark.parametrize("path", sorted(VALID.glob("*.yaml")), ids=lambda p: p.stem)
def test_valid_fixtures(path):
    assert isinstance(check_file(path, environ={}), BotSpec)


def test_identity_defaults_to_the_name_and_the_name_to_the_file():
    assert check(HEAD + "name: helper\n").identity == "helper"
    assert check(HEAD).name == "bot"


def test_a_file_without_pipeline_is_a_data_only_bot():
    spec = check(HEAD + "on:\n  data_received:\n    - send: {data: pong}\n")
    assert spec.pipeline == () and "audio_out" not in spec.capabilities()


@pytest.mark.parametrize("text, expected", [
    ("", "bot.yaml:1:1: error: the file is empty; a bot file needs at least 'version: 1' and 'livekit:'"),
    ("[1, 2]\n", "bot.yaml:1:1: error: a bot file must be a mapping of keys such as 'version:', 'livekit:' and 'on:'"),
    ("just text\n",
     "bot.yaml:1:1: error: a bot file must be a mapping of keys such as 'version:', 'livekit:' and 'on:'"),
    ("version: 2\nbogus: 1\n", "bot.yaml:1:10: error: this file is version 2, but this lkrun reads version 1"),
    ("version: '1'\nlivekit: {room: r}\n", "bot.yaml:1:10: error: version: expected the number 1, got '1'"),
    ("version: true\nlivekit: {room: r}\n", "bot.yaml:1:10: error: version: expected the number 1, got true"),
    ("version: 1\nlivekit:\n", "bot.yaml:2:1: error: missing 'livekit:' section (at least 'room:')"),
    ("version: 1\nlivekit: {}\n", "bot.yaml:2:10: error: livekit: missing required key 'room'"),
    ("version: 1\nlivekit: lobby\n",
     "bot.yaml:2:10: error: livekit: expected a mapping (key: value lines), got 'lobby'"),
    (HEAD + "name: [a]\n", "bot.yaml:3:7: error: name: expected text, got a list"),
    (HEAD + "vars: [a]\n", "bot.yaml:3:7: error: vars: expected a mapping of names to values"),
    (HEAD + "on: [a]\n", "bot.yaml:3:5: error: on: expected a mapping of event names to action lists"),
    (HEAD + "pipeline: {vad: silero}\n", "bot.yaml:3:11: error: pipeline: expected a list of stages"),
    (HEAD + "livekit2: {}\n", "bot.yaml:3:1: error: unknown top-level key 'livekit2' (did you mean 'livekit'?)"),
])
def test_file_level_problems(text, expected):
    assert problems(text)[0] == expected
    assert len(problems(text)) == 1


def test_a_future_version_stops_before_anything_else():
    assert problems("version: 3\nlivekit: nope\non: nope\n") == [
        "bot.yaml:1:10: error: this file is version 3, but this lkrun reads version 1"]


@pytest.mark.parametrize("section, value", [
    ("session", "{max_duration: '{{ 10 }}'}"), ("params", "{audio_in_enabled: '{{ true }}'}"),
    ("livekit", "{room: '{{ vars.room }}'}"),
])
def test_templates_are_refused_in_settings_sections(section, value):
    text = f"version: 1\n{section}: {value}\n" + ("livekit: {room: r}\n" if section != "livekit" else "")
    (line,) = problems(text)
    assert "templates ({{ }}) are not allowed here" in line


@pytest.mark.parametrize("body, expected", [
    ("- log: '{{ participant.id | nope }}'", "unknown filter 'nope'"),
    ("- log: '{% if participant.id is nope %}a{% endif %}'", "unknown test 'nope'"),
    ("- log: '{% for %}'", "template syntax error"),
    ("- log: '{{ participant.id }'", "template syntax error"),
    ("- send: {data: {text: '{{ 1 + }}'}}", "template syntax error"),
])
def test_template_errors_are_reported_not_raised(body, expected):
    (line,) = problems(HEAD + f"on:\n  participant_connected:\n    {body}\n")
    assert expected in line and line.startswith("bot.yaml:5:")


def test_template_error_in_stage_settings():
    (line,) = problems(HEAD + "pipeline:\n  - llm:\n      type: openai_llm\n"
                              "      settings: {system_instruction: 'You are {{ vars.nope }}'}\n")
    assert line == "bot.yaml:6:55: error: unknown attribute 'nope' of 'vars'"


def test_event_variables_depend_on_the_event():
    body = "    - log: '{{ text }} {{ digit }} {{ data }}'\n"
    assert problems(HEAD + "on:\n  chat_received:\n" + body) == [
        "bot.yaml:5:27: error: variable 'digit' is not available here (only in dtmf_event)",
        "bot.yaml:5:39: error: variable 'data' is not available here (only in data_received)",
    ]


def test_params_false_with_an_audio_stage_is_an_error():
    (line,) = problems(HEAD + "params: {audio_in_enabled: false}\npipeline:\n  - stt: whisper_stt\n")
    assert line.startswith("bot.yaml:3:28: error: params.audio_in_enabled is false, but the pipeline has a stt stage")


def test_audio_defaults_follow_the_pipeline():
    spec = check(HEAD + "pipeline:\n  - stt: whisper_stt\n  - tts: piper_tts\n")
    assert spec.params["audio_in_enabled"] is True and spec.params["audio_out_enabled"] is True


@pytest.mark.parametrize("pipeline, expected", [
    ("  - stt: {type: piper_tts}\n", "'piper_tts' is a tts type, not a stt type"),
    ("  - stt: {}\n", "stage 'stt' needs a type"),
    ("  - stt: whisper_stt\n  - stt: whisper_stt\n", "a second 'stt' stage"),
    ("  - [stt]\n", "each stage is written as 'kind: {type: ...}'"),
    ("  - {stt: whisper_stt, tts: piper_tts}\n", "each stage is written as 'kind: {type: ...}'"),
    ("  - stt: {type: python, factory: 'not a factory'}\n", "does not have the expected form"),
])
def test_stage_problems(pipeline, expected):
    (line,) = problems(HEAD + "pipeline:\n" + pipeline)
    assert expected in line


def test_python_stage_escape_hatch():
    spec = check(HEAD + "pipeline:\n  - llm: {type: python, factory: 'my_pkg.llm:build'}\n")
    assert spec.stage("llm").type == "python"


def test_warnings_do_not_fail_the_check():
    spec = check(HEAD + "on:\n  call_state_updated:\n    - log: hi\n")
    (warning,) = spec.warnings
    assert warning.severity == "warning" and "never fires" in warning.message


@pytest.mark.parametrize("event, hint", [("on_data_received", "data_received"),
                                         ("client_connected", "participant_connected")])
def test_pipecat_style_event_names_get_a_suggestion(event, hint):
    (line,) = problems(HEAD + f"on:\n  {event}:\n    - log: hi\n")
    assert line.endswith(f"(did you mean '{hint}'?)")


def test_triggers():
    base = HEAD + "pipeline:\n  - stt: whisper_stt\non:\n"
    assert problems(base + "  user_said: {match: hi, do: []}\n") == [
        "bot.yaml:6:15: error: unknown key 'match' in user_said"]
    assert problems(base + "  user_said:\n    match: hi\n") == [
        "bot.yaml:7:5: error: 'user_said' takes a list of triggers, got a mapping"]
    assert problems(base + "  participant_connected:\n    log: hi\n") == [
        "bot.yaml:7:5: error: expected a list of actions under 'participant_connected', got a mapping"]
    assert problems(base + "  user_said: [hi]\n") == [
        "bot.yaml:6:15: error: a 'user_said' trigger must be a mapping, got 'hi'"]
    assert problems(base + "  user_said:\n    - match: hi\n      do: []\n      contine: true\n") == [
        "bot.yaml:9:7: error: unknown key 'contine' in user_said trigger (did you mean 'continue'?)"]
    assert problems(base + "  idle:\n    - after: 0\n      do: []\n") == [
        "bot.yaml:7:14: error: idle trigger field 'after': must be more than 0, got 0"]


def test_event_mode_form():
    spec = check(HEAD + "on:\n  data_received:\n    mode: restart\n    do:\n      - log: hi\n")
    assert spec.on["data_received"].mode == "restart"
    assert problems(HEAD + "on:\n  data_received:\n    mode: restart\n") == [
        "bot.yaml:5:5: error: data_received: missing required key 'do'"]


def test_action_positions_are_recorded():
    spec = check(HEAD + "on:\n  connected:\n    - log: a\n    - if: '{{ true }}'\n      then:\n        - log: b\n")
    first, branch = spec.on["connected"].actions
    assert (first.line, first.col) == (5, 7)
    assert (branch.branch("then")[0].line, branch.branch("then")[0].col) == (8, 11)


def test_an_action_needs_its_capability():
    assert problems(HEAD + "on:\n  connected:\n    - play: chime.wav\n    - llm: {run: true}\n") == [
        "bot.yaml:5:7: error: 'play' needs audio output in this bot",
        "bot.yaml:6:7: error: 'llm' needs an llm stage in this bot",
    ]


def test_an_unparsable_http_url_is_reported_at_the_url():
    (line,) = problems(HEAD + "on:\n  connected:\n    - http: {url: 'https://[broken/x'}\n")
    assert line.startswith("bot.yaml:5:19: error: this http url is not a valid web address")


def test_a_check_that_raises_is_reported():
    import dataclasses

    from runner.botfile.actions import ACTIONS

    def broken(body, report):
        raise ValueError("boom")

    entry = ACTIONS["http"]
    ACTIONS._entries["http"] = dataclasses.replace(entry, check=broken)
    try:
        (line,) = problems(HEAD + "on:\n  connected:\n    - http: {url: 'https://example.com/x'}\n")
    finally:
        ACTIONS._entries["http"] = entry
    assert line.startswith("bot.yaml:5:13: error: action 'http': ")


def test_checking_is_fast_enough_for_reload():
    """Reload validates on every save; a full voice bot must check in milliseconds, not tenths of seconds."""
    import time
    timings = []
    for _ in range(10):  # the fastest of several runs: robust against a busy machine
        started = time.perf_counter()
        check_file(VALID / "greeter.yaml", environ={})
        timings.append(time.perf_counter() - started)
    assert min(timings) < 0.1, timings


@pytest.mark.parametrize("tool", [
    "parameters: [a, b]",                 # a list where a JSON-schema mapping belongs
    "result: '{{ args.time | nope }}'",   # a result template that does not compile
    "result: '{{ 1 + }}'",
])
def test_broken_tools_are_config_errors_not_crashes(tool):
    text = (HEAD + "pipeline:\n  - llm: {type: openai_llm}\n"
            f"tools:\n  - name: book\n    description: book it\n    {tool}\n    do: [{{log: hi}}]\n")
    with pytest.raises(ConfigError) as info:
        check(text)
    assert all(p.file == "bot.yaml" and p.line >= 6 for p in info.value.errors)


# ---- mistakes that are valid YAML but never what the author meant ---------------------------

VOICE = HEAD + "pipeline:\n  - stt: whisper_stt\n  - tts: piper_tts\n"


def first_problem(text: str, environ=None):
    with pytest.raises(ConfigError) as info:
        check(text, environ)
    return info.value.problems[0]


@pytest.mark.parametrize("value, how", [
    ("“Welcome”", "is in typographic quotes “ ”"), ("„Willkommen“", "is in typographic quotes „ “"),
    ("« Bonjour »", "is in typographic quotes « »"), ("‘Welcome’", "is in typographic quotes ‘ ’"),
    ("“Welcome", "starts with a typographic quote “"), ("Welcome”", "ends with a typographic quote ”"),
    ("“{{ participant.id }}”", "is in typographic quotes “ ”"),
])
def test_typographic_quotes_around_a_value(value, how):
    found = first_problem(VOICE + f"on:\n  connected:\n    - say: {value}\n")
    assert (found.line, found.col) == (8, 12)
    assert found.message == f"the value of 'say' {how}, which YAML keeps as part of the text"
    assert "with straight quotes \"" in found.hint or "with a straight quote \"" in found.hint


@pytest.mark.parametrize("value", ["He said “hi” to me", "He said “hi”", "“Hi,” she said",
                                   "It’s the players’",
                                   "'“quoted” inside straight quotes is text'", "“Hi” and “bye”"])
def test_typographic_quotes_inside_a_sentence_are_fine(value):
    assert check(VOICE + f"on:\n  connected:\n    - say: {value}\n")


@pytest.mark.parametrize("section", ["livekit: {room: “lobby”}", "vars: {greeting: “hi”}",
                                     "description: “a bot”"])
def test_typographic_quotes_are_checked_in_every_section(section):
    text = "version: 1\n" + section + "\n" + ("livekit: {room: r}\n" if "livekit" not in section else "")
    (line,) = problems(text)
    assert line.startswith("bot.yaml:2:") and "typographic quotes “ ”" in line


def test_typographic_quotes_on_a_condition_are_reported_once():
    assert problems(HEAD + "on:\n  data_received:\n    - if: “{{ data == 'x' }}”\n      then: []\n") == [
        "bot.yaml:5:11: error: the value of 'if' is in typographic quotes “ ”, "
        "which YAML keeps as part of the text"]


@pytest.mark.parametrize("condition, hint", [
    ("hello", 'write it as if: "{{ x == 1 }}"'),
    ("\"data == 'x'\"", 'write it as if: "{{ x == 1 }}"'),
    ("\"{{ data }} and {{ data }}\"", 'put the whole condition inside one {{ }}, e.g. if: "{{ x == 1 and y == 2 }}"'),
    ("\"is {{ data == 'x' }}\"", 'put the whole condition inside one {{ }}, e.g. if: "{{ x == 1 and y == 2 }}"'),
])
def test_a_condition_must_be_one_expression(condition, hint):
    found = first_problem(HEAD + f"on:\n  data_received:\n    - if: {condition}\n      then: []\n")
    assert (found.line, found.col) == (5, 11)
    assert found.message == "the condition of 'if' is not one {{ expression }}: a non-empty text is always true"
    assert found.hint == hint


@pytest.mark.parametrize("condition", ["'{{ data == 1 }}'", "' {{ data }} '", "'{{ data is none }}'",
                                       "{condition: '{{ data }}'}"])
def test_one_expression_conditions_are_fine(condition):
    assert check(HEAD + f"on:\n  data_received:\n    - if: {condition}\n      then: []\n")


def test_true_as_a_condition_gets_a_condition_message_not_a_quote_hint():
    found = first_problem(HEAD + "on:\n  data_received:\n    - if: true\n      then: []\n")
    assert found.message == "the condition of 'if' must be one {{ expression }}, not true"
    assert found.hint == 'write it as if: "{{ x == 1 }}"'


def test_choose_conditions_come_from_the_registry():
    assert problems(HEAD + "on:\n  dtmf_event:\n    - choose:\n        - when: \"{{ digit == '1' }}\"\n"
                           "          do: []\n        - when: '2'\n          do: []\n") == [
        "bot.yaml:8:17: error: the condition of 'choose' entry 2 is not one {{ expression }}: "
        "a non-empty text is always true"]


def test_conditions_are_read_from_the_registry_for_any_action():
    import dataclasses

    from runner.botfile.actions import ACTIONS
    entry = ACTIONS["log"]
    ACTIONS._entries["log"] = dataclasses.replace(entry, conditions=(("message",),))
    try:
        (line,) = problems(HEAD + "on:\n  connected:\n    - log: plain\n")
    finally:
        ACTIONS._entries["log"] = entry
    assert line == ("bot.yaml:5:12: error: the condition of 'log' is not one {{ expression }}: "
                    "a non-empty text is always true")


def test_else_without_then():
    found = first_problem(HEAD + "on:\n  data_received:\n    - if: \"{{ data == 'x' }}\"\n      else: [{log: no}]\n")
    assert (found.line, found.col, found.message) == (6, 7, "'if' has 'else:' but no 'then:'")
    assert "add 'then:'" in found.hint and "turn the condition around" in found.hint
    assert check(HEAD + "on:\n  data_received:\n    - if: \"{{ data == 'x' }}\"\n      then: []\n      else: []\n")


def test_a_backspace_in_a_double_quoted_pattern():
    base = HEAD + "pipeline:\n  - stt: whisper_stt\non:\n  user_said:\n"
    found = first_problem(base + '    - match: "\\b(bye|goodbye)\\b"\n      do: []\n')
    assert (found.line, found.col) == (7, 14)
    assert found.message == ("the pattern of 'match' contains a backspace character (U+0008), "
                             "so it never matches what people say")
    assert found.hint == ("in double quotes \\b is a backspace character: use single quotes "
                          "'\\b(bye|goodbye)\\b' or write \\\\b")
    spec = check(base + "    - match: '\\b(bye|goodbye)\\b'\n      do: []\n"
                        "    - match: \"(?i)\\\\bthanks\\\\b\"\n      do: []\n")
    first, second = spec.on["user_said"].triggers
    assert first.pattern.search("ok bye now") and second.pattern.search("Thanks a lot")


def test_a_backspace_in_the_mode_form_and_in_other_values():
    base = HEAD + "pipeline:\n  - stt: whisper_stt\non:\n  user_said:\n    mode: queued\n    do:\n"
    assert "the pattern of 'match'" in first_problem(base + '      - match: "\\bhi"\n        do: []\n').message
    found = first_problem(HEAD + 'on:\n  connected:\n    - log: "a\\ab"\n')
    assert found.message == "the value of 'log' contains a bell character (U+0007)"
    assert check(HEAD + 'on:\n  connected:\n    - log: "tab\\there\\nnew line"\n')


@pytest.mark.parametrize("text, hint", [
    (HEAD + "pipeline:\n  - tts: piper_tts\non:\n  connected:\n    - say: 5\n", 'say: "5"'),
    ("version: 1\nlivekit: {room: 1234}\n", 'room: "1234"'),
    (HEAD + "on:\n  connected:\n    - chat: {text: true}\n", 'text: "true"'),
    (HEAD + "on:\n  connected:\n    - send: {data: 1.5}\n", 'data: "1.5"'),
    (HEAD + "name: 42\n", 'name: "42"'),
])
def test_a_number_where_text_belongs_gets_a_quote_hint(text, hint):
    assert first_problem(text).hint == f"put it in quotes to make it text: {hint}"


LONG_SECRET = "Sk" + "".join(chr(ord("a") + (i * 7) % 26) + str(i % 10) for i in range(81))


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_long_secret_cut_short_in_a_message_is_still_masked(tmp_path, fmt, monkeypatch):
    from click.testing import CliRunner

    from runner.cli import main
    assert len(LONG_SECRET) == 164
    bot = tmp_path / "bot.yaml"
    bot.write_text("version: 1\nlivekit: {room: r, api_key: '${KEY}', api_secret: '${KEY}'}\n"
                   "session: {turn_stop: '${KEY}'}\n"
                   "on:\n  connected:\n    - log: {message: '${KEY}', level: '${KEY}'}\n")
    monkeypatch.setenv("KEY", LONG_SECRET)
    result = CliRunner().invoke(main, ["validate", "--format", fmt, str(bot)])
    assert result.exit_code == 1
    assert "turn_stop" in result.output and "level" in result.output  # the failing fields are reported
    pieces = {LONG_SECRET[i:i + 12] for i in range(len(LONG_SECRET) - 11)}
    assert not [p for p in pieces if p in result.output]


def test_mask_all_masks_pieces_of_a_secret():
    from runner.botfile.check_mistakes import mask_all
    secret = "abcdefghijklmnopqrstuvwxyz0123456789"
    assert mask_all(f"got '{secret}'", {secret}) == "got '***'"
    assert mask_all(f"got 'Bearer {secret[:20]}...'", {secret}) == "got 'Bearer ***...'"
    assert mask_all("got 'xyzabcd...'", {secret}) == "got 'xyz***...'"  # a cut after 4 characters
    assert mask_all("nothing secret here...", {secret}) == "nothing secret here..."


def test_the_same_bad_body_twice_is_reported_at_each_place_and_again_on_the_next_check():
    """Action bodies' schema problems are remembered per body (reloads): the positions are not."""
    text = ("version: 1\nlivekit: {room: r, identity: b}\non:\n  data_received:\n"
            "    - send: {dta: x}\n    - log: hi\n    - send: {dta: x}\n")
    first = problems(text)
    assert [p.split(": error")[0] for p in first if "dta" in p] == ["bot.yaml:5:14", "bot.yaml:7:14"]
    assert problems(text.replace("log: hi", "log: hello\n    - log: again")) == [
        p.replace("bot.yaml:7:", "bot.yaml:8:") for p in first]

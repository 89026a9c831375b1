"""Sandboxed templates: native values, null-safe data, SSTI/DoS refusal, and the static checks."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.botfile.templates import (ANY,
                                             LEAF,
                                             Sandbox,
                                             Template,
                                             TemplateError,
                                             check_template,
                                             compile_value,
                                             is_template,
                                             render_value,
                                             too_deep)

VARS = {
    "participant": {"id": LEAF, "name": LEAF, "metadata": LEAF, "state": LEAF},
    "vars": {"greeting": LEAF, "persona": LEAF, "pause": LEAF, "a": {"b": LEAF}},
    "bot": {"name": LEAF, "identity": LEAF, "room": LEAF},
    "room": {"participants": LEAF},
    "state": LEAF,
}
ELSEWHERE = {"message": "only in data_received, app_message", "digit": "only in dtmf_event"}
CONTEXT = {
    "participant": {"id": "alice", "name": "Alice", "metadata": "", "state": {}},
    "vars": {"greeting": "Welcome", "pause": 2.5, "a": {"b": 1}},
    "room": {"participants": ["alice", "bob"]},
    "message": {"text": "ping", "n": 3},
}


def render(text: str, context: dict | None = None, max_output: int = 65536) -> object:
    return Sandbox(max_output).compile(text).render(CONTEXT if context is None else context)


# ---- is_template / compile_value / render_value ------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("{{ x }}", True), ("{% if x %}y{% endif %}", True), ("{# note #}", True),
    ("plain", False), ("{ x }", False), ("100%", False), ("", False),
])
def test_is_template(text, expected):
    assert is_template(text) is expected


def test_compile_and_render_value_walk_containers():
    sandbox = Sandbox()
    value = compile_value({"to": "{{ participant.id }}", "data": {"text": "Hi {{ participant.name }}!",
                           "n": 3, "list": ["{{ 1 + 1 }}", "plain", None]}}, sandbox)
    assert isinstance(value["to"], Template) and value["to"].source == "{{ participant.id }}"
    assert value["data"]["list"][1] == "plain" and value["data"]["n"] == 3
    assert render_value(value, CONTEXT) == {"to": "alice", "data": {"text": "Hi Alice!", "n": 3,
                                                                    "list": [2, "plain", None]}}


def test_compile_caches_and_reports_syntax_errors():
    sandbox = Sandbox()
    assert sandbox.compile("{{ x }}") is sandbox.compile("{{ x }}")
    with pytest.raises(TemplateError, match="syntax error"):
        sandbox.compile("{{ x")


def test_any_is_leaf():
    assert ANY is LEAF


# ---- rendering ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("{{ 1 == 2 }}", False),
    ("  {{ 1 == 1 }}\n", True),
    ("{{- 1 == 1 -}}", True),
    ("{{ vars.pause }}", 2.5),
    ("{{ 2 + 3 }}", 5),
    ("{{ message }}", CONTEXT["message"]),
    ("{{ room.participants }}", ["alice", "bob"]),
    ("{{ room.participants | length == 0 }}", False),
    ("{{ none }}", None),
    ("{{ participant.id }}", "alice"),
    ("{{ 'x' }}", "x"),
    ("{{ range(3) }}", [0, 1, 2]),
    ("{{ dict(a=1) }}", {"a": 1}),
    ("{{ message.text == 'ping' }}", True),
    ("{{ message['text'] }}", "ping"),
    ("{{ vars['a'].b }}", 1),
])
def test_single_expression_keeps_native_type(text, expected):
    assert render(text) == expected
    assert type(render(text)) is type(expected)


@pytest.mark.parametrize("text, expected", [
    ("Hi {{ participant.name }}!", "Hi Alice!"),
    ("{{ vars.greeting }}, {{ participant.name or participant.id }}!", "Welcome, Alice!"),
    ("{{ 1 }}{{ 2 }}", "12"),
    ("{{ vars.pause }} s", "2.5 s"),
    ("{% if message.text == 'ping' %}pong{% endif %}", "pong"),
    ("{% for p in room.participants %}{{ p }};{% endfor %}", "alice;bob;"),
    ("{% set x = 1 %}{{ x }}", "1"),
    ("{{ message.missing }}", None),
    ("[{{ message.missing }}]", "[]"),
    ("{{ message | tojson }}", '{"n": 3, "text": "ping"}'),
    ("{# only a comment #}", ""),
    ("{% set ns = namespace(n=0) %}{% for i in range(3) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}", "3"),
])
def test_rendering(text, expected):
    assert render(text) == expected


@pytest.mark.parametrize("text, message, expected", [
    ("{{ message.text }}", {}, None),
    ("{{ message.text or 'x' }}", {}, "x"),
    ("{{ message['text'] }}", {}, None),
    ("{{ message.user.name }}", {}, None),
    ("{{ message.items }}", {}, None),
    ("{{ message.items }}", {"items": [1, 2]}, [1, 2]),
    ("{{ message.keys }}", {"keys": "k"}, "k"),
    ("{{ message.get }}", {}, None),
    ("{{ message.__class__ }}", {}, None),
    ("{{ message[0] }}", {}, None),
    ("{{ message | attr('__class__') }}", {}, None),
    ("{% if message.text %}yes{% else %}no{% endif %}", {}, "no"),
])
def test_missing_mapping_fields_read_as_null(text, message, expected):
    assert render(text, {"message": message}) == expected


@pytest.mark.parametrize("text", ["{{ partcipant }}", "Hi {{ partcipant.name }}", "{% if nope %}x{% endif %}"])
def test_unknown_top_level_names_still_fail(text):
    with pytest.raises(TemplateError, match="is undefined"):
        render(text)


@pytest.mark.parametrize("text, fragment", [
    ("{{ 1 / 0 }}", "ZeroDivisionError"),
    ("{{ 'a' + 1 }}", "TypeError"),
    ("{{ message.text.nope() }}", "has no attribute 'nope'"),
    ("{{ x|int }}", "undefined"),
    ("line one\n{{ nope }}", "line 2: 'nope' is undefined"),
])
def test_runtime_failures_are_template_errors(text, fragment):
    with pytest.raises(TemplateError) as info:
        render(text)
    assert fragment in info.value.message and "Traceback" not in info.value.message


# ---- security ----------------------------------------------------------------------------------

SSTI = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ lipsum.__globals__ }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ self._TemplateReference__context }}",
    "{{ self.__init__.__globals__ }}",
    "{{ ''|attr('__class__') }}",
    "{{ (''|attr('__class__')).__mro__ }}",
    "{{ '{0.__class__}'.format(1) }}",
    "{{ '{0.__class__.__mro__}'.format(message.text) }}",
    "{{ '{x.__class__}'.format_map({'x': 1}) }}",
    "{{ [].append(1) }}",
    "{{ {}.update(a=1) }}",
    "{{ room.participants.append('eve') }}",
    "{{ message.update({'x': 1}) }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ range.__globals__ }}",
    "{{ range(10**9) }}",
    "{{ range(10**9) | list }}",
    "{{ 'a' * 50_000_000 }}",
    "{{ 50_000_000 * 'a' }}",
    "{{ [0] * 10**8 }}",
    "{{ 10 ** 100000 }}",
    "{{ 2 ** 20000 }}",
    "{{ 10.0 ** 100000 }}",
    "{{ (10 ** 1000) * (10 ** 1000) * (10 ** 1000) * (10 ** 1000) }}",
    "{{ 'a'|center(10**8) }}",
    "{{ 'a'|indent(10**8, true) }}",
    "{{ 'a'.ljust(10**8) }}",
    "{{ 'a'.zfill(10**8) }}",
    "Hi {{ 'a' * 50_000_000 }}",
]


@pytest.mark.parametrize("payload", SSTI)
def test_ssti_and_dos_payloads_are_refused(payload):
    with pytest.raises(TemplateError):
        render(payload)


@pytest.mark.parametrize("payload", ["{{ ''.__class__ }}", "{{ 'a' * 50_000_000 }}", "{{ 10 ** 100000 }}",
                                     "{{ [].append(1) }}", "{{ '{0.__class__}'.format(1) }}"])
def test_security_errors_say_not_allowed(payload):
    with pytest.raises(TemplateError, match="not allowed"):
        render(payload)


@pytest.mark.parametrize("name", ["lipsum", "cycler", "joiner"])
def test_gadget_globals_removed(name):
    assert name not in Sandbox().env.globals


@pytest.mark.parametrize("text, expected", [
    ("{{ 'ab' * 3 }}", "ababab"),
    ("{{ [1] * 3 }}", [1, 1, 1]),
    ("{{ 2 ** 10 }}", 1024),
    ("{{ 10 ** 1000 > 0 }}", True),
    ("{{ 2 ** 0.5 > 1.41 }}", True),
    ("{{ 2 ** -2 }}", 0.25),
    ("{{ 6 * 7 }}", 42),
    ("{{ 'a'|center(5) }}", "  a  "),
    ("{{ 'a'.ljust(3) }}|", "a  |"),
    ("{{ ('x' * 65536) | length }}", 65536),
])
def test_binop_and_width_caps_allow_normal_use(text, expected):
    assert render(text) == expected


@pytest.mark.parametrize("text", [
    "{% for i in range(100000) %}xxxxxxxxxx{% endfor %}",
    "{{ 'x' * 60000 }}{{ 'y' * 60000 }}",
    "{{ range(20000) | join(',') }}",
])
def test_output_is_capped(text):
    with pytest.raises(TemplateError, match="longer than 65536"):
        render(text)


@pytest.mark.parametrize("limit, ok", [(10, False), (11, True)])
def test_output_cap_is_configurable(limit, ok):
    text = "Hi {{ participant.name }}, bye"  # 11 characters rendered with "Ali"
    context = {"participant": {"name": "Ali"}}
    if ok:
        assert render(text, context, max_output=limit) == "Hi Ali, bye"
    else:
        with pytest.raises(TemplateError, match=f"longer than {limit}"):
            render(text, context, max_output=limit)


def test_native_value_is_capped_too():
    with pytest.raises(TemplateError, match="longer than 5"):
        render("{{ message.text ~ message.text }}", max_output=5)


@pytest.mark.parametrize("name", ["{{ 7*7 }}", "{{ cycler.__init__.__globals__.os }}", "{% raw %}", "{#", "}}"])
def test_event_data_is_never_compiled(name):
    context = {"participant": {"name": name}}
    assert render("{{ participant.name }}", context) == name
    assert render("Hi {{ participant.name }}!", context) == f"Hi {name}!"


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_arbitrary_names_render_unchanged(name):
    sandbox = Sandbox()
    context = {"participant": {"id": "p", "name": name}}
    assert sandbox.compile("{{ participant.name }}").render(context) == name
    assert sandbox.compile("Hi {{ participant.name }}!").render(context) == f"Hi {name}!"


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(), st.none() | st.booleans() | st.integers() | st.text()), st.text())
def test_arbitrary_messages_never_crash_field_access(message, key):
    sandbox = Sandbox()
    assert sandbox.compile("{{ message[key] }}").render({"message": message, "key": key}) == message.get(key)


# ---- check_template ----------------------------------------------------------------------------

def check(text: str) -> list[tuple[int, int, str]]:
    """As for participant_connected: no `message` here."""
    return check_template(text, VARS, ELSEWHERE)


def check_data(text: str) -> list[tuple[int, int, str]]:
    """As for data_received, where `message` is free-form data."""
    return check_template(text, {**VARS, "message": LEAF}, {"digit": "only in dtmf_event"})


@pytest.mark.parametrize("text", [
    "plain text",
    "Hi {{ participant.name }}!",
    "{{ vars.greeting }}, {{ participant.name or participant.id }}!",
    "{{ message.text == 'ping' }}",
    "{{ message.anything.at.all }}",
    "{{ state.counter }}",
    "{{ vars.a.b }}",
    "{{ vars['a']['b'] }}",
    "{{ vars.a.b.c.d }}",
    "{{ room.participants | length == 0 }}",
    "{% for p in room.participants %}{{ p.x }}{{ loop.index }}{% endfor %}",
    "{% set x = 1 %}{{ x }}",
    "{% set participant = {} %}{{ participant.whatever }}",
    "{% macro m(a) %}{{ a.b }}{% endmacro %}{{ m(vars) }}",
    "{{ range(3) | list }}{{ dict(a=1) }}{{ namespace(a=1).a }}",
    "{{ vars[participant.id] }}",
    "{{ participant.name.upper() }}",
    "{{ message | tojson }}",
    "{{ 'participant.nme' }}",
])
def test_check_accepts_valid_templates(text):
    assert check_data(text) == []


@pytest.mark.parametrize("text, expected", [
    ("Hi {{ partcipant.name }}", (0, 6, "unknown variable 'partcipant' (did you mean 'participant'?)")),
    ("Hi {{ participant.nme }}", (0, 18, "unknown attribute 'nme' of 'participant' (did you mean 'name'?)")),
    ("{{ vars.greting }}", (0, 8, "unknown attribute 'greting' of 'vars' (did you mean 'greeting'?)")),
    ("{{ vars.a.c }}", (0, 10, "unknown attribute 'c' of 'vars.a'")),
    ("{{ vars['a']['c'] }}", (0, 13, "unknown attribute 'c' of 'vars.a'")),
    ("{{ bot.nmae }}", (0, 7, "unknown attribute 'nmae' of 'bot' (did you mean 'name'?)")),
    ("{{ room.participant }}", (0, 8, "unknown attribute 'participant' of 'room' (did you mean 'participants'?)")),
    ("{{ message }}", (0, 3, "variable 'message' is not available here (only in data_received, app_message)")),
    ("{{ zzz }}", (0, 3, "unknown variable 'zzz'")),
    ("{{ participant.name|uper }}", (0, 20, "unknown filter 'uper' (did you mean 'upper'?)")),
    ("{% if participant.name %}{{ participant.name|nofilter }}{% endif %}", (0, 45, "unknown filter 'nofilter'")),
    ("{{ participant.name is strng }}", (0, 23, "unknown test 'strng' (did you mean 'string'?)")),
    ("{% filter uppr %}x{% endfilter %}", (0, 10, "unknown filter 'uppr' (did you mean 'upper'?)")),
])
def test_check_reports_problems(text, expected):
    assert check(text) == [expected]


def test_check_message_without_elsewhere():
    assert check_template("{{ message }}", {"participant": LEAF}) == [(0, 3, "unknown variable 'message'")]


@pytest.mark.parametrize("text", ["{{ x", "{% if x %}", "{{ 1 + }}", "{% for %}{% endfor %}", "{% endif %}"])
def test_check_syntax_error(text):
    problems = check(text)
    assert len(problems) == 1 and problems[0][2].startswith("template syntax error: ")


def test_check_syntax_error_line_offset():
    assert check("line one\nline two {{ x ")[0][0] == 1


@pytest.mark.parametrize("text, line, col", [
    ("a\n  {{ \"participant\" }} {{ participant.nme }}", 1, 37),  # a string literal is not the name
    ("partcipant {{ partcipant }}", 0, 14),  # plain text is not the name either
    ("{# partcipant #}{{ partcipant }}", 0, 19),
    ("{{ vars.a }}\n{% if vars.greting %}x{% endif %}", 1, 11),
    ("{{ vars.a.b }} {{ vars.a.c }}", 0, 25),
    ("{{ vars . greting }}", 0, 10),
    ("{{ participant['nme'] }}", 0, 15),
])
def test_check_columns(text, line, col):
    (problem,) = check(text)
    assert problem[:2] == (line, col)


def test_check_reports_every_problem_sorted():
    problems = check("{{ partcipant }}\n{{ vars.greting }} {{ participant.nme }}")
    assert [p[:2] for p in problems] == [(0, 3), (1, 8), (1, 34)]


def test_check_does_not_flag_globals_or_loop_helpers():
    assert check("{% for i in range(3) %}{{ loop.index }}{{ i }}{% endfor %}") == []


def test_check_flags_loop_outside_loop():
    assert check("{{ loop.index }}") == [(0, 3, "unknown variable 'loop'")]


def test_check_leaf_and_non_dict_specs_stop_checking():
    assert check_template("{{ a.b.c }}{{ d.e }}", {"a": LEAF, "d": ANY}) == []


@pytest.mark.parametrize("text, tag", [
    ("{% include 'other.html' %}", "include"), ("{% extends 'base' %}", "extends"),
    ("{% import 'm' as m %}", "import"), ("{% from 'm' import x %}", "fromimport"),
])
def test_check_flags_loading_other_templates(text, tag):
    assert (0, 0, f"'{tag}' is not supported in bot templates") in check(text)


def test_check_ignores_raw_blocks():
    assert check("{% raw %}{{ partcipant }}{% endraw %}") == []


FAST_CONTEXT = {"participant": {"id": "alice", "name": None, "state": {"n": 2}}, "message": {"a": {"b": [1, 2]}},
                "data": "text", "vars": {"pause": 0.5, "nested": {"deep": True}}}


@pytest.mark.parametrize("source", [
    "{{ participant.id }}", "{{ participant.name }}", "{{ participant.missing }}", "{{ participant.state.n }}",
    "{{ message.a.b }}", "{{ message.a }}", "{{ message.x.y.z }}", "{{ vars.pause }}", "{{ vars.nested.deep }}",
    "{{ data }}", "{{data.upper}}", "{{ data.missing }}",
])
def test_plain_path_fast_path_matches_jinja(source):
    """`{{ a.b }}` is looked up directly; it must give exactly what the sandboxed Jinja gives."""
    fast = Sandbox().compile(source)
    slow = Sandbox().compile(source)
    slow._path = None
    try:
        expected = slow.render(FAST_CONTEXT)
    except TemplateError as exc:
        with pytest.raises(TemplateError, match=re.escape(str(exc))):
            fast.render(FAST_CONTEXT)
        return
    got = fast.render(FAST_CONTEXT)
    assert got == expected and type(got) is type(expected)


def test_fast_path_unknown_name_still_fails_like_jinja():
    with pytest.raises(TemplateError, match="nobody"):
        Sandbox().compile("{{ nobody.id }}").render(FAST_CONTEXT)


# ---- nesting limits, huge numbers: problems, never tracebacks ----------------------------------

NESTED = {
    "parentheses": "{{ " + "(" * 500 + "1" + ")" * 500 + " }}",
    "lists": "{{ " + "[" * 300 + "1" + "]" * 300 + " }}",
    "plus chain": "{{ " + " + ".join(["1"] * 3000) + " }}",
    "attributes": "{{ message" + ".a" * 199 + " }}",
    "filters": "{{ message" + "|string" * 199 + " }}",
    "not": "{{ " + "not " * 199 + "message }}",
    "and": "{{ " + " and ".join(["message"] * 199) + " }}",
    "if else": "{{ " + "1 if message else " * 199 + "2 }}",
    "for blocks": "{% for a in message %}" * 25 + "x" + "{% endfor %}" * 25,
    "if blocks": "{% if message %}" * 120 + "x" + "{% endif %}" * 120,
}


@pytest.mark.parametrize("name", NESTED)
def test_too_deep_templates_are_one_plain_problem(name):
    problems = check_data(NESTED[name])
    assert len(problems) == 1, problems
    line, col, message = problems[0]
    assert message == too_deep() and "more than 32 levels" in message, message
    assert "Traceback" not in message and "recursion" not in message.lower()
    with pytest.raises(TemplateError, match="too deeply nested"):
        Sandbox().compile(NESTED[name])


def test_a_number_past_pythons_digit_limit_in_a_template():
    text = "{{ 1" + "0" * 5000 + " }}"
    assert check_data(text) == [(0, 0, "this template has a number with too many digits (the limit is 4300)")]
    with pytest.raises(TemplateError, match="too many digits"):
        Sandbox().compile(text)


@pytest.mark.parametrize("text, expected", [
    ("{{ " + "(" * 32 + "1" + ")" * 32 + " }}", 1),
    ("{{ " + " + ".join(["1"] * 30) + " }}", 30),
    ("{{ message" + ".a" * 30 + " }}", None),
    ("{{ 'x'" + "|string" * 30 + " }}", "x"),
    ("{% if 1 %}" * 15 + "x" + "{% endif %}" * 15, "x"),
])
def test_nesting_up_to_the_limit_still_works(text, expected):
    assert check_data(text) == []
    assert Sandbox().compile(text).render({"message": {}}) == expected


@pytest.mark.parametrize("depth", [100, 600, 900])
def test_a_deep_call_stack_makes_a_problem_not_a_recursion_error(depth):
    """Far down an already deep stack Jinja's parser runs out of room sooner: still a problem."""
    from runner.botfile.template_check import clear_facts
    from runner.botfile.templates import MAX_NESTING, clear_compiled
    text = "{{ " + "(" * MAX_NESTING + "1" + ")" * MAX_NESTING + " }}"

    def deep(n):
        if n:
            return deep(n - 1)
        clear_facts(), clear_compiled()  # checks and compiles are cached per text: measure this stack's
        return check_data(text), _compiles(text)

    problems, compiled = deep(depth)
    assert problems == [] and compiled is True if depth == 100 else True
    assert problems in ([], [(0, 0, too_deep())]) and compiled in (True, too_deep())
    if depth == 900:
        assert problems == [(0, 0, too_deep())] and compiled == too_deep()


def _compiles(text):
    try:
        Sandbox().compile(text)
    except TemplateError as exc:
        return exc.message
    return True


@pytest.mark.parametrize("name", ["parentheses", "plus chain", "attributes", "not"])
def test_too_deep_template_in_a_bot_file_is_a_located_config_error(name):
    from runner.botfile.check import check_document
    from runner.botfile.errors import ConfigError
    from runner.botfile.yamlsafe import load_text
    text = ("version: 1\nlivekit: {room: lobby}\non:\n  data_received:\n"
            f"    - log: \"ok\"\n    - log: \"{NESTED[name]}\"\n")
    with pytest.raises(ConfigError) as info:
        check_document(load_text(text, "deep.yaml"), environ={})
    (problem,) = info.value.problems
    assert (problem.file, problem.line, problem.col) == ("deep.yaml", 6, 13)
    assert "too deeply nested" in problem.message


def test_validate_reports_a_crashing_file_and_goes_on(tmp_path, capsys):
    from runner.cli.validate import validate_paths
    folder = tmp_path / "bots"
    folder.mkdir()
    (folder / "a_deep.yaml").write_text(
        "version: 1\nlivekit: {room: lobby}\non:\n  data_received:\n"
        f"    - log: \"{NESTED['filters']}\"\n")
    (folder / "b_inf.yaml").write_text("version: 1\nlivekit: {room: b, identity: b}\nvars: {x: '${X:-.inf}'}\n")
    (folder / "c_good.yaml").write_text("version: 1\nlivekit: {room: c, identity: c}\n")
    assert validate_paths([str(folder)]) == 1
    err = capsys.readouterr().err
    assert f"{folder / 'a_deep.yaml'}:5:13: error: this template is too deeply nested" in err
    assert "Traceback" not in err
    assert err.strip().endswith("1 error in 1 file")


def test_validate_survives_an_internal_error_without_printing_its_text(tmp_path, capsys, monkeypatch):
    import runner.botfile.check
    from runner.cli.validate import validate_paths
    real = runner.botfile.check.check_file

    def broken(path, **kw):
        if path.name == "a.yaml":
            raise RuntimeError("sk-live-SECRET-from-env")
        return real(path, **kw)

    monkeypatch.setattr(runner.botfile.check, "check_file", broken)
    for name in ("a", "b"):
        (tmp_path / f"{name}.yaml").write_text(f"version: 1\nlivekit: {{room: {name}, identity: {name}}}\n")
    assert validate_paths([str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'a.yaml'}:1:1: error: lkrun could not check this file: internal error (RuntimeError)" in err
    assert "SECRET" not in err and "b.yaml" not in err


# ---- locating problems: linear in the number of problems ---------------------------------------

def _quadratic_locate(text, mask, lineno, root, path=()):
    """The previous implementation (a regex over the whole text per problem), as the reference."""
    starts = [0] + [k + 1 for k, c in enumerate(text) if c == "\n"]
    begin, end = starts[min(lineno, len(starts)) - 1], (starts + [len(text)])[min(lineno, len(starts))]
    pattern = r"(?<![\w.])" + re.escape(root) + r"(?!\w)"
    for k, attr in enumerate(map(re.escape, path)):
        if k == len(path) - 1:
            pattern += rf"\s*(?:\.\s*(?P<a>{attr})(?!\w)|\[\s*(?P<q>['\"]){attr}(?P=q)\s*\])"
        else:
            pattern += rf"\s*(?:\.\s*{attr}(?!\w)|\[\s*(['\"]){attr}\{k + 1}\s*\])"
    for m in re.finditer(pattern, text):
        if begin <= m.start() < end and mask[m.start()]:
            pos = m.start() if not path else m.start("a") if m.group("a") else m.start("q")
            line = text.count("\n", 0, pos)
            return line, pos - starts[line]
    return lineno - 1, 0


_PIECES = st.sampled_from(["a", "b", "ab", ".", ". ", "['b']", '["a"]', "[ 'ab' ]", " ", "\n", "~", "'a.b'",
                           "{{ ", " }}", "{% if ", " %}", "{# a.b #}", "x", "(", ")"])


@settings(max_examples=300, deadline=None)
@given(st.lists(_PIECES, max_size=30))
def test_locator_finds_what_the_quadratic_search_found(pieces):
    from runner.botfile.template_check import _code_mask, _Locator
    text = "".join(pieces)
    mask, locator = _code_mask(text), _Locator(text)
    for lineno in range(1, text.count("\n") + 3):
        for root, path in [("a", ()), ("ab", ()), ("a", ("b",)), ("a", ("b", "a")), ("ab", ("ab",)), ("b", ("a",))]:
            assert locator.where(lineno, root, path) == _quadratic_locate(text, mask, lineno, root, path)


def _unknowns_bot(n: int, one_line: bool) -> str:
    body = ("{{ " + " ~ ".join(f"u{i}" for i in range(n)) + " }}" if one_line
            else "\\n".join(f"{{{{ u{i} }}}}" for i in range(n)))
    return f'version: 1\nlivekit: {{room: lobby}}\non:\n  data_received:\n    - log: "{body}"\n'


def _check_seconds(text: str) -> tuple[float, list]:
    import time
    from runner.botfile.check import check_document
    from runner.botfile.errors import ConfigError
    from runner.botfile.yamlsafe import load_text
    from runner.botfile.template_check import clear_facts
    from runner.botfile.templates import clear_compiled
    clear_facts(), clear_compiled()  # checks are cached per text: measure the work, not the cache
    doc = load_text(text, "many.yaml")
    start = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        check_document(doc, environ={})
    return time.perf_counter() - start, info.value.problems


@pytest.mark.parametrize("one_line", [True, False], ids=["one line", "one per line"])
def test_four_thousand_unknown_variables_are_checked_in_linear_time(one_line):
    """Locating each problem was a regex over the whole template: 4,000 unknowns took 10.7 s (one line)
    and 15.7 s (one per line). Now ~0.7 s on a quiet 2-core machine; the bound leaves room for a busy one,
    and the 1,000 -> 4,000 ratio (4 when linear, 16 when quadratic) does not depend on the machine."""
    smalls, bigs = [], []
    for _ in range(3):  # interleaved, so a busy moment of the shared machine hits both sizes alike
        smalls.append(_check_seconds(_unknowns_bot(1000, one_line))[0])
        bigs.append(_check_seconds(_unknowns_bot(4000, one_line)))
    small = min(smalls)
    elapsed, problems = min(bigs, key=lambda r: r[0])
    assert len(problems) == 4000 and problems[-1].message == "unknown variable 'u3999'"
    line5 = _unknowns_bot(4000, True).split("\n")[4]
    assert (problems[-1].line, problems[-1].col) == ((5, line5.index("u3999") + 1) if one_line else (5 + 3999, 4))
    assert elapsed < 4.0, f"{elapsed:.2f} s for 4000 unknown variables"
    assert elapsed / small < 10, f"1000 -> {small:.2f} s, 4000 -> {elapsed:.2f} s: not linear"


@pytest.mark.parametrize("text, expected", [
    ("{{ 1 + 1 }}", 2), ("  {{ [1] }}\n", [1]), ("{{- 2 -}}", 2), ("{{ '{{' }}", "{{"),
    ("{# note #}{{ 3 }}", "3"), ("{{ 3 }}{# note #}", "3"), ("{{ 1 }}{{ 2 }}", "12"), ("a {{ 1 }}", "a 1"),
    ("{% if 1 %}{{ 4 }}{% endif %}", "4"),
])
def test_one_expression_keeps_its_type_from_a_single_parse(text, expected):
    value = Sandbox().compile(text).render({})
    assert value == expected and type(value) is type(expected)

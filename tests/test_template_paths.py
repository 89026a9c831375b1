"""Plain-path templates (`{{ participant.id }}`) without Jinja: recognised only where Jinja reads the
same thing, checked and rendered exactly as Jinja's own path would, and a bot of them never imports it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runner.botfile import template_check, templates
from runner.botfile.template_facts import Facts, _checker
from runner.botfile.template_paths import NOT_PLAIN, plain_path
from runner.botfile.template_sandbox import JinjaTemplate

ROOT = Path(__file__).resolve().parents[1]

PLAIN = ["{{ participant.id }}", "{{participant.id}}", "  {{ a }}  ", "\n\n{{ message.seq }}\n",
         "{{\tvars.greeting\t}}", "{{ a1_b.c2 }}", "{{ a.b.c.d.e.f.g.h.i }}", "{{ wait.digit }}", "{{ a.if }}"]
NOT_PATHS = ["{{ a or b }}", "{{ a.b }} and {{ c }}", "{{ a['b'] }}", "{{ _a }}", "{{ a._b }}", "{{ a.1 }}",
             "{{ a . b }}", "{{- a -}}", "{{ true }}", "{{ None }}", "{{ range }}", "{{ loop.index }}",
             "{{ self }}", "{{ not }}", "{{ a.b.c.d.e.f.g.h.i.j }}", "{% if a %}x{% endif %}", "{{ a }",
             "{{ a\n.b }}", "{{ été }}", "{{ a | length }}", "x {{ a }}"]


@pytest.mark.parametrize("text", PLAIN)
def test_plain_paths_are_recognised(text):
    assert plain_path(text) == tuple(text.strip().strip("{}").strip().split("."))


@pytest.mark.parametrize("text", NOT_PATHS)
def test_anything_else_is_left_to_jinja(text):
    assert plain_path(text) is None


def test_no_name_jinja_binds_itself_is_read_as_a_path():
    # a jinja upgrade that adds a global would otherwise be looked up in the event's variables
    assert set(_checker.globals) <= NOT_PLAIN
    assert {"true", "false", "none", "True", "False", "None", "not", "and", "or", "in", "is", "if"} <= NOT_PLAIN


@pytest.mark.parametrize("text", PLAIN)
def test_the_facts_of_a_plain_path_are_jinjas(text):
    fast, parsed = template_check._PathFacts(text, plain_path(text)), Facts(text)
    assert (fast.failed, fast.fixed, fast.names, fast.chains) == \
           (parsed.failed, parsed.fixed, parsed.names, parsed.chains)


@pytest.mark.parametrize("text", ["{{ participant.nme }}", "\n{{ particpant.id }}", "{{ vars.x.y }}"])
def test_a_plain_path_is_checked_and_located_as_jinja_would(text):
    variables = {"participant": {"id": templates.LEAF, "name": templates.LEAF}, "vars": {"x": {"z": templates.LEAF}}}
    template_check.clear_facts()
    fast = template_check.check_template(text, variables)
    assert fast and fast == _check_with_jinja(text, variables)


def _check_with_jinja(text, variables):
    template_check.clear_facts()
    facts = Facts(text)
    with template_check._FACTS_LOCK:
        template_check._FACTS[text] = facts
    try:
        return template_check.check_template(text, variables)
    finally:
        template_check.clear_facts()


CONTEXTS = [{"participant": {"id": "p1"}}, {"participant": None}, {"participant": {}}, {"participant": "text"},
            {"participant": {"id": {"deep": [1, 2]}}}, {}, {"participant": {"id": "x" * 70000}},
            {"participant": {"id": object()}}]


@pytest.mark.parametrize("context", CONTEXTS, ids=range(len(CONTEXTS)))
def test_a_plain_path_renders_as_jinjas_own(context):
    compiler = templates._Compiler(65536)
    fast = templates.Template(compiler, "{{ participant.id }}")
    assert fast._jinja is None  # not parsed at compile time
    jinja = JinjaTemplate(compiler.env, "{{ participant.id }}", 65536)

    def outcome(template):
        try:
            value = template.render(context)
        except templates.TemplateError as exc:
            return "error", exc.message
        return "value", value if isinstance(value, (str, int, float, bool, type(None), dict, list)) else str(value)

    assert outcome(fast) == outcome(jinja)


def test_a_bot_of_plain_paths_checks_compiles_and_renders_without_importing_jinja(tmp_path):
    bot = tmp_path / "echo.yaml"
    bot.write_text("version: 1\nname: echo\nlivekit: {room: r, identity: bot}\n"
                   "on:\n  data_received:\n"
                   "    - send: {to: \"{{ participant.id }}\", data: {text: pong, seq: \"{{ message.seq }}\"}}\n")
    code = ("import sys\n"
            "from runner.botfile.check import check_file\n"
            f"spec = check_file({str(bot)!r})\n"
            "from runner.botfile.templates import Sandbox, render_value\n"
            "value = render_value(Sandbox().compile('{{ message.seq }}'), {'message': {'seq': 7}})\n"
            "print(value, 'jinja2' in sys.modules)\n"
            "render_value(Sandbox().compile('{{ a or 1 }}'), {'a': 0})\n"
            "print('then', 'jinja2' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["7", "False", "then", "True"]

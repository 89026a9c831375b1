"""`flow:` checked in lkrun's style (runner/botfile/flows.py): every mistake at its file:line:col.

Each fixture in tests/fixtures/invalid_flows states its errors in `# expect:` lines (any file:
a problem inside a flow file or an included file is reported there). pipecat is imported here
only to compare with its own models and validation, never by the checker.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from runner.botfile.check import check_file
from runner.botfile.errors import ConfigError
from runner.botfile.files import expand
from runner.cli import main

ROOT = Path(__file__).resolve().parent.parent
INVALID = ROOT / "tests" / "fixtures" / "invalid_flows"
FLOWS = ROOT / "tests" / "fixtures" / "flows"
FILES = sorted(INVALID.glob("*.yaml"))
ERROR = re.compile(r"^\S+:\d+:\d+: error: ")


def expected(path: Path) -> list[str]:
    return [line[len("# expect: "):] for line in path.read_text().splitlines() if line.startswith("# expect: ")]


@pytest.fixture(autouse=True)
def at_root(monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def test_at_least_fifteen_kinds_of_flow_mistake():
    assert len(FILES) >= 15
    messages = {re.sub(r"'[^']*'", "'X'", line.split(": error: ", 1)[1]) for p in FILES for line in expected(p)}
    assert len(messages) >= 25, sorted(messages)  # distinct kinds, not copies of one


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_each_flow_fixture_gives_exactly_its_expected_errors(path):
    result = CliRunner().invoke(main, ["validate", str(path.relative_to(ROOT))])
    assert result.exit_code == 1
    printed = [line for line in result.output.splitlines() if ERROR.match(line)]
    assert printed == expected(path)


def test_problems_in_an_included_file_are_reported_in_that_file():
    lines = expected(INVALID / "include_problems.yaml")
    files = {line.split(":")[0] for line in lines}
    assert files == {"tests/fixtures/invalid_flows/files/include_outside.yaml",
                     "tests/fixtures/invalid_flows/files/loop.yaml",
                     "tests/fixtures/invalid_flows/files/prompts/other_node.yaml"}


def test_graph_warnings_do_not_fail_the_file(tmp_path):
    bot = tmp_path / "bot.yaml"
    bot.write_text(BOT_HEAD + """flow:
  initial_node: greet
  nodes:
    greet:
      task_messages: [{role: developer, content: Greet.}]
      functions:
        - {name: go, transition_only: true, description: Go on., transition_to: stuck}
    stuck:
      task_messages: [{role: developer, content: Stuck.}]
    lonely:
      task_messages: [{role: developer, content: Nobody comes here.}]
      post_actions: [{type: end_conversation}]
""")
    spec = check_file(bot)
    warnings = [p.render().splitlines()[0] for p in spec.warnings]
    assert f"{bot}:12:5: warning: node 'stuck' is a dead end: no function moves on and it does not end the " \
           f"conversation" in warnings
    assert f"{bot}:14:5: warning: node 'lonely' can never be reached from 'greet'" in warnings


BOT_HEAD = """version: 1
livekit: {room: flows}
pipeline:
  - llm: {type: openai_llm, api_key: "${OPENAI_API_KEY:-unused}"}
"""


def test_pipecats_docstring_example_is_kept_byte_for_byte_and_judged_as_pipecat_judges_it():
    import textwrap
    from pipecat.flows import config as pipecat_config
    doc = pipecat_config.__doc__
    example = textwrap.dedent(doc[doc.index("Example YAML::\n\n") + len("Example YAML::\n\n"):]).rstrip("\n") + "\n"
    text = (FLOWS / "pipecat_docstring_flow.yaml").read_text()
    assert text == example
    # pipecat's own example names two nodes it never defines: pipecat stops at the first, lkrun lists all
    with pytest.raises(Exception, match="unknown node 'sushi'"):
        pipecat_config.FlowConfig.from_yaml(text)
    with pytest.raises(ConfigError) as caught:
        check_file("tests/fixtures/flows/pipecat_docstring_bot.yaml")
    assert [p.render().splitlines()[0] for p in caught.value.errors] == [
        "tests/fixtures/flows/pipecat_docstring_flow.yaml:17:24: error: there is no node named 'sushi'",
        "tests/fixtures/flows/pipecat_docstring_flow.yaml:28:17: error: there is no node named 'confirm'",
        "tests/fixtures/flows/pipecat_docstring_flow.yaml:30:20: error: there is no node named 'confirm'",
    ]


def test_a_flow_with_includes_becomes_what_pipecats_flowconfig_accepts():
    from pipecat.flows.config import FlowConfig
    spec = check_file(FLOWS / "include_bot.yaml")
    flow = spec.flow
    config = FlowConfig.model_validate(flow.config)
    assert list(config.nodes) == ["greet", "pizza", "sushi", "confirm"]
    assert config.nodes["greet"].task_messages[0].content.startswith("Greet the caller")
    assert config.nodes["sushi"].functions[0].transition_to == "confirm"
    # the tool schema is the file's parameters, verbatim; handlers from the bot file, the graph from the flow file
    assert flow.handlers["select_pizza_order"].parameters == {
        "type": "object", "properties": {"size": {"type": "string", "enum": ["small", "medium", "large"]}},
        "required": ["size"]}
    assert flow.handlers["get_delivery_estimate"].description == "How long delivery takes."
    assert [Path(f).name for f in flow.files] == ["include_flow.yaml", "greet_messages.yaml", "sushi_node.yaml"]
    file, line, _ = flow.where(("nodes", "sushi", "functions", 0, "name"))
    assert (Path(file).name, line) == ("sushi_node.yaml", 5)
    assert flow.end_nodes() == {"confirm"}


def test_lkrun_additions_are_stripped_and_kept_beside(tmp_path):
    from pipecat.flows.config import FlowConfig
    bot = tmp_path / "bot.yaml"
    bot.write_text(BOT_HEAD + """vars: {clinic: Sunny}
flow:
  initial_node: greet
  state: {visits: 0}
  nodes:
    greet:
      role_message: "You work at {{ clinic }} ({{ vars.clinic }}), visit {{ visits }}."
      task_messages: [{role: developer, content: "Ask {{ participant.name }} for a name."}]
      on_enter: [{log: entering}]
      functions:
        - name: record_name
          description: Record the name.
          parameters: {type: object, properties: {name: {type: string}}}
          do: [{set: {values: {name: "{{ args.name }}"}}}]
          result: {status: ok}
          transition_to: {field: status, cases: {ok: bye}}
    bye:
      task_messages: [{role: developer, content: "Say goodbye to {{ name }}."}]
      pre_actions: [{type: tts_say, text: "Bye {{ name }}"}]
      post_actions: [{type: end_conversation, text: "Goodbye, {{ name }}."}]
""")
    flow = check_file(bot).flow
    FlowConfig.model_validate(flow.config)  # pipecat's models forbid extra keys: none of lkrun's are left
    assert "on_enter" not in flow.config["nodes"]["greet"]
    assert flow.config["nodes"]["greet"]["functions"][0] == {
        "name": "record_name", "transition_to": {"field": "status", "cases": {"ok": "bye"}}}
    assert [a.name for a in flow.nodes["greet"].on_enter] == ["log"]
    assert flow.state == {"visits": 0}
    context = {"clinic": "Sunny", "visits": 2, "vars": {"clinic": "Sunny"}, "participant": {"name": "Ada"},
               "name": "Ada"}
    assert flow.nodes["greet"].role_message.render(context) == "You work at Sunny (Sunny), visit 2."
    assert flow.nodes["bye"].tts_say[("pre_actions", 0)].render(context) == "Bye Ada"
    assert flow.nodes["bye"].tts_say[("post_actions", 0)].render(context) == "Goodbye, Ada."
    assert flow.handlers["record_name"].result == {"status": "ok"}


def test_a_state_key_never_shadows_lkruns_own_names(tmp_path):
    bot = tmp_path / "bot.yaml"
    bot.write_text(BOT_HEAD + """flow:
  initial_node: greet
  state: {vars: shadow, participant: shadow}
  nodes:
    greet:
      task_messages: [{role: developer, content: "{{ participant.nosuch }}"}]
      post_actions: [{type: end_conversation}]
""")
    with pytest.raises(ConfigError, match="unknown attribute 'nosuch' of 'participant'"):
        check_file(bot)


def test_flow_file_shorthand_and_flow_files_beside_bots(tmp_path):
    (tmp_path / "intake.flow.yaml").write_text((FLOWS / "include_flow.yaml").read_text())
    (tmp_path / "prompts").mkdir()
    for name in ("greet_messages.yaml", "sushi_node.yaml"):
        (tmp_path / "prompts" / name).write_text((FLOWS / "prompts" / name).read_text())
    (tmp_path / "bot.yaml").write_text(BOT_HEAD + "flow: intake.flow.yaml\n")
    files, _ = expand([str(tmp_path)])
    assert [f.name for f in files] == ["bot.yaml"]  # the flow file is not loaded as a second bot
    with pytest.raises(ConfigError, match="function 'select_pizza_order' has nothing to do"):
        check_file(tmp_path / "bot.yaml")


def test_validate_with_a_flow_never_imports_pipecat():
    code = ("import sys; from runner.cli import main; "
            "sys.argv = ['lkrun', 'validate', 'tests/fixtures/flows/include_bot.yaml']\n"
            "try:\n    main()\nexcept SystemExit as exit:\n"
            "    assert not [m for m in sys.modules if m.startswith('pipecat')]\n    raise SystemExit(exit.code)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "ok: 1 bot file valid" in proc.stdout


def test_the_flow_schema_has_every_key_of_pipecats_models():
    """The canary for a pipecat upgrade: lkrun's flow schema is hand-kept beside pipecat's models."""
    from pipecat.flows.config import FlowConfig
    from runner.botfile import flow_schema
    defs = FlowConfig.model_json_schema()["$defs"]
    pairs = [(flow_schema.CONFIG, FlowConfig.model_json_schema(), flow_schema.LKRUN_TOP_KEYS),
             (flow_schema.NODE, defs["Node"], flow_schema.LKRUN_NODE_KEYS),
             (flow_schema.FUNCTION, defs["Function"], flow_schema.LKRUN_HANDLER_KEYS),
             (flow_schema.BRANCH, defs["Branch"], ()), (flow_schema.MESSAGE, defs["Message"], ())]
    for ours, theirs, added in pairs:
        assert set(ours["properties"]) - set(added) == set(theirs["properties"]), theirs.get("title")
        assert set(ours.get("required", [])) == set(theirs.get("required", [])), theirs.get("title")
    assert set(flow_schema.ACTION["properties"]) >= set(defs["Action"]["properties"])


def test_the_editor_schema_completes_node_and_function_keys():
    schema = json.loads((ROOT / "schemas" / "bot.schema.json").read_text())
    config = schema["properties"]["flow"]["anyOf"][2]
    node = config["properties"]["nodes"]["additionalProperties"]
    assert {"task_messages", "functions", "on_enter", "context_strategy"} <= set(node["properties"])
    function = node["properties"]["functions"]["items"]
    assert {"name", "transition_to", "parameters", "do"} <= set(function["properties"])
    assert function["properties"]["do"]["items"] == {"$ref": "#/$defs/action"}


def test_lkrun_graph_prints_mermaid_with_the_current_node():
    result = CliRunner().invoke(main, ["graph", "tests/fixtures/flows/include_bot.yaml", "--node", "sushi"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "flowchart TD"
    assert "  start --> n_greet" in lines
    assert '  n_pizza -->|"select_pizza_order = ok"| n_confirm' in lines
    assert '  n_confirm(["confirm"])' in lines  # an end node is rounded
    assert lines[-1] == "  class n_sushi current"
    wrong = CliRunner().invoke(main, ["graph", "tests/fixtures/flows/include_bot.yaml", "--node", "sushy"])
    assert wrong.exit_code == 1 and "did you mean 'sushi'" in wrong.output

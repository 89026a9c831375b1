"""`lkrun test` for bots with a flow: pipecat's real FlowManager in a pipeline with no transport,
against the scripted LLM (runner/testing/flow_case.py), and `expect: {node: NAME}`.

The LLM is pipecat's OpenAILLMService whose network call is the stand-in for the paid API (the
case's `llm:` steps as ChatCompletionChunks): nothing leaves the machine."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

from runner.testing import clock
from runner.testing.run import load_all, run_paths, run_step

ROOT = Path(__file__).resolve().parent.parent
CLINIC = ROOT / "examples" / "clinic_intake.yaml"
PIZZA = ROOT / "examples" / "pizza_order.yaml"
EXAMPLES = [ROOT / "examples" / "clinic_intake.test.yaml", ROOT / "examples" / "pizza_order.test.yaml"]

HEAD = f"bot: {CLINIC}\nenv: {{OPENAI_API_KEY: x}}\ncases:\n"
TO_BIRTHDAY = """\
      - llm: {reply: "Hello, your name please?"}
      - join: {id: ada, name: Ada}
      - llm: {call: {function: record_name, args: {name: Ada Lovelace}}}
      - llm: {reply: "And your date of birth?"}
      - say: {from: ada, text: "Ada Lovelace"}
"""


def write(tmp_path, text: str, name: str = "t.test.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def only_failure(outcome):
    assert outcome.problems == [] and outcome.passed == 0 and outcome.failed == 1, outcome.problems
    return outcome.files[0].cases[0].failure


def test_the_flow_examples_pass_offline():
    started = time.perf_counter()
    outcome = run_paths([str(p) for p in EXAMPLES])
    failures = [(c.name, c.failure) for f in outcome.files for c in f.cases if c.failure]
    assert outcome.problems == [] and failures == [] and outcome.passed >= 6, (outcome.problems, failures)
    assert all(c.virtual < 60 for f in outcome.files for c in f.cases)
    assert time.perf_counter() - started < 60  # pipecat's import is most of it


def test_a_wrong_node_is_a_failure_naming_both_nodes_and_the_lines(tmp_path):
    path = write(tmp_path, HEAD + "  - name: wrong node\n    steps:\n" + TO_BIRTHDAY +
                 "      - expect: {node: welcome_back}   # deliberately wrong: the flow is in birthday\n")
    failure = only_failure(run_paths([str(path)]))
    assert failure.step == f"{path}:{line_of(path, 'deliberately wrong')}:9"
    assert failure.expected == "node welcome_back"
    assert failure.actual == ["node birthday (entered from greet)", "(the flow went: greet -> birthday)"]
    assert failure.bot_line == f"{CLINIC}:{line_of(CLINIC, '    birthday:') + 1}"  # the node's first line
    # what `lkrun test` prints for it, and its exit code
    from click.testing import CliRunner

    from runner.cli import main
    result = CliRunner().invoke(main, ["test", str(path)])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert "  FAIL wrong node" in lines and lines[-1] == "0 passed, 1 failed"
    assert f"    {failure.step}: expect node" in lines and "      expected: node welcome_back" in lines
    assert "      actual:   node birthday (entered from greet)" in lines
    assert f"      from the bot's action at {failure.bot_line}" in lines


def test_wrong_state_args_and_result_after_a_handler_are_failures(tmp_path):
    cases = {
        "state": "      - expect: {state: {room: {name: Ada Byron}}}  # wrong\n",
        "args": "      - expect: {llm_called: {function: record_name, args: {name: Ada}}}  # wrong\n",
        "result": "      - expect: {llm_called: {function: record_name, result: Done.}}  # wrong\n",
    }
    text = HEAD + "".join(f"  - name: {name}\n    steps:\n{TO_BIRTHDAY}{step}" for name, step in cases.items())
    path = write(tmp_path, text)
    outcome = run_paths([str(path)])
    assert outcome.failed == 3 and outcome.passed == 0
    state, args, result = (c.failure for c in outcome.files[0].cases)
    assert state.actual[0].startswith('room state {') and '"name": "Ada Lovelace"' in state.actual[0]
    set_line = line_of(CLINIC, '- set: {values: {name: "{{ args.name }}"}}')
    assert state.bot_line == f"{CLINIC}:{set_line}"  # the handler's set
    assert args.actual[0].startswith('llm_called record_name {"name": "Ada Lovelace"}, the tool returned '
                                     '{"result": "Recorded Ada Lovelace."}')
    assert result.expected == 'llm_called function: "record_name", result: "Done."'
    for failure, text in zip((state, args, result), cases.values()):
        assert failure.step.startswith(f"{path}:{line_of(path, text.strip())}:")


def test_an_unknown_node_or_function_is_a_check_error_with_did_you_mean(tmp_path):
    path = write(tmp_path, HEAD + "  - name: typo\n    steps:\n" + TO_BIRTHDAY +
                 "      - expect: {node: birthdy}\n"
                 "      - llm: {call: {function: record_birthdy}}\n")
    outcome = run_paths([str(path)])
    shown = [p.render() for p in outcome.problems]
    assert outcome.exit_code() == 2 and outcome.files == []
    assert any(f"{path}:{line_of(path, 'birthdy}')}:" in s and "the flow has no node 'birthdy'" in s
               and "did you mean 'birthday'" in s for s in shown), shown
    assert any("no tool or flow function 'record_birthdy'" in s and "did you mean 'record_birthday'" in s
               for s in shown), shown
    # a flow function and a global function are known names (no problems for the examples)
    assert load_all(EXAMPLES)[1] == []


def test_node_on_a_bot_without_a_flow_is_a_check_error(tmp_path):
    path = write(tmp_path, f"bot: {ROOT / 'examples' / 'data_only.yaml'}\ncases:\n  - name: n\n    steps:\n"
                           "      - expect: {node: greet}\n")
    outcome = run_paths([str(path)])
    assert any("has no flow: section" in p.message for p in outcome.problems), outcome.problems


def _records(steps_text: str, tmp_path, bot=CLINIC):
    """Run one case's steps by hand and return the FlowBot's records (the LLM requests pipecat built)."""
    from runner.testing.flow_case import FlowBot
    path = write(tmp_path, f"bot: {bot}\nenv: {{OPENAI_API_KEY: x}}\ncases:\n  - name: c\n    steps:\n" + steps_text)
    ((test, spec),), problems = load_all([path])
    assert problems == []

    async def go():
        bot = FlowBot(spec)
        marks = {"run": 0, "record": 0, "step": 0}
        try:
            for step in test.cases[0].steps:
                assert await run_step(bot, test, step, marks) is None
        finally:
            await bot.close()
        return spec, bot.effects.records
    with asyncio.Runner(loop_factory=clock.VirtualLoop) as runner:
        return runner.run(go())


def test_each_llm_request_is_pipecats_with_the_nodes_prompt_and_the_files_tool_schemas(tmp_path):
    steps = TO_BIRTHDAY + """\
      - http: {json: {found: true}}
      - llm: {call: {function: record_birthday, args: {birthday: "1815-12-10"}}}
      - llm: {reply: "What brings you in?"}
      - say: {from: ada, text: "10 December 1815"}
      - http: {json: {first: "Monday at ten"}}
      - llm: {call: {function: record_reason, args: {reason: "{{ secret }}", urgent: false}}}
      - llm: {reply: "Monday at ten?"}
      - say: {from: ada, text: "{{ secret }}"}
      - expect: {node: book}
"""
    spec, records = _records(steps, tmp_path)
    requests = [r.fields for r in records if r.kind == "llm_request"]
    assert [r["node"] for r in requests] == ["greet", "greet", "birthday", "birthday", "welcome_back",
                                             "welcome_back", "book"]
    assert all(r["answered"] for r in requests)
    first = requests[0]
    # role_message became the system instruction (pipecat's LLMUpdateSettingsFrame), then the task
    assert first["messages"][0]["role"] == "system" and \
        first["messages"][0]["content"].startswith("You are the friendly receptionist of Sunny Hill Clinic.")
    assert first["messages"][1] == {"role": "developer", "content": "Greet the caller, then ask for their full name."}
    # the tools of each request are the file's parameters schemas, exactly
    assert [t["name"] for t in first["tools"]] == ["record_name"]
    assert first["tools"][0]["parameters"] == spec.flow.handlers["record_name"].parameters
    assert requests[2]["tools"][0]["parameters"] == spec.flow.handlers["record_birthday"].parameters
    # a user turn is a user message; the caller's text stays text (rendered once)
    assert {"role": "user", "content": "Ada Lovelace"} in requests[1]["messages"]
    book = requests[-1]["messages"]
    assert not any(m["role"] == "user" for m in book)  # context_strategy: reset
    assert book[-1]["content"].startswith("The caller is Ada Lovelace, born 1815-12-10, calling about "
                                          "{{ secret }}. Offer the slot Monday at ten")
    # the handler results reached the LLM as tool results, through pipecat's function calling
    called = [r.fields for r in records if r.kind == "llm_called"]
    assert [c["function"] for c in called] == ["record_name", "record_birthday", "record_reason"]
    assert called[1]["result"] == {"known": True}


def test_a_function_the_node_does_not_offer_is_reported(tmp_path):
    steps = """\
      - llm: {reply: "Hello"}
      - join: {id: ada, name: Ada}
      - llm: {call: {function: confirm_slot}}
      - say: {from: ada, text: "book it"}
      - expect: {error: "the LLM called confirm_slot, which node greet does not offer (it offers record_name)"}
      - expect: {node: greet}
"""
    _spec, records = _records(steps, tmp_path)
    (called,) = [r.fields for r in records if r.kind == "llm_called"]
    assert called["result"] == "The function `confirm_slot` is not currently available."  # pipecat's answer


def test_virtual_time_and_a_new_session_after_the_flow_ended(tmp_path):
    path = write(tmp_path, f"bot: {PIZZA}\nenv: {{OPENAI_API_KEY: x}}\ncases:\n  - name: c\n    steps:\n" + """\
      - llm: {reply: "Which pizza?"}
      - join: {id: ada, name: Ada}
      - wait: 3600                               # an hour of virtual time: pipecat waits on the virtual loop
      - expect: {node: choose}
      - llm: {call: {function: choose_pizza, args: {pizza: veggie, size: small}}}
      - llm: {reply: "Address?"}
      - say: {from: ada, text: "small veggie"}
      - llm: {call: {function: record_address, args: {address: 1 Main St}}}
      - llm: {reply: "Right?"}
      - say: {from: ada, text: "1 Main St"}
      - llm: {call: {function: confirm_order}}
      - llm: {reply: "Bye!"}
      - say: {from: ada, text: "yes"}
      - expect: {node: done, ended: true}        # where the flow ended
      - llm: {reply: "Tony's Pizza, which pizza?"}
      - llm: {reply: "Sure."}
      - say: {from: ada, text: "hello again"}    # still in the room: the next session's flow starts
      - expect: {say: "Tony's Pizza, which pizza?"}
      - expect: {node: choose, state: {room: {extras: none}}}
""")
    started = time.perf_counter()
    outcome = run_paths([str(path)])
    case = outcome.files[0].cases[0]
    assert case.failure is None, case.failure
    assert case.virtual >= 3600 and time.perf_counter() - started < 30


def test_validate_and_loading_flow_tests_never_import_pipecat():
    code = ("import sys\nfrom click.testing import CliRunner\nfrom runner.cli import main\n"
            "from runner.testing.run import load_all, find_test_files\n"
            "r = CliRunner().invoke(main, ['validate', 'examples/clinic_intake.yaml', 'examples/pizza_order.yaml'],"
            " env={'OPENAI_API_KEY': 'x'})\n"
            "assert r.exit_code == 0, r.output\n"
            "files, _ = find_test_files(['examples/clinic_intake.test.yaml', 'examples/pizza_order.test.yaml'])\n"
            "ready, problems = load_all(files)\nassert len(ready) == 2 and problems == [], problems\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pipecat', 'livekit', 'openai')))\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_the_flows_chapters_test_example_passes(tmp_path):
    text = (ROOT / "docs" / "flows.md").read_text(encoding="utf-8").split("## Testing a flow", 1)[1]
    example = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert example.startswith("bot: clinic_intake.yaml\n")
    path = write(tmp_path, example.replace("bot: clinic_intake.yaml", f"bot: {CLINIC}", 1))
    outcome = run_paths([str(path)])
    assert outcome.problems == [] and outcome.passed == 1 and outcome.failed == 0, outcome.files[0].cases[0].failure


def test_llm_url_sends_what_no_llm_step_answers_to_an_openai_compatible_server(tmp_path):
    """--llm-url with a flow: pipecat's own OpenAI client talks to the server (a loopback stand-in
    for the paid API here), and its streamed tool call moves the flow like a scripted one."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    answers = [{"content": "Hello, your name?"},
               {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                "function": {"name": "record_name", "arguments": '{"name": "Grace Hopper"}'}}]},
               {"content": "Your date of birth?"}]
    seen = []

    class Server(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            seen.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
            delta = answers[min(len(seen), len(answers)) - 1]
            chunks = [{"choices": [{"index": 0, "delta": {"role": "assistant", **delta}, "finish_reason": None}]},
                      {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}]
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for chunk in chunks:
                body = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m", **chunk}
                self.wfile.write(f"data: {json.dumps(body)}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        path = write(tmp_path, HEAD + "  - name: c\n    steps:\n" + """\
      - join: {id: ada, name: Ada}
      - expect: {say: "Hello, your name?"}
      - say: {from: ada, text: "Grace Hopper"}
      - expect: {llm_called: {function: record_name, args: {name: Grace Hopper}, result: "Recorded Grace Hopper."}}
      - expect: {node: birthday, state: {room: {name: Grace Hopper}}}
      - expect: {say: "Your date of birth?"}
""")
        outcome = run_paths([str(path)], llm_url=f"http://127.0.0.1:{server.server_port}/v1")
    finally:
        server.shutdown()
    case = outcome.files[0].cases[0]
    assert case.failure is None, case.failure
    assert [p for p, _ in seen] == ["/v1/chat/completions"] * 3
    first, second = seen[0][1], seen[1][1]
    assert first["stream"] is True and first["model"] == "gpt-4o-mini"
    assert first["messages"][0]["role"] == "system" and "Sunny Hill Clinic" in first["messages"][0]["content"]
    assert [t["function"]["name"] for t in first["tools"]] == ["record_name"]
    assert {"role": "user", "content": "Grace Hopper"} in second["messages"]
    assert [t["function"]["name"] for t in seen[2][1]["tools"]] == ["record_birthday"]


MINI = """\
version: 1
name: mini
livekit: {room: r}
pipeline:
  - stt: {type: whisper_stt}
  - llm: {type: openai_llm, api_key: "${K:-x}"}
  - tts: {type: piper_tts}
tools:
  - name: weather
    description: the weather
    do: [{log: weather asked}]
    result: "sunny"
on:
  node_entered:
    - log: "entered {{ flow.node }} from {{ flow.previous }}"
  flow_ended:
    - log: "flow ended in {{ flow.node }}"
  error:
    - log: "error: {{ error.message }}"
flow:
  initial_node: a
  handlers:
    note:
      do: [{set: {values: {noted: "yes"}}}]
  nodes:
    a:
      respond_immediately: false
      task_messages: [{role: developer, content: wait for the caller}]
      pre_actions:
        - {type: function, handler: note}
      post_actions:
        - {type: tts_say, text: "after the first answer"}
      on_exit: [{set: {values: {left_a: "yes"}}}]
      functions:
        - name: go
          description: go on
          do: [{set: {values: {went: "{{ args.x }}"}}}]
          parameters: {type: object, properties: {x: {type: string}}}
          transition_to: b
        - name: boom
          description: fails
          do: [{http: {url: "http://127.0.0.1:9/x", method: GET}}]
    b:
      task_messages: [{role: developer, content: "say bye to {{ went }}"}]
      post_actions: [{type: end_conversation}]
"""

MINI_TEST = """\
bot: bot.yaml
cases:
  - name: everything
    steps:
      - join: {id: ada, name: Ada}
      - expect: {node: a, state: {room: {noted: "yes"}}, log: "entered a from "}
      - expect: {no: [say]}
      - llm: {reply: "Hi there"}
      - say: {from: ada, text: "hello"}
      - expect: {say: "Hi there"}
      - expect: {say: "after the first answer"}
      - llm: {call: {function: weather}}
      - llm: {reply: "It is sunny"}
      - say: {from: ada, text: "weather?"}
      - expect: {llm_called: {function: weather, result: "sunny"}, say: "It is sunny"}
      - http: {status: 500}
      - llm: {call: {function: boom}}
      - llm: {reply: "Sorry"}
      - say: {from: ada, text: "boom"}
      - expect: {error: "answered 500", node: a}
      - expect: {log: {contains: "error:"}}
      - llm: {call: {function: go, args: {x: Ada}}}
      - llm: {reply: "Bye Ada"}
      - say: {from: ada, text: "go"}
      - expect: {node: b, log: "entered b from a"}
      - expect: {log: "flow ended in b", ended: true}
      - expect: {say: "Bye Ada"}
"""


def test_deferred_post_actions_action_handlers_tools_errors_and_flow_events(tmp_path):
    """respond_immediately: false (post_actions wait for the bot's first answer), a `function`
    pre_action running an lkrun handler, the bot's tools as global functions, a failing handler
    firing `error` (the flow stays), on_exit, node_entered and flow_ended: all in pipecat, offline."""
    write(tmp_path, MINI, "bot.yaml")
    path = write(tmp_path, MINI_TEST, "bot.test.yaml")
    outcome = run_paths([str(path)])
    assert outcome.problems == [] and outcome.passed == 1, (outcome.problems, outcome.files[0].cases[0].failure)


def test_a_wrong_initial_flow_state_points_at_flow_state(tmp_path):
    path = write(tmp_path, f"bot: {PIZZA}\nenv: {{OPENAI_API_KEY: x}}\ncases:\n  - name: c\n    steps:\n"
                           "      - llm: {reply: Hi}\n      - join: {id: ada, name: Ada}\n"
                           "      - expect: {state: {room: {extras: olives}}}  # wrong: flow: state: says none\n")
    failure = only_failure(run_paths([str(path)]))
    assert failure.actual == ['room state {"extras": "none"}', "(extras is the flow's initial value, from flow: state:)"]
    assert failure.bot_line == f"{PIZZA}:{line_of(PIZZA, 'state: {extras: none}')}"

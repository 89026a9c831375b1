"""`lkrun test --llm-url` (offline cases answered by an OpenAI-protocol server) and `lkrun test --live`
(the same cases against the real bot in a real room on the real livekit-server: real participants,
`say` spoken with Piper, the bot's speech transcribed with Whisper)."""

from __future__ import annotations

import asyncio
import json
import textwrap
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from runner.cli import main

ROOT = Path(__file__).resolve().parent.parent

CONCIERGE = """\
version: 1
name: concierge
livekit: {room: lobby, identity: concierge}
pipeline:
  - stt: {type: whisper_stt}
  - llm:
      type: openai_llm
      api_key: ${FAKE_KEY:-not-needed}
      settings: {model: any-model, system_instruction: "You are {{ vars.persona }}."}
vars: {persona: a hotel concierge}
tools:
  - name: book_taxi
    description: Book a taxi
    parameters: {type: object, properties: {time: {type: string}}, required: [time]}
    do:
      - send: {data: {taxi_at: "{{ args.time }}"}}
    result: "A taxi is booked for {{ args.time }}."
"""

CONCIERGE_CASES = """\
bot: concierge.yaml
cases:
  - name: the model answers a turn
    steps:
      - join: ada
      - say: {from: ada, text: "When is breakfast?"}
      - expect: {llm_called: {function: book_taxi}, timeout: 0.1}
  - name: the model answers a turn, right
    steps:
      - join: ada
      - say: {from: ada, text: "When is breakfast?"}
      - expect: {no: [llm_called]}
  - name: the model calls a tool, then answers with its result
    steps:
      - join: ada
      - say: {from: ada, text: "I need a taxi at six"}
      - expect: {llm_called: {function: book_taxi, args: {time: "18:00"}, result: "A taxi is booked for 18:00."}}
      - expect: {send: {data: {taxi_at: "18:00"}}}
"""


class ServerThread:
    """bench/fake_openai.py's loopback OpenAI-protocol server, on a loop of its own (lkrun test runs its own)."""

    def __init__(self):
        from bench.fake_openai import FakeOpenAI
        self.server = FakeOpenAI(tool_triggers={"taxi": ("book_taxi", {"time": "18:00"})})
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)
        return self.server

    def __exit__(self, *exc):
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def test_llm_url_answers_the_turns_no_llm_step_answers(tmp_path):
    (tmp_path / "concierge.yaml").write_text(CONCIERGE)
    (tmp_path / "concierge.test.yaml").write_text(CONCIERGE_CASES)
    with ServerThread() as llm:
        result = CliRunner().invoke(main, ["test", str(tmp_path), "--llm-url", llm.base_url, "--format", "json"])
    report = json.loads(result.output)
    outcome = {c["name"]: c for c in report["files"][0]["cases"]}
    # the first case expects a tool call where the model only answers: it must fail (the model was asked)
    assert not outcome["the model answers a turn"]["passed"]
    assert outcome["the model answers a turn, right"]["passed"]
    assert outcome["the model calls a tool, then answers with its result"]["passed"], outcome
    assert (report["passed"], report["failed"], result.exit_code) == (2, 1, 1)
    first = llm.requests[0]
    assert first["model"] == "any-model"
    assert first["messages"][0] == {"role": "system", "content": "You are a hotel concierge."}
    assert first["messages"][-1] == {"role": "user", "content": "When is breakfast?"}
    assert [t["function"]["name"] for t in first["tools"]] == ["book_taxi"]
    follow_up = llm.requests[-1]["messages"]  # after the tool: its result goes back to the model
    assert follow_up[-1]["role"] == "tool" and "A taxi is booked for 18:00." in follow_up[-1]["content"]
    assert follow_up[-2]["tool_calls"][0]["function"]["name"] == "book_taxi"
    assert len(llm.requests) == 4  # one per turn, plus the follow-up after the tool


def test_without_llm_url_the_same_turns_have_no_answer(tmp_path):
    (tmp_path / "concierge.yaml").write_text(CONCIERGE)
    (tmp_path / "concierge.test.yaml").write_text(CONCIERGE_CASES)
    result = CliRunner().invoke(main, ["test", str(tmp_path)])
    assert result.output.splitlines()[-1] == "1 passed, 2 failed"
    assert "the LLM was asked" in result.output and "scripted no answer" in result.output


# ---- --live: real rooms --------------------------------------------------------------------------
DATA_BOT = """\
version: 1
name: counter
livekit: {room: lobby, identity: counter}
on:
  participant_connected:
    - chat: {to: "{{ participant.id }}", text: "Hi {{ participant.name or participant.id }}!"}
  data_received:
    - set: {scope: participant, values: {sent: "{{ (participant.state.sent or 0) + 1 }}"}}
    - send: {to: "{{ participant.id }}", data: {you: "{{ participant.state.sent }}"}}
  chat_received:
    - send: {data: "{{ participant.id }} wrote {{ text }}"}
"""

DATA_CASES = """\
bot: counter.yaml
cases:
  - name: counts in a real room
    steps:
      - join: {id: ada, name: Ada}
      - expect: {chat: {to: ada, text: "Hi Ada!"}}
      - join: bob
      - send: {from: ada, data: hello}
      - send: {from: ada, data: again}
      - expect: {send: {to: ada, data: {you: 1}}}
      - expect: {send: {to: ada, data: {you: 2}}, state: {participant: {ada: {sent: 2}}}}
      - chat: {from: bob, text: hi}
      - expect: {send: {to: everyone, data: "bob wrote hi"}}
      - expect: {no: [send]}
  - name: a wrong expectation fails
    steps:
      - join: {id: ada, name: Ada}
      - send: {from: ada, data: hello}
      - expect: {send: {to: ada, data: {you: 5}}, timeout: 3}
"""


@pytest.fixture
def live_server(livekit_server, monkeypatch):
    monkeypatch.setenv("LIVEKIT_API_KEY", livekit_server.api_key)
    monkeypatch.setenv("LIVEKIT_API_SECRET", livekit_server.api_secret)
    return livekit_server.url


@pytest.mark.livekit
def test_live_a_data_bot_passes_and_a_wrong_expectation_fails(tmp_path, live_server):
    (tmp_path / "counter.yaml").write_text(DATA_BOT)
    (tmp_path / "counter.test.yaml").write_text(DATA_CASES)
    junit = tmp_path / "live.xml"
    result = CliRunner().invoke(main, ["test", "--live", "--url", live_server, str(tmp_path), "--junit", str(junit)])
    lines = result.output.splitlines()
    assert "  PASS counts in a real room" in lines, result.output
    assert "  FAIL a wrong expectation fails" in lines
    assert lines[-1] == "1 passed, 1 failed" and result.exit_code == 1
    failure = result.output.split("FAIL a wrong expectation fails", 1)[1]
    assert 'expected: send to: "ada", data: {"you": 5}' in failure
    assert 'actual:   send to ada: {"you": 1}  (' in failure  # what ada received, and the action that sent it
    assert f"from the bot's action at {tmp_path / 'counter.yaml'}:9" in failure
    import xml.etree.ElementTree as ET
    assert len(ET.parse(junit).getroot().findall(".//testcase")) == 2


def voice_run(*args: str, attempts: int = 2):
    """A live voice run, once more if it fails: speech in and out of a real room on a shared 2-core CI
    machine can miss a turn when the machine is overloaded (the first failure is printed); a bot that
    is really broken fails both times."""
    for attempt in range(attempts):
        result = CliRunner().invoke(main, list(args))
        if result.exit_code == 0 or attempt == attempts - 1:
            return result
        print(f"live voice run failed once, trying again:\n{result.output}")


@pytest.mark.livekit
@pytest.mark.slow
def test_live_the_greeter_greets_out_loud_and_hears_bye(live_server):
    """The greeter's own case, spoken and heard: its greeting "Welcome, Ada!" is heard (Whisper), and
    "okay bye for now" spoken with Piper makes it say Goodbye (one case, to keep CI time small; the whole
    file passes live too: lkrun test --live bots/greeter.test.yaml)."""
    result = voice_run("test", "--live", "--url", live_server, str(ROOT / "bots" / "greeter.test.yaml"),
                       "--case", "says goodbye when you say bye")
    lines = result.output.splitlines()
    assert {"  PASS says goodbye when you say bye", "1 passed, 0 failed"} <= set(lines), result.output
    assert result.exit_code == 0


@pytest.mark.livekit
@pytest.mark.slow
def test_live_the_phone_menu_saying_sales_is_the_same_branch_as_pressing_1(live_server):
    """examples/phone_menu.yaml in a real room: a caller who SAYS "I would like to talk to sales" (Piper, into
    a real microphone; the bot's Whisper hears it) gets the sales branch, the transfer to tel:+15550100
    (which the server then refuses: it has no SIP service), the same transfer the file's "pressing 1"
    cases expect (offline, and live: lkrun test --live examples/phone_menu.test.yaml --case "while the
    menu plays"; real DTMF in a real room is tests/test_waits_live.py)."""
    result = voice_run("test", "--live", "--url", live_server, str(ROOT / "examples" / "phone_menu.test.yaml"),
                       "--case", "saying sales while the menu plays")
    assert {"  PASS saying sales while the menu plays is the same as pressing 1", "1 passed, 0 failed"} <= \
        set(result.output.splitlines()), result.output
    assert result.exit_code == 0


ANSWERS = ("There are seven days in a week.", "I think a spider has six legs.", "It is blue.")  # the case's


@pytest.mark.livekit
@pytest.mark.slow
def test_live_the_spoken_quiz_two_right_and_one_wrong_score_2_and_its_questions_are_heard_in_order(live_server):
    """examples/quiz.yaml in a real room (issue 15): ada hears each question (Whisper on the bot's
    audio), answers it out loud with Piper ("There are seven days in a week.", "I think a spider has
    six legs.", "It is blue."), the bot's own Whisper stt hears her, and its final data message to her
    carries score 2. The case is the file's own ("spoken, ..."); besides its expectations this checks
    what the file cannot say: the three questions were heard in this order, and score 2 was the last
    data message (after question 1, 2, 3).

    Each attempt runs in a process of its own: once in nine runs at load 13 the livekit SDK aborted
    the process in native code while the bot's audio source closed after `end` ("malloc(): unsorted
    double linked list corrupted" in AudioSource.aclose -> FfiHandle.dispose), which would take the
    whole test session with it. Such an attempt counts as a failed one (tried once more)."""
    import multiprocessing
    context = multiprocessing.get_context("spawn")
    for attempt in range(2):
        results = context.Queue()
        child = context.Process(target=_quiz_attempt, args=(live_server, results))
        child.start()
        try:
            found = results.get(timeout=240)
        except Exception:  # noqa: BLE001 - the child died before it could answer
            found = None
        child.join(10)
        if child.is_alive():
            child.kill()
        if found is not None and found["exit_code"] == 0 or attempt == 1:
            break
        print(f"live quiz attempt failed (exit {child.exitcode}), trying again:\n"
              f"{found['output'] if found else '(no result: the process ended)'}")
    assert found is not None, f"the quiz's process ended with {child.exitcode} before it had a result"
    print(*found["timeline"], sep="\n")
    print("the bot heard (its stt; True: a waiting question took it):", *found["answers"], sep="\n  ")
    assert {"  PASS spoken, two right and one wrong score two", "1 passed, 0 failed"} <= \
        set(found["output"].splitlines()), found["output"]
    from runner.testing.expect import spoken
    transcript = f" {' '.join(spoken(text) for _, text in sorted(found['heard']))} "
    places = [transcript.find(f" {spoken(words)} ") for words in
              ("in a week", "spider", "clear day")]  # the case's own words for them
    assert -1 not in places and places == sorted(places), transcript
    assert found["data"] == [{"question": 1}, {"question": 2}, {"question": 3}, {"score": 2}], found["data"]
    assert found["exit_code"] == 0


def _quiz_attempt(live_server: str, results) -> None:
    """One live run of the quiz's spoken case, in a child process; what its room saw goes back."""
    from runner.runtime.waits import Waits
    from runner.testing import live
    seen: list = []  # this room's records, with the texts as heard
    add = live.LiveRecords.add

    def keep(self, kind, line=None, source=None, **fields):
        record = add(self, kind, line, source, **fields)
        seen.append((record, fields.get("text"), dict(fields)))
        return record
    live.LiveRecords.add = keep
    offer, answers = Waits.offer, []

    def heard_answer(self, event, participant, variables):  # what the bot's Whisper made of ada's answers
        taken = offer(self, event, participant, variables)
        if event == "user_said":
            answers.append((variables.get("text"), taken))
        return taken
    Waits.offer = heard_answer
    import numpy as np
    live.transcribe(np.zeros(live.EAR_RATE, dtype=np.int16))  # the listener's Whisper loaded, and ada's
    for answer in ANSWERS:  # answers synthesized, before the room: she answers as soon as she has heard
        assert f'text: "{answer}"' in (ROOT / "examples" / "quiz.test.yaml").read_text()
        live.speech(answer)
    result = CliRunner().invoke(main, ["test", "--live", "--url", live_server,
                                       str(ROOT / "examples" / "quiz.test.yaml"),
                                       "--case", "spoken, two right and one wrong"])
    ordered = sorted(seen, key=lambda x: x[0].time)
    start = ordered[0][0].time if ordered else 0
    results.put({
        "output": result.output, "exit_code": result.exit_code, "answers": answers,
        "timeline": [f"  {r.time - start:5.1f} s {r.kind} {f.get('data', text)!r}" for r, text, f in ordered],
        "heard": [(r.time, text) for r, text, f in ordered if r.kind == "say" and f.get("heard")],
        "data": [f["data"] for r, _, f in ordered if r.kind == "send"]})


def test_live_speech_is_matched_word_by_word_in_its_spoken_form():
    from runner.testing.expect import speech_left
    heard = "Welcome, Ada. Welcome, Bob."
    assert speech_left("Welcome, Ada!", heard) == "welcome bob"  # what comes first
    assert speech_left("Welcome, Bob!", heard) is None  # not first: a plain text is the next thing said
    assert speech_left({"contains": "welcome bob"}, heard) == "welcome ada"
    assert speech_left({"contains": "come"}, heard) is None  # words, not letters
    assert speech_left({"regex": "ada.*bob"}, heard) == ""
    assert speech_left("Press 1", "Press one or say sales") is None  # why `contains` and few words


def test_live_skips_cases_that_script_offline_answers(tmp_path):
    from runner.testing.live import skip_reason
    from runner.testing.load import load_test_file
    path = tmp_path / "x.test.yaml"
    path.write_text(textwrap.dedent("""\
        bot: x.yaml
        cases:
          - name: scripted llm
            steps: [{join: a}, {llm: {reply: hi}}]
          - name: typed only
            live: false
            steps: [{join: a}]
          - name: fine
            steps: [{join: a}]
        """))
    reasons = [skip_reason(case) for case in load_test_file(path).cases]
    assert reasons == ["its llm: step script answers only an offline run can give",
                       "live: false, an offline-only case", None]

"""`engine.Run` without a room: state scopes, recipients, URL and file safety, packet size."""

from __future__ import annotations

import asyncio

import os

import pytest

from runner.botfile.check import check_file
from runner.runtime.effects import NullEffects
from runner.runtime.engine import MAX_PACKET, Run, encode_packet, event_variables, parse_message
from runner.runtime.state import SessionState
from runner.runtime.trace import Trace


class Recorder(NullEffects):
    def __init__(self):
        self.calls: list[tuple] = []

    async def send(self, data, to, after_speech):
        self.calls.append(("send", data, to))

    async def log(self, message, level):
        self.calls.append(("log", message))

    async def http(self, url, method, body, headers, timeout):
        self.calls.append(("http", url))
        return {"status": 200, "json": None, "text": ""}

    async def play(self, path):
        self.calls.append(("play", path))

    async def wait(self, seconds):
        self.calls.append(("wait", seconds))
        await asyncio.sleep(seconds)

    def state_changed(self, scope, participant, values):
        self.sets = getattr(self, "sets", []) + [(scope, participant, values)]


@pytest.fixture
def bot(tmp_path):
    """bot(on_yaml, params='') -> spec of a bot file in tmp_path/bots."""
    def build(on: str, params: str = ""):
        folder = tmp_path / "bots"
        folder.mkdir(exist_ok=True)
        path = folder / "bot.yaml"
        path.write_text("version: 1\nname: unit\nlivekit: {room: r, identity: unit}\n"
                        + (f"params: {params}\n" if params else "") + "on:\n" + on)
        return check_file(path, environ={})
    return build


async def run(spec, event="data_received", participant="alice", *, state=None, payload=b"x", effects=None,
              participants=("alice", "bob")):
    effects = effects or Recorder()
    state = state if state is not None else SessionState()
    variables = event_variables(event, participant, payload=payload if event == "data_received" else None)
    trace = Trace()
    entry = await Run(spec, state, effects, event, variables, participant, participants, trace).execute(
        spec.on[event].actions)
    return entry, effects, state


# --- state ---------------------------------------------------------------------------------------

STATE = """\
  data_received:
    - set: {values: {visits: "{{ (state.visits or 0) + 1 }}"}}
    - set: {scope: participant, values: {mine: "{{ (participant.state.mine or 0) + 1 }}"}}
    - log: "room {{ state.visits }} mine {{ participant.state.mine }}"
  connected:
    - set: {scope: participant, values: {x: 1}}
"""


async def test_room_state_is_shared_and_participant_state_is_per_person(bot):
    spec, state = bot(STATE), SessionState()
    for who in ("alice", "alice", "bob"):
        entry, effects, _ = await run(spec, participant=who, state=state)
        assert entry.outcome == "ok", entry.error
    assert effects.calls == [("log", "room 3 mine 1")]  # bob's own count, the room's shared one
    assert state.room == {"visits": 3}
    assert state.participants == {"alice": {"mine": 2}, "bob": {"mine": 1}}
    state.reset()  # `end`
    assert state.room == {} and state.participants == {} and state.joined == set()


async def test_participant_scope_needs_a_participant(bot):
    entry, _, state = await run(bot(STATE), event="connected", participant=None)
    assert entry.outcome == "error" and "needs an event that has a participant" in entry.error
    assert state.participants == {}


async def test_state_holds_only_plain_data(bot):
    spec = bot('  data_received:\n    - set: {values: {when: "{{ now }}", n: 2, xs: [1, "{{ data }}"]}}\n')
    _, _, state = await run(spec)
    assert state.room["n"] == 2 and state.room["xs"] == [1, "x"] and isinstance(state.room["when"], str)


# --- recipients ----------------------------------------------------------------------------------

RECIPIENTS = """\
  data_received:
    - choose:
        - when: "{{ data == 'all' }}"
          do: [{send: {data: hi}}]
        - when: "{{ data == 'me' }}"
          do: [{send: {to: "{{ participant.id }}", data: hi}}]
        - when: "{{ data == 'list' }}"
          do: [{send: {to: ["{{ participant.id }}", bob], data: hi}}]
        - when: "{{ data == 'nobody' }}"
          do: [{send: {to: ["{{ participant.id }}", ""], data: hi}}]
"""


@pytest.mark.parametrize("payload, participant, to", [
    (b"all", "alice", None),          # no `to` in the file: everyone
    (b"me", "alice", ["alice"]),
    (b"list", "alice", ["alice", "bob"]),
    (b"list", None, ["bob"]),          # an unknown sender drops out of a list
])
async def test_recipients(bot, payload, participant, to):
    entry, effects, _ = await run(bot(RECIPIENTS), participant=participant, payload=payload)
    assert entry.outcome == "ok", entry.error
    assert effects.calls == [("send", "hi", to)]


@pytest.mark.parametrize("payload", [b"me", b"nobody"])
async def test_a_to_that_renders_to_nobody_is_an_error_not_a_broadcast(bot, payload):
    """A packet whose sender the bot does not know yet has participant.id null: the private
    reply must fail, not go to everyone."""
    entry, effects, _ = await run(bot(RECIPIENTS), participant=None, payload=payload)
    assert entry.outcome == "error" and "rendered to no participant" in entry.error
    assert effects.calls == []


# --- http urls -----------------------------------------------------------------------------------

HTTP = """\
  data_received:
    - http: {url: "https://api.example.com/items/{{ data }}?q={{ data }}&lang=en", save_as: r}
    - log: "{{ results.r.status }}"
"""


@pytest.mark.parametrize("payload, url", [
    (b"42", "https://api.example.com/items/42?q=42&lang=en"),
    (b"a b", "https://api.example.com/items/a%20b?q=a%20b&lang=en"),
    (b"x?admin=1", "https://api.example.com/items/x%3Fadmin%3D1?q=x%3Fadmin%3D1&lang=en"),
    (b"../../admin", "https://api.example.com/items/%2E%2E%2F%2E%2E%2Fadmin?q=%2E%2E%2F%2E%2E%2Fadmin&lang=en"),
    (b"..", "https://api.example.com/items/%2E%2E?q=%2E%2E&lang=en"),
    (b"v1.2", "https://api.example.com/items/v1%2E2?q=v1%2E2&lang=en"),
    (b"v&lang=de#top", "https://api.example.com/items/v%26lang%3Dde%23top?q=v%26lang%3Dde%23top&lang=en"),
])
async def test_http_url_values_are_encoded_inside_their_slot(bot, payload, url):
    entry, effects, _ = await run(bot(HTTP), payload=payload)
    assert entry.outcome == "ok", entry.error
    assert effects.calls == [("http", url), ("log", "200")]


def test_safe_url_refuses_a_changed_host_and_encodes_literal_urls(bot):
    """Validation already refuses a templated host; this is the runtime guard behind it."""
    from runner.botfile.spec import ActionNode
    from runner.botfile.templates import Sandbox

    spec = bot(HTTP)
    variables = event_variables("data_received", "a", payload=b"@evil.example/x")
    r = Run(spec, SessionState(), Recorder(), "data_received", variables)
    r.node = ActionNode("http", {"url": Sandbox().compile("https://api.example.com{{ data }}")}, {}, 1, 1)
    with pytest.raises(ValueError, match="scheme and host changed"):
        r.safe_url("https://api.example.com@evil.example/x")
    r.node = ActionNode("http", {"url": "https://api.example.com/a b?q=c d#frag"}, {}, 1, 1)  # no template
    assert r.safe_url("https://api.example.com/a b?q=c d#frag") == "https://api.example.com/a%20b?q=c%20d"


# --- files ---------------------------------------------------------------------------------------

PLAY = '  data_received:\n    - play: "{{ data }}"\n'


def make_files(tmp_path):
    bots = tmp_path / "bots"
    (bots / "sounds").mkdir(parents=True, exist_ok=True)
    (bots / "sounds" / "chime.wav").write_bytes(b"RIFF")
    (tmp_path / "secret.wav").write_bytes(b"RIFF")
    os.symlink(tmp_path / "secret.wav", bots / "sounds" / "link.wav")


@pytest.mark.parametrize("name, error", [
    ("sounds/chime.wav", None),
    ("./sounds/../sounds/chime.wav", None),
    ("../secret.wav", "outside the bot file's folder"),
    ("sounds/link.wav", "outside the bot file's folder"),  # a symlink out of the folder
    ("/etc/passwd", "outside the bot file's folder"),
    ("sounds/missing.wav", "not found"),
    ("sounds", "not found"),  # a folder is not a file
])
async def test_play_resolves_files_only_inside_the_bot_folder(bot, tmp_path, name, error):
    spec = bot(PLAY, params="{audio_out_enabled: true}")
    make_files(tmp_path)
    entry, effects, _ = await run(spec, payload=name.encode())
    if error is None:
        assert entry.outcome == "ok", entry.error
        assert effects.calls == [("play", tmp_path / "bots" / "sounds" / "chime.wav")]
    else:
        assert entry.outcome == "error" and error in entry.error, entry.error
        assert effects.calls == []


# --- data packets --------------------------------------------------------------------------------

def test_packet_size_limit_counts_bytes():
    assert encode_packet("x" * MAX_PACKET) == "x" * MAX_PACKET
    with pytest.raises(ValueError, match="LiveKit's limit"):
        encode_packet("x" * (MAX_PACKET + 1))
    with pytest.raises(ValueError, match="LiveKit's limit"):
        encode_packet("é" * (MAX_PACKET // 2 + 1))  # two bytes each
    with pytest.raises(ValueError, match="LiveKit's limit"):
        encode_packet({"text": "y" * MAX_PACKET})
    assert encode_packet({"n": 1, "xs": [1, 2]}) == {"n": 1, "xs": [1, 2]}
    assert encode_packet(["a", 1]) == '["a", 1]'  # lists and numbers go as JSON text


@pytest.mark.parametrize("payload, text, message", [
    (b'{"text": "ping"}', '{"text": "ping"}', {"text": "ping"}),
    (b"ping", "ping", {}),
    (b"[1, 2]", "[1, 2]", {}),
    (b"\xff\xfe{", "\ufffd\ufffd{", {}),
    (b"[" * 100000, "[" * 100000, {}),  # deep nesting never raises
])
def test_untrusted_payloads_never_raise(payload, text, message):
    assert parse_message(payload) == (text, message)


async def test_missing_message_fields_read_as_null(bot):
    spec = bot('  data_received:\n    - log: "{{ message.text is none }} {{ message.text == \'ping\' }}"\n')
    entry, effects, _ = await run(spec, payload=b"not json")
    assert entry.outcome == "ok", entry.error
    assert effects.calls == [("log", "True False")]


# --- lazy branches -------------------------------------------------------------------------------

LAZY = """\
  data_received:
    - choose:
        - when: "{{ data == 'broken' }}"
          do:
            - log: "{{ 1 / 0 }}"
        - when: "{{ data == 'x' }}"
          do:
            - log: "taken {{ data }}"
      default:
        - log: "{{ undefined_thing.attr }}"
    - if: "{{ data == 'x' }}"
      then:
        - log: "then"
      else:
        - log: "{{ 1 / 0 }}"
"""


async def test_choose_and_if_render_only_the_branch_they_take(bot):
    spec = bot(LAZY.replace("undefined_thing.attr", "vars"))
    entry, effects, _ = await run(spec, payload=b"x")
    assert entry.outcome == "ok", entry.error
    assert effects.calls == [("log", "taken x"), ("log", "then")]
    # the trace shows what was evaluated and the branch chosen, not the JSON of every branch
    choose, _log, if_, _then = entry.steps
    assert choose[0] == "choose" and choose[2] == {"branch": 2, "when": True}
    assert if_[0] == "if" and if_[2] == {"condition": True, "branch": "then"}


async def test_an_error_in_the_taken_branch_still_fails_at_its_line(bot):
    spec = bot(LAZY.replace("undefined_thing.attr", "vars"))
    entry, _, _ = await run(spec, payload=b"broken")
    assert entry.outcome == "error" and entry.action == "log" and entry.line == 9
    assert "division by zero" in entry.error

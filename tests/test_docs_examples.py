"""What README.md and docs/playground.md show lkrun printing is what lkrun prints.

Each example is read out of the markdown (so the test fails when either the docs or lkrun
drift) and reproduced offline: the real checker, the real reload watcher with a stand-in
supervisor, and `$ lkrun ...` lines in code blocks run through the CLI. No LiveKit server.
"""

from __future__ import annotations

import asyncio
import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from runner.cli import main
from runner.host.reload import ReloadHost

ROOT = Path(__file__).resolve().parent.parent
DOCS = {name: (ROOT / name).read_text(encoding="utf-8") for name in ("README.md", "docs/playground.md")}
GREETER = (ROOT / "bots" / "greeter.yaml").read_text(encoding="utf-8")
SYA = re.compile(r"bots/greeter\.yaml:\d+:\d+: error: unknown action 'sya' \(did you mean 'say'\?\)")


def code_blocks(text: str) -> list[list[str]]:
    """The lines of each fenced code block, with the block's own indentation removed."""
    blocks = []
    for match in re.finditer(r"^( *)```[^\n]*\n(.*?)^\1```", text, re.S | re.M):
        indent = len(match.group(1))
        blocks.append([line[indent:] for line in match.group(2).splitlines()])
    return blocks


def one(pattern: re.Pattern, text: str, doc: str) -> str:
    found = pattern.findall(text)
    assert len(found) == 1, f"{doc}: expected one example matching {pattern.pattern}, found {found}"
    return found[0]


# ---- the broken edit: say -> sya -------------------------------------------------------------------

class _Bot:
    """A BotRuntime without a room: its real apply(), which must not start a new generation here."""

    def __init__(self, spec):
        from runner.runtime.bot import BotRuntime
        self.runtime = BotRuntime(spec, server=None)
        self.runtime.new_generation = self.no_new_generation
        self.spec = spec

    @staticmethod
    def no_new_generation():
        raise AssertionError("a vars edit must not start a new generation")

    async def apply(self, spec):
        change = await self.runtime.apply(spec)
        self.spec = spec
        return change


class _Supervisor(ReloadHost):
    """Just what reload.Watcher uses of the supervisor, for one running greeter."""

    def __init__(self, spec, key):
        self.specs, self.files, self.folders, self.file_keys = [spec], [key], [], {}
        self.bots = {key: _Bot(spec)}
        self.key = key
        self.notices = []

    def key_for(self, path):
        return self.key

    def notice(self, key, kind, message):
        self.notices.append((kind, message))


def edit_live(tmp_path, monkeypatch, old: str, new: str):
    """Run the greeter 'live' (no room), save an edit, and return (stderr lines, notices)."""
    from runner.botfile.check import check_file
    from runner.host.reload import Watcher

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LIVEKIT_ROOM", raising=False)
    path = Path("bots/greeter.yaml")
    path.parent.mkdir()
    path.write_text(GREETER, encoding="utf-8")
    supervisor = _Supervisor(check_file(path), "bots/greeter.yaml")
    watcher = Watcher(supervisor)
    assert GREETER.count(old) >= 1, f"the greeter no longer has {old!r}"
    path.write_text(GREETER.replace(old, new, 1), encoding="utf-8")
    lines = []
    monkeypatch.setattr(click, "echo", lambda message="", err=False, **kw: lines.append(str(message)))
    asyncio.run(watcher.handle(path))
    return "\n".join(lines).splitlines(), supervisor.notices


def test_readme_top_example_is_the_tutorial_mistake(tmp_path, monkeypatch):
    """README's first block is what step 4 ('Change say: ... under participant_connected') prints."""
    readme = DOCS["README.md"]
    assert "Change `say:` (the one under `participant_connected`) to\n   `sya:`" in readme
    block = code_blocks(readme)[0]
    assert SYA.fullmatch(block[0]), block
    old = '- say: "{{ vars.greeting }}, {{ participant.name or participant.id }}!"'
    assert GREETER.index(old) > GREETER.index("participant_connected:") > 0
    printed, notices = edit_live(tmp_path, monkeypatch, old, old.replace("say:", "sya:"))
    assert printed == block
    assert notices == [("error", block[0])]


def test_playground_error_notice_is_the_goodbye_mistake(tmp_path, monkeypatch):
    """docs/playground.md's notice is the browser test's edit (tests/test_playground.py)."""
    doc = DOCS["docs/playground.md"]
    shown = one(re.compile(r"\(`say: Goodbye!`\s+changed to `sya: Goodbye!`\), `(" + SYA.pattern + ")`"), doc,
                "docs/playground.md")
    assert "- say: Goodbye!" in GREETER
    assert 'replace("- say: Goodbye!", "- sya: Goodbye!")' in (ROOT / "tests" / "test_playground.py").read_text()
    printed, notices = edit_live(tmp_path, monkeypatch, "- say: Goodbye!", "- sya: Goodbye!")
    assert printed == [shown, "bots/greeter.yaml: still running the previous version"]
    assert notices == [("error", shown)]


def test_the_vars_edit_notice(tmp_path, monkeypatch):
    """README step 3 and docs/playground.md: `greeting: Welcome` -> `greeting: Hello there`."""
    pattern = re.compile(r"`(reloaded greeter\.yaml: [^`]+)`")
    found = {doc: set(pattern.findall(text)) for doc, text in DOCS.items()}
    assert all(len(examples) == 1 for examples in found.values()), found  # one wording, however often shown
    shown = {doc: examples.pop() for doc, examples in found.items()}
    assert "Change `greeting: Welcome` to `greeting: Hello there`" in DOCS["README.md"]
    printed, notices = edit_live(tmp_path, monkeypatch, "greeting: Welcome", "greeting: Hello there")
    assert printed == []  # the reload notice is a log line, not an echo
    assert [("reload", message) for message in shown.values()] == notices * len(shown)


def test_readme_yaml_snippet_is_from_the_greeter():
    def bare(line: str) -> str:
        return re.sub(r"\s+#.*$", "", line).rstrip()

    snippet = next(b for b in code_blocks(DOCS["README.md"]) if b and b[0] == "on:")
    file_lines = {bare(line) for line in GREETER.splitlines()}
    assert [line for line in map(bare, snippet) if line not in file_lines] == []


# ---- `$ lkrun ...` lines in code blocks, with the output under them -----------------------------

def command_examples():
    for doc, text in DOCS.items():
        for block in code_blocks(text):
            for index, line in enumerate(block):
                if line.startswith("$ lkrun "):
                    rest = block[index + 1:]
                    end = next((i for i, later in enumerate(rest) if later.startswith("$ ")), len(rest))
                    yield pytest.param(line[2:], rest[:end], id=f"{doc}: {line[2:]}")


EXAMPLES = list(command_examples())


def test_the_docs_have_command_examples():
    shown = {param.values[0] for param in EXAMPLES}
    assert {"lkrun validate bots/", "lkrun simulate bots/greeter.yaml participant_connected --name Ada",
            "lkrun simulate bots/greeter.yaml participant_left"} <= shown
    assert sum(c.startswith("lkrun simulate") for c in shown) >= 8


@pytest.mark.parametrize("command, expected", EXAMPLES)
def test_command_example_prints_what_the_docs_show(command, expected, monkeypatch):
    monkeypatch.chdir(ROOT)
    env = {name: None for name in ("LIVEKIT_ROOM", "LIVEKIT_URL", "OPENAI_API_KEY")}
    result = CliRunner(env=env).invoke(main, shlex.split(command)[1:])
    assert result.output.splitlines() == expected, result.output


# ---- the commands table and the catalog count ----------------------------------------------------

def test_every_option_in_the_commands_table_exists():
    rows = re.findall(r"^\| `lkrun (\w+) ([^`]*)` \|", DOCS["README.md"], re.M)
    assert {name for name, _ in rows} >= {"validate", "simulate", "schema", "token", "new"}
    for name, usage in rows:
        known = {opt for param in main.commands[name].params for opt in param.opts}
        written = set(re.findall(r"--[a-z][a-z-]*", usage))
        assert written <= known, f"lkrun {name}: {sorted(written - known)} in README.md but not in the CLI"
    simulate = {opt for param in main.commands["simulate"].params for opt in param.opts
                if opt.startswith("--") and opt != "--allow-missing-env"}
    (usage,) = [u for n, u in rows if n == "simulate"]
    assert simulate <= set(re.findall(r"--[a-z][a-z-]*", usage)), "README.md's simulate row misses options"


def test_the_stage_count_in_the_readme():
    from runner.botfile import catalog
    (count,) = re.findall(r"`lkrun stages` lists all (\d+)", DOCS["README.md"])
    services = [v for kind in ("stt", "llm", "tts") for v in catalog.stage_types(kind)
                if not catalog.stage_entry(v).get("native")]
    assert int(count) == len(services)


BANNER_SHAPES = [
    re.compile(r"LiveKit dev server: ws://127\.0\.0\.1:\d+  \(key devkey; stops when lkrun stops\)"),
    re.compile(r"Playground: http://127\.0\.0\.1:\d+/  \(talk to your bots in a browser\)"),
    re.compile(r"  bot 'greeter' in room 'lobby'\. Join as a person with this token:"),
    re.compile(r"  eyJ[\w-]+\.[\w-]+\.[\w-]+"),
]


def readme_banner() -> list[str]:
    block = next(b for b in code_blocks(DOCS["README.md"]) if b and b[0].startswith("LiveKit dev server:"))
    return [line for line in block if line.strip()]


@pytest.mark.livekit
def test_the_start_up_banner_is_what_the_readme_shows_and_comes_when_the_bot_is_in(tmp_path):
    """`make run`'s banner, from a real lkrun on the embedded dev server (a data-only greeter, so no
    voices load): the same lines in the same order, the join line only once the bot is in its room."""
    import os
    import signal
    import subprocess
    import sys
    import time

    bot = tmp_path / "greeter.yaml"
    bot.write_text("version: 1\nname: greeter\nlivekit: {room: lobby, identity: greeter}\n"
                   "on: {connected: [{log: in}]}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEKIT_")}
    proc = subprocess.Popen([sys.executable, "-m", "runner.cli", str(bot), "--no-reload"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output, started = [], time.monotonic()
    try:
        while time.monotonic() - started < 60:
            line = proc.stdout.readline()
            if not line:
                break
            output.append(line.rstrip("\n"))
            if line.startswith("  eyJ"):
                break
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
    lines = [line for line in output if any(shape.fullmatch(line) for shape in BANNER_SHAPES)]
    assert len(lines) == 4, output
    for shape, printed, shown in zip(BANNER_SHAPES, lines, readme_banner()):
        assert shape.fullmatch(printed), printed
        assert shape.fullmatch(shown) or (shape is BANNER_SHAPES[3] and shown.startswith("  eyJ")), shown
    in_room = next(i for i, line in enumerate(output) if "[greeter] in room 'lobby' as 'greeter'" in line)
    assert in_room < output.index(lines[2]), output  # the join line comes once the bot is in the room

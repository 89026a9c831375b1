"""The playground's editor: read, check, save, conflicts and drafts (runner/playground/editor.py),
and the editor pane in a real headless Chromium (the same driver as tests/test_playground.py).

No LiveKit here: the bot is a checked BotSpec with a stand-in runtime whose ``apply`` is the real
diff, so a save goes through the real reload watcher (watchfiles) and the real ReloadHost.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import time
from pathlib import Path

import aiohttp
import pytest

from runner.botfile.check import check_file
from runner.botfile.files import expand
from runner.botfile.yamlsafe import text_digest
from runner.connect.endpoint import Server
from runner.host.reload import ReloadHost, Watcher, watch_task
from runner.playground import Playground
from runner.playground.editor import drafts_dir
from runner.runtime.trace import Trace

from test_cli import beep_action  # noqa: F401  (fixture: an action registered from Python)

ROOT = Path(__file__).resolve().parent.parent
KEY = "bots/greeter.yaml"
BOT = """version: 1
name: greeter
livekit:
  room: lobby
  identity: greeter
vars:
  greeting: Welcome
on:
  data_received:
    - send: {data: {text: "{{ vars.greeting }}"}}
"""
MISTAKE = BOT.replace("- send:", "- sya:")


class FakeBot:
    """A running bot as the playground and ReloadHost see it; ``apply`` is the real diff."""

    def __init__(self, spec):
        self.spec = spec
        self.server = Server("ws://127.0.0.1:7880", "devkey", "secret", embedded=True)
        self.trace = Trace()
        self.applied: list = []

    async def apply(self, spec):
        from runner.runtime.changes import diff
        change = diff(self.spec, spec)
        self.spec = spec
        self.applied.append(change)
        return change


class Host(ReloadHost):
    """The part of the Supervisor that the playground, the watcher and ReloadHost use."""

    def __init__(self, files):
        self.files = [Path(f) for f in files]
        self.folders: list = []
        self.file_keys = {str(Path(f).resolve()): str(f) for f in files}
        self.specs = [check_file(f) for f in files]
        self.bots = {spec.file: FakeBot(spec) for spec in self.specs}
        self.stop_event = asyncio.Event()
        self.reload = True
        self.notices: list[tuple] = []
        self.playground: Playground | None = None

    def key_for(self, path) -> str:
        return self.file_keys.get(str(Path(path).resolve()), str(path))

    def notice(self, key, kind, message):
        self.notices.append((key, kind, message))
        if self.playground is not None:
            self.playground.notice(key, kind, message)

    async def add_spec(self, key, spec):  # pragma: no cover - not used here
        raise AssertionError("unexpected new bot file")

    async def stop_bot(self, key):  # pragma: no cover - not used here
        raise AssertionError("unexpected deleted bot file")


@pytest.fixture
def bot_dir(tmp_path, monkeypatch):
    """A bot file as a user runs it (`lkrun bots/greeter.yaml` from its project folder), and a
    state folder of its own for the drafts."""
    project = tmp_path / "project"
    (project / "bots").mkdir(parents=True)
    (project / KEY).write_text(BOT)
    monkeypatch.chdir(project)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return project


@pytest.fixture
async def served(bot_dir):
    started: list[Playground] = []

    async def start(host=None):
        host = host or Host([KEY])
        pg = Playground(host)
        host.playground = pg
        await pg.start()
        started.append(pg)
        return host, pg

    yield start
    for pg in started:
        await pg.stop()


async def call(pg, path, body=None, *, headers=None, csrf=True):
    """A request as the page makes it (POSTs carry the playground's per-start token)."""
    headers = {"Host": f"127.0.0.1:{pg.port}", **({"X-Lkrun-Csrf": pg.csrf} if csrf and body is not None else {}),
               **(headers or {})}
    async with aiohttp.ClientSession() as session:
        if body is None:
            request = session.get(f"http://127.0.0.1:{pg.port}{path}", headers=headers)
        elif isinstance(body, (bytes, str)):
            request = session.post(f"http://127.0.0.1:{pg.port}{path}", data=body, headers=headers)
        else:
            request = session.post(f"http://127.0.0.1:{pg.port}{path}", json=body, headers=headers)
        async with request as resp:
            text = await resp.text()
            try:
                return resp.status, json.loads(text)
            except ValueError:
                return resp.status, text


def validate_json(capsys, text: str, folder: Path, key: str = KEY) -> list[dict]:
    """What `lkrun validate --format json bots/greeter.yaml` prints for this text, run from a
    project folder of its own (the same relative file name as the running bot's)."""
    from runner.cli.validate import validate_paths
    (folder / "bots").mkdir(parents=True, exist_ok=True)
    (folder / key).write_text(text)
    here = Path.cwd()
    os.chdir(folder)
    try:
        capsys.readouterr()
        validate_paths([key], fmt="json")
        return json.loads(capsys.readouterr().out)["problems"]
    finally:
        os.chdir(here)


# ---- the endpoints ----------------------------------------------------------------------------------
async def test_only_running_bots_files_are_read_and_only_from_here(served, bot_dir):
    host, pg = await served()
    status, answer = await call(pg, "/api/file?bot=greeter")
    assert status == 200
    assert answer["file"] == KEY and answer["text"] == BOT and answer["digest"] == text_digest(BOT)
    assert answer["draft"] is None and answer["reload"] is True
    for wanted in ("nobody", "../../etc/passwd", str(bot_dir / KEY), KEY, ""):
        status, answer = await call(pg, "/api/file?bot=" + wanted)
        assert status == 404, wanted
    for body in ({"bot": "nobody", "text": "x", "digest": ""}, {"bot": KEY, "text": "x", "digest": ""}):
        status, _ = await call(pg, "/api/save", body)
        assert status == 404
    # the playground's guard covers the editor too: other names, other sites, forms
    status, _ = await call(pg, "/api/file?bot=greeter", headers={"Host": "evil.example"})
    assert status == 403
    status, _ = await call(pg, "/api/save", {"bot": "greeter", "text": "x", "digest": text_digest(BOT)},
                           headers={"Origin": "http://evil.example"})
    assert status == 403
    status, _ = await call(pg, "/api/save", json.dumps({"bot": "greeter", "text": "x", "digest": text_digest(BOT)}),
                           headers={"Content-Type": "text/plain"})
    assert status == 415
    assert (bot_dir / KEY).read_text() == BOT
    status, answer = await call(pg, "/api/check", {"bot": "greeter", "text": "x" * (300 * 1024)})
    assert status == 413
    status, schema = await call(pg, "/api/schema")
    assert status == 200 and "on" in schema["properties"] and "say" in schema["$defs"]["actions"]


async def test_writes_need_this_starts_token_and_no_edit_refuses_them(served, bot_dir):
    host, pg = await served()
    save = {"bot": "greeter", "text": BOT.replace("Welcome", "Hi"), "digest": text_digest(BOT)}
    status, body = await call(pg, "/api/save", save, csrf=False)
    assert status == 403 and "X-Lkrun-Csrf" in body
    status, _ = await call(pg, "/api/save", save, headers={"X-Lkrun-Csrf": "a-token-of-an-earlier-start"})
    assert status == 403
    status, _ = await call(pg, "/api/draft", {"bot": "greeter", "text": "x", "base": None}, csrf=False)
    assert status == 403
    assert (bot_dir / KEY).read_text() == BOT
    _, listing = await call(pg, "/api/bots")
    assert listing["csrf"] == pg.csrf and listing["edit"] is True
    status, _ = await call(pg, "/api/save", save)
    assert status == 200 and (bot_dir / KEY).read_text() == save["text"]

    readonly = Playground(Host([KEY]), edit=False)  # lkrun --no-edit
    await readonly.start()
    try:
        assert readonly.csrf != pg.csrf
        status, answer = await call(readonly, "/api/file?bot=greeter")
        assert status == 200 and answer["edit"] is False
        status, answer = await call(readonly, "/api/check", {"bot": "greeter", "text": MISTAKE})
        assert status == 200 and not answer["ok"]  # checking still works
        for path, body in (("/api/save", dict(save, digest=text_digest(save["text"]), text=BOT)),
                           ("/api/keep", {"bot": "greeter", "text": BOT}),
                           ("/api/draft", {"bot": "greeter", "text": BOT, "base": None})):
            status, answer = await call(readonly, path, body)
            assert status == 403 and "--no-edit" in answer["error"], path
        assert (bot_dir / KEY).read_text() == save["text"]
        assert sorted(p.name for p in (bot_dir / "bots").iterdir()) == ["greeter.yaml"]
    finally:
        await readonly.stop()


async def test_a_file_that_is_not_running_opens_by_its_name_and_nothing_else_does(served, bot_dir):
    """A bot file with an error at start is listed (running: false) and can be read and saved by its
    listed id; paths that are not in the listing are not, however they are spelled."""
    broken = "bots/broken.yaml"
    (bot_dir / broken).write_text(MISTAKE.replace("greeter", "broken"))
    (bot_dir / "secret.yaml").write_text("api_secret: do-not-show\n")
    host = Host([KEY])
    host.files.append(Path(broken))
    host.file_keys[str(Path(broken).resolve())] = broken
    _, pg = await served(host)
    _, listing = await call(pg, "/api/bots")
    assert [(b["id"], b["running"]) for b in listing["bots"]] == [("greeter", True), (broken, False)]
    status, answer = await call(pg, "/api/session?bot=" + broken)
    assert status == 409
    status, answer = await call(pg, "/api/file?bot=" + broken)
    assert status == 200 and answer["file"] == broken and "sya" in answer["text"]
    for wanted in ("bots/../secret.yaml", "secret.yaml", "./bots/broken.yaml", str(bot_dir / broken),
                   "bots/broken.yaml/", "BOTS/broken.yaml", "bots/greeter.yaml"):
        status, _ = await call(pg, "/api/file?bot=" + wanted)
        assert status == 404, wanted
        status, _ = await call(pg, "/api/save", {"bot": wanted, "text": "x", "digest": ""})
        assert status == 404, wanted
    fixed = (bot_dir / broken).read_text().replace("sya:", "send:")
    status, _ = await call(pg, "/api/save", {"bot": broken, "text": fixed, "digest": answer["digest"]})
    assert status == 200 and (bot_dir / broken).read_text() == fixed
    assert (bot_dir / "secret.yaml").read_text() == "api_secret: do-not-show\n"


async def test_try_an_event_shows_what_lkrun_simulate_shows_and_touches_nothing(served, bot_dir, capsys):
    from runner.cli.simulate import simulate_cli
    host, pg = await served()
    edited = BOT.replace("Welcome", "Hi from the editor")  # unsaved: the page sends its own text
    status, answer = await call(pg, "/api/try", {"bot": "greeter", "event": "data_received", "text": edited,
                                                 "participant": "ada", "data": "ping"})
    assert status == 200 and answer["errors"] == 0
    capsys.readouterr()
    (bot_dir / "edited.yaml").write_text(edited)
    assert await asyncio.to_thread(simulate_cli, str(bot_dir / "edited.yaml"), "data_received", participant="ada",
                                   name=None, data="ping", text=None, allow_missing_env=False) == 0
    assert answer["lines"] == capsys.readouterr().out.splitlines() == ['send to everyone: {"text": "Hi from the editor"}']
    assert (bot_dir / KEY).read_text() == BOT  # nothing saved
    assert host.bots[KEY].spec.vars["greeting"] == "Welcome"  # the running bot is untouched
    status, answer = await call(pg, "/api/try", {"bot": "greeter", "event": "data_received", "text": MISTAKE})
    assert status == 200 and answer["errors"] == 1 and "unknown action 'sya'" in answer["lines"][0]
    status, _ = await call(pg, "/api/try", {"bot": "greeter", "event": "no_such_event"})
    assert status == 400
    status, _ = await call(pg, "/api/try", {"bot": "greeter", "event": "data_received"}, csrf=False)
    assert status == 403
    status, _ = await call(pg, "/api/try", {"bot": "../../etc/passwd", "event": "data_received"})
    assert status == 404


async def test_check_says_what_lkrun_validate_says(served, capsys, tmp_path):
    _, pg = await served()
    status, answer = await call(pg, "/api/check", {"bot": "greeter", "text": MISTAKE})
    assert status == 200 and answer["ok"] is False
    assert answer["problems"] == validate_json(capsys, MISTAKE, tmp_path / "v1")
    [problem] = answer["problems"]
    assert problem["file"] == KEY and problem["line"] == 10 and problem["severity"] == "error"
    assert problem["message"] == "unknown action 'sya' (did you mean 'say'?)"
    status, answer = await call(pg, "/api/check", {"bot": "greeter", "text": BOT})
    assert answer == {"ok": True, "problems": []}
    broken = BOT + "  participant_left\n"  # a YAML mistake: the loader's message, located
    status, answer = await call(pg, "/api/check", {"bot": "greeter", "text": broken})
    assert answer["problems"] == validate_json(capsys, broken, tmp_path / "v2") and not answer["ok"]


async def test_checking_runs_off_the_event_loop(served, monkeypatch):
    import runner.botfile.check as check
    real = check.check_document

    def slow(doc, **kw):
        time.sleep(1.0)
        return real(doc, **kw)

    monkeypatch.setattr(check, "check_document", slow)
    _, pg = await served()
    checking = asyncio.ensure_future(call(pg, "/api/check", {"bot": "greeter", "text": BOT}))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    status, _ = await call(pg, "/api/bots")
    assert status == 200 and time.monotonic() - started < 0.5  # the page stays live meanwhile
    assert (await checking)[1]["ok"] is True


async def test_save_is_atomic_and_the_watcher_reloads_the_bot(served, bot_dir):
    host, pg = await served()
    path = bot_dir / KEY
    path.chmod(0o640)
    watching = asyncio.ensure_future(watch_task(host, debounce_ms=100))
    seen: list[str] = []
    real_look = Watcher.look

    async def look(self, p):  # every path the watcher was told about
        seen.append(p.name)
        return await real_look(self, p)

    Watcher.look = look
    try:
        await asyncio.sleep(0.5)
        _, loaded = await call(pg, "/api/file?bot=greeter")
        edited = BOT.replace("greeting: Welcome", "greeting: Hello there")
        status, answer = await call(pg, "/api/save", {"bot": "greeter", "text": edited, "digest": loaded["digest"]})
        assert status == 200 and answer == {"file": KEY, "digest": text_digest(edited), "changed": True}
        assert path.read_text() == edited and stat.S_IMODE(path.stat().st_mode) == 0o640
        assert sorted(p.name for p in path.parent.iterdir()) == ["greeter.yaml"]  # no temp file left
        await wait_for(lambda: host.notices)
        assert host.notices == [(KEY, "reload", "reloaded greeter.yaml: vars changed, applied live")]
        assert host.bots[KEY].spec.vars["greeting"] == "Hello there"
        assert set(seen) == {"greeter.yaml"}  # the temp file was never looked at as a bot file

        # an invalid save: written, and the bot keeps running the previous version
        status, answer = await call(pg, "/api/save", {"bot": "greeter", "text": MISTAKE, "digest": answer["digest"]})
        assert status == 200
        await wait_for(lambda: len(host.notices) == 2)
        key, kind, message = host.notices[1]
        assert kind == "error" and "unknown action 'sya' (did you mean 'say'?)" in message
        assert host.bots[KEY].spec.vars["greeting"] == "Hello there"
        status, answer = await call(pg, "/api/save", {"bot": "greeter", "text": MISTAKE, "digest": answer["digest"]})
        assert answer["changed"] is False
    finally:
        Watcher.look = real_look
        host.stop_event.set()
        await asyncio.wait_for(watching, 5)
    watcher = Watcher(host)
    assert not watcher.tracked(path.parent / ".greeter.yaml.lkrun-abc123.tmp")


async def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_a_file_changed_on_disk_is_a_409_with_both_versions(served, bot_dir):
    _, pg = await served()
    path = bot_dir / KEY
    _, loaded = await call(pg, "/api/file?bot=greeter")
    theirs = BOT.replace("Welcome", "Hi from vim")
    path.write_text(theirs)
    mine = BOT.replace("Welcome", "Hi from the page")
    status, answer = await call(pg, "/api/save", {"bot": "greeter", "text": mine, "digest": loaded["digest"]})
    assert status == 409 and answer["conflict"] is True
    assert answer["mine"] == mine and answer["theirs"] == theirs and answer["digest"] == text_digest(theirs)
    assert path.read_text() == theirs  # nothing written
    # keep mine: overwrite exactly the version that was shown
    status, answer = await call(pg, "/api/save", {"bot": "greeter", "text": mine, "digest": answer["digest"]})
    assert status == 200 and path.read_text() == mine


async def test_keep_both_writes_a_copy_that_is_not_a_bot_file(served, bot_dir):
    host, pg = await served()
    mine = BOT.replace("Welcome", "Hi from the page")
    status, answer = await call(pg, "/api/keep", {"bot": "greeter", "text": mine})
    assert status == 200 and answer["kept"].startswith("bots/greeter.yaml.mine-") and answer["kept"].endswith(".txt")
    copy = bot_dir / answer["kept"]
    assert copy.read_text() == mine and (bot_dir / KEY).read_text() == BOT
    files, _ = expand(["bots"])  # folder mode would not load it, nor would the watcher
    assert files == [Path("bots/greeter.yaml")]
    watcher = Watcher(host)
    watcher.bot_folders = {(bot_dir / "bots").resolve()}
    assert watcher.tracked(bot_dir / KEY) and not watcher.tracked(copy)
    status, again = await call(pg, "/api/keep", {"bot": "greeter", "text": mine})
    assert again["kept"] != answer["kept"]  # a second copy never overwrites the first


async def test_drafts_survive_a_new_playground(served, bot_dir, tmp_path):
    _, pg = await served()
    draft = BOT.replace("Welcome", "Half-typed")
    status, answer = await call(pg, "/api/draft", {"bot": "greeter", "text": draft, "base": text_digest(BOT)})
    assert status == 200 and answer["saved"] > 0
    await pg.stop()

    _, pg2 = await served()  # lkrun restarted (another port): the same draft
    status, answer = await call(pg2, "/api/file?bot=greeter")
    assert answer["text"] == BOT
    assert answer["draft"]["text"] == draft and answer["draft"]["base"] == text_digest(BOT)
    assert answer["draft"]["file_changed"] is False
    [kept] = list(drafts_dir().iterdir())
    assert kept.parent == tmp_path / "state" / "lkrun" / "drafts" and kept.suffix == ".json"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600 and stat.S_IMODE(kept.parent.stat().st_mode) == 0o700
    assert not any(p.name != "greeter.yaml" for p in (bot_dir / "bots").iterdir())
    # the file changed on disk meanwhile: still offered, flagged
    (bot_dir / KEY).write_text(BOT + "# edited elsewhere\n")
    _, answer = await call(pg2, "/api/file?bot=greeter")
    assert answer["draft"]["text"] == draft and answer["draft"]["file_changed"] is True
    # saving forgets the draft; so does sending no text
    await call(pg2, "/api/save", {"bot": "greeter", "text": draft, "digest": answer["digest"]})
    _, answer = await call(pg2, "/api/file?bot=greeter")
    assert answer["draft"] is None and list(drafts_dir().iterdir()) == []
    await call(pg2, "/api/draft", {"bot": "greeter", "text": "x", "base": answer["digest"]})
    await call(pg2, "/api/draft", {"bot": "greeter", "text": None})
    assert list(drafts_dir().iterdir()) == []


# ---- the editor pane in a real browser ---------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_the_editor_checks_completes_saves_and_reloads_in_headless_chromium(bot_dir, tmp_path, capsys, beep_action,
                                                                                 monkeypatch):
    from test_playground import Browser, browser_ready, page_problems, write_wav
    import numpy as np
    browser_ready()
    shots = Path(os.environ.get("LKRUN_PLAYGROUND_SCREENSHOTS") or tmp_path)
    shots = shots if shots.is_absolute() else ROOT / shots
    shots.mkdir(parents=True, exist_ok=True)
    greeter = (ROOT / "bots" / "greeter.yaml").read_text().replace("${LIVEKIT_ROOM:-lobby}", "lobby")
    head, on, rest = greeter.partition("\non:\n")  # `on:` last: the test types at the end of the file
    handlers, scripts, tail = rest.partition("\nscripts:")
    greeter = head + (scripts + tail).rstrip("\n") + "\n" + on + handlers.rstrip("\n") + "\n" if scripts else greeter
    (bot_dir / KEY).write_text(greeter)
    host = Host([KEY])
    pg = Playground(host)
    host.playground = pg
    wav = tmp_path / "mic.wav"
    write_wav(wav, np.zeros(4800, dtype=np.int16))
    browser = None
    watching = asyncio.ensure_future(watch_task(host, debounce_ms=100))
    try:
        url = await pg.start()
        browser = await Browser.launch(wav)
        assert await browser.call("goto", url=url.replace("127.0.0.1", "localhost")) == 200
        await browser.wait("#editor .cm-content", text="greeting: Welcome")
        await browser.until("window.playground.editor.schema")
        editor = "#editor .cm-content"

        # a mistake, typed at the end of the file: the checker's own message, as lkrun validate says it
        await browser.call("click", selector=editor)
        await browser.call("press", selector=editor, key="Control+End")
        # the page notes when the last key went down and when lkrun's problem appeared
        await browser.call("eval", expr="""(() => {
            window.timing = {};
            document.querySelector('#editor').addEventListener('keydown', () => {
              window.timing.key = performance.now(); }, true);
            new MutationObserver(() => {
              if (!window.timing.shown && document.querySelector('#editor-problems li.error'))
                window.timing.shown = performance.now();
            }).observe(document.getElementById('editor-problems'), {childList: true, subtree: true});
        })()""")
        await browser.call("type", selector=editor, text="    - sya: hi")
        await browser.wait("#editor-problems li.error", text="unknown action 'sya' (did you mean 'say'?)")
        timing = await browser.call("eval", expr="window.timing")
        shown_ms = timing["shown"] - timing["key"]
        with capsys.disabled():
            print(f"\neditor: lkrun's problem shown {shown_ms:.0f} ms after the last keystroke (debounce 400 ms)")
        assert 0 < shown_ms < 1500  # 400 ms debounce + the check; loose: the CI machine is shared
        await browser.wait("#editor .cm-lint-marker-error")
        text = await browser.call("eval", expr="window.playground.editor.view.state.doc.toString()")
        assert text == greeter + "    - sya: hi"
        shown = await browser.call("eval", expr="window.playground.editor.problems")
        assert shown == validate_json(capsys, text, tmp_path / "validate")
        line = await browser.call("text", selector="#editor-problems li.error")
        assert line.startswith(f"{KEY}:{text.count(chr(10)) + 1}:7: error: unknown action 'sya' (did you mean 'say'?)")
        await browser.call("screenshot", path=str(shots / "playground-editor-problem.png"), fullPage=True)

        # fix it with the schema's completion: "sa" offers `say`, with its description
        for _ in range(len("sya: hi")):
            await browser.call("press", selector=editor, key="Backspace")
        # after "- " under an event: the actions, a Python-registered one too (the schema is served
        # at run time: no page rebuild)
        await browser.call("press", selector=editor, key="Control+Space")
        await browser.wait(".cm-tooltip-autocomplete li", text="say")
        offered = await browser.call("eval", expr="[...document.querySelectorAll('.cm-tooltip-autocomplete li')]"
                                                  ".map(li => li.querySelector('.cm-completionLabel').textContent)")
        assert {"say", "send", "http", "end", "beep"} <= set(offered), offered
        await browser.call("press", selector=editor, key="Escape")
        await browser.call("type", selector=editor, text="sa")
        await browser.wait(".cm-tooltip-autocomplete li[aria-selected]", text="say")
        await browser.wait(".cm-completionInfo", text="speak text")
        await browser.call("screenshot", path=str(shots / "playground-editor-complete.png"), fullPage=True)
        await browser.call("press", selector=editor, key="Enter")
        await browser.call("type", selector=editor, text="Bye!")
        await browser.until("window.playground.editor.view.state.doc.toString().endsWith('    - say: Bye!')")
        await browser.until("window.playground.editor.problems.length === 0 && "
                            "document.getElementById('editor-problems').hidden")

        # save (Ctrl+S): written atomically, the watcher reloads it, the page says so
        await browser.call("press", selector=editor, key="Control+s")
        await browser.wait("#editor-status.ok", text="reloaded greeter.yaml: on changed, applied live", timeout=30)
        await browser.wait("#trace li.notice.reload", text="reloaded greeter.yaml")
        assert (bot_dir / KEY).read_text() == greeter + "    - say: Bye!"
        assert host.notices[-1][:2] == (KEY, "reload")
        assert not await browser.call("eval", expr="window.playground.editor.dirty")
        await browser.call("screenshot", path=str(shots / "playground-editor-saved.png"), fullPage=True)

        # try an event: the editor's text, as lkrun simulate shows it
        await browser.call("click", selector="#try-panel summary")
        await browser.call("fill", selector="#try-event", text="data_received")
        await browser.call("fill", selector="#try-text", text="ping")
        await browser.call("click", selector="#try-run")
        await browser.wait("#try-output", text='send to alice: {"text": "pong"}')
        await browser.call("screenshot", path=str(shots / "playground-editor-try.png"), fullPage=True)

        # hovering an action explains it (its doc line from the schema)
        where = await browser.call("eval", expr="""(() => { const v = window.playground.editor.view;
            const i = v.state.doc.toString().lastIndexOf('say: Bye!') + 1; const c = v.coordsAtPos(i);
            return {x: c.left + 2, y: (c.top + c.bottom) / 2}; })()""")
        await browser.call("move", x=where["x"], y=where["y"])
        await browser.wait(".cm-tooltip-hover", text="speak text")

        # an unsaved edit is kept by lkrun: a page reload offers it back
        await browser.call("type", selector=editor, text=" See you.")
        await wait_for(lambda: drafts_dir().is_dir() and any(drafts_dir().iterdir()))
        assert await browser.call("goto", url=url) == 200
        await browser.wait("#editor-banner.draft button[data-action=restore]")
        await browser.call("click", selector="#editor-banner button[data-action=restore]")
        await browser.until("window.playground.editor.dirty && window.playground.editor.view.state.doc"
                            ".toString().endsWith('Bye! See you.')")

        # meanwhile someone else saves the file: saving asks; keep both writes mine beside it, not as a bot
        theirs = greeter + "    - say: Bye from vim!"
        (bot_dir / KEY).write_text(theirs)
        await browser.call("press", selector=editor, key="Control+s")
        await browser.wait("#editor-banner.conflict .versions .theirs pre", text="Bye from vim!")
        await browser.wait("#editor-banner.conflict .versions .mine pre", text="Bye! See you.")
        await browser.call("screenshot", path=str(shots / "playground-editor-conflict.png"), fullPage=True)
        await browser.call("click", selector="#editor-banner button[data-action=keep-both]")
        await browser.wait("#editor-status.ok", text="your version is kept as bots/greeter.yaml.mine-")
        kept = [p for p in (bot_dir / "bots").iterdir() if p.name != "greeter.yaml"]
        assert len(kept) == 1 and kept[0].suffix == ".txt" and kept[0].read_text().endswith("Bye! See you.")
        assert (bot_dir / KEY).read_text() == theirs
        assert await browser.call("eval", expr="window.playground.editor.view.state.doc.toString()") == theirs
        problems = page_problems(browser.console, allowed=("status of 409 (Conflict)",))  # the conflict answer itself
        assert not problems, problems
    finally:
        if browser is not None:
            await browser.close()
        host.stop_event.set()
        await asyncio.wait_for(watching, 5)
        await pg.stop()


HELPER_BROKEN = """version: 1
name: helper
livekit: {room: ROOM, identity: helper}
on:
  participant_connected:
    - sya: {to: "{{ participant.id }}", data: {text: "helper here"}}
"""
PINGER = """version: 1
name: pinger
livekit: {room: ROOM, identity: pinger}
on:
  data_received:
    - send: {data: pong}
"""


@pytest.mark.livekit
@pytest.mark.slow
@pytest.mark.timeout(150)
async def test_a_file_broken_at_start_is_listed_fixed_in_the_page_and_then_runs(livekit_server, tmp_path,
                                                                                monkeypatch, capsys, people):
    """`lkrun bots/` with one broken file: the page lists it, opens it with lkrun's own problem,
    the person fixes it there and saves, the bot starts, and the page can join it."""
    from test_playground import Browser, browser_ready, page_problems, write_wav
    import numpy as np

    from runner.botfile.files import check_many
    from runner.host.supervisor import Supervisor
    browser_ready()
    shots = Path(os.environ.get("LKRUN_PLAYGROUND_SCREENSHOTS") or tmp_path)
    shots = shots if shots.is_absolute() else ROOT / shots
    shots.mkdir(parents=True, exist_ok=True)
    project = tmp_path / "project"
    (project / "bots").mkdir(parents=True)
    monkeypatch.chdir(project)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    suffix = os.urandom(3).hex()
    Path("bots/helper.yaml").write_text(HELPER_BROKEN.replace("ROOM", f"help-{suffix}"))
    Path("bots/pinger.yaml").write_text(PINGER.replace("ROOM", f"ping-{suffix}"))
    (project / "outside.yaml").write_text(PINGER.replace("ROOM", "x").replace("pinger", "outsider"))
    os.symlink(project / "outside.yaml", project / "bots" / "link.yaml")  # out of the folder: never listed
    files, _ = expand(["bots"])
    specs, problems = check_many(files)
    assert "pinger" in [s.name for s in specs] and "helper" not in [s.name for s in specs]  # helper.yaml cannot start
    assert any(p.file == "bots/helper.yaml" for p in problems)
    environ = {"LIVEKIT_URL": livekit_server.url, "LIVEKIT_API_KEY": livekit_server.api_key,
               "LIVEKIT_API_SECRET": livekit_server.api_secret}
    supervisor = Supervisor([s for s in specs if s.name != "outsider"], reload=True,
                            files=[f for f in files if f.name != "link.yaml"], playground=True,
                            environ=environ, folders=[Path("bots")])
    monkeypatch.setattr(supervisor, "install_signals", lambda: None)
    running = asyncio.ensure_future(supervisor.main())
    wav = tmp_path / "mic.wav"
    write_wav(wav, np.zeros(4800, dtype=np.int16))
    browser = None
    try:
        await wait_for(lambda: supervisor.playground_server is not None and supervisor.playground_server.url
                       and supervisor.watcher is not None, 20)
        pg = supervisor.playground_server
        status, listing = await call(pg, "/api/bots")
        entries = {b["file"]: b for b in listing["bots"]}
        assert entries["bots/helper.yaml"]["running"] is False and entries["bots/pinger.yaml"]["running"] is True
        assert "bots/link.yaml" not in entries  # a symlink out of the watched folder is not offered
        status, _ = await call(pg, "/api/session?bot=bots/helper.yaml")
        assert status == 409  # not running: nothing to join yet
        status, _ = await call(pg, "/api/file?bot=bots/link.yaml")
        assert status == 404

        browser = await Browser.launch(wav)
        assert await browser.call("goto", url=pg.url) == 200
        await browser.until("[...document.querySelectorAll('#bot option[data-running=false]')]"
                            ".some(o => o.value === 'bots/helper.yaml')")
        await browser.call("select", selector="#bot", value="bots/helper.yaml")
        await browser.wait("#editor .cm-content", text="sya:")
        await browser.wait("#editor-problems li.error", text="unknown action 'sya' (did you mean 'say'?)")
        await browser.wait("#editor .cm-lint-marker-error")
        assert await browser.call("eval", expr="document.getElementById('join').disabled")
        shown = await browser.call("eval", expr="window.playground.editor.problems")
        assert shown == validate_json(capsys, Path("bots/helper.yaml").read_text(), tmp_path / "validate",
                                      key="bots/helper.yaml")
        await browser.call("screenshot", path=str(shots / "playground-editor.png"), fullPage=True)

        # fix it in the page: `send` was meant (a CodeMirror change, as typing makes)
        await browser.call("eval", expr="(() => { const v = window.playground.editor.view; const t = "
                                        "v.state.doc.toString(); const i = t.indexOf('sya:'); "
                                        "v.dispatch({changes: {from: i, to: i + 3, insert: 'send'}}); })()")
        await browser.until("window.playground.editor.problems.length === 0 && "
                            "document.getElementById('editor-problems').hidden")
        await browser.call("press", selector="#editor .cm-content", key="Control+s")
        await browser.wait("#editor-status.ok", text="started helper.yaml", timeout=60)
        await wait_for(lambda: "bots/helper.yaml" in supervisor.bots, 10)
        await browser.until("[...document.querySelectorAll('#bot option[data-running=true]')]"
                            ".some(o => o.value === 'helper')")
        assert await browser.call("eval", expr="document.getElementById('bot').value") == "helper"
        await browser.until("!document.getElementById('join').disabled")
        await browser.call("click", selector="#join")
        await browser.wait("#messages li.msg:not(.mine)", text="helper here", timeout=20)
        me = await browser.call("eval", expr="window.playground.identity")
        bot = supervisor.bots["bots/helper.yaml"]
        await wait_for(lambda: me in bot.participants(), 10)

        # a changed greeting, saved in the page: the next person hears it, the page's person stays
        await browser.call("eval", expr="(() => { const v = window.playground.editor.view; const t = "
                                        "v.state.doc.toString(); const i = t.indexOf('helper here'); "
                                        "v.dispatch({changes: {from: i, to: i + 11, insert: 'helper, edited'}}); })()")
        await browser.call("press", selector="#editor .cm-content", key="Control+s")
        await browser.wait("#editor-status.ok", text="reloaded helper.yaml: on changed, applied live", timeout=60)
        ada = await people(f"help-{suffix}", "ada")
        assert await ada.next_data(20, sender="helper") == {"text": "helper, edited"}
        assert await browser.call("eval", expr="window.playground.connected")
        assert me in bot.participants() and bot.generations == 1  # the same connection: nobody was dropped
        left = await browser.call("eval", expr="[...document.querySelectorAll('#messages li.system')]"
                                               ".some(li => li.textContent.startsWith('left the room'))")
        assert not left
        problems = page_problems(browser.console, allowed=("409 (Conflict)",))
        assert not problems, problems
    finally:
        if browser is not None:
            await browser.close()
        supervisor.stop_event.set()
        await asyncio.wait_for(running, 15)

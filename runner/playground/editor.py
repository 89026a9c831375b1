"""The playground's editor: read, check, save and keep drafts of the running bots' files.

Only the files in the playground's listing can be read or written: the running bots
(``supervisor.bots`` keys) and the bot files lkrun was started with or finds in the folders it
watches that are not running (an error at start-up: the page opens them to be fixed). The page
names one by its id (as in ``/api/bots``), never by a path. The requests pass the same
loopback guard as the rest of the API (``server.Playground._guard``).

Endpoints:
  GET  /api/schema            the bot file JSON Schema (``lkrun schema``): completion, hover
  GET  /api/file?bot=ID       {bot, file, text, digest, modified, edit, reload, draft: {text, base, saved,
                              file_changed} | null}
  POST /api/check  {bot, text}                 {ok, problems: [{file, line, col, message, hint, severity}]}
  POST /api/save   {bot, text, digest}         {digest, changed} | 409 {conflict, mine, theirs, digest}
  POST /api/keep   {bot, text}                 {kept}: a copy named NAME.yaml.mine-TIME.txt beside it
  POST /api/draft  {bot, text, base}           {saved}; text null forgets the draft
  POST /api/try    {bot, event, text?, participant?, name?, text_input?, data?, digit?}
                                               {event, lines, errors}: ``lkrun simulate`` of the editor's text

Every POST carries the playground's per-start token (``X-Lkrun-Csrf``, checked by its guard);
with ``lkrun --no-edit`` save, keep and draft answer 403.

The checker is lkrun's own (``check_document(load_text(...))``, plus the same-room-and-identity
rule reload applies), run in a thread: the page shows exactly what ``lkrun validate`` prints.
Saving is atomic (a ``.NAME.yaml.lkrun-*.tmp`` the reload watcher ignores, then ``os.replace``),
and the watcher reloads the bot as for any other save. Drafts live in the user's state folder
(``$XDG_STATE_HOME/lkrun/drafts``, else ``~/.local/state/lkrun/drafts``), never beside the bots.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets as _secrets
import tempfile
import time
from pathlib import Path

from aiohttp import web

from runner.botfile.errors import ConfigError
from runner.botfile.yamlsafe import MAX_BYTES, text_digest
from runner.playground.traces import masked
from runner.runtime.interpreter import off_loop

CHECK_BUDGET = 10.0  # seconds, as for a reload's check
BODY_LIMIT = 8 * MAX_BYTES  # a JSON body: the text escaped, plus a little


def drafts_dir(environ=os.environ) -> Path:
    state = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "lkrun" / "drafts"


class Editor:
    """The editor endpoints of one Playground. ``listing()`` is ``Playground._listing`` (the
    running bots with their ids), ``secrets()`` the values every answer masks."""

    def __init__(self, supervisor, listing, secrets, *, edit: bool = True):
        self.supervisor, self._listing, self._secrets = supervisor, listing, secrets
        self.edit = edit  # False (lkrun --no-edit): read and check only; save, keep and drafts are refused
        self._schema: bytes | None = None
        self._checks = asyncio.Semaphore(2)

    def register(self, app: web.Application) -> None:
        app.router.add_get("/api/schema", self.schema)
        app.router.add_get("/api/file", self.read)
        app.router.add_post("/api/check", self.check)
        app.router.add_post("/api/save", self.save)
        app.router.add_post("/api/keep", self.keep)
        app.router.add_post("/api/draft", self.draft)
        app.router.add_post("/api/try", self.try_event)

    # -- which file ------------------------------------------------------------------------------
    def _bot(self, bot_id) -> tuple[str, Path]:
        """(key, real path) of the bot or bot file named ``bot_id`` in the listing (a running bot,
        or a file lkrun was started with or watches that is not running); anything else is a 404."""
        if isinstance(bot_id, str) and bot_id:
            for item in self._listing():
                if item["id"] == bot_id:
                    return item["file"], self.path_of(item["file"])
        raise _http(404, f"no bot named '{bot_id}'" if bot_id else "which bot?")

    def path_of(self, key: str) -> Path:
        keys = getattr(self.supervisor, "file_keys", None)
        if isinstance(keys, dict):
            for resolved, known in keys.items():
                if known == key:
                    return Path(resolved)
        return Path(key).resolve()

    def _draft_file(self, path: Path) -> Path:
        return drafts_dir() / (hashlib.sha256(str(path).encode("utf-8", "surrogatepass")).hexdigest()[:40] + ".json")

    # -- endpoints -------------------------------------------------------------------------------
    async def schema(self, request: web.Request) -> web.Response:
        if self._schema is None:
            from runner.botfile.schema import build
            self._schema = json.dumps(await asyncio.to_thread(build), separators=(",", ":")).encode()
        response = web.Response(body=self._schema, content_type="application/json",
                                headers={"Cache-Control": "no-cache"})
        response.enable_compression()
        return response

    async def read(self, request: web.Request) -> web.Response:
        key, path = self._bot(request.query.get("bot", ""))
        text, digest = _current(path, key)
        draft = _read_json(self._draft_file(path))
        if draft is not None and (draft.get("file") != str(path) or draft.get("text") == text
                                  or not isinstance(draft.get("text"), str)):
            draft = None
        if draft is not None:
            draft = {"text": draft["text"], "base": draft.get("base"), "saved": draft.get("saved"),
                     "file_changed": draft.get("base") != digest}
        live = getattr(self.supervisor, "reload", None)
        try:
            modified = path.stat().st_mtime
        except OSError:
            modified = None
        return _json({"bot": request.query.get("bot"), "file": key, "text": text, "digest": digest,
                      "modified": modified, "edit": self.edit,
                      "reload": True if live is None else bool(live), "draft": draft})

    async def check(self, request: web.Request) -> web.Response:
        body = await _body(request)
        key, _ = self._bot(body.get("bot"))
        text = _text(body)
        async with self._checks:
            try:
                problems = await asyncio.wait_for(off_loop(self._problems, key, text), CHECK_BUDGET)
            except asyncio.TimeoutError:
                problems = [{"file": key, "line": 1, "col": 1, "severity": "error", "hint": None,
                             "message": f"checking took longer than {CHECK_BUDGET:g} s"}]
        problems = masked(problems, self._secrets())
        return _json({"ok": not any(p["severity"] == "error" for p in problems), "problems": problems})

    def _problems(self, key: str, text: str) -> list[dict]:
        """What ``lkrun validate`` prints for this text as the file ``key`` (in a thread)."""
        from runner.botfile.check import check_document
        from runner.botfile.files import duplicate_problem, identity_key, internal_error
        from runner.botfile.yamlsafe import load_text
        try:
            doc = load_text(text, key)
            spec = check_document(doc)
        except ConfigError as exc:
            return [p.as_dict() for p in exc.problems]
        except Exception as exc:  # a checker bug: named, without its text
            return [internal_error(key, exc).as_dict()]
        problems = list(spec.warnings)
        bots = dict(getattr(self.supervisor, "bots", {}) or {})
        for other, bot in bots.items():  # the rule reload applies too (ReloadHost._duplicate)
            spec_other = getattr(bot, "spec", None)
            if other != key and spec_other is not None and hasattr(spec_other, "livekit") \
                    and identity_key(spec_other) == identity_key(spec):
                problems.append(duplicate_problem(spec, doc, other))
                break
        return [p.as_dict() for p in sorted(problems)]

    def _writable(self) -> None:
        if not self.edit:
            raise _http(403, "lkrun runs with --no-edit: the page can read and check the bot files, not write them")

    async def save(self, request: web.Request) -> web.Response:
        self._writable()
        body = await _body(request)
        key, path = self._bot(body.get("bot"))
        text = _text(body)
        theirs, digest = _current(path, key)
        if body.get("digest") != digest:  # changed on disk since the page loaded it: ask
            return _json({"error": f"{key} changed on disk since you opened it", "conflict": True,
                          "mine": text, "theirs": theirs, "digest": digest}, status=409)
        mine = text_digest(text)
        changed = mine != digest
        if changed:
            raw = path.read_bytes()
            if b"\r\n" in raw and "\r\n" not in text:  # keep the file's line endings
                text = text.replace("\n", "\r\n")
                mine = text_digest(text)
            await asyncio.to_thread(write_atomic, path, text.encode("utf-8", "surrogatepass"))
        _forget(self._draft_file(path))
        return _json({"file": key, "digest": mine, "changed": changed})

    async def keep(self, request: web.Request) -> web.Response:
        """Keep both: the page's version as NAME.yaml.mine-TIME.txt (not a bot file: never loaded)."""
        self._writable()
        body = await _body(request)
        key, path = self._bot(body.get("bot"))
        text = _text(body)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        copy = path.with_name(f"{path.name}.mine-{stamp}.txt")
        n = 1
        while copy.exists():
            n += 1
            copy = path.with_name(f"{path.name}.mine-{stamp}-{n}.txt")
        await asyncio.to_thread(write_atomic, copy, text.encode("utf-8", "surrogatepass"))
        _forget(self._draft_file(path))
        return _json({"kept": str(Path(key).with_name(copy.name))})

    async def draft(self, request: web.Request) -> web.Response:
        self._writable()
        body = await _body(request)
        _, path = self._bot(body.get("bot"))
        target = self._draft_file(path)
        if body.get("text") is None:
            _forget(target)
            return _json({"saved": None})
        text = _text(body)
        base = body.get("base") if isinstance(body.get("base"), str) else None
        record = {"file": str(path), "text": text, "base": base, "saved": time.time()}
        await asyncio.to_thread(_write_private, target, json.dumps(record).encode())
        return _json({"saved": record["saved"]})


    async def try_event(self, request: web.Request) -> web.Response:
        """Try an event: the editor's text (or the file) checked, then one event's actions rendered as
        ``lkrun simulate`` shows them, with simulate's effects: nothing reaches the room or the
        network, a fresh session state. Reads only; allowed with --no-edit."""
        from runner.botfile.events import EVENTS
        from runner.runtime.simulate import SimulateInputError
        body = await _body(request)
        key, path = self._bot(body.get("bot"))
        text = body.get("text")
        if not isinstance(text, str):
            text = _current(path, key)[0]
        elif len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
            raise _http(413, f"the text is larger than {MAX_BYTES // 1024} KiB")
        event = body.get("event")
        if not isinstance(event, str) or event not in EVENTS:
            raise _http(400, f"unknown event {event!r}")
        inputs = {name: body.get(name) if isinstance(body.get(name), str) and body.get(name) != "" else None
                  for name in ("participant", "name", "text_input", "data", "digit")}
        try:
            lines, errors = await asyncio.wait_for(self._try(key, text, event, inputs), CHECK_BUDGET)
        except asyncio.TimeoutError:
            lines, errors = [f"the event took longer than {CHECK_BUDGET:g} s to simulate"], 1
        except SimulateInputError as exc:
            raise _http(400, str(exc)) from None
        return _json(masked({"event": event, "lines": lines, "errors": errors}, self._secrets()))

    async def _try(self, key: str, text: str, event: str, inputs: dict) -> tuple[list[str], int]:
        from runner.botfile.check import check_document
        from runner.botfile.yamlsafe import load_text
        from runner.runtime.simulate import PrintEffects, simulate
        try:
            spec = await off_loop(lambda: check_document(load_text(text, key)))
        except ConfigError as exc:
            return [p.render() for p in exc.problems], len(exc.problems)

        class Quiet(PrintEffects):
            def _emit(self, line, err=False):  # collected for the page, never printed
                pass

        effects = await simulate(spec, event, participant=inputs["participant"] or "alice", name=inputs["name"],
                                 data=inputs["data"], text=inputs["text_input"], digit=inputs["digit"],
                                 effects=Quiet(spec.secrets))
        return effects.lines, effects.errors


# -- files -----------------------------------------------------------------------------------------
def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` at once: a temp file in the same folder whose name the reload
    watcher ignores (a leading '.', no .yaml suffix), then os.replace. A symlink's target is written."""
    path = Path(os.path.realpath(path))
    mode = None
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        pass
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.lkrun-", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if mode is not None:
            os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temp = path.with_name(f".{path.name}.{_secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(temp, path)


def _read_json(path: Path):
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _forget(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _current(path: Path, key: str) -> tuple[str, str]:
    """The file's text and digest (BotSpec.text_hash's), or an HTTP error the page can show."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise _http(409, f"cannot read {key}: {(exc.strerror or type(exc).__name__).lower()}") from None
    if len(raw) > MAX_BYTES:
        raise _http(413, f"{key} is larger than {MAX_BYTES // 1024} KiB")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _http(409, f"{key} is not UTF-8 text; edit it in your own editor") from None
    return text, text_digest(text)


# -- HTTP --------------------------------------------------------------------------------------------
async def _body(request: web.Request) -> dict:
    """The JSON body, read with its own cap (the app's client_max_size is for small requests).
    Only ``application/json``: a form on another site cannot send that without asking first."""
    if request.content_type != "application/json":
        raise _http(415, "expected Content-Type: application/json")
    if request.content_length is not None and request.content_length > BODY_LIMIT:
        raise _http(413, f"the text is larger than {MAX_BYTES // 1024} KiB")
    chunks, size = [], 0
    while True:
        chunk = await request.content.read(64 * 1024)
        if not chunk:
            break
        size += len(chunk)
        if size > BODY_LIMIT:
            raise _http(413, f"the text is larger than {MAX_BYTES // 1024} KiB")
        chunks.append(chunk)
    try:
        value = json.loads(b"".join(chunks) or b"{}")
    except ValueError:
        raise _http(400, "expected a JSON body") from None
    if not isinstance(value, dict):
        raise _http(400, "expected a JSON object")
    return value


def _text(body: dict) -> str:
    text = body.get("text")
    if not isinstance(text, str):
        raise _http(400, "expected the file's text in 'text'")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise _http(413, f"the text is larger than {MAX_BYTES // 1024} KiB")
    return text


def _json(value: dict, status: int = 200) -> web.Response:
    return web.json_response(value, status=status, headers={"Cache-Control": "no-store"})


def _http(status: int, message: str) -> web.HTTPException:
    kinds = {400: web.HTTPBadRequest, 415: web.HTTPUnsupportedMediaType, 404: web.HTTPNotFound,
             409: web.HTTPConflict, 403: web.HTTPForbidden}
    options = {"text": json.dumps({"error": message}), "content_type": "application/json",
               "headers": {"Cache-Control": "no-store"}}
    if status == 413:
        return web.HTTPRequestEntityTooLarge(MAX_BYTES, 0, **options)
    return kinds[status](**options)

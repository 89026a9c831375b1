"""The playground's HTTP server: the page, a person token for it, and the bots' live trace.

Loopback only. Every request must come from a loopback address and name this server in its
``Host`` header as ``127.0.0.1:PORT``, ``localhost:PORT`` or ``[::1]:PORT`` (a DNS-rebinding
page on another name gets 403), and API calls made by other sites' pages are refused
(``Sec-Fetch-Site`` / ``Origin``). The API never hands out API keys, secrets or the bots'
own tokens: the one token it returns is a short-lived person token for the page itself.

Endpoints:
  GET /                   the page (or how to build it, when the bundle is missing)
  GET /static/...         the page's files; the bundle is static/dist/playground.js
  GET /api/bots           the bots: [{id, name, room, identity, file, embedded, running}]; files
                          that are not running (errors at start-up) too, with running: false;
                          "edit" (false with --no-edit) and "csrf", the token every POST sends
                          in its X-Lkrun-Csrf header (a new one each time lkrun starts)
  GET /api/session?bot=ID {url, token, room, identity, name, bot: {id, name, identity}}
  GET /api/trace          Server-Sent Events: one JSON object per trace entry or notice (``traces``)
  GET /api/graph?bot=ID   {mermaid, current}: the bot's flow as Mermaid text, the node it is in
                          highlighted (mermaid null for a bot without a flow)
  GET /metrics            the bots' run metrics in Prometheus text format (``runner.runtime.metrics``)
  /api/schema, /api/file, /api/check, /api/save, /api/keep, /api/draft: the editor (``editor``)

A connection gets HEADER_TIMEOUT seconds to send its first request and at most
MAX_CONNECTIONS are open at once (``site.BoundedSite``); idle ones close after KEEPALIVE_TIMEOUT.
"""

from __future__ import annotations

import ipaddress
import re
import secrets as _secrets
import time
from pathlib import Path

from aiohttp import web

from runner.playground.editor import Editor
from runner.playground.site import BoundedSite
from runner.playground.traces import TraceHub

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
BUNDLE = STATIC_DIR / "dist" / "playground.js"
HOST = "127.0.0.1"
HEADER_TIMEOUT = 10.0  # seconds for a new connection's request line and headers
KEEPALIVE_TIMEOUT = 30.0  # seconds an idle kept-alive connection stays open
MAX_CONNECTIONS = 64  # open at once; more are answered 503 (a page uses a handful)
TOKEN_TTL_MINUTES = 60
PERSON_NAME = "You"
CSRF_HEADER = "X-Lkrun-Csrf"
BUILD_COMMAND = "cd web && npm ci && npm run build"

HOWTO = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lkrun playground: not built</title>
<link rel="icon" href="data:,"><link rel="stylesheet" href="/static/style.css"></head>
<body class="howto"><main>
<h1>lkrun playground</h1>
<p id="not-built">The playground page has not been built yet. It is a small front end made from
the <code>livekit-client</code> npm package; build it once (Node.js 18+ and npm), then reload this
page:</p>
<pre>{command}</pre>
<p>(<code>bash scripts/setup.sh</code> does this for you.) The bundle is written to
<code>{bundle}</code>; nothing is fetched from the internet when the page runs.</p>
<p>Your bots keep running meanwhile; join their room with any LiveKit client and a token from
<code>lkrun token --room ROOM --identity you</code>.</p>
</main></body></html>
"""


class PlaygroundError(RuntimeError):
    """The playground could not start (its port is taken, for example)."""


class Playground:
    """The loopback page server for a supervisor's bots.

    It reads ``supervisor.bots`` (key -> BotRuntime with ``.spec``, ``.server`` and
    ``.trace``) and nothing else, so a small stand-in works in tests.
    """

    def __init__(self, supervisor, port: int = 0, *, host: str = HOST, static_dir: Path = STATIC_DIR,
                 edit: bool = True):
        self.supervisor = supervisor
        self.edit = bool(edit)  # False: `lkrun --no-edit`, the editor only reads and checks
        # a new one at each start: the page reads it from /api/bots (same origin only: no CORS) and
        # sends it with every POST, which a page of another site can neither read nor forge
        self.csrf = _secrets.token_urlsafe(24)
        self.requested_port = int(port or 0)
        self.host = host
        self.static_dir = Path(static_dir)
        self.port: int | None = None
        self._runner: web.AppRunner | None = None
        self.traces = TraceHub(self._bots_by_key, self._secrets)
        self._waiting: set = set()  # connections whose first request has not arrived yet (BoundedSite)

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def url(self) -> str | None:
        return f"http://{self.host}:{self.port}/" if self.port else None

    @property
    def built(self) -> bool:
        return (self.static_dir / "dist" / BUNDLE.name).is_file()

    async def start(self) -> str:
        """Serve on loopback; returns the page's URL (``http://127.0.0.1:PORT/``)."""
        app = web.Application(middlewares=[self._guard], client_max_size=64 * 1024)
        app.on_response_prepare.append(self._security_headers)
        app.router.add_get("/", self._index)
        app.router.add_get("/api/bots", self._bots)
        app.router.add_get("/api/session", self._session)
        app.router.add_get("/api/trace", self.traces.stream)
        app.router.add_get("/api/graph", self._graph)
        app.router.add_get("/metrics", self._metrics)
        Editor(self.supervisor, self._listing, self._secrets, edit=self.edit).register(app)
        app.router.add_static("/static/", self.static_dir, follow_symlinks=False, show_index=False)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0,
                                     keepalive_timeout=KEEPALIVE_TIMEOUT)
        await self._runner.setup()
        site = self._site(self.host, self.requested_port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise PlaygroundError(f"cannot serve the playground on {self.host}:{self.requested_port}: "
                                  f"{exc.strerror or exc}") from None
        self.port = site.sockets[0].getsockname()[1]
        if self.host == HOST:  # the same port on IPv6 loopback too, when the machine has it
            try:
                await self._site("::1", self.port).start()
            except OSError:
                pass
        self.traces.start()
        return self.url

    def _site(self, host: str, port: int) -> BoundedSite:
        return BoundedSite(self._runner, host, port, header_timeout=HEADER_TIMEOUT,
                           max_connections=MAX_CONNECTIONS, waiting=self._waiting)

    async def stop(self) -> None:
        await self.traces.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- what the supervisor and the reload watcher call -------------------------------------
    def notice(self, key: str, kind: str, message: str) -> None:
        """A reload or error notice for the bot file `key`; shown in the page's trace panel."""
        bot = self._bots_by_key().get(key)
        self.traces.publish({"type": "notice", "kind": str(kind), "file": str(key),
                       "bot": bot.spec.name if bot is not None else None,
                       "message": str(message), "time": time.time()})

    # -- traces ------------------------------------------------------------------------------
    def _bots_by_key(self) -> dict:
        return dict(getattr(self.supervisor, "bots", {}) or {})

    def _sync(self) -> None:
        self.traces.sync()

    def _secrets(self) -> set:
        found: set = set()
        for bot in self._bots_by_key().values():
            spec = getattr(bot, "spec", None)
            found.update(getattr(spec, "secrets", ()) or ())
            for name in ("api_key", "token"):
                if spec is not None and isinstance(spec.livekit.get(name), str):
                    found.add(spec.livekit[name])
            server = getattr(bot, "server", None)
            if not getattr(server, "embedded", False):  # the dev server's "secret" is public and a word
                found.add(getattr(server, "api_secret", None))
        return {s for s in found if isinstance(s, str) and len(s) >= 3}

    # -- HTTP ----------------------------------------------------------------------------------
    def _allowed_hosts(self) -> set:
        return {f"127.0.0.1:{self.port}", f"localhost:{self.port}", f"[::1]:{self.port}"}

    @web.middleware
    async def _guard(self, request: web.Request, handler):
        self._waiting.discard(request.protocol)  # its headers came in time (site.BoundedSite)
        if not _is_loopback(request.remote):
            raise web.HTTPForbidden(text="the playground answers only on loopback\n")
        if request.headers.get("Host", "").strip().lower() not in self._allowed_hosts():
            raise web.HTTPForbidden(text="unexpected Host header (open the address lkrun printed)\n")
        if request.path.startswith("/api/"):
            site = request.headers.get("Sec-Fetch-Site")
            origin = request.headers.get("Origin")
            if (site and site not in ("same-origin", "none")) or (
                    origin and origin.lower() not in {f"http://{h}" for h in self._allowed_hosts()}):
                raise web.HTTPForbidden(text="cross-site requests are refused\n")
            if request.method not in ("GET", "HEAD") and not _secrets.compare_digest(
                    request.headers.get(CSRF_HEADER, ""), self.csrf):
                raise web.HTTPForbidden(text=f"missing or stale {CSRF_HEADER} (reload the page: lkrun was restarted)\n")
        return await handler(request)

    def _csp(self) -> str:
        """Scripts only from here; connections only to here and the bots' LiveKit servers."""
        origins = set()
        for bot in self._bots_by_key().values():
            url = getattr(getattr(bot, "server", None), "url", None) or ""
            match = re.match(r"^(wss?|https?)://([^/?#\s;]+)", url)
            if match:
                secure = match.group(1) in ("wss", "https")
                origins.add(f"{'wss' if secure else 'ws'}://{match.group(2)}")
                origins.add(f"{'https' if secure else 'http'}://{match.group(2)}")
        connect = " ".join(["'self'", *sorted(origins)])
        return (f"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                f"media-src 'self' blob:; connect-src {connect}; base-uri 'none'; form-action 'none'; "
                "frame-ancestors 'none'")

    async def _security_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
        response.headers.setdefault("Content-Security-Policy", self._csp())

    async def _index(self, request: web.Request) -> web.StreamResponse:
        if not self.built:
            html = HOWTO.replace("{command}", BUILD_COMMAND).replace(
                "{bundle}", "runner/playground/static/dist/playground.js")
            return web.Response(text=html, content_type="text/html", headers={"Cache-Control": "no-store"})
        return web.FileResponse(self.static_dir / "index.html", headers={"Cache-Control": "no-store"})

    def _listing(self) -> list[dict]:
        """The running bots, then the bot files that are not running (an error at start-up, or a
        new file in a watched folder that has one): ``running: false``, id = the file's name as
        lkrun knows it. The editor can open both; only running bots can be joined."""
        bots = self._bots_by_key()
        names = [b.spec.name for b in bots.values()]
        listing = []
        for key, bot in bots.items():
            spec = bot.spec
            bot_id = spec.name if names.count(spec.name) == 1 else f"{spec.name}@{key}"
            listing.append({"id": bot_id, "name": spec.name, "room": spec.room, "identity": spec.identity,
                            "file": str(key), "embedded": bool(getattr(bot.server, "embedded", False)),
                            "running": True, "_bot": bot})
        taken = {item["id"] for item in listing}
        for key in self._waiting_files(bots):
            listing.append({"id": key if key not in taken else f"file:{key}", "name": Path(key).name,
                            "room": None, "identity": None, "file": key, "embedded": False,
                            "running": False, "_bot": None})
        return listing

    def _waiting_files(self, bots: dict) -> list[str]:
        """Bot files lkrun was started with, or that are in the folders it watches, with no running
        bot. A file in a watched folder must really be in it (a symlink out of it is left alone)."""
        from runner.botfile.files import is_bot_file
        supervisor = self.supervisor
        key_for = getattr(supervisor, "key_for", None)
        found: dict[str, None] = {}
        candidates = [Path(f) for f in getattr(supervisor, "files", None) or ()]
        for folder in getattr(supervisor, "folders", None) or ():
            try:
                real = Path(folder).resolve()
                entries = sorted(Path(folder).iterdir())
            except OSError:
                continue
            candidates += [p for p in entries if _inside(p, real)]
        for path in candidates:
            try:
                if not is_bot_file(path) or not path.is_file():
                    continue
                key = key_for(path) if key_for is not None else str(path)
            except (OSError, RuntimeError):
                continue
            if key not in bots:
                found[key] = None
        return list(found)

    async def _bots(self, request: web.Request) -> web.Response:
        self._sync()
        listing = [{k: v for k, v in item.items() if k != "_bot"} for item in self._listing()]
        return web.json_response({"bots": listing, "built": self.built, "edit": self.edit, "csrf": self.csrf},
                                 headers={"Cache-Control": "no-store"})

    async def _session(self, request: web.Request) -> web.Response:
        from runner.connect.tokens import CredentialsError, person_token, resolve_credentials
        listing = self._listing()
        running = [i for i in listing if i["running"]]
        wanted = request.query.get("bot") or (running[0]["id"] if len(running) == 1 else "")
        item = next((i for i in listing if i["id"] == wanted), None)
        if item is not None and not item["running"]:
            return _error(409, f"{item['file']} is not running: fix its errors in the editor and save")
        if item is None:
            return _error(404, f"no running bot named '{wanted}'" if wanted else "which bot? (?bot=NAME)",
                          bots=[i["id"] for i in listing if i["running"]])
        bot = item["_bot"]
        spec, server = bot.spec, bot.server
        if server is None or not getattr(server, "url", None):
            return _error(503, f"bot '{spec.name}' has no LiveKit server yet")
        try:
            key, secret = resolve_credentials(spec.livekit.get("api_key") or getattr(server, "api_key", None),
                                              spec.livekit.get("api_secret") or getattr(server, "api_secret", None))
        except CredentialsError as exc:
            return _error(409, f"cannot mint a token for the page: {exc}")
        name = _clean_name(request.query.get("name")) or PERSON_NAME
        identity = f"playground-{_secrets.token_hex(3)}"
        token = person_token(key, secret, room=spec.room, identity=identity, name=name,
                             ttl_minutes=TOKEN_TTL_MINUTES)
        return web.json_response(
            {"url": server.url, "token": token, "room": spec.room, "identity": identity, "name": name,
             "bot": {"id": item["id"], "name": spec.name, "identity": spec.identity}},
            headers={"Cache-Control": "no-store"})

    async def _graph(self, request: web.Request) -> web.Response:
        """The picked bot's flow as Mermaid text (``lkrun graph``), the node it is in highlighted."""
        from runner.botfile.flow_graph import mermaid
        wanted = request.query.get("bot", "")
        item = next((i for i in self._listing() if i["id"] == wanted and i["running"]), None)
        if item is None:
            return _error(404, f"no running bot named '{wanted}'")
        bot = item["_bot"]
        flow = getattr(bot.spec, "flow", None)
        if flow is None:
            return web.json_response({"mermaid": None, "current": None}, headers={"Cache-Control": "no-store"})
        session = getattr(bot, "flow", None)  # runtime.flows.FlowSession: the node the bot is in
        current = getattr(session, "node", None)
        current = current if isinstance(current, str) else None
        return web.json_response({"mermaid": mermaid(flow, current=current), "current": current},
                                 headers={"Cache-Control": "no-store"})

    async def _metrics(self, request: web.Request) -> web.Response:
        from runner.runtime import metrics
        return web.Response(body=metrics.render(), headers={"Content-Type": metrics.CONTENT_TYPE,
                                                            "Cache-Control": "no-store"})


def _error(status: int, message: str, **extra) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status, headers={"Cache-Control": "no-store"})


def _inside(path: Path, folder: Path) -> bool:
    """``path`` (a folder entry) resolves to a file directly in ``folder``."""
    try:
        return path.resolve().parent == folder
    except (OSError, RuntimeError):
        return False


def _is_loopback(remote: str | None) -> bool:
    if not remote:
        return False
    try:
        address = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def _clean_name(value: str | None) -> str:
    """A display name from the page: printable, at most 40 characters."""
    if not value:
        return ""
    return "".join(ch for ch in value if ch.isprintable()).strip()[:40]

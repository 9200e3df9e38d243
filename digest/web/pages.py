"""What every route shares: the app's state, page rendering, forms, sign-in checks, errors.

Pages are Jinja2 templates from ``templates/web/`` (a ``web/`` folder in
``DIGEST_TEMPLATES`` overrides them file by file), autoescaped, with undefined
names as errors.  Each page gets ``request``, ``csrf`` (the session's token for
its forms), ``signed_in`` (whether anyone is), ``role`` and ``account`` (who),
``flashes`` (one-time messages) and ``site``.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2

try:
    import fcntl
except ImportError:  # not on Windows: a lock per process only
    fcntl = None  # type: ignore[assignment]
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digest import accounts, signins
from digest.api import Digest
from digest.app import App
from digest.config import DigestConfig
from digest.errors import ConfigError, DigestError
from digest.templating import builtin_templates_dir
from digest.tracking import HitRecorder
from digest.web.groupcommit import GroupCommit
from digest.web.lint import GMAIL_CLIP_BYTES
from digest.web.preview import PreviewCache
from digest.web.ratelimit import Backoff, RateLimiter
from digest.web.security import (
    CSRF_FIELD,
    CSRF_HEADER,
    AdminPassword,
    csrf_ok,
    csrf_token,
)
from digest.web.unsubscribes import unsubscribe_batch
from digest.web.watch import LiveConfig
from subscribers.errors import NotFound, SubscribersError

T = TypeVar("T")

#: How long an admin sign-in lasts.
ADMIN_SESSION_SECONDS = 12 * 60 * 60
#: Largest body of any request: the admin's CSV import (every other route takes less).
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
#: Largest form accepted by every form but the CSV import.
MAX_FORM_BYTES = 256 * 1024
#: Largest JSON body accepted by the API.
MAX_JSON_BYTES = 64 * 1024
#: Seconds a request body may pause between two pieces before it is given up (408).
BODY_TIMEOUT = 15.0
#: Bytes per second a body must average (beyond the first BODY_TIMEOUT seconds), so
#: that one byte every few seconds does not hold a request open for ever.
MIN_BODY_RATE = 50 * 1024


@dataclass
class WebOptions:
    """Knobs for one web app; the defaults suit production."""

    #: Serve /preview without signing in (``digest preview`` on the editor's machine).
    open_preview: bool = False
    #: Seconds between checks of the watched files while a preview is open.
    live_reload_poll: float = 0.5
    #: Seconds before an idle live-reload stream ends (the browser reconnects at once).
    live_reload_max: float = 300.0
    #: Seconds a rendered preview is reused (the page and its frames share one render).
    preview_ttl: float = 5.0
    #: Confirmation emails one address may be sent per hour, whoever asks.
    confirmations_per_hour: int = 3
    #: Failed sign-ins from one client IP before each further attempt must wait
    #: (2, 4, 8, … seconds, at most ``login_backoff_max``), correct password or not.
    login_free_failures: int = 5
    login_backoff_max: float = 15 * 60.0
    #: Seconds a request body may pause between two pieces (see BODY_TIMEOUT).
    body_timeout: float = BODY_TIMEOUT
    #: Seconds clicks and opens are gathered before they are written together (None:
    #: ``DIGEST_HIT_FLUSH_SECONDS``; 0: each is written as it comes).
    hit_flush_seconds: float | None = None


class WebState:
    """Everything the routes need, built once per web app."""

    def __init__(self, app: App, options: WebOptions) -> None:
        self.app = app
        #: The library's API over the same App (what routes call, in a worker thread).
        self.digest = Digest(app)
        self.options = options
        settings = app.settings
        self.secret = settings.secret_key.get_secret_value()
        password = settings.admin_password.get_secret_value() if settings.admin_password else ""
        self.admin: AdminPassword | None = (
            AdminPassword(password, self.secret) if password else None
        )
        self.config = LiveConfig(settings)
        self.subscribe_limit = RateLimiter(settings.subscribe_rate, 60.0)
        self.address_limit = RateLimiter(options.confirmations_per_hour, 3600.0)
        self.login_backoff = Backoff(options.login_free_failures, options.login_backoff_max)
        self.previews = PreviewCache(options.preview_ttl)
        self.env = page_environment(settings.templates)
        flush = options.hit_flush_seconds
        flush = settings.hit_flush_seconds if flush is None else flush
        #: Clicks and opens waiting to be written (None: written one by one).
        self.hits = HitRecorder(lambda: transaction(app), flush) if flush > 0 else None
        #: Unsubscribes, written together when they come in bursts.
        self.unsubscribes = GroupCommit(
            lambda: transaction(app), unsubscribe_batch, name="digest-unsubscribes"
        )

    @property
    def base_url(self) -> str:
        return self.app.settings.base_url.rstrip("/")

    def digest_config(self) -> DigestConfig:
        return self.config.get()


def page_environment(override: Path | None) -> jinja2.Environment:
    folders = []
    if override is not None and (Path(override) / "web").is_dir():
        folders.append(str(Path(override) / "web"))
    folders.append(str(builtin_templates_dir() / "web"))
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folders),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["GMAIL_CLIP_KB"] = GMAIL_CLIP_BYTES // 1024
    env.filters["kb"] = lambda n: f"{n / 1024:.1f}"
    return env


def state(request: Request) -> WebState:
    found = request.app.state.web
    assert isinstance(found, WebState)
    return found


# ---------------------------------------------------------------------------
# Errors a route raises; the app turns them into pages (or JSON under /api/)


class WebError(Exception):
    """An answer other than success: a status, a title and one clear sentence."""

    status = 400
    title = "Something is not right"

    def __init__(self, message: str, *, title: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if title is not None:
            self.title = title
        if status is not None:
            self.status = status


class SignInRequired(WebError):
    status = 401
    title = "Please sign in"


class RoleRequired(WebError):
    """Signed in, but the account's role does not open this page."""

    status = 403
    title = "Not for your role"


class AdminDisabled(WebError):
    status = 404
    title = "The admin console is switched off"


class CsrfFailed(WebError):
    status = 403
    title = "This form has expired"


class Limited(WebError):
    status = 429
    title = "Too many requests"

    def __init__(self, message: str, retry_after: str) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def status_for(exc: DigestError | SubscribersError) -> int:
    if isinstance(exc, NotFound):  # digest's NotFound is one too
        return 404
    if isinstance(exc, ConfigError):
        return 503
    return 400


def wants_json(request: Request) -> bool:
    return request.url.path.startswith(("/api/", "/webhooks/"))


# ---------------------------------------------------------------------------
# Sign-in


#: Where the sign-in token is kept in the (signed) session cookie.
SIGNIN_KEY = "signin"
#: Where :class:`SignInCheck` leaves the request's sign-in (a ``SignIn`` or None).
_SIGNIN_STATE = "digest_signin"
#: Where it notes whether the console is on (see :func:`console_on`).
_CONSOLE_STATE = "digest_console"
#: What ``digest preview`` (``open_preview``) serves without signing in.
_OPEN_PREVIEW_PATHS = ("/preview", "/api/preview")
#: Paths whose pages need to know whether the console is on.
_CONSOLE_PATHS = ("/admin", "/api", "/preview")


class SignInCheck:
    """ASGI middleware: looks the session cookie's sign-in token up in the database once
    per request (only when there is one), with its account's role, before any route runs
    or any body is read, so that :func:`signed_in` answers from memory.  Also notes
    whether the console is on (``DIGEST_ADMIN_PASSWORD`` set, or an account exists).
    Sits inside the session middleware."""

    def __init__(self, app: ASGIApp, web: WebState) -> None:
        self.app = app
        self.web = web

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            found: signins.SignIn | None = None
            token = scope.get("session", {}).get(SIGNIN_KEY)
            admin = self.web.admin
            bootstrap = admin.fingerprint if admin is not None else None
            if isinstance(token, str) and token:
                found = await run_in_threadpool(self._find, token, bootstrap)
            on = admin is not None or found is not None
            if not on and str(scope.get("path", "")).startswith(_CONSOLE_PATHS):
                on = await run_in_threadpool(self._accounts_exist)
            state_ = scope.setdefault("state", {})
            state_[_SIGNIN_STATE] = found
            state_[_CONSOLE_STATE] = on
        await self.app(scope, receive, send)

    def _find(self, token: str, bootstrap: str | None) -> signins.SignIn | None:
        with self.web.app.transaction() as session:
            return accounts.find_signin(session, token, bootstrap)

    def _accounts_exist(self) -> bool:
        with self.web.app.transaction() as session:
            return accounts.any_exists(session)


def signed_in(request: Request) -> signins.SignIn | None:
    """The request's sign-in (see :class:`SignInCheck`), or None.  Its ``account`` names
    who acts (an email address, or ``admin`` for the bootstrap admin); ``role`` is
    ``admin`` or ``editor``."""
    found = request.scope.get("state", {}).get(_SIGNIN_STATE)
    return found if isinstance(found, signins.SignIn) else None


def console_on(request: Request) -> bool:
    """Whether the console is switched on: ``DIGEST_ADMIN_PASSWORD`` is set or an account
    exists."""
    return state(request).admin is not None or bool(
        request.scope.get("state", {}).get(_CONSOLE_STATE)
    )


def is_admin(request: Request) -> bool:
    """Whether an account with the admin role is signed in."""
    found = signed_in(request)
    return found is not None and found.role == accounts.ADMIN


def is_editor(request: Request) -> bool:
    """Whether someone who may work on editions (an editor or an admin) is signed in."""
    found = signed_in(request)
    return found is not None and found.role in accounts.ROLES


def actor(request: Request) -> str:
    """Who acts, for the records (consent log, logs): the signed-in account and the
    client's address."""
    found = signed_in(request)
    who = found.account if found is not None else "nobody signed in"
    return f"{who} (admin console, {client_ip(request)})"


async def sign_in(request: Request, account: str, credential: str) -> None:
    """Start a sign-in for ``account`` in this browser (a new row and a fresh token;
    sessions made with an older credential are revoked on the way)."""
    agent = request.headers.get("user-agent", "")

    def work(session: Session) -> str:
        signins.revoke_stale(session, account, credential)
        return signins.start(
            session,
            account,
            credential,
            lifetime=timedelta(seconds=ADMIN_SESSION_SECONDS),
            ip=client_ip(request),
            user_agent=agent,
        )

    token = await in_session(request, work)
    request.session.clear()  # nothing from before the sign-in carries over
    request.session[SIGNIN_KEY] = token


async def sign_out(request: Request, *, everywhere: bool = False) -> int:
    """End this browser's sign-in (``everywhere``: every sign-in of its account) in the
    database, and forget it here; returns how many sessions were revoked."""
    token = request.session.get(SIGNIN_KEY)
    current = signed_in(request)

    def work(session: Session) -> int:
        if everywhere and current is not None:
            return signins.revoke_all(session, current.account)
        if isinstance(token, str) and token:
            return int(signins.revoke(session, token))
        return 0

    revoked = await in_session(request, work)
    request.session.clear()
    return revoked


def require_admin(request: Request) -> None:
    """Raise unless an account with the admin role is signed in (404 when the console is
    off, 401 when nobody is signed in, 403 for an editor)."""
    if not console_on(request):
        raise AdminDisabled(
            "Set DIGEST_ADMIN_PASSWORD (or add an account with `digest users add`) and "
            "restart the web app to switch the admin console on."
        )
    found = signed_in(request)
    if found is None:
        raise SignInRequired("Sign in to see this page.")
    if found.role != accounts.ADMIN:
        raise RoleRequired(
            "This page is for admins only: your account is an editor's, which opens the "
            "editions and the preview. Ask an admin if you need more."
        )


def require_editor(request: Request) -> None:
    """Raise unless an editor or an admin is signed in.  The preview is open in
    ``digest preview``; otherwise it is part of the admin console."""
    web = state(request)
    if web.options.open_preview and request.url.path.startswith(_OPEN_PREVIEW_PATHS):
        return  # `digest preview`: the preview only, never the console's pages
    if not console_on(request):
        raise AdminDisabled(
            "The preview is part of the admin console: set DIGEST_ADMIN_PASSWORD (or add an "
            "account with `digest users add`) and restart the web app, or run "
            "`digest preview` on your own machine."
        )
    if signed_in(request) is None:
        raise SignInRequired("Sign in to see this page.")
    if not is_editor(request):
        raise RoleRequired("This page is for editors and admins only.")


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


# ---------------------------------------------------------------------------
# Forms


class BodyTimeout(WebError):
    status = 408
    title = "Too slow"


def _body_timeout(request: Request) -> float:
    found = getattr(request.app.state, "web", None)
    return found.options.body_timeout if isinstance(found, WebState) else BODY_TIMEOUT


async def read_body(request: Request, limit: int, *, timeout: float | None = None) -> bytes | None:
    """The request body, read as it streams in; None once it passes ``limit`` bytes (a
    declared ``Content-Length`` above it is refused before anything is read).

    Each piece must come within ``timeout`` seconds (default: the app's body timeout),
    and the whole body within that plus its length (declared, else ``limit``) at
    :data:`MIN_BODY_RATE`; else :class:`BodyTimeout` (408).  A client that goes away
    midway raises starlette's ``ClientDisconnect``, which the app logs in one line.
    """
    length = request.headers.get("content-length", "")
    declared = int(length) if length.isascii() and length.isdigit() else None
    if declared is not None and declared > limit:
        return None
    wait = _body_timeout(request) if timeout is None else timeout
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait + (limit if declared is None else declared) / MIN_BODY_RATE
    body = bytearray()
    pieces = request.stream()
    try:
        while True:
            left = min(wait, deadline - loop.time())
            try:
                if left <= 0:
                    raise TimeoutError
                async with asyncio.timeout(left):
                    chunk = await anext(pieces)
            except StopAsyncIteration:
                break
            except TimeoutError:
                raise BodyTimeout(
                    "the request body arrived too slowly (it stopped for "
                    f"{wait:g} seconds, or took too long in all); send it again"
                ) from None
            body += chunk
            if len(body) > limit:
                return None
    finally:
        await pieces.aclose()
    return bytes(body)


def replay(body: bytes, receive: Receive | None = None) -> Receive:
    """An ASGI ``receive`` that gives ``body`` (read already) once, then what ``receive``
    gives (without one: that the client left)."""
    given = False

    async def again() -> Message:
        nonlocal given
        if given:
            return await receive() if receive is not None else {"type": "http.disconnect"}
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return again


async def read_form(
    request: Request, *, check_csrf: bool = True, limit: int = MAX_FORM_BYTES
) -> FormData:
    """The posted form (at most ``limit`` bytes, read with the body timeout), its CSRF
    token checked (403 when it is missing or wrong).  Routes that need a sign-in check
    it before calling this: nothing is read for a visitor who may not post."""
    length = request.headers.get("content-length", "")
    if not (length.isascii() and length.isdigit()):
        # A streamed (chunked) form could be any size: browsers always give a length.
        raise WebError("a form must be sent with a Content-Length", status=411)
    body = await read_body(request, limit)
    if body is None:
        raise WebError(f"the form is larger than {_size(limit)}", status=413)
    replayed = Request(request.scope, replay(body))
    parsed = await replayed.form(max_files=2, max_fields=500)
    items: list[tuple[str, str | UploadFile]] = []
    for key, value in parsed.multi_items():
        if isinstance(value, UploadFile):  # kept in memory, so the temporary file closes now
            data = await value.read(limit + 1)
            value = UploadFile(io.BytesIO(data), size=len(data), filename=value.filename)
        items.append((key, value))
    await parsed.close()
    form = FormData(items)
    if check_csrf:
        check_csrf_token(request, form.get(CSRF_FIELD))
    return form


async def read_json(request: Request, *, limit: int = MAX_JSON_BYTES) -> Any:
    """The posted JSON document: at most ``limit`` bytes, read with the body timeout.
    400 when it is not JSON (or nests beyond reason), 413 when larger, 415 when it is
    not sent as ``application/json``."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise WebError("send the body as JSON (Content-Type: application/json)", status=415)
    body = await read_body(request, limit)
    if body is None:
        raise WebError(f"the JSON body is larger than {_size(limit)}", status=413)
    try:
        return json.loads(body, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        where = (
            f" ({exc.msg} at line {exc.lineno} column {exc.colno})"
            if isinstance(exc, json.JSONDecodeError)
            else ""
        )
        raise WebError(f"the body is not JSON{where}") from None
    except RecursionError:
        raise WebError("the JSON body nests far too deeply") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _size(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MB" if limit >= 1024 * 1024 else f"{limit // 1024} KB"


def check_csrf_token(request: Request, sent: object) -> None:
    if not csrf_ok(request.session, sent):
        raise CsrfFailed(
            "The page this form came from is too old or was opened in another browser. "
            "Go back, reload the page and try again."
        )


def check_api_csrf(request: Request) -> None:
    check_csrf_token(request, request.headers.get(CSRF_HEADER))


def field(form: FormData, name: str, limit: int = 1000) -> str:
    """A text field, trimmed and capped at ``limit`` characters ("" when absent)."""
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def secret(form: FormData, name: str) -> str:
    """A password field exactly as typed: not trimmed, not capped ("" when absent)."""
    value = form.get(name)
    return value if isinstance(value, str) else ""


def fields(form: FormData, name: str, limit: int = 200) -> list[str]:
    return [v.strip()[:limit] for v in form.getlist(name) if isinstance(v, str) and v.strip()]


def flash(request: Request, message: str, level: str = "info") -> None:
    """A message for the next page this browser sees (kept in the session cookie)."""
    items = list(request.session.get("flash", []))[-3:]
    items.append([level, message[:300]])
    request.session["flash"] = items


# ---------------------------------------------------------------------------
# Running database work off the event loop


class SQLiteGate:
    """On SQLite, the web app's transactions one at a time, across its processes too.

    Every SQLite transaction begins with ``BEGIN IMMEDIATE`` (see :mod:`digest.db`), so
    they run one after another anyway.  A thread waiting in SQLite's busy handler sleeps
    1, 2, 5 … 100 ms between tries, and keeps losing to threads that come later: under a
    burst of unsubscribes, requests waited for hundreds of milliseconds.  Waiting here
    instead (a lock per process, and ``flock`` on ``DATABASE-web.lock`` between the
    workers of ``digest serve``) wakes the next one as soon as the last one ends.
    """

    def __init__(self, database: str | None) -> None:
        self._local = threading.Lock()
        shared = database and database != ":memory:" and fcntl is not None
        self._path = f"{database}-web.lock" if shared else None

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._local:
            if self._path is None:
                yield
                return
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # and the lock with it


_GATES: dict[str, SQLiteGate] = {}
_GATES_LOCK = threading.Lock()


def _gate(app: App) -> AbstractContextManager[None]:
    engine = app.engine
    if engine.dialect.name != "sqlite":
        return nullcontext()
    database = engine.url.database or ""
    with _GATES_LOCK:
        gate = _GATES.get(database)
        if gate is None:
            gate = _GATES[database] = SQLiteGate(database)
    return gate()


@contextmanager
def transaction(app: App) -> Iterator[Session]:
    """``app.transaction()``, queued behind the web app's other transactions on SQLite."""
    with _gate(app), app.transaction() as session:
        yield session


async def in_session(request: Request, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``work(session, *args, **kwargs)`` in one transaction, in a worker thread."""
    app = state(request).app

    def run() -> T:
        session: Session
        with transaction(app) as session:
            return work(session, *args, **kwargs)

    return await run_in_threadpool(run)


# ---------------------------------------------------------------------------
# Rendering


class LazyCsrf:
    """The session's CSRF token, made when a page prints it (``{{ csrf }}``): a page
    without a form neither creates a session nor sets a cookie (a one-click
    unsubscribe's answer, an archive page)."""

    __slots__ = ("_session",)

    def __init__(self, session: MutableMapping[str, Any]) -> None:
        self._session = session

    def __str__(self) -> str:
        return csrf_token(self._session)

    def __html__(self) -> str:
        return str(self)


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    web = state(request)
    try:
        config: DigestConfig | None = web.digest_config()
    except DigestError:
        config = None
    newsletters = list(config.newsletters.values()) if config else []
    site = newsletters[0].title if len(newsletters) == 1 else "Newsletters"
    who = signed_in(request)
    flashes = request.session.pop("flash", []) if "flash" in request.session else []
    values = {
        "when": _clock(config),
        "request": request,
        "csrf": LazyCsrf(request.session),
        "signed_in": signed_in(request) is not None,
        "role": who.role if who is not None else "",
        "account": who.account if who is not None else "",
        "admin_enabled": console_on(request),
        "open_preview": web.options.open_preview,
        "flashes": flashes,
        "site": site,
        "lang": _lang(newsletters),
        **(context or {}),
    }
    html = web.env.get_template(template).render(values)
    response = HTMLResponse(html, status_code=status, headers=dict(headers or {}))
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def admin_zone(config: DigestConfig | None, newsletter: str | None = None) -> ZoneInfo:
    """The time zone admin pages show times in: ``newsletter``'s, else the first
    newsletter's (the site's), else UTC."""
    newsletters = config.newsletters if config else {}
    chosen = newsletters.get(newsletter or "") or next(iter(newsletters.values()), None)
    try:
        return ZoneInfo(chosen.timezone) if chosen else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def format_when(value: datetime | str | None, zone: ZoneInfo) -> str:
    """A stored time (an aware datetime, or ISO text) in ``zone``, to the minute, with the
    zone's abbreviation: ``2026-11-23 09:05 CET``; "—" for none."""
    if value is None or value == "":
        return "—"
    moment: datetime
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
    else:
        moment = value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def _clock(config: DigestConfig | None) -> Callable[..., str]:
    """``when(value, newsletter=None)`` for templates (see :func:`format_when`)."""

    def when(value: datetime | str | None, newsletter: str | None = None) -> str:
        return format_when(value, admin_zone(config, newsletter))

    return when


def _lang(newsletters: list[Any]) -> str:
    if not newsletters:
        return "en"
    return str(newsletters[0].locale).split("_")[0]


def error_page(request: Request, status: int, title: str, message: str) -> Response:
    if wants_json(request):
        return JSONResponse({"error": message}, status_code=status)
    headers = {}
    template = "error.html.j2"
    context: dict[str, Any] = {"title": title, "message": message, "status": status}
    if status == 401:
        template = "admin/login.html.j2"
        context.update(next=_next_path(request), error=None)
        headers["WWW-Authenticate"] = 'Form realm="digest admin"'
    return render(request, template, context, status=status, headers=headers)


def _next_path(request: Request) -> str:
    path = request.url.path
    if request.url.query and request.method == "GET":
        path += "?" + request.url.query
    return safe_next(path)


def safe_next(value: str | None) -> str:
    """A local path to return to after signing in (never another site)."""
    if (
        value
        and value.startswith("/")
        and not value.startswith("//")
        and "\\" not in value
        and value.startswith(("/admin", "/preview"))
    ):
        return value
    return "/admin"


__all__ = [
    "MAX_FORM_BYTES",
    "MAX_JSON_BYTES",
    "MAX_UPLOAD_BYTES",
    "SIGNIN_KEY",
    "AdminDisabled",
    "BodyTimeout",
    "CsrfFailed",
    "Limited",
    "RoleRequired",
    "SignInCheck",
    "SignInRequired",
    "WebError",
    "WebOptions",
    "WebState",
    "actor",
    "admin_zone",
    "check_api_csrf",
    "client_ip",
    "console_on",
    "error_page",
    "field",
    "fields",
    "flash",
    "format_when",
    "in_session",
    "is_admin",
    "is_editor",
    "read_body",
    "read_form",
    "read_json",
    "render",
    "replay",
    "require_admin",
    "require_editor",
    "safe_next",
    "secret",
    "sign_in",
    "sign_out",
    "signed_in",
    "state",
]

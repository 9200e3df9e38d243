"""The web application (FastAPI on Starlette): one ASGI app in four areas.

* public pages at ``DIGEST_BASE_URL`` (:mod:`~digest.web.public`,
  :mod:`~digest.web.archive`): subscribe with double opt-in, confirm, one-click
  unsubscribe, preferences, the web version of each edition, archives with Atom feeds;
* the editor's preview with live reload (:mod:`~digest.web.editor`);
* the admin console at ``/admin`` (:mod:`~digest.web.admin`; an edition still in the
  editors' hands opens on the editor's desk, :mod:`~digest.web.desk`) and its JSON endpoints
  at ``/api`` (:mod:`~digest.web.api`, OpenAPI schema at ``/api/openapi.json`` for
  signed-in admins);
* the SendGrid Event Webhook at ``/webhooks/sendgrid`` (:mod:`~digest.web.webhooks`).

Serve it with ``digest serve`` (uvicorn), or uvicorn's factory mode:
``uvicorn --factory digest.web:main --host 127.0.0.1 --port 8000``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

from fastapi import FastAPI
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DataError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.staticfiles import StaticFiles
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from digest import __version__
from digest.app import App
from digest.config import DEVELOPMENT_SECRET_KEY, Settings
from digest.errors import ConfigError, DigestError
from digest.web import (
    admin,
    admin_embed,
    admin_suppressions,
    admin_users,
    admin_workers,
    api,
    archive,
    desk,
    editor,
    public,
    webhooks,
)
from digest.web import tracking as tracking_links
from digest.web.pages import (
    ADMIN_SESSION_SECONDS,
    MAX_UPLOAD_BYTES,
    Limited,
    SignInCheck,
    WebError,
    WebOptions,
    WebState,
    error_page,
    status_for,
    wants_json,
)
from digest.web.security import (
    BodyGuard,
    BodyTooLarge,
    SecurityHeaders,
    add_security_headers,
    derive_key,
)
from subscribers.errors import SubscribersError

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
SESSION_COOKIE = "digest_session"
_TITLES = {404: "Page not found", 405: "Not allowed", 413: "Too large"}


def create_app(
    app: App, *, open_preview: bool = False, options: WebOptions | None = None
) -> FastAPI:
    """The ASGI application for one :class:`~digest.app.App` (its settings and database).

    ``open_preview`` serves ``/preview`` without signing in (``digest preview`` does
    that on the editor's own machine); ``options`` tunes the rest (see WebOptions).
    Refuses (ConfigError) settings it must not serve with (see :func:`check_settings`).
    """
    check_settings(app.settings)
    options = replace(options or WebOptions())
    options.open_preview = options.open_preview or open_preview

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if state.hits is not None:  # the clicks and opens still queued, before the end
            await run_in_threadpool(state.hits.close)

    web = FastAPI(
        lifespan=lifespan,
        title="digest",
        version=__version__,
        description="JSON endpoints of digest's web app (the pages are HTML).",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served by digest.web.api to signed-in admins only
    )
    web.state.app = app
    web.state.web = state = WebState(app, options)
    modules = (
        public,
        tracking_links,
        archive,
        editor,
        desk,
        admin,
        admin_embed,
        admin_suppressions,
        admin_users,
        admin_workers,
        api,
    )
    for module in modules:
        web.include_router(module.router)
    web.router.routes.extend(webhooks.routes(app))
    web.mount("/static", StaticFiles(directory=STATIC), name="static")
    settings = app.settings
    https = settings.base_url.lower().startswith("https://")
    _handle_errors(web, hsts=https)
    # Innermost first: each add_middleware wraps what was added before it.
    web.add_middleware(SignInCheck, web=state)  # after the cookie is read, before routes
    web.add_middleware(
        SessionMiddleware,
        secret_key=derive_key(state.secret, "digest.web.session"),
        session_cookie=SESSION_COOKIE,
        max_age=ADMIN_SESSION_SECONDS,
        same_site="lax",
        https_only=https,
    )
    web.add_middleware(public.FastOneClick, web=state)  # one-click posts end here
    web.add_middleware(BodyGuard, max_bytes=MAX_UPLOAD_BYTES)
    web.add_middleware(tracking_links.FastClicks, web=state)  # most clicks end here
    web.add_middleware(SecurityHeaders, hsts=https)
    if settings.trusted_proxies:  # X-Forwarded-For from these only (uvicorn's own is off)
        web.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    return web


def check_settings(settings: Settings) -> None:
    """Refuse to serve a public (https) address with the development secret key: it
    signs the admin's cookie and every reader's unsubscribe and preferences link, and
    anyone can read it in digest's source.  (On http, a developer's machine, it is fine.)"""
    public = settings.base_url.strip().lower().startswith("https://")
    if public and settings.secret_key.get_secret_value() == DEVELOPMENT_SECRET_KEY:
        raise ConfigError(
            f"DIGEST_SECRET_KEY is the development default but DIGEST_BASE_URL is "
            f"{settings.base_url}, a public address: anyone could forge sign-ins and readers' "
            "links. Set DIGEST_SECRET_KEY to a long random value (e.g. the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`), the same for "
            "every digest process"
        )


def _handle_errors(web: FastAPI, *, hsts: bool) -> None:
    async def web_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, WebError)
        response = error_page(request, exc.status, exc.title, exc.message)
        if isinstance(exc, Limited):
            response.headers["Retry-After"] = exc.retry_after
        return response

    async def domain_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, DigestError | SubscribersError)
        status = status_for(exc)
        title = {404: "Not found", 503: "Not available"}.get(status, "That did not work")
        return error_page(request, status, title, str(exc))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if wants_json(request):
            response = error_page(request, exc.status_code, "", str(exc.detail))
        else:
            title = _TITLES.get(exc.status_code, "Something is not right")
            message = "There is nothing at this address." if exc.status_code == 404 else title
            response = error_page(request, exc.status_code, title, message)
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    async def invalid_request(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        if wants_json(request):
            return await request_validation_exception_handler(request, exc)
        return error_page(request, 404, "Page not found", "There is nothing at this address.")

    async def bad_data(request: Request, exc: Exception) -> Response:
        log.info("refused a request the database could not store: %s", exc.__class__.__name__)
        return error_page(
            request,
            400,
            "That did not work",
            "the input holds characters or values the database cannot store",
        )

    async def too_large(request: Request, exc: Exception) -> Response:
        return error_page(request, 413, "Too large", str(exc))

    async def client_left(request: Request, exc: Exception) -> Response:
        # One line, no traceback: a client that gave up midway is no fault of ours.
        log.info(
            "%s %s: the client went away while sending the body (%s)",
            request.method,
            request.url.path,
            request.client.host if request.client else "unknown",
        )
        return Response(status_code=400)  # nobody is listening any more

    async def server_error(request: Request, exc: Exception) -> Response:
        # Starlette sends this outside every middleware: it carries the headers itself.
        message = (
            "Something went wrong on our side. Try again later; if it keeps happening, "
            "tell the site's owner."
        )
        try:
            response = error_page(request, 500, "Something went wrong", message)
        except Exception:  # the page itself cannot be made (no session, no templates)
            response = PlainTextResponse(message, status_code=500)
        add_security_headers(response.headers, hsts=hsts)
        return response

    web.add_exception_handler(BodyTooLarge, too_large)
    web.add_exception_handler(ClientDisconnect, client_left)
    web.add_exception_handler(Exception, server_error)
    web.add_exception_handler(WebError, web_error)
    web.add_exception_handler(DigestError, domain_error)
    web.add_exception_handler(SubscribersError, domain_error)
    web.add_exception_handler(HTTPException, http_error)
    web.add_exception_handler(RequestValidationError, invalid_request)
    web.add_exception_handler(DataError, bad_data)


def main() -> FastAPI:
    """The application with settings from the environment and ``.env``."""
    return create_app(App())


__all__ = ["WebOptions", "check_settings", "create_app", "main"]

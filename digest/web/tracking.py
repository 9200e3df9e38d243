"""Tracked links and the open pixel (see :mod:`digest.tracking`).

``GET /r/{reader}/{link}`` records a click and answers 302 to the article; ``GET
/o/{reader}`` records an open and answers a 1x1 GIF (a ``HEAD`` records nothing).  Both
queue the hit on the app's :class:`~digest.tracking.HitRecorder` (written in batches,
and at shutdown) unless ``DIGEST_HIT_FLUSH_SECONDS`` is 0.  A
token that does not verify, or a link of another edition than the reader's token names,
gets the 404 page: never a redirect.  A click that cannot be recorded (the database busy
beyond its timeout) still leads to the article, and is logged.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from digest import tracking
from digest.errors import DigestError
from digest.web.pages import WebError, WebState, in_session, state

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)

_NO_STORE = {"Cache-Control": "no-store, private", "Referrer-Policy": "no-referrer"}


def _not_found() -> WebError:
    return WebError(
        "This link does not work: it is damaged or was not issued by us. Copy the whole "
        "link from the email, or find the article on the newsletter's site.",
        title="This link does not work",
        status=404,
    )


@router.api_route("/r/{reader}/{link}", methods=["GET", "HEAD"])
async def click(request: Request, reader: str, link: str) -> Response:
    secret = state(request).secret
    try:
        edition_id, subscriber_id = tracking.read_reader(secret, reader)
        link_id = tracking.read_link(secret, link)
    except tracking.BadTrackingToken:
        raise _not_found() from None

    record = request.method == "GET"  # a HEAD (a link checker) leads on, counting nothing
    hits = state(request).hits
    if hits is not None:  # queued, written with others (see digest.tracking)
        target = tracking.LINKS.cached(link_id)
        if target is None:
            target = await in_session(request, tracking.link_target, link_id)
        if target is None or target.edition_id != edition_id:
            raise _not_found()
        if record:
            hits.add(tracking.CLICK, edition_id, subscriber_id, link_id)
        return RedirectResponse(target.url, status_code=302, headers=_NO_STORE)

    def work(session: Session) -> str | None:
        target = tracking.link_target(session, link_id)
        if target is None or target.edition_id != edition_id:
            return None
        if record:
            tracking.record_hit(session, tracking.CLICK, edition_id, subscriber_id, link_id)
        return target.url

    try:
        url = await in_session(request, work)
    except (SQLAlchemyError, DigestError) as exc:  # the reader still gets the article
        log.warning("click on link %s not recorded: %s", link_id, exc)
        url = await in_session(request, lambda s: _url(s, link_id, edition_id))
    if url is None:
        raise _not_found()
    return RedirectResponse(url, status_code=302, headers=_NO_STORE)


def _url(session: Session, link_id: int, edition_id: int) -> str | None:
    target = tracking.link_target(session, link_id)
    return target.url if target is not None and target.edition_id == edition_id else None


@router.api_route("/o/{reader}", methods=["GET", "HEAD"])
async def pixel(request: Request, reader: str) -> Response:
    try:
        edition_id, subscriber_id = tracking.read_reader(state(request).secret, reader)
    except tracking.BadTrackingToken:
        raise _not_found() from None
    hits = state(request).hits
    try:
        if request.method == "GET" and hits is not None:
            hits.add(tracking.OPEN, edition_id, subscriber_id)
        elif request.method == "GET":
            await in_session(request, tracking.record_hit, tracking.OPEN, edition_id, subscriber_id)
    except (SQLAlchemyError, DigestError) as exc:
        log.warning("open of edition %s not recorded: %s", edition_id, exc)
    return Response(tracking.PIXEL, media_type="image/gif", headers=_NO_STORE)


class FastClicks:
    """ASGI middleware answering the usual click and open before the framework's stack.

    After a big send, nearly every request is a ``GET /r/…`` of a link read before:
    both tokens verify, the link is in :data:`digest.tracking.LINKS`, and the hit is
    queued (never written while the reader waits).  Such a request needs neither the
    session cookie, nor sign-in checks, nor routing and dependency solving, which cost
    more than the click itself; this answers it directly, exactly as the routes above
    would.  Anything else (a bad token, a link not cached yet, hits written one by one)
    goes on to the routes.  Goes inside :class:`~digest.web.security.SecurityHeaders`.
    """

    def __init__(self, app: ASGIApp, *, web: WebState) -> None:
        self.app = app
        self.web = web

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = self._answer(scope) if scope["type"] == "http" else None
        if answer is None:
            await self.app(scope, receive, send)
        else:
            await answer(scope, receive, send)

    def _answer(self, scope: Scope) -> Response | None:
        hits = self.web.hits
        method = scope["method"]
        if hits is None or method not in ("GET", "HEAD"):
            return None
        path: str = scope["path"]
        parts = path.split("/")
        try:
            if len(parts) == 4 and parts[1] == "r":
                edition_id, subscriber_id = tracking.read_reader(self.web.secret, parts[2])
                link_id = tracking.read_link(self.web.secret, parts[3])
                target = tracking.LINKS.cached(link_id)
                if target is None or target.edition_id != edition_id:
                    return None
                if method == "GET":
                    hits.add(tracking.CLICK, edition_id, subscriber_id, link_id)
                return RedirectResponse(target.url, status_code=302, headers=_NO_STORE)
            if len(parts) == 3 and parts[1] == "o":
                edition_id, subscriber_id = tracking.read_reader(self.web.secret, parts[2])
                if method == "GET":
                    hits.add(tracking.OPEN, edition_id, subscriber_id)
                return Response(tracking.PIXEL, media_type="image/gif", headers=_NO_STORE)
        except tracking.BadTrackingToken:
            return None
        return None


__all__ = ["FastClicks", "router"]

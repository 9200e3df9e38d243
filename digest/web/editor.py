"""The editor's preview pages: ``/preview`` and its frames, live reload, test copies.

``/preview?newsletter=N&as_of=YYYY-MM-DD&variant=KEY`` shows the variant at desktop
and mobile widths and in dark mode side by side (iframes of ``/preview/frame``, each
served with a CSP that allows the email's inline styles but no script, and
framing by this site only), the plain-text twin, subject, preheader, the size
against Gmail's clip and the checks of :mod:`digest.web.lint`.

Live reload: the page opens ``/preview/events`` (Server-Sent Events) with the
signature of the files it was rendered from; the server polls the templates and
``digest.toml`` (:func:`digest.web.watch.signature`) every half second and sends
``change`` as soon as one is saved, and the page's small script reloads it.  Without
JavaScript the page simply does not refresh by itself.

The preview is part of the admin console (sign in first); ``digest preview`` serves
it open on the editor's own machine.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter
from markupsafe import escape
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from digest.config import NewsletterConfig
from digest.delivery.registry import BackendChoice, resolve_backend
from digest.editions import PeriodChoice, Purpose, choose_period
from digest.errors import DigestError
from digest.queries import list_editions
from digest.sendtest import send_test
from digest.web.pages import (
    WebError,
    actor,
    field,
    flash,
    in_session,
    read_form,
    render,
    require_editor,
    state,
)
from digest.web.preview import ALL, Preview, build_preview, force_dark, framed
from digest.web.security import EMAIL_CSP
from digest.web.watch import signature

router = APIRouter(include_in_schema=False)

#: Most addresses one test send may go to.
MAX_TEST_ADDRESSES = 10
#: Seconds between keep-alive comments on an idle live-reload stream.
PING_SECONDS = 15.0
EARLIEST, LATEST = date(1971, 1, 1), date(9998, 12, 31)
_SIGNATURE = re.compile(r"[0-9a-f]{1,64}")


def pick_newsletter(request: Request, name: str | None) -> NewsletterConfig:
    config = state(request).digest_config()
    if not name:
        return next(iter(config.newsletters.values()))
    found = config.newsletters.get(name)
    if found is None:
        known = ", ".join(config.newsletters)
        raise WebError(
            f"There is no newsletter called {name!r} (newsletters: {known}).",
            title="Not found",
            status=404,
        )
    return found


def parse_day(value: str | None, nl: NewsletterConfig) -> date:
    """``as_of`` as a date (YYYY-MM-DD); when absent, the day of the next scheduled send
    (whose edition is the one an editor looks at, see :func:`period_shown`)."""
    if not value:
        return period_shown(nl, None).as_of.astimezone(nl.zone).date()
    text = value.strip()
    try:
        if len(text) == 10:
            return check_day(date.fromisoformat(text))
    except ValueError:
        pass
    raise WebError(
        f"{text[:40]!r} is not a date; use YYYY-MM-DD, e.g. 2026-11-23.",
        title="Not a date",
        status=400,
    )


def check_day(day: date) -> date:
    """``day`` if it is a date the calendar maths can work with (1971 to 9998)."""
    if not EARLIEST <= day <= LATEST:
        raise WebError(
            f"{day.isoformat()} is out of range; pick a date between {EARLIEST} and {LATEST}.",
            title="Not a date",
            status=400,
        )
    return day


def as_of_time(day: date, nl: NewsletterConfig) -> datetime:
    """Midnight starting ``day`` in the newsletter's timezone (the CLI's ``--as-of DATE``)."""
    return datetime.combine(day, time(0), tzinfo=nl.zone)


def period_shown(nl: NewsletterConfig, day: date | None) -> PeriodChoice:
    """The period the preview shows, and why: the one before the send date picked, or
    (none picked) the edition the next scheduled run will send."""
    return choose_period(
        nl,
        as_of=as_of_time(day, nl) if day is not None else None,
        purpose=Purpose.PREVIEW,
        now=datetime.now(UTC),
        given_as="the send date picked",
    )


async def get_preview(
    request: Request, nl: NewsletterConfig, day: date, variant: str, sig: str | None = None
) -> Preview:
    """The preview, rendered once for the page, its frames and the API (see PreviewCache).
    ``sig``: the templates' signature when the caller has it already."""
    web = state(request)
    if sig is None:
        sig = await run_in_threadpool(signature, web.app.settings)
    key = (nl.name, day.isoformat(), variant, sig)
    found = web.previews.get(key)
    if found is None:
        found = await run_in_threadpool(build_preview, web.app, nl, as_of_time(day, nl), variant)
        web.previews.put(key, found)
    return found


def _query(nl: NewsletterConfig, day: date, variant: str, **extra: str) -> str:
    return urlencode({"newsletter": nl.name, "as_of": day.isoformat(), "variant": variant, **extra})


def _recent_editions(session: Session, nl: NewsletterConfig) -> list[dict[str, Any]]:
    rows = list_editions(session, nl.name, limit=12)
    return [
        {
            "period": e.period,
            "status": str(e.status),
            "as_of": e.period_end.astimezone(nl.zone).date().isoformat(),
        }
        for e in rows
    ]


@router.get("/preview")
async def preview_page(request: Request) -> Response:
    require_editor(request)
    web = state(request)
    params = request.query_params
    sig = await run_in_threadpool(signature, web.app.settings)
    context: dict[str, Any] = {
        "events_url": "/preview/events?" + urlencode({"since": sig}),
        "problem": None,
        "preview": None,
    }
    try:
        nl = pick_newsletter(request, params.get("newsletter"))
        picked = params.get("as_of")
        shown = period_shown(nl, parse_day(picked, nl) if picked else None)
        day = shown.as_of.astimezone(nl.zone).date()
        variant = (params.get("variant") or ALL)[:100]
        context.update(
            period_choice=shown,
            newsletter=nl,
            newsletters=list(web.digest_config().newsletters.values()),
            day=day,
            variant=variant,
            editions=await in_session(request, _recent_editions, nl),
        )
        preview = await get_preview(request, nl, day, variant, sig)
    except (DigestError, WebError) as exc:
        # The page stays up (and keeps live-reloading) so fixing the template shows at once.
        context["problem"] = getattr(exc, "message", None) or str(exc)
        context.setdefault("newsletter", None)
        return render(request, "preview.html.j2", context)
    frame = "/preview/frame?" + _query(nl, day, variant)
    context.update(
        preview=preview,
        frame_light=frame + "&mode=light",
        frame_dark=frame + "&mode=dark",
        max_test_addresses=MAX_TEST_ADDRESSES,
    )
    return render(request, "preview.html.j2", context)


@router.get("/preview/frame")
async def preview_frame(request: Request) -> Response:
    require_editor(request)
    params = request.query_params
    headers = {"Content-Security-Policy": EMAIL_CSP, "Cache-Control": "no-store"}
    try:
        nl = pick_newsletter(request, params.get("newsletter"))
        day = parse_day(params.get("as_of"), nl)
        preview = await get_preview(request, nl, day, (params.get("variant") or ALL)[:100])
    except (DigestError, WebError) as exc:
        message = getattr(exc, "message", None) or str(exc)
        body = f'<!doctype html><html lang="en"><body><p>{escape(message)}</p></body></html>'
        return HTMLResponse(body, headers=headers)
    html = preview.html if params.get("mode") != "dark" else force_dark(preview.html)
    return HTMLResponse(framed(html), headers=headers)


@router.get("/preview/events")
async def preview_events(request: Request) -> Response:
    require_editor(request)
    web = state(request)
    since = request.query_params.get("since", "")
    since = since if _SIGNATURE.fullmatch(since) else ""
    settings = web.app.settings
    poll, limit = web.options.live_reload_poll, web.options.live_reload_max

    async def stream() -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        started = last_ping = loop.time()
        yield "retry: 1000\n\n"
        seen = since or await run_in_threadpool(signature, settings)
        while True:
            now_sig = await run_in_threadpool(signature, settings)
            if now_sig != seen:
                yield f"event: change\ndata: {now_sig}\n\n"
                return
            now = loop.time()
            if now - started >= limit:
                return
            if now - last_ping >= PING_SECONDS:
                last_ping = now
                yield ": still watching\n\n"
            await asyncio.sleep(poll)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def split_addresses(text: str) -> list[str]:
    return [a for a in re.split(r"[\s,;]+", text) if a]


@router.post("/preview/send-test")
async def preview_send_test(request: Request) -> Response:
    require_editor(request)
    form = await read_form(request)
    nl = pick_newsletter(request, field(form, "newsletter", 100))
    day = parse_day(field(form, "as_of", 20), nl)
    variant = field(form, "variant", 100) or ALL
    back = "/preview?" + _query(nl, day, variant)
    addresses = split_addresses(field(form, "to", 4000))
    if not addresses:
        flash(request, "Type at least one address to send a test copy to.", "error")
        return RedirectResponse(back, status_code=303)
    if len(addresses) > MAX_TEST_ADDRESSES:
        flash(request, f"Send a test to at most {MAX_TEST_ADDRESSES} addresses at once.", "error")
        return RedirectResponse(back, status_code=303)
    app = state(request).app
    choice: BackendChoice | None = None
    try:
        choice = resolve_backend(app.settings)
        preview = await get_preview(request, nl, day, variant)
        chosen = preview.variant
        which = (
            chosen.sections[0] if chosen.key != ALL and len(chosen.sections) == 1 else chosen.key
        )
        sent = await run_in_threadpool(
            send_test, app, nl, addresses, as_of_time(day, nl), variant=which, backend=choice
        )
    except DigestError as exc:
        through = f" (backend {choice})" if choice is not None else ""
        flash(request, f"The test copy was not sent{through}: {exc}", "error")
        return RedirectResponse(back, status_code=303)
    logging.getLogger("digest.audit").info(
        "%s sent a test copy of %s (%s, %s) to %d addresses",
        actor(request),
        nl.name,
        day,
        which,
        len(addresses),
    )
    flash(request, sent.summary(), "success" if sent.emailed else "info")
    return RedirectResponse(back, status_code=303)


__all__ = [
    "as_of_time",
    "check_day",
    "get_preview",
    "parse_day",
    "period_shown",
    "pick_newsletter",
    "router",
]

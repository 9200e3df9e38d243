"""The editor's desk in the admin: an edition's page, where a draft is edited, tested,
approved and sent, and a send is watched, paused, resumed or cancelled.

``/admin/editions/{id}`` shows, for an edition still in the editors' hands (draft,
approved, going out, paused), the email as readers will get it (desktop, mobile and
dark frames and the plain text, per variant: the preview's own rendering) beside its
articles by section, with a form for each thing an editor does.  Every form works
without JavaScript (post, then back to the page, the preview rendered afresh); each
carries the session's CSRF token.  With JavaScript, the page listens to
``/admin/editions/{id}/events`` (server-sent events): ``progress`` updates the send's
numbers in place, ``change`` (someone else edited the draft, or a template was saved)
reloads it.

Sending asks first: ``/admin/editions/{id}/send`` names the list, the segment and the
number of readers, and says when the older-edition rule refuses it.  A send started
here runs in a thread of the web app (:class:`Sends`), through the one Sender.

Everything goes through :mod:`digest.desk`, as `digest editions …` does; the actor
recorded is the sign-in's account.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Path
from markupsafe import escape
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from digest import desk
from digest.app import App
from digest.collect import period_for
from digest.config import NewsletterConfig
from digest.errors import DigestError, NotFound
from digest.models import Edition, EditionStatus, RunOutcome
from digest.sender import Sender
from digest.templating.notes import MAX_NOTE_CHARS
from digest.web.editor import MAX_TEST_ADDRESSES, split_addresses
from digest.web.pages import (
    WebError,
    field,
    flash,
    in_session,
    read_form,
    render,
    require_editor,
    signed_in,
    state,
)
from digest.web.preview import ALL, Preview, build_preview, force_dark, framed
from digest.web.security import EMAIL_CSP
from digest.web.watch import signature
from subscribers import segments as subscribers_segments
from subscribers.db import MAX_ID

log = logging.getLogger(__name__)

router = APIRouter(prefix="/admin/editions", include_in_schema=False)

Id = Annotated[int, Path(ge=1, le=MAX_ID)]
#: Statuses the desk page (rather than the sent edition's statistics) is shown for.
ON_THE_DESK = frozenset(
    {
        EditionStatus.DRAFT,
        EditionStatus.APPROVED,
        EditionStatus.PLANNED,
        EditionStatus.SENDING,
        EditionStatus.PAUSED,
    }
)
#: Seconds between looks at the ledger while a progress stream is open.
PROGRESS_POLL = 0.5
_DATETIME_LOCAL = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$")


def actor(request: Request) -> str:
    """Who acts: the sign-in's account (``admin`` until per-person accounts exist)."""
    found = signed_in(request)
    return found.account if found is not None else "admin"


# ---------------------------------------------------------------------------
# Sends started from the browser


class Sends:
    """Sends (and resumed sends) running in threads of this web app, one per edition."""

    def __init__(self) -> None:
        self._threads: dict[int, threading.Thread] = {}
        self._lock = threading.Lock()

    def running(self, edition_id: int) -> bool:
        with self._lock:
            thread = self._threads.get(edition_id)
            return thread is not None and thread.is_alive()

    def start(self, edition_id: int, work: Callable[[], Any]) -> bool:
        """Run ``work`` in a thread unless one runs for the edition already."""
        with self._lock:
            current = self._threads.get(edition_id)
            if current is not None and current.is_alive():
                return False

            def run() -> None:
                try:
                    work()
                except DigestError as exc:
                    log.warning(
                        "edition %s: the send started on the desk stopped: %s", edition_id, exc
                    )
                except Exception:
                    log.exception("edition %s: the send started on the desk failed", edition_id)

            thread = threading.Thread(target=run, name=f"desk-send-{edition_id}", daemon=True)
            self._threads[edition_id] = thread
            thread.start()
            return True

    def join(self, timeout: float | None = None) -> None:
        """Wait for every send started here (tests; shutdown)."""
        with self._lock:
            threads = list(self._threads.values())
        for thread in threads:
            thread.join(timeout)


def sends(request: Request) -> Sends:
    found = getattr(request.app.state, "desk_sends", None)
    if found is None:
        found = request.app.state.desk_sends = Sends()
    assert isinstance(found, Sends)
    return found


# ---------------------------------------------------------------------------
# Loading


def _edition(session: Session, edition_id: int) -> Edition:
    edition = session.get(Edition, edition_id)
    if edition is None:
        raise NotFound(f"no edition with id {edition_id}")
    return edition


def _stamp(session: Session, edition_id: int) -> tuple[str, str, str]:
    """(newsletter, status, a stamp that changes with every edit of the edition)."""
    edition = _edition(session, edition_id)
    return edition.newsletter, edition.status.value, edition.updated_at.isoformat()


def _newsletter(request: Request, name: str) -> NewsletterConfig:
    found = state(request).app.config.newsletters.get(name)
    if found is None:
        raise NotFound(f"newsletter {name!r} is no longer in the configuration")
    return found


async def edition_preview(
    request: Request, edition_id: int, variant: str, sig: str | None = None
) -> Preview:
    """The edition as readers get it now (a draft with its edits), rendered once per
    edit and template change for the page and its frames."""
    web = state(request)
    name, _, stamp = await in_session(request, _stamp, edition_id)
    nl = _newsletter(request, name)
    if sig is None:
        sig = await run_in_threadpool(signature, web.app.settings)
    key = (name, f"edition-{edition_id}", stamp, variant, sig)
    found = web.previews.get(key)
    if found is None:

        def build() -> Preview:
            with web.app.sessions() as s:
                edition = _edition(s, edition_id)
                as_of = edition.period_end
            return build_preview(web.app, nl, as_of, variant)

        found = await run_in_threadpool(build)
        web.previews.put(key, found)
    return found


def _segments(session: Session, list_name: str) -> list[str]:
    return [
        seg.name
        for seg in subscribers_segments.list_segments(session)
        if seg.mailing_list.name == list_name
    ]


async def desk_page(
    request: Request, edition_id: int, *, error: str | None = None, status: int = 200
) -> Response:
    """The edition on the editor's desk (see the module doc)."""
    web = state(request)
    app = web.app
    view = await run_in_threadpool(desk.view, app, edition_id)
    variant = (request.query_params.get("variant") or ALL)[:100]
    sig = await run_in_threadpool(signature, app.settings)
    preview: Preview | None = None
    problem = None
    try:
        preview = await edition_preview(request, edition_id, variant, sig)
    except DigestError as exc:
        problem = str(exc)
    segments = await in_session(request, _segments, view.list_name)
    frame = f"/admin/editions/{edition_id}/frame?" + urlencode({"variant": variant})
    context = {
        "view": view,
        "preview": preview,
        "problem": problem,
        "error": error,
        "variant": variant,
        "frame_light": frame + "&mode=light",
        "frame_dark": frame + "&mode=dark",
        "events_url": f"/admin/editions/{edition_id}/events?"
        + urlencode({"since": _since(view), "sig": sig}),
        "segments": segments,
        "editors": ", ".join(app.settings.editors),
        "max_test_addresses": MAX_TEST_ADDRESSES,
        "max_note": MAX_NOTE_CHARS,
        "sending": sends(request).running(edition_id),
        "progress": _progress_numbers(view.counts.to_dict(), view.status),
        "zone": _newsletter(request, view.newsletter).timezone,
    }
    return render(request, "admin/desk.html.j2", context, status=status)


def _since(view: desk.EditionView) -> str:
    """The stamp :func:`desk.pulse` gives while nothing changes (see the event stream)."""
    last = view.log[-1].at if view.log else None
    return desk.Pulse(
        desk.ProgressSnapshot(view.id, view.status, view.counts), len(view.log), last
    ).stamp


def _progress_numbers(counts: dict[str, int], status: str) -> dict[str, Any]:
    total = sum(counts.values())
    done = counts["sent"] + counts["failed"] + counts["skipped"] + counts["uncertain"]
    return {
        "status": status,
        "total": total,
        "sent": counts["sent"],
        "failed": counts["failed"],
        "uncertain": counts["uncertain"],
        "skipped": counts["skipped"],
        "pending": counts["pending"] + counts["sending"],
        "done": done,
        "percent": round(100 * done / total) if total else 0,
    }


# ---------------------------------------------------------------------------
# Pages


@router.post("/prepare")
async def prepare_draft(request: Request) -> Response:
    """The draft of the edition the newsletter's next scheduled run sends (made if need
    be), opened on the desk."""
    require_editor(request)
    form = await read_form(request)
    name = field(form, "newsletter", 100)
    app = state(request).app
    if name not in app.config.newsletters:
        known = ", ".join(app.config.newsletters) or "none"
        raise WebError(f"There is no newsletter called {name!r} (newsletters: {known}).")
    done = await run_in_threadpool(
        lambda: desk.prepare(app, name, actor=actor(request), why="draft prepared on the desk")
    )
    said = "Draft prepared." if done.created else f"The edition exists already ({done.status})."
    flash(request, f"{said} Period {done.choice}.", "success")
    return RedirectResponse(f"/admin/editions/{done.edition_id}", status_code=303)


@router.get("/{edition_id}/frame")
async def edition_frame(request: Request, edition_id: Id) -> Response:
    require_editor(request)
    params = request.query_params
    headers = {"Content-Security-Policy": EMAIL_CSP, "Cache-Control": "no-store"}
    try:
        preview = await edition_preview(request, edition_id, (params.get("variant") or ALL)[:100])
    except DigestError as exc:
        body = f'<!doctype html><html lang="en"><body><p>{escape(str(exc))}</p></body></html>'
        return HTMLResponse(body, status_code=404, headers=headers)
    html = preview.html if params.get("mode") != "dark" else force_dark(preview.html)
    return HTMLResponse(framed(html), headers=headers)


@router.get("/{edition_id}/events")
async def edition_events(request: Request, edition_id: Id) -> Response:
    """``progress`` (the send's numbers, as JSON) whenever they change; ``change`` when
    the edition was edited, changed state or a template was saved (the page reloads)."""
    require_editor(request)
    web = state(request)
    app = web.app
    since = request.query_params.get("since", "")[:200]
    sig = request.query_params.get("sig", "")[:64]
    limit = web.options.live_reload_max

    async def stream() -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        first: tuple[float, int] | None = None
        last: dict[str, Any] | None = None
        yield "retry: 1000\n\n"
        while True:
            try:
                beat = await run_in_threadpool(desk.pulse, app, edition_id)
            except NotFound:  # deleted meanwhile: the page's reload says so
                yield "event: change\ndata: gone\n\n"
                return
            now_sig = await run_in_threadpool(signature, app.settings)
            numbers = _progress_numbers(beat.snapshot.counts.to_dict(), beat.snapshot.status)
            now = loop.time()
            if first is None:
                first = (now, numbers["done"])
            elapsed = now - first[0]
            numbers["rate"] = (
                round(60 * (numbers["done"] - first[1]) / elapsed, 1) if elapsed >= 1 else None
            )
            if numbers != last:
                last = numbers
                yield f"event: progress\ndata: {json.dumps(numbers)}\n\n"
            if (since and beat.stamp != since) or (sig and now_sig != sig):
                yield f"event: change\ndata: {beat.snapshot.status}\n\n"
                return
            if now - started >= limit:
                return
            await asyncio.sleep(PROGRESS_POLL)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get("/{edition_id}/progress")
async def edition_progress(request: Request, edition_id: Id) -> Response:
    """The send's numbers as JSON (what the event stream sends)."""
    require_editor(request)
    snapshot = await run_in_threadpool(desk.progress, state(request).app, edition_id)
    numbers = _progress_numbers(snapshot.counts.to_dict(), snapshot.status)
    return Response(json.dumps(numbers), media_type="application/json")


# ---------------------------------------------------------------------------
# Editing


async def _act(
    request: Request, edition_id: int, work: Callable[[App, str], str | None]
) -> Response:
    """Run ``work(app, actor)`` (it returns the flash message); then back to the page, or
    the page again with the error (400; 404 when something named is not there)."""
    app = state(request).app
    who = actor(request)
    await in_session(request, _edition, edition_id)  # 404 for an edition that is not there
    try:
        said = await run_in_threadpool(work, app, who)
    except NotFound as exc:
        return await desk_page(request, edition_id, error=str(exc), status=404)
    except DigestError as exc:
        return await desk_page(request, edition_id, error=str(exc), status=400)
    if said:
        flash(request, said, "success")
    return RedirectResponse(f"/admin/editions/{edition_id}", status_code=303)


@router.post("/{edition_id}/intro")
async def edit_intro(request: Request, edition_id: Id) -> Response:
    require_editor(request)
    form = await read_form(request)
    text = form.get("intro")
    if not isinstance(text, str):
        raise WebError("Send the intro in the form's intro field.", status=400)
    if len(text) > MAX_NOTE_CHARS * 2:
        raise WebError(f"The intro is too long; keep it under {MAX_NOTE_CHARS} characters.")

    def work(app: App, who: str) -> str:
        desk.note(app, edition_id, text, actor=who)
        return "Intro saved." if text.strip() else "Intro removed."

    return await _act(request, edition_id, work)


@router.post("/{edition_id}/subject")
async def edit_subject(request: Request, edition_id: Id) -> Response:
    require_editor(request)
    form = await read_form(request)
    text = field(form, "subject", 1000)

    def work(app: App, who: str) -> str:
        desk.subject(app, edition_id, text, actor=who)
        return "Subject saved." if text.strip() else "Subject reset to the template's."

    return await _act(request, edition_id, work)


_MOVES = {"up", "down", "top", "exclude", "include"}


@router.post("/{edition_id}/article")
async def edit_article(request: Request, edition_id: Id) -> Response:
    """One article: ``do`` = up, down, top (make it the top story), exclude, include."""
    require_editor(request)
    form = await read_form(request)
    ref = field(form, "article", 20)
    what = field(form, "do", 20)
    if not ref.isdigit() or what not in _MOVES:
        raise WebError(
            "Say which article (its id) and what to do with it: up, down, top, exclude or include.",
            status=400,
        )

    def work(app: App, who: str) -> str:
        if what == "exclude":
            return f"Excluded {desk.exclude(app, edition_id, ref, actor=who)!r}."
        if what == "include":
            return f"Included {desk.include(app, edition_id, ref, actor=who)!r} again."
        if what == "top":
            return f"{desk.move(app, edition_id, ref, actor=who, top=True)!r} is the top story."
        view = desk.view(app, edition_id)
        place = next(
            (a.position for _, lines in view.sections for a in lines if str(a.id) == ref), None
        )
        if place is None:
            raise desk.DeskError(f"article {ref} is not in the edition; include it first")
        to = place - 1 if what == "up" else place + 1
        title = desk.move(app, edition_id, ref, actor=who, to=to)
        return f"Moved {title!r} {what}."

    return await _act(request, edition_id, work)


@router.post("/{edition_id}/new")
async def edit_new(request: Request, edition_id: Id) -> Response:
    """The articles that arrived since the draft was made: ``do`` = add or decline."""
    require_editor(request)
    form = await read_form(request)
    what = field(form, "do", 10)
    if what not in ("add", "decline"):
        raise WebError("Say add or decline.", status=400)

    def work(app: App, who: str) -> str:
        if what == "add":
            return f"Added {desk.add_new(app, edition_id, actor=who)} new article(s)."
        return f"Left out {desk.decline_new(app, edition_id, actor=who)} new article(s)."

    return await _act(request, edition_id, work)


@router.post("/{edition_id}/test")
async def send_test_copy(request: Request, edition_id: Id) -> Response:
    require_editor(request)
    form = await read_form(request)
    addresses = split_addresses(field(form, "to", 4000))
    variant = field(form, "variant", 100) or ALL
    if not addresses:
        raise WebError("Type at least one address to send a test copy to.", status=400)
    if len(addresses) > MAX_TEST_ADDRESSES:
        raise WebError(f"Send a test to at most {MAX_TEST_ADDRESSES} addresses at once.")
    sections = None
    if variant != ALL:
        preview = await edition_preview(request, edition_id, variant)
        sections = preview.variant.sections

    def work(app: App, who: str) -> str:
        chosen = list(sections) if sections else None
        sent = desk.test_copy(app, edition_id, addresses, actor=who, sections=chosen)
        return sent.summary()

    return await _act(request, edition_id, work)


@router.post("/{edition_id}/approve")
async def approve(request: Request, edition_id: Id) -> Response:
    require_editor(request)
    await read_form(request)

    def work(app: App, who: str) -> str:
        done = desk.approve(app, edition_id, actor=who)
        if done.due:
            _start_send(request, edition_id, None, who)
            return "Approved. Its scheduled run was waiting for this approval: sending now."
        return "Approved: it goes out at the newsletter's next scheduled run."

    return await _act(request, edition_id, work)


# ---------------------------------------------------------------------------
# Sending


def _start_send(request: Request, edition_id: int, segment: str | None, who: str) -> bool:
    app = state(request).app
    return sends(request).start(
        edition_id, lambda: desk.send(app, edition_id, actor=who, segment=segment)
    )


@router.get("/{edition_id}/send")
async def confirm_page(request: Request, edition_id: Id) -> Response:
    """Before anything is sent: the list, the segment, the readers; or why it is refused."""
    require_editor(request)
    segment = (request.query_params.get("segment") or "").strip()[:100] or None
    return await _confirm_view(request, edition_id, segment)


async def _confirm_view(
    request: Request,
    edition_id: int,
    segment: str | None,
    *,
    error: str | None = None,
    status: int = 200,
) -> Response:
    app = state(request).app
    view = await run_in_threadpool(desk.view, app, edition_id)
    segments = await in_session(request, _segments, view.list_name)
    if segment is not None and segment not in segments:
        known = ", ".join(segments) or "none"
        raise WebError(
            f"{view.list_name} has no segment {segment!r} (its segments: {known}).", status=404
        )
    check = await run_in_threadpool(desk.confirmation, app, edition_id, segment)
    context = {
        "view": view,
        "check": check,
        "segments": segments,
        "segment": segment or "",
        "error": error,
        "zone": _newsletter(request, view.newsletter).timezone,
    }
    return render(request, "admin/desk_send.html.j2", context, status=status)


@router.post("/{edition_id}/send")
async def send_now(request: Request, edition_id: Id) -> Response:
    """Approve (a draft) and send now, once confirmed on the confirmation page."""
    require_editor(request)
    form = await read_form(request)
    segment = field(form, "segment", 100) or None
    if form.get("confirm") != "yes":
        return await _confirm_view(
            request,
            edition_id,
            segment,
            error="Tick the box to confirm: the edition goes to every reader named above.",
            status=400,
        )
    app = state(request).app
    check = await run_in_threadpool(desk.confirmation, app, edition_id, segment)
    if check.refusal:
        return await _confirm_view(request, edition_id, segment, error=check.refusal, status=409)
    who = actor(request)

    def work(app: App, who: str) -> str:
        if check.status == EditionStatus.DRAFT.value:
            desk.approve(app, edition_id, actor=who)
        if not _start_send(request, edition_id, segment, who):
            return "It is being sent already."
        return f"Sending to {check.readers} readers of {check.list_name}."

    return await _act(request, edition_id, lambda app, _who: work(app, who))


@router.post("/{edition_id}/schedule")
async def schedule_send(request: Request, edition_id: Id) -> Response:
    """Approve (a draft) to go out at a time, in the newsletter's time zone."""
    require_editor(request)
    form = await read_form(request)
    text = field(form, "send_at", 30)
    name, status, _ = await in_session(request, _stamp, edition_id)
    nl = _newsletter(request, name)
    if not _DATETIME_LOCAL.match(text):
        return await _confirm_view(
            request,
            edition_id,
            None,
            error=f"Give the time as YYYY-MM-DDTHH:MM ({nl.timezone}), e.g. 2026-11-23T08:00.",
            status=400,
        )
    try:
        when = datetime.fromisoformat(text).replace(tzinfo=nl.zone)
    except ValueError:
        return await _confirm_view(
            request, edition_id, None, error=f"{text!r} is not a time.", status=400
        )
    if not 1971 <= when.year <= 9998:
        return await _confirm_view(
            request, edition_id, None, error=f"{text!r} is out of range.", status=400
        )
    if when <= datetime.now(nl.zone):
        return await _confirm_view(
            request,
            edition_id,
            None,
            error=f"{text} ({nl.timezone}) has passed; pick a later time, or send it now.",
            status=400,
        )

    def work(app: App, who: str) -> str:
        if status == EditionStatus.DRAFT.value:
            desk.approve(app, edition_id, actor=who, send_at=when)
        else:
            desk.schedule(app, edition_id, when, actor=who)
        return (
            f"Approved to go out at {when:%Y-%m-%d %H:%M} ({nl.timezone}); a running "
            "`digest scheduler` sends it then."
        )

    return await _act(request, edition_id, work)


@router.post("/{edition_id}/pause")
async def pause(request: Request, edition_id: Id) -> Response:
    require_editor(request)
    await read_form(request)

    def work(app: App, who: str) -> str:
        desk.pause(app, edition_id, actor=who)
        return "Paused: nothing more goes out until you resume it."

    return await _act(request, edition_id, work)


@router.post("/{edition_id}/resume")
async def resume(request: Request, edition_id: Id) -> Response:
    require_editor(request)
    await read_form(request)

    def work(app: App, who: str) -> str:
        desk.resume(app, edition_id, actor=who, deliver=False)
        sends(request).start(edition_id, lambda: Sender(app).deliver(edition_id, resume=True))
        return "Resumed: sending the rest."

    return await _act(request, edition_id, work)


@router.post("/{edition_id}/cancel")
async def cancel(request: Request, edition_id: Id) -> Response:
    require_editor(request)
    form = await read_form(request)
    if form.get("confirm") != "yes":
        return await desk_page(
            request,
            edition_id,
            error="Tick the box to confirm the cancellation: it cannot be undone.",
            status=400,
        )

    def work(app: App, who: str) -> str:
        skipped = desk.cancel(app, edition_id, actor=who)
        return f"Cancelled; {skipped} readers who had not had it will not get it."

    return await _act(request, edition_id, work)


# ---------------------------------------------------------------------------
# For the dashboard


def held_runs(session: Session, app: App) -> list[dict[str, Any]]:
    """Each newsletter whose latest scheduled run was held waiting for approval, with the
    edition it waits for."""
    from digest.editions import find_edition
    from digest.models import SchedulerRun

    out = []
    latest: dict[str, SchedulerRun] = {}
    for run in session.scalars(
        select(SchedulerRun).order_by(SchedulerRun.scheduled_for, SchedulerRun.id)
    ):
        latest[run.newsletter] = run
    for name, run in latest.items():
        nl = app.config.newsletters.get(name)
        if run.outcome != RunOutcome.HELD or nl is None:
            continue
        edition = find_edition(session, name, period_for(nl, run.scheduled_for).key)
        out.append(
            {
                "newsletter": nl.title,
                "scheduled_for": run.scheduled_for,
                "edition_id": edition.id if edition is not None else None,
                "period": edition.period if edition is not None else "",
            }
        )
    return out


def wait_for_sends(request_app: Any, timeout: float | None = None) -> None:
    """Wait for the sends a web app started (tests)."""
    found = getattr(request_app.state, "desk_sends", None)
    if found is not None:
        found.join(timeout)


__all__ = ["ON_THE_DESK", "Sends", "desk_page", "held_runs", "router", "wait_for_sends"]

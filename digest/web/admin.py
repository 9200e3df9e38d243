"""The admin console at ``/admin``: lists, subscribers, CSV import, segments, editions.

Sign in with ``DIGEST_ADMIN_PASSWORD``; without one the console is switched off (404
with a page that says how to switch it on).  Every page needs the signed-in
session (else 401 and the sign-in form), every form its CSRF token (else 403).
A sign-in is a row in the database (:mod:`digest.signins`): signing out revokes it,
"sign out everywhere" revokes every one.  After five wrong passwords from one client
IP, each further attempt must wait 2, 4, 8, … seconds (429 with ``Retry-After``); the
right password is let in once the wait is over.
"""

from __future__ import annotations

import io
import json
import logging
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Path
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from digest import accounts, drafts, signins
from digest.activity import timeline
from digest.errors import NotFound
from digest.events import SENDGRID
from digest.models import Edition, Event, Variant
from digest.personalize import web_url
from digest.privacy import forget_person
from digest.queries import rule_count
from digest.stats import edition_stats
from digest.tracking import edition_tracking
from digest.web import desk as desk_web
from digest.web import segment_builder as builder
from digest.web.pages import (
    MAX_UPLOAD_BYTES,
    AdminDisabled,
    Limited,
    WebError,
    actor,
    client_ip,
    console_on,
    field,
    fields,
    flash,
    in_session,
    is_admin,
    is_editor,
    read_form,
    render,
    require_admin,
    require_editor,
    safe_next,
    secret,
    sign_in,
    sign_out,
    state,
)
from digest.web.ratelimit import retry_after
from digest.web.security import rotate_csrf
from digest.web.stats import bar_chart
from digest.workers import waiting_for_workers
from subscribers import io as subscribers_io
from subscribers import lists as subscribers_lists
from subscribers import privacy as subscribers_privacy
from subscribers import segments as subscribers_segments
from subscribers import service
from subscribers import suppression as subscribers_suppression
from subscribers.consent import By
from subscribers.db import MAX_ID
from subscribers.errors import SubscribersError
from subscribers.models import ConsentSource, MailingList, Status, Subscriber

log = logging.getLogger(__name__)
#: One line per change made in the console, naming the account (changes to readers are
#: in the consent log too, with the same actor).
audit = logging.getLogger("digest.audit")
router = APIRouter(prefix="/admin", include_in_schema=False)

PAGE_SIZE = 50
#: Rejected rows listed on the import report page (all are counted).
REPORT_ROWS = 500

#: An id in a URL: one the database can hold (a larger one is a 404, not a 500).
Id = Annotated[int, Path(ge=1, le=MAX_ID)]


# ---------------------------------------------------------------------------
# Signing in and out


@router.get("/login")
async def login_page(request: Request) -> Response:
    if not console_on(request):
        require_admin(request)  # raises AdminDisabled
    if is_editor(request):
        return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    context = {"next": safe_next(request.query_params.get("next")), "error": None, "email": ""}
    return render(request, "admin/login.html.j2", context)


@router.post("/login")
async def login(request: Request) -> Response:
    """Sign in with an account's email address and password; with no email address,
    ``DIGEST_ADMIN_PASSWORD`` signs in as the bootstrap admin while no admin account
    exists.  Wrong attempts back off per client IP and per account."""
    web = state(request)
    if not console_on(request):
        raise AdminDisabled("Set DIGEST_ADMIN_PASSWORD and restart the web app to switch it on.")
    # The form (small, bounded) is read before the backoff answers: a 429 sent before
    # the body was read would close the connection under a client still sending it.
    form = await read_form(request)
    ip = client_ip(request)
    wait = web.login_backoff.wait(ip)
    if wait:
        raise Limited(
            f"Too many wrong passwords from your address. Wait {retry_after(wait)} seconds "
            "and try again.",
            retry_after(wait),
        )
    target = safe_next(field(form, "next", 500))
    email = field(form, "email", 320).lower()
    if email == signins.ADMIN:
        email = ""
    account_key = f"account:{email}" if email else ""
    wait = web.login_backoff.wait(account_key) if account_key else 0.0
    if wait:
        raise Limited(
            f"Too many wrong passwords for this account. Wait {retry_after(wait)} seconds "
            "and try again.",
            retry_after(wait),
        )
    password = secret(form, "password")
    signin, error = await run_in_threadpool(_check_login, request, email, password)
    if signin is None:
        delay = web.login_backoff.failed(ip)
        if account_key:
            delay = max(delay, web.login_backoff.failed(account_key))
        if delay:
            error += f" Wait {retry_after(delay)} seconds before trying again."
        context = {"next": target, "error": error, "email": email}
        return render(request, "admin/login.html.j2", context, status=401)
    web.login_backoff.succeeded(ip)
    if account_key:
        web.login_backoff.succeeded(account_key)
    await sign_in(request, *signin)
    rotate_csrf(request.session)
    audit.info("%s signed in from %s", signin[0], ip)
    return RedirectResponse(target, status_code=303)


def _check_login(request: Request, email: str, password: str) -> tuple[tuple[str, str] | None, str]:
    """(account key, credential) to sign in with, or None and what to say."""
    web = state(request)
    with web.app.transaction() as session:
        if email:
            account = accounts.verify(session, email, password)
            if account is None:
                return None, "That email address and password do not match an account."
            return (account.email, accounts.credential(account)), ""
        admin = web.admin
        if admin is None:
            return None, "Enter your account's email address and password."
        if accounts.admin_exists(session):
            admin.check(password)  # the same time as a real check
            return None, (
                "Enter your account's email address: DIGEST_ADMIN_PASSWORD signs in only "
                "until the first admin account exists."
            )
        if not admin.check(password):
            return None, "That password is not right."
        return (signins.ADMIN, admin.fingerprint), ""


@router.post("/logout")
async def logout(request: Request) -> Response:
    """Sign out: this browser, or (``everywhere=on``) every browser signed in."""
    form = await read_form(request)
    everywhere = form.get("everywhere") == "on"
    revoked = await sign_out(request, everywhere=everywhere)
    if everywhere:
        flash(request, f"Signed out everywhere ({revoked} sessions).", "success")
    return RedirectResponse("/admin/login", status_code=303)


# ---------------------------------------------------------------------------
# Dashboard and lists


@router.get("")
async def dashboard(request: Request) -> Response:
    require_editor(request)
    if not is_admin(request):  # an editor's console starts at the editions
        return RedirectResponse("/admin/editions", status_code=303)
    config = state(request).digest_config()

    def load(session: Session) -> tuple[list[Any], list[Any]]:
        return subscribers_lists.all_lists(session), waiting_for_workers(session)

    summaries, waiting = await in_session(request, load)
    users: dict[str, list[str]] = {}
    for nl in config.newsletters.values():
        users.setdefault(nl.list_name, []).append(nl.title)
    missing = sorted(set(users) - {s.mailing_list.name for s in summaries})
    held = await in_session(request, desk_web.held_runs, state(request).app)
    return render(
        request,
        "admin/dashboard.html.j2",
        {
            "summaries": summaries,
            "users": users,
            "missing": missing,
            "statuses": [s.value for s in Status],
            "newsletters": list(config.newsletters.values()),
            "held": held,
            "waiting": waiting,
        },
    )


@router.post("/lists")
async def create_list(request: Request) -> Response:
    require_admin(request)
    form = await read_form(request)
    name = field(form, "name", 100)
    description = field(form, "description", 2000)
    double = form.get("double_opt_in") == "on"
    try:
        await in_session(
            request,
            lambda s: subscribers_lists.create_list(
                s, name, description=description, double_opt_in=double
            ),
        )
    except SubscribersError as exc:
        flash(request, str(exc), "error")
    else:
        audit.info("%s created the list %r", actor(request), name)
        flash(request, f"List {name!r} created.", "success")
    return RedirectResponse("/admin", status_code=303)


# ---------------------------------------------------------------------------
# Subscribers


def _parse_segment(value: str) -> tuple[str | None, str | None]:
    list_name, slash, segment = value.partition("/")
    return (list_name or None, segment or None) if slash else (None, None)


def _search(
    session: Session,
    list_name: str | None,
    segment: str | None,
    status: str | None,
    query: str,
    page: int,
) -> dict[str, Any]:
    stmt = service.search(session, list_name, segment=segment, status=status, query=query)
    total = service.count(session, stmt)
    rows = [
        {
            "id": row[0].id,
            "email": row[0].email or "(erased)",
            "name": row[0].name,
            "status": service.shown_status(row).value,
            "categories": list(row[0].categories or []),
            "created_at": row[0].created_at,
        }
        for row in session.execute(stmt.limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE))
    ]
    segments = [
        f"{seg.mailing_list.name}/{seg.name}" for seg in subscribers_segments.list_segments(session)
    ]
    list_names = [m.name for m in session.scalars(select(MailingList).order_by(MailingList.name))]
    return {"rows": rows, "total": total, "segments": segments, "lists": list_names}


def _filters(request: Request) -> tuple[str, str | None, str | None, str | None]:
    """The subscriber list's filters from the query: text, status, list, segment."""
    params = request.query_params
    query = (params.get("q") or "").strip()[:200]
    status = params.get("status") or None
    if status not in {None, *(s.value for s in Status)}:
        raise WebError(f"{status!r} is not a status.", status=400)
    list_name = params.get("list") or None
    seg_list, segment = _parse_segment(params.get("segment") or "")
    if segment:
        list_name = seg_list
    return query, status, list_name, segment


@router.get("/subscribers.csv")
async def subscribers_csv(request: Request) -> Response:
    """The subscribers the list page shows (its filters, every page) as CSV that imports
    back, cells neutralised against formulas as ``digest subscribers export`` does, with a
    UTF-8 byte order mark so that spreadsheet programs read the accents right."""
    require_admin(request)
    query, status, list_name, segment = _filters(request)

    def work(session: Session) -> tuple[str, int]:
        stmt = service.search(session, list_name, segment=segment, status=status, query=query)
        out = io.StringIO(newline="")
        out.write("\ufeff")
        written = subscribers_io.export_selection(session, out, stmt)
        return out.getvalue(), written

    try:
        text, written = await in_session(request, work)
    except SubscribersError as exc:
        raise WebError(str(exc), status=404) from None
    audit.info("%s exported %s subscribers as CSV", actor(request), written)
    name = "-".join(p for p in ("subscribers", list_name, segment, status) if p)
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "_" for c in name)
    return Response(
        text.encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{safe}.csv"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/subscribers")
async def subscribers_page(request: Request) -> Response:
    require_admin(request)
    params = request.query_params
    query, status, list_name, segment = _filters(request)
    page = int(params["page"]) if (params.get("page") or "").isdigit() else 1
    page = max(1, min(page, 100_000))
    try:
        found = await in_session(request, _search, list_name, segment, status, query, page)
    except SubscribersError as exc:
        raise WebError(str(exc), status=404) from None
    pages = max(1, -(-found["total"] // PAGE_SIZE))
    return render(
        request,
        "admin/subscribers.html.j2",
        {
            **found,
            "q": query,
            "status": status or "",
            "list": list_name or "",
            "segment": f"{list_name}/{segment}" if segment else "",
            "statuses": [s.value for s in Status],
            "page": page,
            "pages": pages,
            "query_for": lambda p: _page_query(params, p),
            "csv_query": urlencode({k: v for k, v in params.items() if k != "page" and v}),
        },
    )


def _page_query(params: Any, page: int) -> str:
    kept = {k: v for k, v in params.items() if k != "page" and v}
    return urlencode({**kept, "page": page})


def _existing(session: Session, subscriber_id: int) -> Subscriber:
    """The subscriber, or this site's 404 (a page, not a message on the form)."""
    try:
        return service.get_by_id(session, subscriber_id)
    except SubscribersError:
        raise NotFound(f"no subscriber with id {subscriber_id}") from None


def _subscriber(session: Session, subscriber_id: int) -> dict[str, Any]:
    return subscribers_privacy.describe(session, _existing(session, subscriber_id))


def _suppression(session: Session, email: str | None) -> Any:
    return subscribers_suppression.entry_for(session, email) if email else None


def admin_actor(request: Request) -> str:
    """Who acts in the consent log for a change made in the console: the signed-in
    account, and the client's address."""
    return actor(request)


def _by(request: Request, detail: str = "") -> By:
    return By(ConsentSource.ADMIN, admin_actor(request), detail)


@router.get("/subscribers/{subscriber_id}")
async def subscriber_page(request: Request, subscriber_id: Id) -> Response:
    require_admin(request)
    return await _subscriber_view(request, subscriber_id)


async def _subscriber_view(
    request: Request, subscriber_id: int, *, error: str | None = None, status: int = 200
) -> Response:
    who = await in_session(request, _subscriber, subscriber_id)
    suppression = await in_session(request, _suppression, who["email"])
    activity = await in_session(request, timeline, subscriber_id)
    config = state(request).digest_config()
    attributes = "\n".join(f"{k} = {v}" for k, v in sorted(who["attributes"].items()))
    return render(
        request,
        "admin/subscriber.html.j2",
        {
            "who": who,
            "categories": config.choosable_categories() or [],
            "chosen": who["categories"],
            "attributes_text": attributes,
            "suppression": suppression,
            "activity": activity,
            "error": error,
        },
        status=status,
    )


def parse_attributes(text: str) -> dict[str, str]:
    """``name = value`` lines (``:`` works too); blank lines are skipped."""
    out: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        sep = "=" if "=" in line else ":"
        name, found, value = line.partition(sep)
        if not found or not name.strip():
            raise WebError(f"attributes, line {number}: write name = value")
        out[name.strip()] = value.strip()
    return out


@router.post("/subscribers/{subscriber_id}")
async def subscriber_save(request: Request, subscriber_id: Id) -> Response:
    require_admin(request)
    form = await read_form(request)
    config = state(request).digest_config()
    known = config.choosable_categories()
    offered = config.choosable_categories(other=False)
    try:
        attributes = parse_attributes(field(form, "attributes", 20_000))
    except WebError as exc:
        return await _subscriber_view(request, subscriber_id, error=exc.message, status=400)
    chosen = fields(form, "categories")
    timezone = field(form, "timezone", 64)

    def work(session: Session) -> bool:
        current = _existing(session, subscriber_id).attributes or {}
        updates: dict[str, Any] = {k: None for k in current if k not in attributes}
        updates.update(attributes)
        return service.update_subscriber(
            session,
            subscriber_id,
            name=field(form, "name", 200),
            categories=chosen,
            attributes=updates or None,
            timezone=timezone or None,
            known_categories=known,
            everything=offered,
        )

    try:
        changed = await in_session(request, work)
    except SubscribersError as exc:
        return await _subscriber_view(request, subscriber_id, error=str(exc), status=400)
    if changed:
        audit.info("%s edited subscriber %s", actor(request), subscriber_id)
    flash(request, "Saved." if changed else "Nothing changed.", "success")
    return RedirectResponse(f"/admin/subscribers/{subscriber_id}", status_code=303)


@router.post("/subscribers/{subscriber_id}/unsubscribe")
async def subscriber_unsubscribe(request: Request, subscriber_id: Id) -> Response:
    require_admin(request)
    form = await read_form(request)
    list_name = field(form, "list", 100) or None
    by = _by(request)

    def work(session: Session) -> None:
        _existing(session, subscriber_id)
        service.unsubscribe(session, subscriber_id, list_name, by=by)

    try:
        await in_session(request, work)
    except SubscribersError as exc:
        flash(request, str(exc), "error")
    else:
        where = f"from {list_name!r}" if list_name else "from every list"
        flash(request, f"Unsubscribed {where}.", "success")
    return RedirectResponse(f"/admin/subscribers/{subscriber_id}", status_code=303)


@router.post("/subscribers/{subscriber_id}/forget")
async def subscriber_forget(request: Request, subscriber_id: Id) -> Response:
    require_admin(request)
    form = await read_form(request)
    if form.get("confirm") != "yes":
        return await _subscriber_view(
            request,
            subscriber_id,
            error="Tick the box to confirm the erasure: it cannot be undone.",
            status=400,
        )

    by = _by(request, "erased on request")

    def work(session: Session) -> None:
        forget_person(session, _existing(session, subscriber_id).email or "", by=by)

    await in_session(request, work)
    # The address stays out of the message: it is kept in the session cookie for a moment.
    flash(request, f"Erased subscriber {subscriber_id} and everything held about them.", "success")
    return RedirectResponse("/admin/subscribers", status_code=303)


# ---------------------------------------------------------------------------
# CSV import


async def _list_names(request: Request) -> list[str]:
    return await in_session(
        request,
        lambda s: list(s.scalars(select(MailingList.name).order_by(MailingList.name))),
    )


@router.get("/import")
async def import_page(request: Request) -> Response:
    require_admin(request)
    context = {"lists": await _list_names(request), "report": None, "error": None, "chosen": ""}
    return render(request, "admin/import.html.j2", context)


@router.post("/import")
async def import_post(request: Request) -> Response:
    require_admin(request)
    form = await read_form(request, limit=MAX_UPLOAD_BYTES)
    list_name = field(form, "list", 100)
    dry_run = form.get("dry_run") == "on"
    upload = form.get("file")
    lists = await _list_names(request)
    context: dict[str, Any] = {"lists": lists, "report": None, "error": None, "chosen": list_name}
    data = await upload.read(MAX_UPLOAD_BYTES + 1) if isinstance(upload, UploadFile) else b""
    if not data:
        context["error"] = "Choose a CSV file to import."
        return render(request, "admin/import.html.j2", context, status=400)
    if len(data) > MAX_UPLOAD_BYTES:
        context["error"] = f"The file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB."
        return render(request, "admin/import.html.j2", context, status=413)
    config = state(request).digest_config()
    label = upload.filename if isinstance(upload, UploadFile) and upload.filename else "upload.csv"

    def work(session: Session) -> subscribers_io.ImportReport:
        return subscribers_io.import_csv(
            session,
            data,
            list_name,
            known_categories=config.choosable_categories([list_name]),
            everything=config.choosable_categories([list_name], other=False),
            dry_run=dry_run,
            consent_ip=client_ip(request),
            actor=admin_actor(request),
            name=label,
        )

    try:
        report = await in_session(request, work)
    except SubscribersError as exc:
        # a file's own problems name the file already
        context["error"] = str(exc) if str(exc).startswith(f"{label}:") else f"{label}: {exc}"
        return render(request, "admin/import.html.j2", context, status=400)
    context.update(
        report=report,
        counts=report.counts(),
        rejected=report.rejected[:REPORT_ROWS],
        more=max(0, len(report.rejected) - REPORT_ROWS),
        filename=label,
    )
    return render(request, "admin/import.html.j2", context)


# ---------------------------------------------------------------------------
# Segments


def _segments(session: Session) -> list[dict[str, Any]]:
    out = []
    for seg in subscribers_segments.list_segments(session):
        list_name = seg.mailing_list.name
        try:
            # the rule in hand: no looking the list and the segment up again per count
            counts: dict[str, int | None] = {**rule_count(session, list_name, seg.rule).to_dict()}
            problem = None
        except SubscribersError as exc:  # saved before rules were bounded: show, not fail
            counts, problem = {"recipients": None, "members": None}, str(exc)
        out.append(
            {
                "list": list_name,
                "name": seg.name,
                "rule": json.dumps(seg.rule, ensure_ascii=False),
                "categories": list(seg.categories or []),
                "problem": problem,
                **counts,
            }
        )
    return out


async def _segments_view(
    request: Request, form_values: dict[str, Any] | None = None, *, status: int = 200
) -> Response:
    config = state(request).digest_config()
    values: dict[str, Any] = {
        "list": "",
        "name": "",
        "rule": "",
        "categories": [],
        "count": None,
        "error": None,
        "match": "all",
        "rows": [],
        "more": 0,
    }
    values.update(form_values or {})
    return render(
        request,
        "admin/segments.html.j2",
        {
            "segments": await in_session(request, _segments),
            "lists": await _list_names(request),
            "all_categories": config.choosable_categories() or [],
            "statuses": [s.value for s in Status],
            "kinds": builder.KINDS,
            "attr_ops": builder.ATTR_OPS,
            "builder_rows": builder.padded(values["rows"], values["more"]),
            "form": values,
        },
        status=status,
    )


@router.get("/segments")
async def segments_page(request: Request) -> Response:
    require_admin(request)
    return await _segments_view(request, {"list": request.query_params.get("list", "")})


def parse_rule(text: str) -> dict[str, Any]:
    if not text.strip():
        raise SubscribersError('write a rule, e.g. {"attr": "sector", "equals": "health"}')
    return subscribers_segments.parse_rule_text(text, source="rule")


@router.post("/segments")
async def segments_post(request: Request) -> Response:
    """Count or save a segment.  The rule is the JSON in ``rule``; the builder's rows
    (``action=build``, or an empty ``rule``) write it; ``action=more`` adds rows."""
    require_admin(request)
    form = await read_form(request)
    match, rows = builder.rows_from_form(form)
    values: dict[str, Any] = {
        "list": field(form, "list", 100),
        "name": field(form, "name", 100),
        "rule": field(form, "rule", 20_000),
        "categories": fields(form, "categories"),
        "count": None,
        "error": None,
        "match": match,
        "rows": [r for r in rows if not r.empty],
        "more": 0,
    }
    config = state(request).digest_config()
    action = field(form, "action", 10)
    if action == "more":
        values["more"] = 3
        return await _segments_view(request, values)
    try:
        if action == "build" or (not values["rule"].strip() and values["rows"]):
            rule = builder.build_rule(match, rows)
            values["rule"] = json.dumps(rule, ensure_ascii=False)
            if action == "build":
                action = "count"
        else:
            rule = parse_rule(values["rule"])
        if action == "count":
            found = await in_session(request, rule_count, values["list"], rule)
            values["count"] = found.to_dict()
            return await _segments_view(request, values)
        known = config.choosable_categories([values["list"]])
        await in_session(
            request,
            lambda s: subscribers_segments.create_segment(
                s,
                values["list"],
                values["name"],
                rule,
                categories=values["categories"],
                known_categories=known,
            ),
        )
    except SubscribersError as exc:
        values["error"] = str(exc)
        return await _segments_view(request, values, status=400)
    audit.info("%s saved the segment %s/%s", actor(request), values["list"], values["name"])
    flash(request, f"Segment {values['name']!r} saved on {values['list']!r}.", "success")
    return RedirectResponse("/admin/segments", status_code=303)


@router.post("/segments/delete")
async def segments_delete(request: Request) -> Response:
    require_admin(request)
    form = await read_form(request)
    list_name, name = field(form, "list", 100), field(form, "name", 100)
    try:
        await in_session(request, lambda s: subscribers_segments.delete_segment(s, list_name, name))
    except SubscribersError as exc:
        flash(request, str(exc), "error")
    else:
        audit.info("%s deleted the segment %s/%s", actor(request), list_name, name)
        flash(request, f"Segment {name!r} deleted.", "success")
    return RedirectResponse("/admin/segments", status_code=303)


# ---------------------------------------------------------------------------
# Editions


@router.get("/editions")
async def editions_page(request: Request) -> Response:
    require_editor(request)
    stats = await run_in_threadpool(state(request).digest.editions, limit=PAGE_SIZE)
    newsletters = list(state(request).app.config.newsletters.values())
    return render(
        request, "admin/editions.html.j2", {"editions": stats, "newsletters": newsletters}
    )


@router.get("/editions/{edition_id}")
async def edition_page(request: Request, edition_id: Id) -> Response:
    require_editor(request)
    settings = state(request).app.settings
    status = await in_session(
        request, lambda s: s.scalar(select(Edition.status).where(Edition.id == edition_id))
    )
    if status in desk_web.ON_THE_DESK:  # still in the editors' hands: the editor's desk
        return await desk_web.desk_page(request, edition_id)

    def load(session: Session) -> tuple[Any, list[dict[str, Any]], Any, dict[str, int]]:
        edition = session.get(Edition, edition_id)
        if edition is None:
            raise NotFound(f"no edition with id {edition_id}")
        (stats,) = edition_stats(session, [edition])
        variants = [
            {
                "key": v.key,
                "sections": list(v.sections),
                "subject": v.subject,
                "html_bytes": len(v.html.encode("utf-8")),
                "url": web_url(settings, edition.newsletter, edition.period, v.key),
            }
            for v in session.scalars(
                select(Variant).where(Variant.edition_id == edition.id).order_by(Variant.id)
            )
        ]
        provider = dict(
            session.execute(
                select(Event.type, func.count())
                .where(Event.edition_id == edition.id, Event.provider == SENDGRID)
                .group_by(Event.type)
                .order_by(Event.type)
            ).all()
        )
        return stats, variants, edition_tracking(session, edition.id), provider

    stats, variants, tracked, sendgrid = await in_session(request, load)
    newsletter = state(request).digest_config().newsletters.get(stats.newsletter)
    log = await in_session(request, drafts.log_entries, edition_id)
    chart = bar_chart(
        stats.bars(),
        chart_id=f"chart-{stats.id}",
        title=f"Delivery and engagement for {stats.newsletter} {stats.period}",
    )
    return render(
        request,
        "admin/edition.html.j2",
        {
            "stats": stats,
            "variants": variants,
            "chart": chart,
            "tracked": tracked,
            "sendgrid": sendgrid,
            "newsletter": newsletter,
            "log": log,
        },
    )


__all__ = ["parse_attributes", "router"]

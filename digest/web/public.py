"""Public pages: the newsletters, subscribing, confirming, unsubscribing, preferences.

Links in emails carry signed tokens (:mod:`subscribers.tokens`): ``/c/TOKEN``
confirms, ``/u/TOKEN`` unsubscribes, ``/p/TOKEN`` opens the preferences.  A GET
never changes anything: each page has a button that posts (link checkers in mail
systems follow every link in a message and must not confirm or unsubscribe anyone).

One-click unsubscribe (RFC 8058): mail providers POST ``List-Unsubscribe=One-Click``
to the ``List-Unsubscribe`` URL without cookies; that post unsubscribes at once and
answers 200, never a redirect.  Any other post needs the page's CSRF token.

The links in previews and web versions (``/u/preview``, ``/p/preview``) lead to a
page explaining that only the link in one's own email works.

Pause: a reader may pause for 2 weeks, a month or 3 months (``Subscriber.paused_until``,
the start of the day mail resumes); sends skip them until then.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from digest.config import DigestConfig, NewsletterConfig
from digest.web.optin import send_confirmation_quietly, subscribe
from digest.web.pages import (
    Limited,
    WebError,
    check_csrf_token,
    client_ip,
    field,
    fields,
    flash,
    in_session,
    read_body,
    read_form,
    render,
    state,
)
from digest.web.ratelimit import retry_after
from subscribers.errors import BadToken, InvalidAddress, NotResubscribable, SubscribersError
from subscribers.lists import find_list
from subscribers.models import MailingList, Membership, Status, Subscriber
from subscribers.service import GONE, confirm, unsubscribe, update_subscriber
from subscribers.service import pause as pause_mail
from subscribers.tokens import make_token, read_token
from subscribers.validate import email_hash, normalise

router = APIRouter(include_in_schema=False)

#: Tokens that are not tokens: the links in previews and web versions.
STAND_IN_TOKENS = frozenset({"preview"})
PAUSE_CHOICES = {"14": "2 weeks", "30": "1 month", "90": "3 months"}


class LinkHelp(WebError):
    """A stand-in link followed from a preview or a web version."""

    status = 200
    title = "Use the link in your own email"


def _newsletter(request: Request, name: str) -> NewsletterConfig:
    config = state(request).digest_config()
    found = config.newsletters.get(name)
    if found is None:
        raise WebError("There is no newsletter at this address.", title="Not found", status=404)
    return found


def _subscriber_id(request: Request, token: str, purpose: str) -> int:
    if token in STAND_IN_TOKENS:
        raise LinkHelp(
            "This is a preview or a web copy of a newsletter, so this link belongs to no "
            "one. Open the same link in the email you received to "
            + ("unsubscribe." if purpose == "unsubscribe" else "manage your preferences.")
        )
    try:
        return read_token(state(request).secret, token, purpose)
    except BadToken as exc:
        raise WebError(
            f"This link does not work: {exc}.", title="This link does not work", status=400
        ) from None


# ---------------------------------------------------------------------------
# Home and subscribing


@router.get("/")
async def home(request: Request) -> Response:
    config = state(request).digest_config()
    return render(request, "home.html.j2", {"newsletters": list(config.newsletters.values())})


def _list_open(session: Session, newsletter: NewsletterConfig) -> MailingList | None:
    return find_list(session, newsletter.list_name)


@router.get("/subscribe/{newsletter}")
async def subscribe_form(request: Request, newsletter: str) -> Response:
    nl = _newsletter(request, newsletter)
    mlist = await in_session(request, _list_open, nl)
    if mlist is None:
        raise _not_open(nl)
    return render(request, "subscribe.html.j2", _form_context(nl, mlist.double_opt_in))


def _not_open(nl: NewsletterConfig) -> WebError:
    return WebError(f"Sign-ups for {nl.title} are not open yet.", title="Not open yet", status=404)


def _form_context(
    nl: NewsletterConfig,
    double_opt_in: bool,
    *,
    email: str = "",
    name: str = "",
    chosen: list[str] | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    return {
        "newsletter": nl,
        "double_opt_in": double_opt_in,
        "email": email,
        "name": name,
        "chosen": chosen or [],
        "error": error,
    }


@router.post("/subscribe/{newsletter}")
async def subscribe_post(request: Request, newsletter: str) -> Response:
    web = state(request)
    nl = _newsletter(request, newsletter)
    form = await read_form(request)
    ip = client_ip(request)
    wait = web.subscribe_limit.take(ip)
    if wait:
        raise Limited(
            "Too many sign-ups from your network in a short time. Wait a minute and try again.",
            retry_after(wait),
        )
    email, name = field(form, "email", 320), field(form, "name", 200)
    chosen = [c for c in fields(form, "categories") if c in nl.category_names]
    mlist = await in_session(request, _list_open, nl)
    if mlist is None:
        raise _not_open(nl)
    try:
        address = normalise(email)
    except InvalidAddress:
        context = _form_context(
            nl,
            mlist.double_opt_in,
            email=email,
            name=name,
            chosen=chosen,
            error="Enter an email address like name@example.org.",
        )
        return render(request, "subscribe.html.j2", context, status=400)
    categories = [] if set(chosen) >= set(nl.category_names) else chosen
    to_confirm = await in_session(
        request, subscribe, nl, address, name=name, categories=categories, ip=ip
    )
    task = None
    if to_confirm is not None and not web.address_limit.take(email_hash(address.lower())):
        task = BackgroundTask(send_confirmation_quietly, web.app, nl, to_confirm)
    response = render(
        request,
        "subscribed.html.j2",
        {"newsletter": nl, "double_opt_in": mlist.double_opt_in},
    )
    response.background = task
    return response


# ---------------------------------------------------------------------------
# Confirming


def _describe(session: Session, subscriber_id: int) -> dict[str, Any] | None:
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        return None
    rows = session.execute(
        select(MailingList.name, Membership.status)
        .join(Membership, Membership.list_id == MailingList.id)
        .where(Membership.subscriber_id == subscriber_id)
        .order_by(MailingList.name)
    ).all()
    memberships = {name: Status(status).value for name, status in rows}
    return {
        "id": subscriber.id,
        "email": subscriber.email or "",
        "name": subscriber.name or "",
        "status": Status(subscriber.status).value,
        "gone": subscriber.status in GONE,
        "categories": list(subscriber.categories or []),
        "attributes": dict(subscriber.attributes or {}),
        "paused_until": subscriber.paused_until.date() if subscriber.paused_until else None,
        "memberships": memberships,
        #: The lists they are on or about to be (confirmation pending).
        "live": [n for n, st in memberships.items() if st in ("active", "pending")],
    }


def _titles(config: DigestConfig, list_names: list[str]) -> list[str]:
    wanted = set(list_names)
    titles = [nl.title for nl in config.newsletters.values() if nl.list_name in wanted]
    return titles or sorted(wanted)


def _gone_link() -> WebError:
    return WebError(
        "We hold no subscription for this link any more.",
        title="This link no longer works",
        status=400,
    )


@router.get("/c/{token}")
async def confirm_page(request: Request, token: str) -> Response:
    sid = _subscriber_id(request, token, "confirm")
    who = await in_session(request, _describe, sid)
    if who is None:
        raise _gone_link()
    pending = [n for n, s in who["memberships"].items() if s == Status.PENDING.value]
    config = state(request).digest_config()
    return render(
        request,
        "confirm.html.j2",
        {
            "token": token,
            "who": who,
            "titles": _titles(config, pending),
            "pending": bool(pending) and not who["gone"],
            "preferences_url": _own_link(request, sid, "preferences"),
        },
    )


@router.post("/c/{token}")
async def confirm_post(request: Request, token: str) -> Response:
    await read_form(request)
    sid = _subscriber_id(request, token, "confirm")

    def work(session: Session) -> dict[str, Any] | None:
        if session.get(Subscriber, sid) is None:
            return None
        confirm(session, sid)
        return _describe(session, sid)

    try:
        who = await in_session(request, work)
    except NotResubscribable:
        raise WebError(
            "This address unsubscribed or cannot receive our email, so it was not "
            "subscribed. Sign up again from the subscribe page if you want to come back.",
            title="Not subscribed",
            status=400,
        ) from None
    if who is None:
        raise _gone_link()
    config = state(request).digest_config()
    active = [n for n, s in who["memberships"].items() if s == Status.ACTIVE.value]
    return render(
        request,
        "confirmed.html.j2",
        {
            "titles": _titles(config, active),
            "preferences_url": _own_link(request, sid, "preferences"),
        },
    )


def _own_link(request: Request, subscriber_id: int, purpose: str) -> str:
    token = make_token(state(request).secret, subscriber_id, purpose)
    return f"/{purpose[0]}/{token}"


# ---------------------------------------------------------------------------
# Unsubscribing


@router.get("/u/{token}")
async def unsubscribe_page(request: Request, token: str) -> Response:
    sid = _subscriber_id(request, token, "unsubscribe")
    who = await in_session(request, _describe, sid)
    config = state(request).digest_config()
    live = who["live"] if who else []
    return render(
        request,
        "unsubscribe.html.j2",
        {
            "token": token,
            "email": mask(who["email"]) if who else "",
            "titles": _titles(config, live) if live else [],
            "done": who is None or not live or who["gone"],
            "preferences_url": _own_link(request, sid, "preferences") if who else None,
        },
    )


async def _one_click(request: Request) -> tuple[bool, object]:
    """(whether the post is RFC 8058's ``List-Unsubscribe=One-Click``, the CSRF field)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await read_form(request, check_csrf=False)
        values = {k: [v for v in form.getlist(k) if isinstance(v, str)] for k in form}
    else:
        body = await read_body(request, 10_000)
        if body is None:
            raise WebError("the request body is too large", status=413)
        values = parse_qs(body.decode("utf-8", "replace"))
    one_click = "One-Click" in values.get("List-Unsubscribe", [])
    tokens = values.get("csrf") or []
    return one_click, tokens[0] if tokens else None


@router.post("/u/{token}")
async def unsubscribe_post(request: Request, token: str) -> Response:
    one_click, csrf = await _one_click(request)
    if not one_click:
        check_csrf_token(request, csrf)
    sid = _subscriber_id(request, token, "unsubscribe")

    def work(session: Session) -> None:
        if session.get(Subscriber, sid) is not None:
            unsubscribe(session, sid, None, reason="one-click" if one_click else "unsubscribe page")

    await in_session(request, work)
    return render(request, "unsubscribed.html.j2", {"one_click": one_click})


def mask(email: str) -> str:
    """``r•••@example.net``: enough for a reader to recognise, little for anyone else."""
    local, at, domain = email.partition("@")
    if not at:
        return "•••"
    return f"{local[:1]}{'•' * 3}@{domain}"


# ---------------------------------------------------------------------------
# Preferences


def _preferences_context(request: Request, token: str, who: dict[str, Any]) -> dict[str, Any]:
    config = state(request).digest_config()
    live = who["live"]
    lists = []
    for name in live:
        titles = [nl.title for nl in config.newsletters.values() if nl.list_name == name]
        lists.append({"name": name, "title": " / ".join(titles) or name})
    categories = config.choosable_categories(live, other=False) or []
    chosen = who["categories"] or categories
    paused_until = who["paused_until"]
    if paused_until is not None and paused_until <= _today():
        paused_until = None
    return {
        "token": token,
        "who": who,
        "lists": lists,
        "categories": categories,
        "chosen": chosen,
        "paused_until": paused_until,
        "pause_choices": PAUSE_CHOICES,
    }


def _today() -> date:
    return datetime.now(UTC).date()


@router.get("/p/{token}")
async def preferences_page(request: Request, token: str) -> Response:
    sid = _subscriber_id(request, token, "preferences")
    who = await in_session(request, _describe, sid)
    if who is None:
        raise _gone_link()
    return render(request, "preferences.html.j2", _preferences_context(request, token, who))


@router.post("/p/{token}")
async def preferences_post(request: Request, token: str) -> Response:
    form = await read_form(request)
    sid = _subscriber_id(request, token, "preferences")
    config = state(request).digest_config()
    name = field(form, "name", 200)
    picked = fields(form, "categories")
    keep = set(fields(form, "lists"))
    pause = field(form, "pause", 10)

    def work(session: Session) -> bool:
        who = _describe(session, sid)
        if who is None:
            return False
        live = who["live"]
        known = config.choosable_categories(live, other=False) or []
        chosen = [c for c in picked if c in known]
        if pause in PAUSE_CHOICES:
            resume = _today() + timedelta(days=int(pause))
            pause_mail(session, sid, datetime.combine(resume, time(0), tzinfo=UTC))
        elif pause == "resume":
            pause_mail(session, sid, None)
        update_subscriber(
            session,
            sid,
            name=name,
            categories=([] if set(chosen) >= set(known) else chosen) if known else None,
            known_categories=known or None,
        )
        for list_name in live:
            if list_name not in keep:
                unsubscribe(session, sid, list_name, reason="preferences page")
        return True

    try:
        found = await in_session(request, work)
    except SubscribersError as exc:
        raise WebError(str(exc), title="Your preferences were not saved") from None
    if not found:
        raise _gone_link()
    flash(request, "Your preferences are saved.", "success")
    return RedirectResponse(f"/p/{token}", status_code=303)


@router.post("/p/{token}/unsubscribe")
async def preferences_unsubscribe(request: Request, token: str) -> Response:
    await read_form(request)
    sid = _subscriber_id(request, token, "preferences")

    def work(session: Session) -> None:
        if session.get(Subscriber, sid) is not None:
            unsubscribe(session, sid, None, reason="preferences page")

    await in_session(request, work)
    return render(request, "unsubscribed.html.j2", {"one_click": False})


__all__ = ["mask", "router"]

"""Public pages: the newsletters, subscribing, confirming, unsubscribing, preferences.

Links in emails carry signed tokens (:mod:`subscribers.tokens`): ``/c/TOKEN``
confirms, ``/u/TOKEN`` unsubscribes, ``/p/TOKEN`` opens the preferences.  A GET
never changes anything: each page has a button that posts (link checkers in mail
systems follow every link in a message and must not confirm or unsubscribe anyone).

One-click unsubscribe (RFC 8058): mail providers POST ``List-Unsubscribe=One-Click``
to the ``List-Unsubscribe`` URL without cookies; that post unsubscribes at once and
answers 200, never a redirect.  Any other post needs the page's CSRF token.  Both leave
the list the email came from (the token names it), not every list; the page offers
"leave all lists" as a second button.  A token from before tokens named their list
leaves every list, and the pages say so.

Every status change goes through :mod:`subscribers.consent`, logged with its source
(form, confirm, one-click, unsubscribe page, preferences) and the client's IP.

The links in previews and web versions (``/u/preview``, ``/p/preview``) lead to a
page explaining that only the link in one's own email works.

Pause: a reader may pause for 2 weeks, a month or 3 months (``Subscriber.paused_until``,
the start of the day mail resumes); sends skip them until then.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta
from html import escape
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from digest.config import DigestConfig, NewsletterConfig
from digest.events import EventType, record_own
from digest.web.optin import send_confirmation_quietly, subscribe
from digest.web.pages import (
    Limited,
    WebError,
    WebState,
    check_csrf_token,
    client_ip,
    field,
    fields,
    flash,
    in_session,
    read_body,
    read_form,
    render,
    replay,
    state,
)
from digest.web.ratelimit import retry_after
from digest.web.security import CSRF_FIELD
from digest.web.unsubscribes import Unsubscribe
from digest.web.welcome import send_welcome_quietly
from subscribers import consent
from subscribers.consent import GONE, By
from subscribers.errors import (
    BadToken,
    InvalidAddress,
    InvalidName,
    NotResubscribable,
    SubscribersError,
    Suppressed,
)
from subscribers.lists import find_list
from subscribers.models import ConsentSource, MailingList, Membership, Status, Subscriber
from subscribers.service import confirm, set_tracking, unsubscribe, update_subscriber
from subscribers.service import pause as pause_mail
from subscribers.tokens import Link, make_token, read_link
from subscribers.validate import clean_categories, clean_name, email_hash, normalise

router = APIRouter(include_in_schema=False)
log = logging.getLogger(__name__)

#: The embeddable sign-up form (on the publication's own site) posts without a CSRF
#: token (it has no session here); it says so with this field, and carries a honeypot
#: that people never see and robots fill in.  See :func:`embed_snippet`.
EMBED_FIELD = "source"
EMBED_VALUE = "embed"
HONEYPOT_FIELD = "website"

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
    return _link(request, token, purpose).subscriber_id


def _link(request: Request, token: str, purpose: str) -> Link:
    """Whose link this is and for which list (None: a token from before lists)."""
    if token in STAND_IN_TOKENS:
        raise LinkHelp(
            "This is a preview or a web copy of a newsletter, so this link belongs to no "
            "one. Open the same link in the email you received to "
            + ("unsubscribe." if purpose == "unsubscribe" else "manage your preferences.")
        )
    try:
        return read_link(state(request).secret, token, purpose)
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
    form = await read_form(request, check_csrf=False)
    embedded = CSRF_FIELD not in form and form.get(EMBED_FIELD) == EMBED_VALUE
    if not embedded:  # this site's own form: its token, as every form here
        check_csrf_token(request, form.get(CSRF_FIELD))
    ip = client_ip(request)
    wait = web.subscribe_limit.take(ip)
    if wait:
        raise Limited(
            "Too many sign-ups from your network in a short time. Wait a minute and try again.",
            retry_after(wait),
        )
    if embedded and field(form, HONEYPOT_FIELD, 200):
        # A robot filled the field people never see: the same answer, nothing done.
        log.info("embedded sign-up to %s refused: the honeypot was filled", nl.name)
        mlist = await in_session(request, _list_open, nl)
        return render(
            request,
            "subscribed.html.j2",
            {"newsletter": nl, "double_opt_in": bool(mlist and mlist.double_opt_in)},
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
    try:
        name = clean_name(name)
    except InvalidName:
        context = _form_context(
            nl,
            mlist.double_opt_in,
            email=email,
            name="",
            chosen=chosen,
            error="Write your name on one line, without line breaks or control characters.",
        )
        return render(request, "subscribe.html.j2", context, status=400)
    categories = clean_categories(chosen, nl.category_names)
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
        "tracking": not subscriber.no_tracking,
        "memberships": memberships,
        #: The lists they are on or about to be (confirmation pending).
        "live": [n for n, st in memberships.items() if st in ("active", "pending")],
    }


def _titles(config: DigestConfig, list_names: list[str]) -> list[str]:
    """What readers call each list: the titles of the newsletters mailing it, else its name."""
    titles: list[str] = []
    for name in list_names:
        found = [nl.title for nl in config.newsletters.values() if nl.list_name == name]
        titles.extend(t for t in found or [name] if t not in titles)
    return titles


def _gone_link() -> WebError:
    return WebError(
        "We hold no subscription for this link any more.",
        title="This link no longer works",
        status=400,
    )


def _to_confirm(session: Session, link: Link) -> dict[str, Any] | None:
    """The reader of a confirm link and the lists it would make them active on."""
    who = _describe(session, link.subscriber_id)
    if who is None:
        return None
    if link.list_name is None:
        waiting = [n for n, s in who["memberships"].items() if s == Status.PENDING.value]
        who["waiting"] = [] if who["gone"] else waiting
        return who
    mlist = find_list(session, link.list_name)
    if mlist is None:
        return None
    status = who["memberships"].get(mlist.name)
    if status == Status.PENDING.value and not who["gone"]:
        who["waiting"] = [mlist.name]
    elif status == Status.ACTIVE.value and not who["gone"]:
        who["waiting"] = []
    else:  # coming back: only after asking for this link since they left
        asked = consent.asked_since_leaving(session, link.subscriber_id, mlist)
        bounced = who["status"] in (Status.BOUNCED.value, Status.COMPLAINED.value)
        who["waiting"] = [mlist.name] if asked and not bounced else []
        who["gone"] = not who["waiting"]
    return who


@router.get("/c/{token}")
async def confirm_page(request: Request, token: str) -> Response:
    link = _link(request, token, "confirm")
    who = await in_session(request, _to_confirm, link)
    if who is None:
        raise _gone_link()
    config = state(request).digest_config()
    return render(
        request,
        "confirm.html.j2",
        {
            "token": token,
            "who": who,
            "titles": _titles(config, who["waiting"]),
            "pending": bool(who["waiting"]),
            "preferences_url": _own_link(request, link.subscriber_id, "preferences"),
        },
    )


@router.post("/c/{token}")
async def confirm_post(request: Request, token: str) -> Response:
    await read_form(request)
    link = _link(request, token, "confirm")
    by = By(ConsentSource.CONFIRM, client_ip(request))

    def work(session: Session) -> tuple[list[str], list[str]] | None:
        """(the lists the reader is on now, those they joined with this confirmation)."""
        if session.get(Subscriber, link.subscriber_id) is None:
            return None
        if link.list_name is not None and find_list(session, link.list_name) is None:
            return None
        before = _active_lists(session, link.subscriber_id)
        confirm(session, link.subscriber_id, link.list_name, by=by)
        after = _active_lists(session, link.subscriber_id)
        joined = [n for n in after if n not in before]
        if link.list_name is not None:
            return [link.list_name], joined
        return after, joined

    try:
        found = await in_session(request, work)
    except (NotResubscribable, Suppressed):
        raise WebError(
            "This address unsubscribed or cannot receive our email, so it was not "
            "subscribed. Sign up again from the subscribe page if you want to come back.",
            title="Not subscribed",
            status=400,
        ) from None
    if found is None:
        raise _gone_link()
    done, joined = found
    config = state(request).digest_config()
    response = render(
        request,
        "confirmed.html.j2",
        {
            "titles": _titles(config, done),
            "preferences_url": _own_link(request, link.subscriber_id, "preferences"),
        },
    )
    welcome = _welcomes(config, joined)
    if welcome:
        response.background = BackgroundTask(_send_welcomes, state(request).app, welcome, link)
    return response


def _active_lists(session: Session, subscriber_id: int) -> list[str]:
    after = _describe(session, subscriber_id)
    if after is None or after["gone"]:
        return []
    return [n for n, s in after["memberships"].items() if s == Status.ACTIVE.value]


def _welcomes(config: DigestConfig, joined: list[str]) -> list[NewsletterConfig]:
    """One welcome per list just joined: from the first newsletter mailing it."""
    out = []
    for name in joined:
        mailing = [nl for nl in config.newsletters.values() if nl.list_name == name]
        if mailing:
            out.append(mailing[0])
    return out


def _send_welcomes(app: Any, newsletters: list[NewsletterConfig], link: Link) -> None:
    for nl in newsletters:
        send_welcome_quietly(app, nl, link.subscriber_id)


def _own_link(request: Request, subscriber_id: int, purpose: str) -> str:
    token = make_token(state(request).secret, subscriber_id, purpose)
    return f"/{purpose[0]}/{token}"


# ---------------------------------------------------------------------------
# Unsubscribing


#: The unsubscribe page's second button: leave every list, not only this one.
ALL_LISTS = "all"


def _leaving(config: DigestConfig, link: Link, who: dict[str, Any] | None) -> dict[str, Any]:
    """What an unsubscribe link leaves: the list its email came from (its newsletters'
    titles), or, for a link that names no list, everything the reader is on."""
    live = who["live"] if who else []
    if link.list_name is None:
        return {"list": None, "titles": _titles(config, live) if live else []}
    on_it = link.list_name in live
    return {"list": link.list_name, "titles": _titles(config, [link.list_name]), "on_it": on_it}


@router.get("/u/{token}")
async def unsubscribe_page(request: Request, token: str) -> Response:
    link = _link(request, token, "unsubscribe")
    who = await in_session(request, _describe, link.subscriber_id)
    config = state(request).digest_config()
    leaving = _leaving(config, link, who)
    live = who["live"] if who else []
    others = [n for n in live if n != link.list_name]
    done = who is None or not live or who["gone"]
    if link.list_name is not None and not leaving["on_it"]:
        done = done or not others
    return render(
        request,
        "unsubscribe.html.j2",
        {
            "token": token,
            "email": mask(who["email"]) if who else "",
            "titles": leaving["titles"],
            "one_list": link.list_name is not None and bool(leaving.get("on_it")),
            "named": link.list_name is not None,
            "all_titles": _titles(config, live) if live else [],
            "others": bool(others),
            "done": done,
            "all_lists": ALL_LISTS,
            "preferences_url": _own_link(request, link.subscriber_id, "preferences")
            if who
            else None,
        },
    )


async def _one_click(request: Request) -> tuple[bool, dict[str, list[str]]]:
    """(whether the post is RFC 8058's ``List-Unsubscribe=One-Click``, the posted fields)."""
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
    return one_click, values


@router.post("/u/{token}")
async def unsubscribe_post(request: Request, token: str) -> Response:
    one_click, values = await _one_click(request)
    if not one_click:
        tokens = values.get("csrf") or []
        check_csrf_token(request, tokens[0] if tokens else None)
    link = _link(request, token, "unsubscribe")
    if one_click:
        return await one_click_unsubscribe(request, link)
    list_name = None if ALL_LISTS in values.get("scope", []) else link.list_name
    by = By(ConsentSource.UNSUBSCRIBE_PAGE, client_ip(request))
    post = Unsubscribe(link.subscriber_id, list_name, link.edition_id, by)
    await state(request).unsubscribes.submit(post)
    return _unsubscribed(request, list_name)


async def one_click_unsubscribe(request: Request, link: Link) -> Response:
    """RFC 8058's post: the reader leaves the link's list (counted on the link's
    edition), and gets the page saying so once that is stored."""
    by = By(ConsentSource.ONE_CLICK, client_ip(request))
    post = Unsubscribe(link.subscriber_id, link.list_name, link.edition_id, by)
    await state(request).unsubscribes.submit(post)
    return _unsubscribed(request, link.list_name)


def _unsubscribed(request: Request, list_name: str | None) -> Response:
    titles = _titles(state(request).digest_config(), [list_name]) if list_name else []
    return render(request, "unsubscribed.html.j2", {"titles": titles})


class FastOneClick:
    """ASGI middleware answering RFC 8058 one-click posts before the session, the sign-in
    check and the routing, which cost more than the unsubscribe itself (a burst of these
    posts follows every big send, from mail providers that send no cookie).

    A ``POST /u/TOKEN`` whose form body says ``List-Unsubscribe=One-Click`` and whose
    token is good gets exactly what :func:`unsubscribe_post` gives it
    (:func:`one_click_unsubscribe`).  Anything else goes on to the routes, with the body
    read so far passed on.  Sits inside :class:`~digest.web.security.BodyGuard`.
    """

    #: Largest body looked at here (a one-click body is 26 bytes).
    limit = 1_000

    def __init__(self, app: ASGIApp, *, web: WebState) -> None:
        self.app = app
        self.web = web

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = self._token(scope)
        if token is None:
            await self.app(scope, receive, send)
            return
        try:
            wait = self.web.options.body_timeout
            body = await read_body(Request(scope, receive), self.limit, timeout=wait)
        except ClientDisconnect:
            return  # nobody to answer
        except WebError as exc:  # the body came too slowly
            answer = PlainTextResponse(f"{exc}\n", status_code=exc.status)
            await answer(scope, receive, send)
            return
        link = self._link(token, body or b"")
        if link is None:
            await self.app(scope, replay(body or b"", receive), send)
            return
        scope = {**scope, "session": {}}  # no cookie read or set: providers send none
        response = await one_click_unsubscribe(Request(scope, receive), link)
        await response(scope, receive, send)

    def _token(self, scope: Scope) -> str | None:
        """The token of a request that may be a one-click post, else None."""
        if scope["type"] != "http" or scope["method"] != "POST":
            return None
        parts = scope["path"].split("/")
        if len(parts) != 3 or parts[1] != "u" or parts[2] in STAND_IN_TOKENS:
            return None
        headers = dict(scope["headers"])
        kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        length = headers.get(b"content-length", b"")
        if kind != b"application/x-www-form-urlencoded" or not length.isdigit():
            return None
        return parts[2] if int(length) <= self.limit else None

    def _link(self, token: str, body: bytes) -> Link | None:
        values = parse_qs(body.decode("utf-8", "replace"))
        if "One-Click" not in values.get("List-Unsubscribe", []):
            return None
        try:
            return read_link(self.web.secret, token, "unsubscribe")
        except BadToken:
            return None  # the route explains what is wrong with the link


def _edition_event(session: Session, link: Link, kind: EventType, detail: str) -> None:
    """What the reader did through a link of an edition's email, as an event of it."""
    assert link.edition_id is not None
    record_own(
        session, kind, edition_id=link.edition_id, subscriber_id=link.subscriber_id, detail=detail
    )


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
    link = _link(request, token, "preferences")
    sid = link.subscriber_id
    config = state(request).digest_config()
    name = field(form, "name", 200)
    picked = fields(form, "categories")
    keep = set(fields(form, "lists"))
    pause = field(form, "pause", 10)
    tracking_allowed = field(form, "tracking", 10) == "yes"

    by = By(ConsentSource.PREFERENCES, client_ip(request))

    def work(session: Session) -> bool:
        who = _describe(session, sid)
        if who is None:
            return False
        live = who["live"]
        known = config.choosable_categories(live, other=False) or []
        chosen = [c for c in picked if c in known]
        changes: list[str] = []
        if pause in PAUSE_CHOICES:
            resume = _today() + timedelta(days=int(pause))
            pause_mail(session, sid, datetime.combine(resume, time(0), tzinfo=UTC))
            changes.append(f"paused {pause} days")
        elif pause == "resume":
            pause_mail(session, sid, None)
            changes.append("resumed")
        if update_subscriber(
            session,
            sid,
            name=name,
            categories=chosen if known else None,
            known_categories=known or None,
        ):
            changes.append("name or sections")
        if set_tracking(session, sid, tracking_allowed):
            changes.append("tracking " + ("allowed" if tracking_allowed else "refused"))
        left: list[str] = []
        for list_name in live:
            if list_name not in keep:
                left += unsubscribe(session, sid, list_name, by=by)
        if link.edition_id is not None:
            if left:
                _edition_event(session, link, EventType.UNSUBSCRIBED, f"preferences: {left}")
            if changes:
                _edition_event(session, link, EventType.PREFERENCES, ", ".join(changes))
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
    link = _link(request, token, "preferences")
    sid = link.subscriber_id
    by = By(ConsentSource.PREFERENCES, client_ip(request))

    def work(session: Session) -> None:
        if session.get(Subscriber, sid) is not None:
            left = unsubscribe(session, sid, None, by=by)
            if left and link.edition_id is not None:
                _edition_event(session, link, EventType.UNSUBSCRIBED, f"preferences: {left}")

    await in_session(request, work)
    return render(request, "unsubscribed.html.j2", {"titles": []})


def embed_snippet(base_url: str, nl: NewsletterConfig) -> str:
    """The HTML of a sign-up form for the publication's own site: a plain form posting
    to ``/subscribe/NEWSLETTER`` (no script, no token), with the honeypot."""
    action = f"{base_url}/subscribe/{nl.name}"
    pitch = f"  <p>{escape(nl.subscribe_pitch)}</p>\n" if nl.subscribe_pitch else ""
    field_id = f"digest-{nl.name}"
    return (
        f'<form method="post" action="{escape(action)}" accept-charset="utf-8">\n'
        f"{pitch}"
        f'  <label for="{escape(field_id)}-email">Email address</label>\n'
        f'  <input type="email" id="{escape(field_id)}-email" name="email" required '
        'autocomplete="email">\n'
        f'  <input type="hidden" name="{EMBED_FIELD}" value="{EMBED_VALUE}">\n'
        f'  <div aria-hidden="true" style="position:absolute;left:-5000px">'
        f'<input type="text" name="{HONEYPOT_FIELD}" tabindex="-1" autocomplete="off" '
        'value=""></div>\n'
        f'  <button type="submit">Subscribe to {escape(nl.title)}</button>\n'
        "</form>\n"
    )


__all__ = ["EMBED_FIELD", "HONEYPOT_FIELD", "FastOneClick", "embed_snippet", "mask", "router"]

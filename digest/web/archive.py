"""Editions on the web: each variant at ``/e/NEWSLETTER/PERIOD/VARIANT`` (the "view in
your browser" link, :func:`digest.personalize.web_url`), and for newsletters with
``archive = true`` an archive page and an Atom feed of past editions.

A web version is the stored variant exactly as sent, with neutral values in the
personal fields: "Hi there", and unsubscribe and preferences links that explain
that only the reader's own email can do that.  Only editions that have started
sending are shown; the archive lists editions that were sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from xml.etree import ElementTree as ET

from fastapi import APIRouter
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from digest.collect import Period
from digest.config import NewsletterConfig
from digest.models import Edition, EditionStatus, Variant
from digest.personalize import first_name, personalize, preview_fields, web_url
from digest.queries import list_editions
from digest.web.pages import WebError, in_session, render, state
from digest.web.security import EMAIL_CSP

router = APIRouter(include_in_schema=False)

#: Editions whose web version may be shown (the link is in mail that went out).
VISIBLE = (EditionStatus.SENDING, EditionStatus.PAUSED, EditionStatus.SENT)
ARCHIVE_SIZE = 100
ATOM = "http://www.w3.org/2005/Atom"


def _not_found() -> WebError:
    return WebError("There is no edition at this address.", title="Not found", status=404)


def _newsletter(request: Request, name: str) -> NewsletterConfig:
    found = state(request).digest_config().newsletters.get(name)
    if found is None:
        raise _not_found()
    return found


@router.get("/e/{newsletter}/{period}/{variant}")
async def web_version(request: Request, newsletter: str, period: str, variant: str) -> Response:
    nl = _newsletter(request, newsletter)

    def load(session: Session) -> str | None:
        return session.scalar(
            select(Variant.html)
            .join(Edition, Edition.id == Variant.edition_id)
            .where(
                Edition.newsletter == nl.name,
                Edition.period == period,
                Edition.status.in_(VISIBLE),
                Variant.key == variant,
            )
        )

    html = await in_session(request, load)
    if html is None:
        raise _not_found()
    settings = state(request).app.settings
    values = preview_fields(settings, newsletter=nl.name, period=period, variant_key=variant)
    values["first_name"] = first_name("", nl.locale)
    headers = {"Content-Security-Policy": EMAIL_CSP, "Cache-Control": "public, max-age=300"}
    if not nl.archive:
        headers["X-Robots-Tag"] = "noindex"
    return HTMLResponse(personalize(html, values, html=True), headers=headers)


@dataclass(frozen=True)
class ArchivedEdition:
    period: str
    first_day: date
    last_day: date
    subject: str
    preheader: str
    url: str
    updated: datetime


def archived(session: Session, request: Request, nl: NewsletterConfig) -> list[ArchivedEdition]:
    """The newsletter's sent editions, newest first, each with its full variant's link."""
    settings = state(request).app.settings
    editions = list_editions(session, nl.name, statuses=[EditionStatus.SENT], limit=ARCHIVE_SIZE)
    # The shown variant's key, subject and preheader only (one query; never the bodies):
    # the full edition where there is one, else the first variant made.
    shown: dict[int, tuple[str, str, str]] = {}
    for edition_id, key, subject, preheader in session.execute(
        select(Variant.edition_id, Variant.key, Variant.subject, Variant.preheader)
        .where(Variant.edition_id.in_([e.id for e in editions]))
        .order_by(Variant.edition_id, Variant.key != "all", Variant.id)
    ):
        shown.setdefault(edition_id, (key, subject, preheader))
    out = []
    for edition in editions:
        if edition.id not in shown:
            continue
        key, subject, preheader = shown[edition.id]
        first, last = Period(edition.period, edition.period_start, edition.period_end).local_dates(
            nl
        )
        out.append(
            ArchivedEdition(
                period=edition.period,
                first_day=first,
                last_day=last,
                subject=edition.subject or subject,
                preheader=preheader,
                url=web_url(settings, nl.name, edition.period, key),
                updated=edition.updated_at,
            )
        )
    return out


def _archive_newsletter(request: Request, name: str) -> NewsletterConfig:
    nl = _newsletter(request, name)
    if not nl.archive:
        raise WebError(f"{nl.title} keeps no public archive.", title="No archive", status=404)
    return nl


@router.get("/archive/{newsletter}")
async def archive_page(request: Request, newsletter: str) -> Response:
    nl = _archive_newsletter(request, newsletter)
    items = await in_session(request, archived, request, nl)
    return render(request, "archive.html.j2", {"newsletter": nl, "items": items})


@router.get("/archive/{newsletter}/feed.atom")
async def archive_feed(request: Request, newsletter: str) -> Response:
    nl = _archive_newsletter(request, newsletter)
    items = await in_session(request, archived, request, nl)
    base = state(request).base_url
    return Response(
        atom_feed(nl, items, base),
        media_type="application/atom+xml; charset=utf-8",
        headers={"Cache-Control": "public, max-age=300"},
    )


def atom_feed(nl: NewsletterConfig, items: list[ArchivedEdition], base: str) -> bytes:
    """An Atom 1.0 document (RFC 4287) of the archived editions."""
    ET.register_namespace("", ATOM)

    def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: Any) -> ET.Element:
        element = ET.SubElement(parent, f"{{{ATOM}}}{tag}", {k: str(v) for k, v in attrs.items()})
        if text is not None:
            element.text = text
        return element

    feed = ET.Element(f"{{{ATOM}}}feed")
    archive_url = f"{base}/archive/{nl.name}"
    sub(feed, "id", archive_url)
    sub(feed, "title", nl.title)
    if nl.description:
        sub(feed, "subtitle", nl.description)
    newest = max((i.updated for i in items), default=None)
    sub(feed, "updated", (newest or datetime(2000, 1, 1, tzinfo=UTC)).isoformat())
    sub(feed, "link", rel="self", href=f"{archive_url}/feed.atom", type="application/atom+xml")
    sub(feed, "link", rel="alternate", href=archive_url, type="text/html")
    author = sub(feed, "author")
    sub(author, "name", nl.sender_name or nl.title)
    for item in items:
        entry = sub(feed, "entry")
        sub(entry, "id", item.url)
        sub(entry, "title", item.subject or item.period)
        sub(entry, "updated", item.updated.isoformat())
        sub(entry, "link", rel="alternate", href=item.url, type="text/html")
        sub(entry, "summary", item.preheader or f"{item.first_day} – {item.last_day}")
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)


__all__ = ["ArchivedEdition", "archived", "atom_feed", "router"]

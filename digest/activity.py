"""A reader's activity timeline, newest first: deliveries, clicks and opens, events
(bounces, complaints, what they did through their links) and consent changes.

For the subscriber's admin page; read-only, a handful of queries, each limited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from digest.models import Delivery, Edition, EditionLink, Event, Hit
from subscribers.models import ConsentEvent, Subscriber

#: Most entries of each kind read (the page shows the newest).
LIMIT = 200


@dataclass(frozen=True)
class Activity:
    at: datetime
    #: delivery, click, open, event, consent
    kind: str
    #: ``newsletter period`` of the edition concerned, or "".
    edition: str
    #: The edition's id, for a link to its page (None: none).
    edition_id: int | None
    what: str
    detail: str = ""


def _label(newsletter: str | None, period: str | None) -> str:
    return f"{newsletter} {period}" if newsletter else ""


def timeline(session: Session, subscriber_id: int, limit: int = LIMIT) -> list[Activity]:
    """Everything recorded about one reader, newest first (at most ``limit`` entries)."""
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        return []
    out: list[Activity] = []
    for status, reason, at, newsletter, period, edition_id in session.execute(
        select(
            Delivery.status,
            Delivery.reason,
            Delivery.updated_at,
            Edition.newsletter,
            Edition.period,
            Edition.id,
        )
        .join(Edition, Edition.id == Delivery.edition_id)
        .where(Delivery.subscriber_id == subscriber_id)
        .order_by(Delivery.updated_at.desc())
        .limit(limit)
    ):
        out.append(
            Activity(
                at,
                "delivery",
                _label(newsletter, period),
                edition_id,
                f"delivery {status}",
                reason or "",
            )
        )
    for kind, at, title, url, newsletter, period, edition_id in session.execute(
        select(
            Hit.kind,
            Hit.at,
            EditionLink.title,
            EditionLink.url,
            Edition.newsletter,
            Edition.period,
            Edition.id,
        )
        .join(Edition, Edition.id == Hit.edition_id)
        .outerjoin(EditionLink, EditionLink.id == Hit.link_id)
        .where(Hit.subscriber_id == subscriber_id)
        .order_by(Hit.at.desc())
        .limit(limit)
    ):
        what = f"clicked {title or url}" if kind == "click" else "opened (pixel loaded)"
        out.append(Activity(at, kind, _label(newsletter, period), edition_id, what, url or ""))
    mine = [Delivery.subscriber_id == subscriber_id]
    if subscriber.email:
        mine.append(func.lower(Event.email) == subscriber.email.lower())
    for provider, kind, at, newsletter, period, edition_id, payload in session.execute(
        select(
            Event.provider,
            Event.type,
            Event.occurred_at,
            Edition.newsletter,
            Edition.period,
            Edition.id,
            Event.payload,
        )
        .outerjoin(Delivery, Delivery.id == Event.delivery_id)
        .outerjoin(Edition, Edition.id == Event.edition_id)
        .where(or_(*mine))
        .order_by(Event.occurred_at.desc())
        .limit(limit)
    ):
        detail = ""
        if isinstance(payload, dict):
            detail = str(payload.get("detail") or payload.get("reason") or "")[:300]
        out.append(
            Activity(
                at, "event", _label(newsletter, period), edition_id, f"{kind} ({provider})", detail
            )
        )
    for line in session.scalars(
        select(ConsentEvent)
        .where(ConsentEvent.subscriber_id == subscriber_id)
        .order_by(ConsentEvent.id.desc())
        .limit(limit)
    ):
        old = line.from_status.value if line.from_status else "—"
        new = line.to_status.value if line.to_status else "off the list"
        where = line.list_name or "the person"
        out.append(
            Activity(
                line.at,
                "consent",
                "",
                None,
                f"{where}: {old} → {new} ({line.source.value})",
                line.detail or "",
            )
        )
    out.sort(key=lambda a: a.at, reverse=True)
    return out[:limit]


__all__ = ["LIMIT", "Activity", "timeline"]

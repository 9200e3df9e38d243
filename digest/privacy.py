"""Personal data across both packages: erasure and subject access.

``subscribers`` holds the person (record, memberships, consent, suppression);
the pipeline's ledger and events hold where their mail went.  These functions
cover both, so the CLI and the admin console erase and export the same things.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from digest.models import Delivery, DeliveryStatus, Edition, EditionLink, Event, Hit
from subscribers import privacy, service
from subscribers.consent import By
from subscribers.validate import lookup_key


def forget_person(
    session: Session, email: str, *, by: By | None = None
) -> tuple[privacy.Forgotten, int]:
    """Erase everything about ``email``: the subscriber and their consent log (a hashed
    suppression entry stays), and their address in delivery and event records.  Returns
    what ``subscribers.privacy.forget`` reports and the number of ledger/event rows
    cleared."""
    subscriber = service.find_subscriber(session, email)
    cleared = _erase_delivery_records(
        session, subscriber.id if subscriber else None, lookup_key(email)
    )
    return privacy.forget(session, email, by=by), cleared


def personal_data(session: Session, email: str) -> dict[str, Any]:
    """Everything held about ``email``, as JSON-ready data (subject access request),
    consent log included."""
    data = privacy.export_personal(session, email)
    subscriber_id = data["subscriber"]["id"] if data["subscriber"] else None
    data.update(_delivery_records(session, subscriber_id, lookup_key(email)))
    return data


def _delivery_filter(subscriber_id: int | None, key: str) -> Any:
    by_email = func.lower(Delivery.email) == key
    return or_(Delivery.subscriber_id == subscriber_id, by_email) if subscriber_id else by_email


def _erase_delivery_records(session: Session, subscriber_id: int | None, key: str) -> int:
    """Clear the address from the pipeline's delivery ledger and events (the rows stay for
    the edition's counts, without personal data)."""
    # What was still to be sent never will be: those rows are settled as skipped.
    session.execute(
        update(Delivery)
        .where(
            _delivery_filter(subscriber_id, key),
            Delivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.UNCERTAIN]),
        )
        .values(status=DeliveryStatus.SKIPPED, reason="erased on request")
        .execution_options(synchronize_session=False)
    )
    deliveries = session.execute(
        update(Delivery)
        .where(_delivery_filter(subscriber_id, key))
        .values(email=None, subscriber_id=None)
        .execution_options(synchronize_session=False)
    )
    events = session.execute(
        update(Event)
        .where(func.lower(Event.email) == key)
        .values(email=None, payload={})
        .execution_options(synchronize_session=False)
    )
    if subscriber_id is not None:  # clicks and opens are theirs alone: deleted
        session.execute(
            delete(Hit)
            .where(Hit.subscriber_id == subscriber_id)
            .execution_options(synchronize_session=False)
        )
    return int(getattr(deliveries, "rowcount", 0) or 0) + int(getattr(events, "rowcount", 0) or 0)


def _delivery_records(session: Session, subscriber_id: int | None, key: str) -> dict[str, Any]:
    deliveries = session.execute(
        select(Delivery, Edition.newsletter, Edition.period)
        .join(Edition, Edition.id == Delivery.edition_id)
        .where(_delivery_filter(subscriber_id, key))
        .order_by(Delivery.id)
    ).all()
    delivery_ids = [d.id for d, _, _ in deliveries]
    event_filter = func.lower(Event.email) == key
    if delivery_ids:
        event_filter = or_(event_filter, Event.delivery_id.in_(delivery_ids))
    events = session.scalars(select(Event).where(event_filter).order_by(Event.id)).all()
    hits = (
        session.execute(
            select(Hit.kind, Hit.at, Edition.newsletter, Edition.period, EditionLink.url)
            .join(Edition, Edition.id == Hit.edition_id)
            .outerjoin(EditionLink, EditionLink.id == Hit.link_id)
            .where(Hit.subscriber_id == subscriber_id)
            .order_by(Hit.id)
        ).all()
        if subscriber_id is not None
        else []
    )
    return {
        "clicks_and_opens": [
            {"kind": kind, "at": at.isoformat(), "newsletter": nl, "period": period, "url": url}
            for kind, at, nl, period, url in hits
        ],
        "deliveries": [
            {
                "newsletter": newsletter,
                "period": period,
                "email": d.email,
                "status": str(d.status),
                "reason": d.reason,
                "message_id": d.message_id,
                "created_at": d.created_at.isoformat(),
                "updated_at": d.updated_at.isoformat(),
            }
            for d, newsletter, period in deliveries
        ],
        "events": [
            {
                "type": e.type,
                "provider": e.provider,
                "email": e.email,
                "occurred_at": e.occurred_at.isoformat(),
                "payload": e.payload,
            }
            for e in events
        ],
    }

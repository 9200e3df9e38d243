"""Provider events: normalised, stored once, and acted on.

SendGrid's Event Webhook posts batches of events (``processed``, ``delivered``, ``bounce``,
``spamreport``, …).  Each one is mapped through :data:`SENDGRID_TYPES` to an
:class:`EventType`, stored as a :class:`digest.models.Event` — once: the insert is
``ON CONFLICT DO NOTHING`` on the provider's event id, so a replayed or concurrently
delivered batch changes nothing — and matched to its delivery through the ``custom_args``
the SendGrid backend puts on every message (``edition_id``, ``subscriber_id``; SendGrid
echoes them as top-level keys of each event).

Effects, applied only when an event is stored for the first time:

* a hard bounce (``bounce`` of type ``bounce``) suppresses the address (``hard_bounce``) and
  marks the subscriber bounced; a soft one (type ``blocked``) is only recorded;
* a spam report suppresses the address (``spam_report``) and marks the subscriber complained;
* ``unsubscribe`` and ``group_unsubscribe`` unsubscribe the subscriber from every list.
"""

from __future__ import annotations

import enum
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from digest.models import Delivery, Edition, Event
from subscribers import service
from subscribers.consent import By
from subscribers.errors import SubscribersError
from subscribers.models import ConsentSource, Subscriber, SuppressionReason

log = logging.getLogger(__name__)

SENDGRID = "sendgrid"


class EventType(enum.StrEnum):
    """What happened to a message, in provider-neutral words."""

    QUEUED = "queued"
    DELIVERED = "delivered"
    DEFERRED = "deferred"
    #: A hard bounce: the address does not accept mail.
    BOUNCED = "bounced"
    #: A soft bounce (SendGrid ``bounce`` of type ``blocked``): worth knowing, not fatal.
    BLOCKED = "blocked"
    DROPPED = "dropped"
    COMPLAINED = "complained"
    UNSUBSCRIBED = "unsubscribed"
    OPENED = "opened"
    CLICKED = "clicked"
    UNKNOWN = "unknown"


#: SendGrid event names → our types (``bounce`` is split by its ``type`` field).
SENDGRID_TYPES: dict[str, EventType] = {
    "processed": EventType.QUEUED,
    "delivered": EventType.DELIVERED,
    "deferred": EventType.DEFERRED,
    "bounce": EventType.BOUNCED,
    "dropped": EventType.DROPPED,
    "spamreport": EventType.COMPLAINED,
    "unsubscribe": EventType.UNSUBSCRIBED,
    "group_unsubscribe": EventType.UNSUBSCRIBED,
    "open": EventType.OPENED,
    "click": EventType.CLICKED,
}


@dataclass(frozen=True)
class ProviderEvent:
    """One event as we understand it, before it is stored."""

    provider: str
    provider_event_id: str
    type: EventType
    email: str | None
    occurred_at: datetime
    #: From the message's ``custom_args`` (None when absent or not a number).
    edition_id: int | None
    subscriber_id: int | None
    #: The provider's words on why (bounce reason, SMTP response, …), or "".
    reason: str
    #: The event exactly as the provider sent it.
    payload: dict[str, Any]


def normalise_sendgrid(raw: Mapping[str, Any]) -> ProviderEvent:
    """One SendGrid Event Webhook event as a :class:`ProviderEvent`.  Never fails: odd
    values become None / ``unknown``; an event without ``sg_event_id`` (SendGrid always
    sends one) gets a stable id derived from its content, so replays still match."""
    name = raw.get("event")
    kind = SENDGRID_TYPES.get(name, EventType.UNKNOWN) if isinstance(name, str) else None
    kind = kind or EventType.UNKNOWN
    if kind is EventType.BOUNCED and str(raw.get("type") or "bounce").lower() == "blocked":
        kind = EventType.BLOCKED
    event_id = raw.get("sg_event_id")
    if not isinstance(event_id, str) or not event_id.strip():
        canonical = json.dumps(raw, sort_keys=True, default=str).encode("utf-8")
        event_id = "sha256:" + hashlib.sha256(canonical).hexdigest()
    email = raw.get("email")
    reason = raw.get("reason") or raw.get("response") or ""
    return ProviderEvent(
        provider=SENDGRID,
        provider_event_id=event_id.strip()[:200],
        type=kind,
        email=email.strip() if isinstance(email, str) and email.strip() else None,
        occurred_at=_when(raw.get("timestamp")),
        edition_id=_id(raw.get("edition_id")),
        subscriber_id=_id(raw.get("subscriber_id")),
        reason=str(reason),
        payload=dict(raw),
    )


def _when(value: Any) -> datetime:
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return datetime.now(UTC)


def _id(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip()) or None
    return None


# ---------------------------------------------------------------------------
# Storing and acting


def record(session: Session, event: ProviderEvent) -> int | None:
    """Store ``event`` unless it is stored already, and apply its effects when new.

    Returns the new row's id, or None for a duplicate (nothing changes).  Race-safe on
    SQLite and PostgreSQL: two concurrent calls for one event store and act once.
    The caller owns the transaction.
    """
    delivery_id, edition_id = _match(session, event.edition_id, event.subscriber_id)
    table = cast(Table, Event.__table__)
    values = {
        "provider": event.provider,
        "provider_event_id": event.provider_event_id,
        "type": event.type.value,
        "email": event.email[:320] if event.email else None,
        "delivery_id": delivery_id,
        "edition_id": edition_id,
        "occurred_at": event.occurred_at,
        "payload": event.payload,
        "created_at": datetime.now(UTC),
    }
    dialect = session.get_bind().dialect.name
    insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert(table)
        .values(values)
        .on_conflict_do_nothing(index_elements=[table.c.provider_event_id])
        .returning(table.c.id)
    )
    new_id = session.execute(stmt).scalar()
    if new_id is None:
        return None
    apply_effects(session, event)
    return int(new_id)


def _match(
    session: Session, edition_id: int | None, subscriber_id: int | None
) -> tuple[int | None, int | None]:
    """(delivery id, edition id) of the message the event is about, as far as known."""
    if edition_id is None:
        return None, None
    if subscriber_id is not None:
        delivery = session.scalar(
            select(Delivery.id).where(
                Delivery.edition_id == edition_id, Delivery.subscriber_id == subscriber_id
            )
        )
        if delivery is not None:
            return delivery, edition_id
    found = session.scalar(select(Edition.id).where(Edition.id == edition_id))
    return None, found


def apply_effects(session: Session, event: ProviderEvent) -> None:
    """What the event means for the subscriber: suppress, or unsubscribe (see module doc)."""
    detail = f"{event.provider} {event.type.value} {event.occurred_at:%Y-%m-%d %H:%M}Z"
    if event.reason:
        detail += f": {event.reason}"
    by = By(ConsentSource.WEBHOOK, event.provider, detail)
    if event.type is EventType.BOUNCED and event.email:
        service.suppress(session, event.email, SuppressionReason.HARD_BOUNCE, detail[:2000], by=by)
    elif event.type is EventType.COMPLAINED and event.email:
        service.suppress(session, event.email, SuppressionReason.SPAM_REPORT, detail[:2000], by=by)
    elif event.type is EventType.UNSUBSCRIBED:
        subscriber = _subscriber(session, event)
        if subscriber is not None:
            service.unsubscribe(session, subscriber.id, None, reason=detail, by=by)
        else:
            log.info("unsubscribe event %s matches no subscriber", event.provider_event_id)


def _subscriber(session: Session, event: ProviderEvent) -> Subscriber | None:
    if event.subscriber_id is not None:
        subscriber = session.get(Subscriber, event.subscriber_id)
        if subscriber is not None:
            return subscriber
    return service.find_subscriber(session, event.email) if event.email else None


@dataclass
class IngestSummary:
    """What one batch did: how many events came, were new, were repeats, failed."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    failed: int = 0
    types: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "failed": self.failed,
            "types": dict(sorted(self.types.items())),
        }


def ingest(
    transaction: Callable[[], AbstractContextManager[Session]],
    events: Iterable[ProviderEvent],
) -> IngestSummary:
    """Store and act on each event in its own transaction (``App.session`` fits).

    One event failing on the database does not undo the others; it is logged and counted
    in ``failed`` so the webhook can answer an error and the provider retries the batch
    (stored events are then skipped as duplicates).
    """
    summary = IngestSummary()
    for event in events:
        summary.received += 1
        summary.types[event.type.value] = summary.types.get(event.type.value, 0) + 1
        try:
            with transaction() as session:
                new = record(session, event)
        except (SQLAlchemyError, SubscribersError):
            log.exception("could not store %s event %s", event.provider, event.provider_event_id)
            summary.failed += 1
            continue
        if new is None:
            summary.duplicates += 1
        else:
            summary.stored += 1
    return summary


__all__ = [
    "SENDGRID_TYPES",
    "EventType",
    "IngestSummary",
    "ProviderEvent",
    "apply_effects",
    "ingest",
    "normalise_sendgrid",
    "record",
]

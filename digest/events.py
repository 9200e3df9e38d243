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
* ``unsubscribe`` and ``group_unsubscribe`` unsubscribe the subscriber from every list;
* any event about a delivery that is *uncertain* (its post had no answer) settles it:
  sent, or failed for ``bounce``/``dropped`` (:mod:`digest.delivery.evidence`).

Each event is stored in its own transaction, so one bad event never costs the others.
An event that cannot be stored because of what it holds (not an object, nested or sized
beyond reason, text the database refuses) is *rejected*: logged in one line and counted,
never retried.  Only a database that cannot be reached counts as *failed*, so that the
provider posts the batch again (what was stored is then skipped as a duplicate).
"""

from __future__ import annotations

import enum
import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from digest.delivery import evidence
from digest.errors import DatabaseError
from digest.models import Delivery, Edition, Event
from subscribers import service
from subscribers.consent import By
from subscribers.db import MAX_ID
from subscribers.models import ConsentSource, Subscriber, SuppressionReason

log = logging.getLogger(__name__)
_EVENTS = cast(Table, Event.__table__)

SENDGRID = "sendgrid"
#: The provider of the events digest records itself (a reader's own links).
DIGEST = "digest"
#: Nesting and size beyond which an event is rejected (SendGrid's are flat and small).
MAX_EVENT_DEPTH = 16
MAX_EVENT_BYTES = 64 * 1024
#: Errors that say the database could not be reached, not that the event is bad.
_TRANSIENT = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout, DatabaseError)


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
    #: The reader changed their preferences through a link in the edition.
    PREFERENCES = "preferences"
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


class BadEvent(ValueError):
    """An event that cannot be taken as it is (says why); it is rejected, never retried."""


def read_sendgrid(raw: Any) -> ProviderEvent:
    """One item of a webhook batch as a :class:`ProviderEvent`, or :class:`BadEvent`
    when it is not an event object of reasonable nesting and size."""
    if not isinstance(raw, dict):
        raise BadEvent(f"not an event object but {type(raw).__name__}")
    if _depth(raw) > MAX_EVENT_DEPTH:
        raise BadEvent(f"nested deeper than {MAX_EVENT_DEPTH} levels")
    try:
        size = len(json.dumps(raw, default=str).encode("utf-8", "surrogatepass"))
    except (ValueError, RecursionError):
        raise BadEvent("holds values that are not JSON") from None
    if size > MAX_EVENT_BYTES:
        raise BadEvent(f"{size} bytes, more than {MAX_EVENT_BYTES}")
    return normalise_sendgrid(raw)


def _depth(value: Any) -> int:
    """How deeply ``value`` nests (without recursion: any depth is safe to measure)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


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
    """A positive id the database can hold, from a number or ASCII digits; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.isdigit() and len(text) <= 10):
            return None
        value = int(text)
    if isinstance(value, int):
        return value if 0 < value <= MAX_ID else None
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
    if delivery_id is not None:
        # an uncertain delivery the provider reports is uncertain no more
        evidence.settle_one(session, delivery_id, event.type.value, event.provider)
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


@dataclass(frozen=True, slots=True)
class OwnEvent:
    """What a reader did through a link of an edition's email (see :func:`record_own`)."""

    kind: EventType
    edition_id: int
    subscriber_id: int
    detail: str = ""


def record_own(
    session: Session,
    kind: EventType,
    *,
    edition_id: int,
    subscriber_id: int,
    detail: str = "",
) -> bool:
    """Store what a reader did through a link in an edition's email (unsubscribed,
    changed preferences) as an event of that edition, whatever backend sent it.

    Nothing else happens: the change itself went through :mod:`subscribers.consent`.
    False when the edition no longer exists (nothing is stored).
    """
    return record_own_many(session, [OwnEvent(kind, edition_id, subscriber_id, detail)]) == 1


def record_own_many(session: Session, events: Sequence[OwnEvent]) -> int:
    """:func:`record_own` for many at once (a burst of one-click unsubscribes), in three
    statements; returns how many were stored (those of editions that still exist)."""
    if not events:
        return 0
    editions = sorted({e.edition_id for e in events})
    readers = sorted({e.subscriber_id for e in events})
    conn = session.connection()
    found: set[int] = set()
    deliveries: dict[tuple[int, int], int] = {}
    for edition, delivery, reader in conn.execute(
        _OWN_DELIVERIES, {"editions": editions, "readers": readers}
    ):
        found.add(edition)
        if delivery is not None:
            deliveries[edition, reader] = delivery
    emails: dict[int, str | None] = dict(conn.execute(_OWN_EMAILS, {"readers": readers}).all())
    when = datetime.now(UTC)
    rows = [
        {
            "provider": DIGEST,
            "provider_event_id": f"{DIGEST}:{uuid.uuid4().hex}",
            "type": e.kind.value,
            "email": emails.get(e.subscriber_id),
            "delivery_id": deliveries.get((e.edition_id, e.subscriber_id)),
            "edition_id": e.edition_id,
            "occurred_at": when,
            "payload": {"subscriber_id": e.subscriber_id, "detail": e.detail[:500]},
            "created_at": when,
        }
        for e in events
        if e.edition_id in found
    ]
    if rows:
        conn.execute(_OWN_INSERT, rows)
    return len(rows)


# The statements of record_own_many, built once (a burst of one-click unsubscribes).
_EDITIONS = cast(Table, Edition.__table__)
_DELIVERIES = cast(Table, Delivery.__table__)
_SUBSCRIBERS = cast(Table, Subscriber.__table__)
_OWN_DELIVERIES = (
    select(_EDITIONS.c.id, _DELIVERIES.c.id, _DELIVERIES.c.subscriber_id)
    .select_from(
        _EDITIONS.outerjoin(
            _DELIVERIES,
            and_(
                _DELIVERIES.c.edition_id == _EDITIONS.c.id,
                _DELIVERIES.c.subscriber_id.in_(bindparam("readers", expanding=True)),
            ),
        )
    )
    .where(_EDITIONS.c.id.in_(bindparam("editions", expanding=True)))
)
_OWN_EMAILS = select(_SUBSCRIBERS.c.id, _SUBSCRIBERS.c.email).where(
    _SUBSCRIBERS.c.id.in_(bindparam("readers", expanding=True))
)
_OWN_INSERT = insert(_EVENTS)


@dataclass
class IngestSummary:
    """What one batch did: how many events came, were new, were repeats, were rejected
    (bad events, never retried) or failed (the database could not be reached)."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    failed: int = 0
    types: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "failed": self.failed,
            "types": dict(sorted(self.types.items())),
        }


Transaction = Callable[[], AbstractContextManager[Session]]


def ingest(transaction: Transaction, events: Iterable[ProviderEvent]) -> IngestSummary:
    """Store and act on each event in its own transaction (``App.transaction`` fits).

    One event failing does not undo the others: a bad one is logged and counted in
    ``rejected``; one the database could not take for want of a connection in
    ``failed``, so that the webhook can ask the provider to retry the batch (stored
    events are then skipped as duplicates).
    """
    summary = IngestSummary()
    for event in events:
        _ingest_one(transaction, event, summary)
    return summary


def ingest_sendgrid(transaction: Transaction, batch: Iterable[Any]) -> IngestSummary:
    """:func:`ingest` for the items of a SendGrid webhook batch as posted: an item that
    is not an event (:func:`read_sendgrid`) is rejected and the others still count."""
    summary = IngestSummary()
    for number, raw in enumerate(batch):
        try:
            event = read_sendgrid(raw)
        except BadEvent as exc:
            summary.received += 1
            summary.rejected += 1
            log.warning("rejected %s event #%d of a batch: %s", SENDGRID, number, exc)
            continue
        _ingest_one(transaction, event, summary)
    return summary


def _ingest_one(transaction: Transaction, event: ProviderEvent, summary: IngestSummary) -> None:
    summary.received += 1
    summary.types[event.type.value] = summary.types.get(event.type.value, 0) + 1
    try:
        with transaction() as session:
            new = record(session, event)
    except _TRANSIENT as exc:
        log.warning(
            "could not store %s event %s, the provider will retry: %s",
            event.provider,
            event.provider_event_id,
            _first_line(exc),
        )
        summary.failed += 1
        return
    except Exception as exc:  # what the event holds: never worth a retry
        log.warning(
            "rejected %s event %s: %s: %s",
            event.provider,
            event.provider_event_id,
            type(exc).__name__,
            _first_line(exc),
        )
        summary.rejected += 1
        return
    if new is None:
        summary.duplicates += 1
    else:
        summary.stored += 1


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return (text.splitlines() or [""])[0][:300]


__all__ = [
    "SENDGRID_TYPES",
    "BadEvent",
    "EventType",
    "IngestSummary",
    "OwnEvent",
    "ProviderEvent",
    "apply_effects",
    "ingest",
    "ingest_sendgrid",
    "normalise_sendgrid",
    "read_sendgrid",
    "record",
    "record_own",
    "record_own_many",
]

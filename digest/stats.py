"""Delivery and engagement counts per edition (the admin pages, the API and
``digest editions list`` show the same figures).

Delivery counts come from the ledger (:class:`digest.models.Delivery`: sent, failed,
skipped, …).  Engagement comes from events (:class:`digest.models.Event`, types from
:class:`digest.events.EventType`): the provider's (SendGrid's webhook), bounces and
complaints received by mail (``digest inbound``), and what readers did through their own
links in the edition (unsubscribing, changing preferences: provider ``digest``), counted
as *distinct readers* (by address): a reader who opens an email five times counts once
in "opened".  Clicks through tracked links and pixel opens (:mod:`digest.tracking`) come
from :class:`digest.models.Hit`.  Three grouped queries cover any number of editions.

Kept out of :mod:`digest.web` so that the command line can count without loading
the web app.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.events import EventType
from digest.models import Delivery, DeliveryStatus, Edition, Event, Hit

#: Event types shown, in funnel order.
ENGAGEMENT = (
    EventType.DELIVERED,
    EventType.BOUNCED,
    EventType.BLOCKED,
    EventType.OPENED,
    EventType.CLICKED,
    EventType.UNSUBSCRIBED,
    EventType.COMPLAINED,
    EventType.PREFERENCES,
)


@dataclass
class EditionStats:
    id: int
    newsletter: str
    period: str
    status: str
    subject: str
    created_at: datetime
    #: Deliveries by ledger status (every status present, zero when none).
    ledger: dict[str, int] = field(default_factory=dict)
    #: Distinct readers per event type (every type in ENGAGEMENT present).
    readers: dict[str, int] = field(default_factory=dict)
    #: Events per type (an open counted each time).
    events: dict[str, int] = field(default_factory=dict)
    #: Clicks through tracked links and pixel opens: {"click"|"open": (readers, hits)}.
    tracked: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def recipients(self) -> int:
        return sum(self.ledger.values())

    @property
    def sent(self) -> int:
        return self.ledger.get(DeliveryStatus.SENT.value, 0)

    def count(self, kind: EventType | str) -> int:
        return self.readers.get(EventType(kind).value, 0)

    def rate(self, kind: EventType | str) -> float | None:
        """Readers with this event per reader delivered to (or sent to, before any
        delivery event arrives), in percent; None when nothing was sent."""
        base = self.count(EventType.DELIVERED) or self.sent
        return 100.0 * self.count(kind) / base if base else None

    @property
    def clickers(self) -> int:
        """Readers who clicked: through tracked links, else as the provider reports."""
        return self.tracked.get("click", (0, 0))[0] or self.count(EventType.CLICKED)

    @property
    def openers(self) -> int:
        """Readers who opened (estimates): the pixel, else as the provider reports."""
        return self.tracked.get("open", (0, 0))[0] or self.count(EventType.OPENED)

    def figures(self) -> list[tuple[str, int, float | None, int]]:
        """Per event type: readers, their share (see :meth:`rate`) and events.  Opens
        and clicks count as the chart does: the tracked ones when there are any, else
        the provider's."""
        rows = []
        base = self.count(EventType.DELIVERED) or self.sent
        for kind, readers in self.readers.items():
            events = self.events.get(kind, 0)
            tracked = {EventType.OPENED.value: "open", EventType.CLICKED.value: "click"}.get(kind)
            if tracked and self.tracked.get(tracked, (0, 0))[0]:
                readers, events = self.tracked[tracked]
            rows.append((kind, readers, 100.0 * readers / base if base else None, events))
        return rows

    def bars(self) -> list[tuple[str, int]]:
        return [
            ("Sent", self.sent),
            ("Delivered", self.count(EventType.DELIVERED)),
            ("Bounced", self.count(EventType.BOUNCED)),
            ("Opened", self.openers),
            ("Clicked", self.clickers),
            ("Unsubscribed", self.count(EventType.UNSUBSCRIBED)),
            ("Complained", self.count(EventType.COMPLAINED)),
        ]

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "newsletter": self.newsletter,
            "period": self.period,
            "status": self.status,
            "subject": self.subject,
            "created_at": self.created_at.isoformat(),
            "deliveries": dict(self.ledger),
            "readers": dict(self.readers),
            "events": dict(self.events),
            "tracked": {k: {"readers": r, "hits": n} for k, (r, n) in self.tracked.items()},
        }


def edition_stats(session: Session, editions: Sequence[Edition]) -> list[EditionStats]:
    """Counts for ``editions`` (same order), in three grouped queries."""
    ids = [e.id for e in editions]
    ledger: dict[int, dict[str, int]] = {i: {s.value: 0 for s in DeliveryStatus} for i in ids}
    readers: dict[int, dict[str, int]] = {i: {t.value: 0 for t in ENGAGEMENT} for i in ids}
    events: dict[int, dict[str, int]] = {i: {t.value: 0 for t in ENGAGEMENT} for i in ids}
    tracked: dict[int, dict[str, tuple[int, int]]] = {i: {} for i in ids}
    if ids:
        rows = session.execute(
            select(Delivery.edition_id, Delivery.status, func.count())
            .where(Delivery.edition_id.in_(ids))
            .group_by(Delivery.edition_id, Delivery.status)
        )
        for edition_id, status, n in rows:
            ledger[edition_id][DeliveryStatus(status).value] = n
        who = func.lower(func.coalesce(Event.email, Event.provider_event_id))
        event_rows = session.execute(
            select(Event.edition_id, Event.type, func.count(func.distinct(who)), func.count())
            .where(Event.edition_id.in_(ids))
            .group_by(Event.edition_id, Event.type)
        )
        for event_edition, kind, distinct, total in event_rows:
            if event_edition in readers and kind in readers[event_edition]:
                readers[event_edition][kind] = distinct
                events[event_edition][kind] = total
        hit_rows = session.execute(
            select(
                Hit.edition_id, Hit.kind, func.count(func.distinct(Hit.subscriber_id)), func.count()
            )
            .where(Hit.edition_id.in_(ids))
            .group_by(Hit.edition_id, Hit.kind)
        )
        for hit_edition, kind, distinct, total in hit_rows:
            tracked[hit_edition][kind] = (distinct, total)
    return [
        EditionStats(
            id=e.id,
            newsletter=e.newsletter,
            period=e.period,
            status=str(e.status),
            subject=e.subject or "",
            created_at=e.created_at,
            ledger=ledger[e.id],
            readers=readers[e.id],
            events=events[e.id],
            tracked=tracked[e.id],
        )
        for e in editions
    ]


__all__ = ["ENGAGEMENT", "EditionStats", "edition_stats"]

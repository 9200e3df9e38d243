"""Local-time waves: one edition, each reader's copy due at the scheduled local hour.

With ``local_time = true`` a newsletter sent at, say, Monday 08:00 Europe/London
reaches a reader in America/New_York at Monday 08:00 New York time: the reader's
delivery batch gets ``not_before`` = the send's local date and wall-clock time
read in the reader's own zone.  Readers without a timezone (or with the
newsletter's) get it with the send itself, and so do readers whose local hour
has already passed (zones ahead, e.g. Asia/Tokyo for a London newsletter):
waiting for the same hour next week would deliver a week-old edition.

Batches are grouped by (variant, not_before) when the ledger is planned; every
sender (`digest send`, `digest worker`, the scheduler) only claims due batches.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.config import NewsletterConfig
from digest.models import (
    BatchStatus,
    Delivery,
    DeliveryBatch,
    DeliveryStatus,
    Edition,
    EditionStatus,
)


class WavePlanner:
    """``not_before`` for a reader's timezone name (None: due with the send itself)."""

    def __init__(self, newsletter: NewsletterConfig, as_of: datetime, now: datetime) -> None:
        if as_of.tzinfo is None:
            raise ValueError("as_of must be timezone-aware")
        self.newsletter = newsletter
        #: The send's local date and time in the newsletter's zone, without a zone.
        self.wall = as_of.astimezone(newsletter.zone).replace(tzinfo=None)
        self.floor = max(now, as_of).astimezone(UTC)
        self._cache: dict[str, datetime | None] = {}

    def __call__(self, zone: str | None) -> datetime | None:
        if not zone or zone == self.newsletter.timezone:
            return None
        if zone not in self._cache:
            self._cache[zone] = self._wave(zone)
        return self._cache[zone]

    def _wave(self, zone: str) -> datetime | None:
        try:
            tz = ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            return None  # an unknown zone is treated as the newsletter's
        at = self.wall.replace(tzinfo=tz).astimezone(UTC)
        return at if at > self.floor else None


def planner(
    newsletter: NewsletterConfig, as_of: datetime | None, now: datetime
) -> WavePlanner | None:
    """A wave planner when the newsletter sends in local time, else None."""
    if not newsletter.local_time or as_of is None:
        return None
    return WavePlanner(newsletter, as_of, now)


def waiting(session: Session, edition_id: int, now: datetime) -> tuple[int, datetime | None]:
    """Deliveries of an edition held for a later wave, and when the next wave is due.

    Driven from the held batches (usually none), so it reads only their rows, not
    every delivery of the edition.
    """
    held = (
        select(DeliveryBatch.id, DeliveryBatch.not_before)
        .where(
            DeliveryBatch.edition_id == edition_id,
            DeliveryBatch.status == BatchStatus.PENDING,
            DeliveryBatch.not_before > now,
        )
        .subquery()
    )
    count, first = session.execute(
        select(func.count(Delivery.id), func.min(held.c.not_before))
        .select_from(held)
        .join(Delivery, Delivery.batch_id == held.c.id)
        .where(Delivery.status == DeliveryStatus.PENDING)
    ).one()
    return int(count or 0), first


def future_waves(session: Session, edition_id: int, now: datetime) -> list[datetime]:
    """The distinct times at which an edition still has batches waiting."""
    return list(
        session.scalars(
            select(DeliveryBatch.not_before)
            .where(
                DeliveryBatch.edition_id == edition_id,
                DeliveryBatch.status == BatchStatus.PENDING,
                DeliveryBatch.not_before > now,
            )
            .distinct()
            .order_by(DeliveryBatch.not_before)
        )
    )


def editions_with_waves(session: Session) -> list[tuple[int, str]]:
    """(edition id, newsletter) of every sending edition with wave batches still pending."""
    rows = session.execute(
        select(Edition.id, Edition.newsletter)
        .join(DeliveryBatch, DeliveryBatch.edition_id == Edition.id)
        .where(
            Edition.status == EditionStatus.SENDING,
            DeliveryBatch.status == BatchStatus.PENDING,
            DeliveryBatch.not_before.is_not(None),
        )
        .distinct()
        .order_by(Edition.id)
    ).all()
    return [(int(i), str(n)) for i, n in rows]


__all__ = ["WavePlanner", "editions_with_waves", "future_waves", "planner", "waiting"]

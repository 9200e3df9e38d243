"""Who gets which variant: readers' category choices mapped onto an edition's sections.

A variant is one distinct tuple of sections.  Readers are grouped by their
chosen categories in SQL (``GROUP BY``), so a million readers cost one query
and a handful of Python calls, never a loop over every reader.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.collect import Collection
from digest.compose import sections_for
from digest.config import NewsletterConfig
from subscribers.models import Subscriber
from subscribers.segments import get_segment
from subscribers.service import recipients


def segment_categories(
    session: Session, newsletter: NewsletterConfig, segment: str | None
) -> tuple[str, ...]:
    """The categories a segment fixes for its readers (empty: their own choice)."""
    if segment is None:
        return ()
    seg = get_segment(session, newsletter.list_name, segment)
    return tuple(seg.categories or ())


def section_sets(
    session: Session,
    newsletter: NewsletterConfig,
    collection: Collection,
    segment: str | None = None,
) -> dict[tuple[str, ...], int]:
    """Each distinct section tuple among the recipients, with its reader count.

    Readers whose choices match no section this period map to the empty tuple.
    """
    fixed = segment_categories(session, newsletter, segment)
    base = recipients(session, newsletter.list_name, segment).subquery()
    rows = session.execute(
        select(base.c.categories, func.count()).group_by(base.c.categories)
    ).all()
    counts: Counter[tuple[str, ...]] = Counter()
    for categories, count in rows:
        counts[sections_for(collection, _as_list(categories), fixed)] += count
    return dict(counts)


def _as_list(value: object) -> Sequence[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    return []


__all__ = ["Subscriber", "section_sets", "segment_categories"]

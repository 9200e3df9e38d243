"""Who gets which variant: readers' category choices mapped onto an edition's sections.

A variant is one distinct tuple of sections.  Readers are grouped by their
chosen categories in SQL (``GROUP BY``), so a million readers cost one query
and a handful of Python calls, never a loop over every reader.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from sqlalchemy import ColumnElement, Select, case, false, func, literal, or_, select, true
from sqlalchemy.orm import Session

from digest.collect import Collection
from digest.compose import sections_for
from digest.config import NewsletterConfig
from subscribers.models import Subscriber
from subscribers.segments import get_segment
from subscribers.service import compile_rule, recipients


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


def audiences_query(
    session: Session, newsletter: NewsletterConfig, segments: Sequence[str | None]
) -> tuple[Select[Subscriber], ColumnElement[int]]:
    """The recipients of any of ``segments`` (None: the whole list) in one query, and a
    column saying which audience each one belongs to: the index of the first of
    ``segments`` whose rule the reader matches (as planning them one after the other
    would: a reader planned for one audience is not planned again for the next)."""
    rules = [
        true()
        if seg is None
        else compile_rule(get_segment(session, newsletter.list_name, seg).rule)
        for seg in segments
    ]
    base = recipients(session, newsletter.list_name, None)
    if len(rules) == 1:
        return base.where(rules[0]), literal(0)
    which = case(*[(rule, i) for i, rule in enumerate(rules)], else_=None)
    return base.where(or_(false(), *rules)), which


def audiences_section_sets(
    session: Session,
    newsletter: NewsletterConfig,
    collection: Collection,
    segments: Sequence[str | None],
) -> dict[tuple[str, ...], int]:
    """:func:`section_sets` of several audiences at once (one query over the list), each
    reader counted once, in the first of ``segments`` that has them."""
    fixed = [segment_categories(session, newsletter, seg) for seg in segments]
    query, which = audiences_query(session, newsletter, segments)
    base = query.with_only_columns(which.label("which"), Subscriber.categories).subquery()
    rows = session.execute(
        select(base.c.which, base.c.categories, func.count()).group_by(
            base.c.which, base.c.categories
        )
    ).all()
    counts: Counter[tuple[str, ...]] = Counter()
    for index, categories, count in rows:
        counts[sections_for(collection, _as_list(categories), fixed[index])] += count
    return dict(counts)


def _as_list(value: object) -> Sequence[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    return []


__all__ = [
    "Subscriber",
    "audiences_query",
    "audiences_section_sets",
    "section_sets",
    "segment_categories",
]

"""Editions: one per (newsletter, period), their contents frozen when they are made.

An edition is unique per (newsletter, period): running a send again finds the
same edition.  Its contents are frozen when it is created (the article ids per
section), so a resumed send renders the same email even if new articles
arrived in between.  The audiences its ledger was written for are rows of
``edition_audience`` (see :mod:`digest.plan`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digest.app import App
from digest.collect import Collection, Period, Section, collect_period
from digest.config import NewsletterConfig
from digest.errors import NotFound
from digest.models import Article, Edition, EditionAudience, EditionStatus


def freeze(collection: Collection) -> dict[str, Any]:
    """An edition's ``contents``: the article ids of each section, in order."""
    return {"sections": [[s.name, [a.id for a in s.articles]] for s in collection.sections]}


def edition_collection(
    session: Session, newsletter: NewsletterConfig, edition: Edition
) -> Collection:
    """The collection an edition was created with (its articles as they are now)."""
    period = Period(edition.period, edition.period_start, edition.period_end)
    frozen = edition.contents.get("sections", [])
    ids = [i for _, ids in frozen for i in ids]
    by_id = {a.id: a for a in session.scalars(select(Article).where(Article.id.in_(ids)))}
    sections = [Section(name, [by_id[i] for i in ids if i in by_id]) for name, ids in frozen]
    return Collection(newsletter, period, [s for s in sections if s.articles])


def find_edition(session: Session, newsletter: str, period: str) -> Edition | None:
    return session.scalars(
        select(Edition).where(Edition.newsletter == newsletter, Edition.period == period)
    ).first()


def period_collection(
    session: Session, newsletter: NewsletterConfig, period: Period
) -> tuple[Edition | None, Collection]:
    """The period's edition and its frozen collection, or (None, the articles as they are
    now) when no edition exists yet: what previews and test copies show."""
    edition = find_edition(session, newsletter.name, period.key)
    if edition is not None:
        return edition, edition_collection(session, newsletter, edition)
    return None, collect_period(session, newsletter, period)


def get_or_create_edition(
    app: App, newsletter: NewsletterConfig, period: Period
) -> tuple[Edition | None, bool]:
    """(The edition for ``period``, whether this call created it), created from the
    period's articles if need be.

    Returns (None, False) when there is no edition and nothing to put in one.
    Two processes racing here end up with the same single edition.
    """
    with app.session() as s:
        edition = find_edition(s, newsletter.name, period.key)
        if edition is not None:
            return edition, False
        collection = collect_period(s, newsletter, period)
        if collection.is_empty:
            return None, False
    try:
        with app.session() as s:
            edition = Edition(
                newsletter=newsletter.name,
                period=period.key,
                period_start=period.start,
                period_end=period.end,
                status=EditionStatus.PLANNED,
                contents=freeze(collection),
            )
            s.add(edition)
        return edition, True
    except IntegrityError:
        with app.session() as s:
            edition = find_edition(s, newsletter.name, period.key)
        return edition, False


def planned_audiences(session: Session, edition_id: int) -> list[str]:
    """The audiences an edition's ledger has been written for, in the order they were."""
    return list(
        session.scalars(
            select(EditionAudience.audience)
            .where(EditionAudience.edition_id == edition_id)
            .order_by(EditionAudience.id)
        )
    )


def require_edition(session: Session, ref: str) -> Edition:
    """An edition by id, or by ``NEWSLETTER/PERIOD``."""
    if ref.isdigit():
        edition = session.get(Edition, int(ref))
    else:
        newsletter, _, period = ref.partition("/")
        edition = find_edition(session, newsletter, period)
    if edition is None:
        raise NotFound(
            f"no edition {ref!r}; give its id or NEWSLETTER/PERIOD as `digest editions list` shows"
        )
    return edition


__all__ = [
    "edition_collection",
    "find_edition",
    "freeze",
    "get_or_create_edition",
    "period_collection",
    "planned_audiences",
    "require_edition",
]

"""The articles of one period for one newsletter, grouped and ordered by category.

A newsletter's articles are those that came from one of its ``sources`` (an
article two sources share belongs to the newsletters of both; see
``article_source`` in :mod:`digest.ingest.store`).  Articles from a source no
newsletter lists (``digest ingest URL`` of some other page) belong to none,
and a newsletter without sources has no articles.

The period is computed in the newsletter's timezone: by default the ISO week
(Monday 00:00 to Sunday 24:00) before the send date, or the ``N`` whole days
before it for ``window = "Nd"``.  Sections follow the newsletter's category
order; within one, pinned articles come first, then newest first, up to
``max_per_category``.  Unknown categories land in ``other_category`` (unless
it is empty), and empty sections are left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from digest.config import NewsletterConfig, resolve_source_ref
from digest.models import Article, ArticleSource, Source


@dataclass(frozen=True)
class Period:
    """A half-open interval ``[start, end)`` named by ``key`` (``2026-W47``)."""

    key: str
    start: datetime
    end: datetime

    def local_dates(self, newsletter: NewsletterConfig) -> tuple[date, date]:
        """First and last calendar day of the period, in the newsletter's timezone."""
        zone = newsletter.zone
        return (
            self.start.astimezone(zone).date(),
            (self.end.astimezone(zone) - timedelta(microseconds=1)).date(),
        )


def _local_midnight(day: date, newsletter: NewsletterConfig) -> datetime:
    return datetime.combine(day, time(0), tzinfo=newsletter.zone).astimezone(UTC)


def period_for(newsletter: NewsletterConfig, as_of: datetime) -> Period:
    """The period an edition sent at ``as_of`` covers."""
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    today = as_of.astimezone(newsletter.zone).date()
    if newsletter.window == "week":
        this_monday = today - timedelta(days=today.weekday())
        monday = this_monday - timedelta(days=7)
        year, week, _ = monday.isocalendar()
        return Period(
            key=f"{year}-W{week:02d}",
            start=_local_midnight(monday, newsletter),
            end=_local_midnight(this_monday, newsletter),
        )
    days = int(newsletter.window[:-1])
    first = today - timedelta(days=days)
    last = today - timedelta(days=1)
    return Period(
        key=f"{first.isoformat()}..{last.isoformat()}",
        start=_local_midnight(first, newsletter),
        end=_local_midnight(today, newsletter),
    )


@dataclass
class Section:
    name: str
    articles: list[Article] = field(default_factory=list)


@dataclass
class Collection:
    newsletter: NewsletterConfig
    period: Period
    sections: list[Section]
    #: An edition's editing (see :mod:`digest.drafts`): the editor's intro (Markdown),
    #: the article made top story, and a subject line replacing the template's.
    intro: str = ""
    top_id: int | None = None
    subject: str | None = None
    #: An editor set the order: a variant without ``top_id`` leads with the first article
    #: of its first section (else with the newest).
    ordered: bool = False

    @property
    def total(self) -> int:
        return sum(len(s.articles) for s in self.sections)

    @property
    def is_empty(self) -> bool:
        return self.total == 0

    @property
    def articles(self) -> list[Article]:
        return [a for s in self.sections for a in s.articles]

    def to_dict(self) -> dict[str, Any]:
        first, last = self.period.local_dates(self.newsletter)
        return {
            "newsletter": self.newsletter.name,
            "period": self.period.key,
            "start": self.period.start.isoformat(),
            "end": self.period.end.isoformat(),
            "first_day": first.isoformat(),
            "last_day": last.isoformat(),
            "total": self.total,
            "sections": [
                {
                    "name": s.name,
                    "articles": [
                        {
                            "id": a.id,
                            "title": a.title,
                            "url": a.canonical_url,
                            "author": a.author,
                            "published_at": a.published_at.isoformat(),
                            "categories": a.categories,
                            "pinned": a.pinned,
                        }
                        for a in s.articles
                    ],
                }
                for s in self.sections
            ],
        }


def section_of(article: Article, newsletter: NewsletterConfig) -> str | None:
    """The section an article belongs to: its first configured category, else 'Other'."""
    configured = set(newsletter.category_names)
    for label in article.categories:
        name = newsletter.normalise_category(label)
        if name in configured:
            return name
    return newsletter.other_category or None


def collect(session: Session, newsletter: NewsletterConfig, as_of: datetime) -> Collection:
    """Gather ``newsletter``'s articles for the period before ``as_of``."""
    period = period_for(newsletter, as_of)
    return collect_period(session, newsletter, period)


def source_locations(newsletter: NewsletterConfig) -> list[str]:
    """Where ``newsletter``'s sources are read from, as ingest records them.

    A loaded config holds file sources as absolute paths already; a relative one
    (a config built in code) is taken relative to the working directory, as
    ``digest ingest PATH`` does.
    """
    return list(dict.fromkeys(resolve_source_ref(s.url, Path.cwd()) for s in newsletter.sources))


def newsletter_articles(newsletter: NewsletterConfig) -> Select[Any]:
    """The ids of the articles that came from one of ``newsletter``'s sources."""
    return (
        select(ArticleSource.article_id)
        .join(Source, Source.id == ArticleSource.source_id)
        .where(Source.url.in_(source_locations(newsletter)))
    )


def collect_period(session: Session, newsletter: NewsletterConfig, period: Period) -> Collection:
    """Gather ``newsletter``'s articles (see the module doc) published in ``period``."""
    rows = session.scalars(
        select(Article)
        .where(
            Article.published_at >= period.start,
            Article.published_at < period.end,
            Article.id.in_(newsletter_articles(newsletter)),
        )
        .order_by(Article.pinned.desc(), Article.published_at.desc(), Article.id.desc())
    ).all()
    order = [*newsletter.category_names]
    if newsletter.other_category and newsletter.other_category not in order:
        order.append(newsletter.other_category)
    grouped: dict[str, list[Article]] = {name: [] for name in order}
    for article in rows:
        name = section_of(article, newsletter)
        if name is None:
            continue
        bucket = grouped[name]
        if len(bucket) < newsletter.max_per_category:
            bucket.append(article)
    sections = [Section(name, arts) for name, arts in grouped.items() if arts]
    return Collection(newsletter=newsletter, period=period, sections=sections)

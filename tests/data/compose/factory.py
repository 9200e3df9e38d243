"""Builders for composer tests: newsletters, articles and in-memory collections.

Articles are plain (transient) ``digest.models.Article`` objects, so most
composer tests need no database; the CLI tests store the same rows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from digest.collect import Collection, Period, Section, period_for, section_of
from digest.config import NewsletterConfig
from digest.models import Article, Source

HERE = Path(__file__).parent
AS_OF = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
#: The newsletter's source: stored articles must come from it to be collected.
FEED = "https://news.civic.example/feed.xml"
CATEGORIES = ("Policy", "Data and security", "Customer service", "Social care", "Workforce")

_SUMMARY = (
    "Northbridge council said the new service would save £1.2m a year once fully live. "
    "The pilot ran in three wards and handled 40,000 requests from residents. "
    "People reported shorter waits, fewer repeat calls and clearer updates on progress. "
    "Officials plan to extend it to housing repairs next spring, subject to funding. "
    "Unions have asked for a review of staffing before the wider roll-out begins."
)


def newsletter(**overrides: Any) -> NewsletterConfig:
    fields: dict[str, Any] = {
        "name": "weekly",
        "title": "The Civic Week",
        "description": "You receive this because you subscribed to The Civic Week.",
        "list": "weekly",
        "sender": "The Civic Week <news@civic.example>",
        "categories": [{"name": c} for c in CATEGORIES],
        "max_per_category": 10,
        "timezone": "Europe/London",
        "postal_address": "Civic Media Ltd, 1 Example Street, London EC1A 1AA",
        "sources": [FEED],
    }
    fields.update(overrides)
    return NewsletterConfig(**fields)


def from_feed(articles: Sequence[Article], url: str = FEED) -> list[Article]:
    """``articles`` as seen in the feed ``url`` (for tests that store and collect them)."""
    feed = Source(url=url, kind="rss")
    for art in articles:
        art.source = feed
        art.sources = [feed]
    return list(articles)


def period(nl: NewsletterConfig | None = None) -> Period:
    return period_for(nl or newsletter(), AS_OF)


def article(
    n: int,
    category: str | None,
    *,
    when: datetime | None = None,
    image: bool = True,
    **overrides: Any,
) -> Article:
    slug = (category or "other").lower().replace(" ", "-")
    fields: dict[str, Any] = {
        "id": n,
        "canonical_url": f"https://news.civic.example/{slug}/2026/11/story-{n}-council-digital-service",
        "title": f"Story {n}: council launches a digital service for residents after a pilot",
        "summary_text": _SUMMARY,
        "summary_html": f"<p>{_SUMMARY}</p>",
        "author": "Jane Smith",
        "categories": [category] if category else [],
        "image_url": f"https://images.civic.example/2026/11/story-{n}.jpg" if image else None,
        "published_at": when or period().start + timedelta(hours=3 * n),
        "date_estimated": False,
        "pinned": False,
        "content_hash": f"{n:064x}",
    }
    fields.update(overrides)
    return Article(**fields)


def articles(count: int, categories: Sequence[str] = CATEGORIES) -> list[Article]:
    """``count`` articles spread evenly over ``categories``, every other one with an image."""
    start = period().start
    return [
        article(
            i + 1,
            categories[i % len(categories)],
            when=start + timedelta(minutes=240 * i + 7),
            image=i % 2 == 0,
        )
        for i in range(count)
    ]


def collection(arts: Sequence[Article], nl: NewsletterConfig | None = None) -> Collection:
    """Group ``arts`` like :func:`digest.collect.collect_period` does, without a database."""
    nl = nl or newsletter()
    order = [*nl.category_names]
    if nl.other_category and nl.other_category not in order:
        order.append(nl.other_category)
    grouped: dict[str, list[Article]] = {name: [] for name in order}
    ranked = sorted(arts, key=lambda a: (not a.pinned, -a.published_at.timestamp(), -a.id))
    for art in ranked:
        name = section_of(art, nl)
        if name is not None and len(grouped[name]) < nl.max_per_category:
            grouped[name].append(art)
    sections = [Section(name, items) for name, items in grouped.items() if items]
    return Collection(newsletter=nl, period=period(nl), sections=sections)


def hostile_articles() -> list[Article]:
    """Rows with script, style and URL injection attempts (tests/data/compose/hostile.json)."""
    rows = json.loads((HERE / "hostile.json").read_text(encoding="utf-8"))
    start = period().start
    out = []
    for i, row in enumerate(rows, start=1):
        row.setdefault("categories", [CATEGORIES[i % 2]])
        out.append(article(1000 + i, None, when=start + timedelta(hours=i), **row))
    return out


__all__ = [
    "AS_OF",
    "CATEGORIES",
    "UTC",
    "article",
    "articles",
    "collection",
    "hostile_articles",
    "newsletter",
    "period",
]

"""Synthetic publications for the bench: a config, a week of articles, many readers.

Readers are inserted in bulk (Core ``INSERT`` of many rows at a time), never one
ORM object each, so generating a million takes seconds.  Everything is
deterministic (a fixed seed): two runs measure the same data.

* 40 articles in ISO week 2026-W47, 8 in each of five categories;
* ``subscribers`` active readers on list ``weekly``, each with a ``region``
  attribute ``r0`` … ``r9`` and a category choice (about a third choose nothing,
  i.e. everything; the others one to three categories);
* ten segments, one per region; three of them fix their readers' categories.

On PostgreSQL the tables are analysed once loaded, as after any bulk import.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, insert, text

from digest.app import App
from digest.models import Article, ArticleSource, Source
from subscribers.lists import create_list
from subscribers.models import Membership, Status, Subscriber
from subscribers.segments import create_segment

#: Sending on this Monday covers 2026-W47 (16–22 November 2026).
AS_OF = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
CATEGORIES = ("Policy", "Data and security", "Care", "Housing", "Workforce")
ARTICLES_PER_CATEGORY = 8
SEGMENTS = tuple(f"region-{i}" for i in range(10))
#: Segments that send their readers fixed categories, whatever each reader chose.
FIXED = {
    "region-0": ("Care",),
    "region-1": ("Policy", "Data and security"),
    "region-2": ("Housing",),
}
SECRET = "bench-secret-key-of-a-decent-length"
BASE_URL = "https://news.example.org"
API_KEY = "SG.bench-key.contract-server"

CONFIG = """
[newsletters.weekly]
title = "The Civic Week"
description = "You receive this because you subscribed to The Civic Week."
list = "weekly"
sender = "The Civic Week <news@civic.example>"
reply_to = "editors@civic.example"
unsubscribe_mailto = "unsubscribe@civic.example"
timezone = "Europe/London"
postal_address = "Civic Media Ltd, 1 Example Street, London EC1A 1AA"
max_per_category = 10
{sources}
{categories}
"""

_SUMMARY = (
    "Northbridge council said the new service would save £1.2m a year once fully live. "
    "The pilot ran in three wards and handled 40,000 requests from residents. "
    "People reported shorter waits, fewer repeat calls and clearer updates on progress. "
    "Officials plan to extend it to housing repairs next spring, subject to funding. "
    "Unions have asked for a review of staffing before the wider roll-out begins."
)


@dataclass(frozen=True)
class World:
    """Where a synthetic publication lives and how to reach it."""

    db_url: str
    root: Path
    config: Path

    def app(self, **overrides: Any) -> App:
        values: dict[str, Any] = {
            "database_url": self.db_url,
            "config": str(self.config),
            "secret_key": SECRET,
            "base_url": BASE_URL,
            "outbox_dir": str(self.root / "outbox"),
            "log_level": "WARNING",
            **overrides,
        }
        return App(**values)


#: The newsletter's source when none is given: the synthetic articles came from it.
FEED = "https://news.civic.example/feed.xml"


def write_config(root: Path, sources: list[str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    sources = sources or [FEED]
    cats = "".join(f'[[newsletters.weekly.categories]]\nname = "{c}"\n' for c in CATEGORIES)
    listed = ", ".join(f'"{s}"' for s in sources or [])
    path = root / "digest.toml"
    path.write_text(
        CONFIG.format(sources=f"sources = [{listed}]" if sources else "", categories=cats),
        encoding="utf-8",
    )
    return path


def articles(start: datetime = datetime(2026, 11, 16, 7, 0, tzinfo=UTC)) -> list[dict[str, Any]]:
    """Forty article rows in 2026-W47, every other one with an image."""
    rows = []
    for n in range(len(CATEGORIES) * ARTICLES_PER_CATEGORY):
        cat = CATEGORIES[n % len(CATEGORIES)]
        slug = cat.lower().replace(" ", "-")
        rows.append(
            {
                "canonical_url": f"https://news.civic.example/{slug}/2026/11/story-{n + 1}",
                "title": f"Story {n + 1}: council launches a digital service after a pilot",
                "summary_text": _SUMMARY,
                "summary_html": f"<p>{_SUMMARY}</p>",
                "author": "Jane Smith",
                "categories": [cat],
                "image_url": f"https://images.civic.example/story-{n + 1}.jpg"
                if n % 2 == 0
                else None,
                "published_at": start + timedelta(minutes=240 * n + 7),
                "content_hash": f"{n:064x}",
            }
        )
    return rows


def choice(rng: random.Random) -> list[str]:
    """One reader's category choice: empty (everything) about a third of the time."""
    if rng.random() < 0.33:
        return []
    return sorted(rng.sample(CATEGORIES, rng.randint(1, 3)))


def populate(app: App, subscribers: int, *, chunk: int = 10_000, seed: int = 7) -> None:
    """Articles, the list, ten segments and ``subscribers`` readers, inserted in bulk."""
    now = datetime.now(UTC)
    with app.transaction() as s:
        feed = s.scalars(insert(Source).returning(Source.id), [{"url": FEED, "kind": "rss"}]).one()
        rows = [dict(row, source_id=feed) for row in articles()]
        ids = s.scalars(insert(Article).returning(Article.id), rows).all()
        s.execute(
            insert(ArticleSource),
            [{"article_id": i, "source_id": feed, "first_seen_at": now} for i in ids],
        )
        mlist = create_list(s, "weekly", double_opt_in=False)
        for i, name in enumerate(SEGMENTS):
            create_segment(
                s,
                "weekly",
                name,
                {"attr": "region", "equals": f"r{i}"},
                categories=FIXED.get(name, ()),
                known_categories=CATEGORIES,
            )
        list_id = mlist.id
    add_readers(app, list_id, 0, subscribers, chunk=chunk, seed=seed)
    if app.engine.dialect.name == "postgresql":
        # What an import should end with (PostgreSQL's advice after a bulk load, and what
        # autovacuum does within a minute or so): without statistics the planner takes
        # the new tables for empty ones.
        with app.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE subscriber, membership, segment, article"))


def add_readers(
    app: App, list_id: int, first: int, stop: int, *, chunk: int = 10_000, seed: int = 7
) -> list[int]:
    """Readers ``reader{first}`` … ``reader{stop - 1}``, active on the list, in bulk; their ids."""
    now = datetime.now(UTC)
    rng = random.Random(seed + first)
    added: list[int] = []
    for start in range(first, stop, chunk):
        end = min(stop, start + chunk)
        rows = [
            {
                "email": f"reader{i}@example.net",
                "email_key": f"reader{i}@example.net",
                "name": f"Reader {i}",
                "status": Status.ACTIVE,
                "attributes": {"region": f"r{i % len(SEGMENTS)}"},
                "categories": choice(rng),
                "created_at": now,
            }
            for i in range(start, end)
        ]
        with app.transaction() as s:
            ids = s.scalars(insert(Subscriber).returning(Subscriber.id), rows).all()
            s.execute(
                insert(Membership),
                [
                    {
                        "subscriber_id": i,
                        "list_id": list_id,
                        "status": Status.ACTIVE,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in ids
                ],
            )
        added += ids
    return added


def sqlite_world(root: Path) -> World:
    root.mkdir(parents=True, exist_ok=True)
    return World(f"sqlite:///{root / 'bench.db'}", root, write_config(root))


@contextmanager
def postgres_world(root: Path, server_url: str) -> Iterator[World]:
    """A world in a fresh schema of ``server_url``, dropped afterwards."""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in server_url else "?"
    root.mkdir(parents=True, exist_ok=True)
    try:
        yield World(f"{server_url}{sep}options=-csearch_path%3D{schema}", root, write_config(root))
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

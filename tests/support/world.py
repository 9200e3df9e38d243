"""A small publication for delivery tests: a config, a week of articles, a list of readers."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from digest.app import App
from digest.delivery.base import Backend
from digest.delivery.loop import SendOptions
from digest.models import Article, Source
from digest.sender import Sender, SendResult
from subscribers.lists import create_list
from subscribers.service import add_subscriber

#: Sending on this Monday covers 2026-W47 (16–22 November 2026).
AS_OF = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
CATEGORIES = ("Policy", "Data", "Care")
#: The newsletter's one source: its articles came from this feed.
FEED = "https://news.example.org/feed.xml"

CONFIG = """
[newsletters.weekly]
title = "The Weekly"
description = "You signed up for The Weekly."
list = "weekly"
sender = "The Weekly <news@example.org>"
reply_to = "editors@example.org"
unsubscribe_mailto = "unsubscribe@example.org"
timezone = "Europe/London"
postal_address = "1 Example Street, London"
sources = ["https://news.example.org/feed.xml"]
{categories}
"""


#: Apps made by make_world; tests/conftest.py closes them after each test.
OPEN_APPS: list[App] = []


def close_apps() -> None:
    while OPEN_APPS:
        OPEN_APPS.pop().close()


@dataclass
class World:
    app: App
    root: Path
    outbox: Path
    #: The environment a CLI run needs to see the same world (apply with monkeypatch).
    env: dict[str, str]


def write_config(root: Path, categories: Sequence[str] = CATEGORIES) -> Path:
    cats = "".join(f'[[newsletters.weekly.categories]]\nname = "{c}"\n' for c in categories)
    path = root / "digest.toml"
    path.write_text(CONFIG.format(categories=cats))
    return path


def make_world(
    db_url: str,
    root: Path,
    *,
    readers: int = 0,
    articles_per_category: int = 2,
    categories: Sequence[str] = CATEGORIES,
    env: dict[str, str] | None = None,
) -> World:
    """Config + database + articles in 2026-W47 + ``readers`` active readers (no choices)."""
    config = write_config(root, categories)
    outbox = root / "outbox"
    values = {
        "DIGEST_DATABASE_URL": db_url,
        "DIGEST_CONFIG": str(config),
        "DIGEST_OUTBOX_DIR": str(outbox),
        "DIGEST_SECRET_KEY": "test-secret-key-of-some-length",
        "DIGEST_BASE_URL": "https://news.example.org",
        **(env or {}),
    }
    app = App(**{k.removeprefix("DIGEST_").lower(): v for k, v in values.items()})
    OPEN_APPS.append(app)
    start = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)
    with app.transaction() as s:
        feed = Source(url=FEED, kind="rss")
        n = 0
        for cat in categories:
            for i in range(articles_per_category):
                n += 1
                s.add(
                    Article(
                        canonical_url=f"https://news.example.org/{cat.lower()}/{i}",
                        title=f"{cat} story {i}",
                        summary_text=f"What happened in {cat.lower()} this week. More follows.",
                        summary_html="",
                        author="Ann Writer",
                        categories=[cat],
                        published_at=start + timedelta(hours=n * 7),
                        content_hash=str(n),
                        source=feed,
                        sources=[feed],
                    )
                )
        create_list(s, "weekly")
    add_readers(app, readers)
    return World(app, root, outbox, values)


def add_readers(
    app: App, count: int, *, start: int = 0, categories: Sequence[str] = (), prefix: str = "reader"
) -> list[str]:
    emails = [f"{prefix}{i}@example.net" for i in range(start, start + count)]
    with app.transaction() as s:
        for i, email in enumerate(emails, start):
            add_subscriber(
                s, email, "weekly", name=f"Reader {i}", categories=list(categories) or None
            )
    return emails


def bulk_readers(app: App, count: int, *, prefix: str = "bulk") -> None:
    """``count`` active readers on the list, inserted in bulk (for large tests)."""
    from sqlalchemy import insert, select

    from subscribers.db import utcnow
    from subscribers.models import MailingList, Membership, Status, Subscriber

    now = utcnow()
    with app.transaction() as s:
        list_id = s.scalar(select(MailingList.id).where(MailingList.name == "weekly"))
        for start in range(0, count, 5000):
            rows = [
                {
                    "email": f"{prefix}{i}@example.net",
                    "email_key": f"{prefix}{i}@example.net",
                    "name": f"Reader {i}",
                    "status": Status.ACTIVE,
                    "attributes": {},
                    "categories": [],
                    "created_at": now,
                }
                for i in range(start, min(count, start + 5000))
            ]
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


def send(
    app: App,
    newsletter: str = "weekly",
    as_of: datetime = AS_OF,
    *,
    backend: str | None = None,
    backend_factory: Callable[[], Backend] | None = None,
    options: SendOptions | None = None,
    batch_size: int | None = None,
    cancel: threading.Event | None = None,
    segment: str | None = None,
    dry_run: bool = False,
    resend_uncertain: bool = False,
    enqueue: bool = False,
) -> SendResult:
    """What `digest send` does: a Sender built with the first group of keywords sends
    ``newsletter`` for the period before ``as_of`` with the rest."""
    sender = Sender(
        app,
        backend,
        options=options,
        cancel=cancel,
        backend_factory=backend_factory,
        batch_size=batch_size,
    )
    return sender.send(
        newsletter,
        as_of,
        segment=segment,
        dry_run=dry_run,
        resend_uncertain=resend_uncertain,
        enqueue=enqueue,
    )

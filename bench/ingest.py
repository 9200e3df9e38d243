"""Ingesting: a generated RSS file of many entries through :func:`digest.ingest.ingest`.

The feed is RSS 2.0 with what real feeds carry (title, link, guid, HTML
description, date, author, category, an image), read from a file so the
figure is parsing, cleaning and storing rather than the network.  It is
ingested twice into a fresh SQLite database: the first run stores every entry,
the second finds each one unchanged (the daily re-ingest).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from bench.synthetic import CATEGORIES, World, write_config

_BODY = (
    "<p>Northbridge council said the new service would save <b>£1.2m</b> a year once fully "
    "live. The pilot ran in three wards and handled 40,000 requests from residents.</p>"
    "<p>People reported shorter waits, fewer repeat calls and clearer updates on progress. "
    '<a href="https://news.civic.example/related">Related coverage</a>.</p>'
)


def write_feed(path: Path, entries: int) -> Path:
    start = datetime(2026, 11, 16, 7, 0, tzinfo=UTC)
    items = []
    for n in range(entries):
        cat = CATEGORIES[n % len(CATEGORIES)]
        url = f"https://news.civic.example/{cat.lower().replace(' ', '-')}/2026/11/item-{n}"
        items.append(
            "<item>"
            f"<title>Item {n}: council publishes its plan for digital services</title>"
            f"<link>{url}</link><guid isPermaLink='true'>{url}</guid>"
            f"<description>{escape(_BODY)}</description>"
            f"<pubDate>{format_datetime(start + timedelta(minutes=n))}</pubDate>"
            f"<dc:creator>Writer {n % 17}</dc:creator><category>{escape(cat)}</category>"
            f"<media:content url='https://images.civic.example/item-{n}.jpg' medium='image'/>"
            "</item>"
        )
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?>'
        '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:media="http://search.yahoo.com/mrss/"><channel>'
        "<title>The Civic Week</title><link>https://news.civic.example/</link>"
        "<description>News</description>" + "".join(items) + "</channel></rss>",
        encoding="utf-8",
    )
    return path


def measure(root: Path, entries: int) -> dict[str, Any]:
    from digest.ingest import ingest

    root.mkdir(parents=True, exist_ok=True)
    feed = write_feed(root / "feed.rss", entries)
    world = World(f"sqlite:///{root / 'ingest.db'}", root, write_config(root, [feed.name]))
    app = world.app()
    app.engine  # noqa: B018  (create the schema before the clock starts)
    runs = []
    for _ in range(2):
        start = time.perf_counter()
        report = ingest(app.sessions, app.config, app.settings)
        runs.append((time.perf_counter() - start, report.totals, report.errors))
    app.close()
    (first, totals, errors), (again, totals_again, _) = runs
    return {
        "entries": entries,
        "feed_bytes": feed.stat().st_size,
        "seconds": round(first, 2),
        "entries_per_s": round(entries / first),
        "new": totals["new"],
        "errors": errors,
        "reingest_seconds": round(again, 2),
        "reingest_entries_per_s": round(entries / again),
        "reingest_unchanged": totals_again["unchanged"],
    }

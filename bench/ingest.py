"""Ingesting: a generated RSS file of many entries through :func:`digest.ingest.ingest`.

The feed is RSS 2.0 with what real feeds carry (title, link, guid, HTML
description, date, author, category, an image), read from a file so the
figure is parsing, cleaning and storing rather than the network.  It is
ingested twice into a fresh SQLite database: the first run stores every entry,
the second finds each one unchanged (the daily re-ingest).  Between the runs the
channel's ``lastBuildDate`` moves on, as a real feed's does, so the file differs
while its entries do not: the re-ingest figure is the per-entry path, never a
shortcut for a file seen before.

Side by side, the same file is parsed by feedparser alone (``feedparser.parse`` of
its bytes, feedparser's defaults), before the first run, between the two and after
the second; each run's reference is the mean of the feedparser timings around it.
Targets: ingest at ≥ 50% of feedparser's rate, re-ingest at ≥ 80%.
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


def write_feed(path: Path, entries: int, built: datetime | None = None) -> Path:
    start = datetime(2026, 11, 16, 7, 0, tzinfo=UTC)
    built = built or start + timedelta(minutes=entries)
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
        f"<description>News</description><lastBuildDate>{format_datetime(built)}</lastBuildDate>"
        + "".join(items)
        + "</channel></rss>",
        encoding="utf-8",
    )
    return path


INGEST_RATIO = 0.5
REINGEST_RATIO = 0.8


def _feedparser_seconds(raw: bytes) -> float:
    import feedparser

    start = time.perf_counter()
    parsed = feedparser.parse(raw)
    seconds = time.perf_counter() - start
    assert parsed.entries, "feedparser found no entries"
    return seconds


def measure(root: Path, entries: int) -> dict[str, Any]:
    from digest.ingest import ingest

    root.mkdir(parents=True, exist_ok=True)
    feed = write_feed(root / "feed.rss", entries)
    raw = feed.read_bytes()
    world = World(f"sqlite:///{root / 'ingest.db'}", root, write_config(root, [feed.name]))
    app = world.app()
    app.engine  # noqa: B018  (create the schema before the clock starts)
    _feedparser_seconds(raw)  # warm: feedparser's modules loaded, as digest's are
    runs = []
    parser = [_feedparser_seconds(raw)]
    for run in range(2):
        if run:  # the next day's file: a new lastBuildDate, the same entries
            raw = write_feed(feed, entries, datetime(2026, 11, 17, 7, 0, tzinfo=UTC)).read_bytes()
        start = time.perf_counter()
        report = ingest(app.sessions, app.config, app.settings)
        runs.append((time.perf_counter() - start, report.totals, report.errors))
        parser.append(_feedparser_seconds(raw))
    app.close()
    (first, totals, errors), (again, totals_again, _) = runs
    reference = (parser[0] + parser[1]) / 2, (parser[1] + parser[2]) / 2
    ratios = reference[0] / first, reference[1] / again
    return {
        "feedparser_seconds": [round(p, 3) for p in parser],
        "feedparser_entries_per_s": round(entries / (sum(parser) / len(parser))),
        "ratio": round(ratios[0], 3),
        "reingest_ratio": round(ratios[1], 3),
        "met": ratios[0] >= INGEST_RATIO,
        "reingest_met": ratios[1] >= REINGEST_RATIO,
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

"""Articles in the database: dedupe, update in place, no needless writes, both backends."""

from __future__ import annotations

import json
import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from sqlalchemy import Engine, event, func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from digest import db
from digest.config import SAMPLE_CONFIG, DigestConfig, load_config
from digest.ingest import IngestReport, ingest
from digest.ingest.feeds import Entry, Parsed
from digest.ingest.http import Fetched
from digest.ingest.store import content_hash, is_global_guid, store_parsed
from digest.models import Article, Source

DATA = Path(__file__).parent / "data" / "ingest"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=1)

CONFIG = """
[newsletters.weekly]
title = "Weekly"
list = "weekly"
sender = "news@example.org"
sources = [{url = "feeds/rss20.xml"}, {url = "feeds/atom.xml", kind = "feed"},
           {url = "pages/page-og.html", kind = "page"}]

[[newsletters.weekly.categories]]
name = "Data and security"
aliases = ["Cyber security"]

[[newsletters.weekly.categories]]
name = "Digital Customer Service"
aliases = ["Customer Service"]

[[newsletters.weekly.categories]]
name = "Digital Transformation"
"""


@pytest.fixture
def config(tmp_path: Path) -> DigestConfig:
    site = tmp_path / "site"
    (site / "feeds").mkdir(parents=True)
    (site / "pages").mkdir()
    for name in ("rss20.xml", "atom.xml"):
        shutil.copy(DATA / name, site / "feeds" / name)
    shutil.copy(DATA / "page-og.html", site / "pages" / "page-og.html")
    (site / "digest.toml").write_text(CONFIG)
    return load_config(site / "digest.toml")


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return db.session_factory(engine)


def run(
    sessions: sessionmaker[Session],
    config: DigestConfig,
    refs: list[str] | None = None,
    now: datetime = NOW,
) -> IngestReport:
    from digest.config import Settings

    return ingest(sessions, config, Settings(), refs, now=now)


def articles(sessions: sessionmaker[Session]) -> dict[str, Article]:
    with sessions() as s:
        return {a.canonical_url: a for a in s.scalars(select(Article))}


@pytest.fixture
def writes(engine: Engine) -> Iterator[list[str]]:
    """Every INSERT/UPDATE/DELETE statement on the article table, as sent to the database."""
    seen: list[str] = []

    def log(conn, cursor, statement: str, params, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if re.match(r"\s*(INSERT INTO|UPDATE|DELETE FROM) article(_source)?\b", statement, re.I):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", log)
    yield seen
    event.remove(engine, "before_cursor_execute", log)


def feed(tmp_path: Path, name: str, items: str) -> str:
    path = tmp_path / name
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>'
        f"<link>https://site.example.org/</link>{items}</channel></rss>"
    )
    return str(path)


def item(url: str, title: str = "Title", guid: str | None = None, extra: str = "") -> str:
    g = f"<guid>{guid}</guid>" if guid else ""
    return f"<item><title>{title}</title><link>{url}</link>{g}{extra}</item>"


# ---------------------------------------------------------------------------


def test_every_configured_source_with_its_kind(
    sessions: sessionmaker[Session], config: DigestConfig
) -> None:
    report = run(sessions, config)
    assert [(r.kind, r.new, r.unchanged, r.merged, r.error) for r in report.results] == [
        ("rss", 3, 0, 0, None),
        ("atom", 1, 0, 1, None),  # the shared article is the RSS feed's, merged and said so
        ("page", 1, 0, 0, None),
    ]
    [merged] = report.results[1].dropped
    assert merged.action == "merged" and merged.title.startswith("Progress on digital government")
    assert merged.reason.startswith("same article as “Progress on digital government")
    assert report.ok
    assert report.totals == {
        "sources": 3,
        "new": 5,
        "updated": 0,
        "unchanged": 0,
        "merged": 1,
        "skipped": 0,
        "errors": 0,
    }
    assert report.to_dict()["sources"][0]["kind"] == "rss"
    site = config.path.parent
    with sessions() as s:
        assert set(s.scalars(select(Source.url))) == {
            str(site / "feeds/rss20.xml"),
            str(site / "feeds/atom.xml"),
            str(site / "pages/page-og.html"),
        }


def test_same_article_in_rss_and_atom_is_stored_once(
    sessions: sessionmaker[Session], config: DigestConfig
) -> None:
    run(sessions, config)
    stored = articles(sessions)
    slow = [a for url, a in stored.items() if "digital-government-slow" in url]
    assert len(slow) == 1
    [article] = slow
    # Both links differed (host case, utm_*, fragment); the canonical form is shared.
    assert (
        article.canonical_url == "https://news.example.org/2026/11/digital-government-slow?ref=home"
    )
    assert article.guid == "tag:news.example.org,2026:article-101"
    assert article.author == "Sam Jones"
    assert article.image_url == "https://news.example.org/img/whitehall.jpg"
    assert article.published_at == datetime(2026, 11, 17, 9, 15, tzinfo=UTC)
    assert article.date_estimated is False
    assert article.first_seen_at == NOW


def test_categories_are_normalised_through_aliases(
    sessions: sessionmaker[Session], config: DigestConfig
) -> None:
    run(sessions, config)
    stored = articles(sessions)
    slow = stored["https://news.example.org/2026/11/digital-government-slow?ref=home"]
    assert slow.categories == ["Digital Transformation", "Data and security"]  # "Data & Security"
    chat = stored["https://news.example.org/2026/11/web-chat"]
    assert chat.categories == ["Digital Customer Service"]  # "Digital customer service"
    page = stored["https://news.example.org/2026/11/chatbots"]
    assert page.categories == ["Digital Customer Service"]


def test_unknown_categories_are_kept_as_given(
    sessions: sessionmaker[Session], config: DigestConfig, tmp_path: Path
) -> None:
    extra = "<category>  Adult   Social Care </category><category>cyber SECURITY</category>"
    path = feed(tmp_path, "f.xml", item("https://a.example.org/1", extra=extra))
    run(sessions, config, [path])
    [article] = articles(sessions).values()
    assert article.categories == ["Adult Social Care", "Data and security"]


def test_missing_date_becomes_first_seen_and_stays(
    sessions: sessionmaker[Session], config: DigestConfig, tmp_path: Path
) -> None:
    path = feed(tmp_path, "f.xml", item("https://a.example.org/undated"))
    run(sessions, config, [path], now=NOW)
    [article] = articles(sessions).values()
    assert (article.published_at, article.date_estimated, article.first_seen_at) == (
        NOW,
        True,
        NOW,
    )
    again = run(sessions, config, [path], now=LATER)
    assert (again.results[0].unchanged, again.results[0].updated) == (1, 0)
    [article] = articles(sessions).values()
    assert (article.published_at, article.date_estimated) == (NOW, True)
    # The feed later gives a date: the article takes it.
    feed(tmp_path, "f.xml", item("https://a.example.org/undated", extra=(
        "<pubDate>Wed, 18 Nov 2026 10:00:00 GMT</pubDate>"
    )))  # fmt: skip
    dated = run(sessions, config, [path], now=LATER)
    assert dated.results[0].updated == 1
    [article] = articles(sessions).values()
    assert article.published_at == datetime(2026, 11, 18, 10, 0, tzinfo=UTC)
    assert article.date_estimated is False
    assert article.first_seen_at == NOW


def test_unchanged_reingest_writes_no_article(
    sessions: sessionmaker[Session], config: DigestConfig, writes: list[str]
) -> None:
    run(sessions, config)
    # Five articles from three sources: each source's new articles in one statement,
    # and its sightings in another.
    assert len(writes) == 3 + 3
    before = {url: (a.updated_at, a.content_hash) for url, a in articles(sessions).items()}
    writes.clear()
    report = run(sessions, config, now=LATER)
    assert writes == []
    assert report.totals == {
        "sources": 3,
        "new": 0,
        "updated": 0,
        "unchanged": 6,  # the merge was reported once; now the article is known to both
        "merged": 0,
        "skipped": 0,
        "errors": 0,
    }
    assert {url: (a.updated_at, a.content_hash) for url, a in articles(sessions).items()} == before


def test_changed_article_is_updated_in_place(
    sessions: sessionmaker[Session], config: DigestConfig, tmp_path: Path
) -> None:
    url = "https://a.example.org/story"
    path = feed(tmp_path, "f.xml", item(url, "First title", extra="<description>One</description>"))
    run(sessions, config, [path], now=NOW)
    with sessions() as s, s.begin():
        s.scalars(select(Article)).one().pinned = True
    feed(tmp_path, "f.xml", item(url, "Better title", extra="<description>Two</description>"))
    report = run(sessions, config, [path], now=LATER)
    assert (report.results[0].new, report.results[0].updated) == (0, 1)
    [article] = articles(sessions).values()
    assert (article.title, article.summary_text) == ("Better title", "Two")
    assert (article.first_seen_at, article.updated_at, article.pinned) == (NOW, LATER, True)


def test_guid_match_with_a_new_url_updates_the_article(
    sessions: sessionmaker[Session], config: DigestConfig, tmp_path: Path
) -> None:
    path = feed(tmp_path, "f.xml", item("https://a.example.org/draft-slug", "T", guid="post-42"))
    run(sessions, config, [path])
    [old] = articles(sessions).values()
    feed(tmp_path, "f.xml", item("https://a.example.org/final-slug", "T", guid="post-42"))
    report = run(sessions, config, [path], now=LATER)
    assert (report.results[0].new, report.results[0].updated) == (0, 1)
    [new] = articles(sessions).values()
    assert (new.id, new.canonical_url, new.first_seen_at) == (
        old.id,
        "https://a.example.org/final-slug",
        NOW,
    )


def test_global_guid_dedupes_across_feeds(
    sessions: sessionmaker[Session], config: DigestConfig, tmp_path: Path
) -> None:
    guid = "tag:a.example.org,2026:42"
    one = feed(tmp_path, "one.xml", item("https://a.example.org/story", "T", guid=guid))
    two = feed(tmp_path, "two.xml", item("https://mirror.example.net/story", "T", guid=guid))
    report = run(sessions, config, [one, two])
    assert [(r.new, r.unchanged, r.merged) for r in report.results] == [(1, 0, 0), (0, 0, 1)]
    assert report.results[1].dropped[0].reason.endswith(f"from {one}: the same id")
    assert list(articles(sessions)) == ["https://a.example.org/story"]


def test_plain_guids_only_dedupe_within_their_own_feed(
    sessions: sessionmaker[Session], config: DigestConfig, tmp_path: Path
) -> None:
    one = feed(tmp_path, "one.xml", item("https://a.example.org/1", "A", guid="1"))
    two = feed(tmp_path, "two.xml", item("https://b.example.org/1", "B", guid="1"))
    run(sessions, config, [one, two])
    assert sorted(articles(sessions)) == ["https://a.example.org/1", "https://b.example.org/1"]


def test_a_feed_listing_one_article_twice(
    sessions: sessionmaker[Session], config: DigestConfig, tmp_path: Path
) -> None:
    path = feed(
        tmp_path,
        "f.xml",
        item("https://a.example.org/x#comments", "Newest", guid="g")
        + item("https://a.example.org/x?utm_source=y", "Older", guid="g")
        + item("https://a.example.org/other", "Same guid", guid="g"),
    )
    report = run(sessions, config, [path])
    [result] = report.results
    assert (result.new, result.merged) == (1, 2)
    assert [(d.title, d.reason) for d in result.dropped] == [
        ("Older", "listed twice in the feed; kept its first copy, “Newest”"),
        ("Same guid", "same id as “Newest”, which is kept (its newer copy)"),
    ]
    assert [a.title for a in articles(sessions).values()] == ["Newest"]
    again = run(sessions, config, [path], now=LATER).results[0]
    assert (again.unchanged, again.merged) == (1, 2)


def test_failing_sources_write_nothing_and_others_land(
    sessions: sessionmaker[Session], config: DigestConfig, tmp_path: Path
) -> None:
    bad = [str(DATA / n) for n in ("truncated.xml", "billion-laughs.xml", "garbage.xml")]
    empty = tmp_path / "empty.xml"
    empty.write_bytes(b"")
    png = tmp_path / "image.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    good = str(DATA / "rss20.xml")
    report = run(sessions, config, [*bad, str(empty), str(png), good, str(tmp_path / "nope.xml")])
    assert report.ok
    assert [r.ok for r in report.results] == [False] * 5 + [True, False]
    assert all(r.error and r.error.startswith(r.ref + ": ") for r in report.results if not r.ok)
    hosts = {url.split("/")[2] for url in articles(sessions)}
    assert hosts == {"news.example.org"}  # nothing from the truncated feed's complete item


def test_every_source_failing_is_not_ok(
    sessions: sessionmaker[Session], config: DigestConfig, tmp_path: Path
) -> None:
    report = run(sessions, config, [str(tmp_path / "nope.xml")])
    assert not report.ok
    assert report.errors == [f"{tmp_path / 'nope.xml'}: file not found; check the path"]


def test_no_sources_is_ok(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    path = tmp_path / "digest.toml"
    path.write_text('[newsletters.x]\ntitle = "X"\nlist = "x"\nsender = "a@example.org"\n')
    report = run(sessions, load_config(path))
    assert report.ok and report.results == []


def test_cli_refs_are_relative_to_the_working_directory(
    sessions: sessionmaker[Session], config: DigestConfig, tmp_path: Path
) -> None:
    shutil.copy(DATA / "rss10.rdf", tmp_path / "local.rdf")  # cwd is tmp_path (conftest)
    report = run(sessions, config, ["local.rdf"])
    assert report.results[0].ref == str(tmp_path / "local.rdf")
    assert report.results[0].new == 1


def test_a_source_is_one_transaction(sessions: sessionmaker[Session]) -> None:
    good = Entry(url="https://a.example.org/good", title="Good")
    broken = Entry(url="https://a.example.org/broken", title="Broken")
    broken.categories = None  # type: ignore[assignment]  # fails while storing
    parsed = Parsed(kind="rss", entries=[good, broken])
    with pytest.raises(TypeError), sessions() as s, s.begin():
        store_parsed(s, "/tmp/f.xml", parsed, Fetched("/tmp/f.xml"), now=NOW, aliases={})
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Article)) == 0
        assert s.scalar(select(func.count()).select_from(Source)) == 0


def test_concurrent_ingests_of_one_feed_store_each_article_once(
    sessions: sessionmaker[Session], config: DigestConfig
) -> None:
    ref = [str(DATA / "rss20.xml")]
    start = threading.Barrier(3)
    reports: list[IngestReport] = []

    def worker() -> None:
        start.wait()
        reports.append(run(sessions, config, ref))

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(reports) == 3 and all(r.ok for r in reports)
    assert sum(r.totals["new"] for r in reports) == 3
    assert len(articles(sessions)) == 3


def test_insert_race_becomes_an_update(
    engine: Engine, sessions: sessionmaker[Session], config: DigestConfig
) -> None:
    """Another ingest commits the same article between our lookup and our insert."""
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite serialises writers: no insert can land inside our transaction")
    url = "https://news.example.org/2026/11/web-chat"
    fired: list[bool] = []

    def rival(conn, cursor, statement: str, params, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if fired or not statement.lstrip().upper().startswith("INSERT INTO ARTICLE"):
            return
        fired.append(True)
        with engine.connect() as other:
            other.execute(
                insert(Article).values(
                    canonical_url=url, title="Rival", published_at=NOW, content_hash="x"
                )
            )
            other.commit()

    event.listen(engine, "before_cursor_execute", rival)
    try:
        report = run(sessions, config, [str(DATA / "rss20.xml")])
    finally:
        event.remove(engine, "before_cursor_execute", rival)
    [result] = report.results
    assert result.ok, result.error
    assert (result.new, result.updated) == (2, 1)
    stored = articles(sessions)
    assert len(stored) == 3
    assert stored[url].title == "Council contact centres move to web chat"


def test_content_hash_and_guid_rules() -> None:
    fields = {"title": "T", "categories": ["A"]}
    assert content_hash(fields, None) == content_hash(dict(fields), None)
    assert content_hash(fields, None) != content_hash(fields, NOW)
    assert content_hash(fields, NOW) != content_hash({"title": "T2", "categories": ["A"]}, NOW)
    for guid in ("https://a.example.org/p/1", "tag:a.example.org,2026:1", "urn:uuid:x",
                 "0b8a3c52-6c1d-4c35-9d1c-4d0f2c1e7e11"):  # fmt: skip
        assert is_global_guid(guid)
    for guid in ("1", "post-42", "article-102"):
        assert not is_global_guid(guid)


def test_the_bundled_sample_ingests_cleanly(sessions: sessionmaker[Session]) -> None:
    if not SAMPLE_CONFIG.exists():
        pytest.skip("the bundled sample publication is not in this tree")
    report = run(sessions, load_config(SAMPLE_CONFIG))
    assert report.ok and report.errors == [], report.errors
    assert all(r.warnings == [] for r in report.results)
    assert {r.kind for r in report.results} >= {"rss", "atom", "page"}
    stored = articles(sessions)
    assert len(stored) >= 40
    assert all(a.published_at.tzinfo is not None and a.title for a in stored.values())


def test_hostile_strings_are_stored_cleanly(
    sessions: sessionmaker[Session], config: DigestConfig, tmp_path: Path
) -> None:
    """NUL, lone surrogates and over-long values would fail a whole source on PostgreSQL."""
    long_url = "https://a.example.org/" + "x" * 3000
    item = {
        "id": "g" * 3000,
        "url": "https://a.example.org/nul\\u0000story\\ud800",
        "title": "Title\\u0000 with NUL and \\ud800 surrogate",
        "content_html": "<p>Body\\u0000 \\udfff</p>",
        "authors": [{"name": "A" * 500}],
        "tags": ["Tag\\u0000", "\\ud83d"],
        "image": long_url,
    }
    body = json.dumps({"version": "https://jsonfeed.org/version/1.1", "items": [item]})
    path = tmp_path / "hostile.json"
    path.write_text(body.replace("\\\\u", "\\u"))
    report = run(sessions, config, [str(path), str(DATA / "rss10.rdf")])
    assert [r.error for r in report.results] == [None, None]
    stored = articles(sessions)
    article = stored["https://a.example.org/nulstory"]
    assert article.title == "Title with NUL and surrogate"
    assert article.summary_html == "<p>Body </p>"
    assert article.author == "A" * 300
    assert article.guid is None and article.image_url is None
    assert article.categories == ["Tag"]
    assert len(stored) == 2


def test_overlong_validators_are_not_remembered(sessions: sessionmaker[Session]) -> None:
    fetched = Fetched("https://a.example.org/f", etag="x" * 10_000, last_modified="y" * 200)
    with sessions() as s, s.begin():
        store_parsed(s, fetched.location, Parsed(kind="rss"), fetched, now=NOW, aliases={})
    with sessions() as s:
        source = s.scalars(select(Source)).one()
        assert (source.etag, source.last_modified, source.kind) == (None, None, "rss")


# ---------------------------------------------------------------------------
# Real-world feeds (issue 14.1): nothing lost or merged silently


def test_posts_told_apart_by_fragment_are_each_stored(
    sessions: sessionmaker[Session], config: DigestConfig
) -> None:
    report = run(sessions, config, [str(DATA / "liveblog-fragments.rss")])
    [result] = report.results
    assert (result.new, result.merged, result.skipped, result.dropped) == (7, 0, 0, [])
    stored = articles(sessions)
    assert len(stored) == 7
    assert "https://briefs.civictech.example/2026/11/24/#brief-4417" in stored
    again = run(sessions, config, [str(DATA / "liveblog-fragments.rss")], now=LATER)
    assert (again.results[0].unchanged, again.results[0].new) == (7, 0)


def test_one_sites_atom_and_json_feeds_give_one_copy_of_each_article(
    sessions: sessionmaker[Session], config: DigestConfig
) -> None:
    """The JSON feed spells links with http, without www. or the trailing slash, or as
    ?p= short links, with other GUIDs: its copies are merged into the Atom feed's
    articles, each named with how it matched; both feeds are recorded as sources."""
    atom, json_feed = str(DATA / "site-atom.xml"), str(DATA / "site-feed.json")
    report = run(sessions, config, [atom, json_feed])
    first, second = report.results
    assert (first.new, first.merged) == (6, 0)
    assert (second.new, second.merged) == (1, 6)
    how = [d.reason.rsplit(": ", 1)[1].split(" (")[0] for d in second.dropped]
    link = "the same link spelt differently"
    title = "the same title from the same site within 48 hours"
    assert how == [link, title, link, link, link, title]
    stored = articles(sessions)
    assert len(stored) == 7
    # One feed's two "Morning briefing" posts are two articles (equal titles in one feed).
    assert sum(a.title == "Morning briefing" for a in stored.values()) == 2
    # "Ask the CIO" again on the 23rd, more than 48 hours after the 20th: a new article.
    assert "http://northbridge-news.example/?p=8830" in stored
    with sessions() as s:
        seen = {
            a.canonical_url.rsplit("/", 2)[-2]: sorted(src.url for src in a.sources)
            for a in s.scalars(select(Article))
        }
    assert seen["council-website-goes-live"] == sorted([atom, json_feed])
    # A second run: the merges are known now, nothing is new or merged again.
    again = run(sessions, config, [atom, json_feed], now=LATER)
    assert [(r.new, r.merged, r.unchanged) for r in again.results] == [(0, 0, 6), (0, 0, 7)]


def test_a_sponsor_slot_repeated_under_new_titles_is_counted_as_merged(
    sessions: sessionmaker[Session], config: DigestConfig
) -> None:
    [result] = run(sessions, config, [str(DATA / "sponsor-slots.rss")]).results
    assert (result.new, result.merged) == (3, 1)
    assert result.dropped[0].title.startswith("Partner content:")


# ---------------------------------------------------------------------------
# Re-ingest by raw hash: unchanged entries are not cleaned or written again; every
# change to what is stored still lands.

RICH = {
    "title": "Council publishes its digital plan",
    "link": "https://a.example.org/plan",
    "description": "<p>The plan, in <b>brief</b>.</p>",
    "content": "",
    "date": "Wed, 18 Nov 2026 10:00:00 GMT",
    "author": "Ann Writer",
    "category": "Digital Transformation",
    "image": "https://img.example.org/plan.jpg",
}


def rich_item(guid: str, **changes: str) -> str:
    f = {**RICH, **changes}
    content = f"<content:encoded>{escape(f['content'])}</content:encoded>" if f["content"] else ""
    summary = f"<description>{escape(f['description'])}</description>" if f["description"] else ""
    return (
        f"<item><title>{f['title']}</title><link>{f['link']}</link><guid>{guid}</guid>"
        f"{summary}{content}<pubDate>{f['date']}</pubDate><dc:creator>{f['author']}</dc:creator>"
        f"<category>{f['category']}</category><media:content url='{f['image']}' medium='image'/>"
        "</item>"
    )


def rich_feed(tmp_path: Path, items: str, built: str = "Thu, 19 Nov 2026 08:00:00 GMT") -> str:
    path = tmp_path / "rich.xml"
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:media="http://search.yahoo.com/mrss/" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title>T</title>'
        f"<link>https://a.example.org/</link><lastBuildDate>{built}</lastBuildDate>"
        f"{items}</channel></rss>"
    )
    return str(path)


OTHER = {"link": "https://a.example.org/other", "title": "Another story entirely"}


@pytest.mark.parametrize(
    ("before", "after", "stored"),
    [
        ({}, {"title": "Council publishes a plan"}, ("title", "Council publishes a plan")),
        ({}, {"link": "https://a.example.org/v2"}, ("canonical_url", "https://a.example.org/v2")),
        ({}, {"description": "<p>The plan, revised.</p>"}, ("summary_text", "The plan, revised.")),
        ({"description": "", "content": "<p>Body one.</p>"},
         {"description": "", "content": "<p>Body two.</p>"}, ("summary_text", "Body two.")),
        ({}, {"date": "Thu, 19 Nov 2026 06:30:00 GMT"},
         ("published_at", datetime(2026, 11, 19, 6, 30, tzinfo=UTC))),
        ({}, {"author": "Bo Editor"}, ("author", "Bo Editor")),
        ({}, {"category": "Customer Service"}, ("categories", ["Digital Customer Service"])),
        ({}, {"image": "https://img.example.org/plan-v2.jpg"},
         ("image_url", "https://img.example.org/plan-v2.jpg")),
    ],
    ids=["title", "link", "summary", "content", "date", "author", "categories", "image"],
)  # fmt: skip
def test_a_changed_entry_is_updated_and_its_unchanged_neighbour_is_not_rewritten(
    sessions: sessionmaker[Session],
    config: DigestConfig,
    tmp_path: Path,
    writes: list[str],
    before: dict[str, str],
    after: dict[str, str],
    stored: tuple[str, object],
) -> None:
    path = rich_feed(tmp_path, rich_item("p-1", **before) + rich_item("p-2", **OTHER))
    assert run(sessions, config, [path], now=NOW).totals["new"] == 2
    writes.clear()
    # The next day: the channel says it was rebuilt; one entry changed one field.
    rich_feed(
        tmp_path,
        rich_item("p-1", **{**before, **after}) + rich_item("p-2", **OTHER),
        built="Fri, 20 Nov 2026 08:00:00 GMT",
    )
    report = run(sessions, config, [path], now=LATER)
    assert (report.totals["new"], report.totals["updated"], report.totals["unchanged"]) == (0, 1, 1)
    assert [w.split()[0] for w in writes] == ["UPDATE"]  # the changed article's row only
    by_guid = {a.guid: a for a in articles(sessions).values()}
    name, value = stored
    assert getattr(by_guid["p-1"], name) == value
    assert by_guid["p-1"].updated_at == LATER
    assert (by_guid["p-2"].updated_at, by_guid["p-2"].title) == (NOW, OTHER["title"])
    # And again, nothing changed: nothing is written.
    writes.clear()
    again = run(sessions, config, [path], now=LATER + timedelta(days=1))
    assert (again.totals["updated"], again.totals["unchanged"], writes) == (0, 2, [])


def test_unchanged_entries_are_not_cleaned_again(tmp_path: Path) -> None:
    """Given the raw hashes stored, the entries they match wait to be cleaned until
    someone asks (the store does not, for an unchanged article); cleaned then, each is
    exactly what a full parse gives."""
    from digest.ingest import parse_source
    from digest.ingest.feeds import Stored

    path = rich_feed(
        tmp_path,
        rich_item("p-1")
        + rich_item("p-2", **OTHER)
        + rich_item("p-3", link="https://a.example.org/untitled", title=""),
    )
    fetched = Fetched(location=path, body=Path(path).read_bytes())
    full = parse_source(fetched).entries
    first = parse_source(fetched, stored=Stored("ctx")).entries
    assert [e.deferred for e in first] == [None, None, None]
    assert [e.raw_hash for e in full] == [None, None, None]
    hashes = {h for e in first if e.url != OTHER["link"] and (h := e.raw_hash)}
    again = parse_source(fetched, stored=Stored("ctx", frozenset(hashes))).entries
    # p-2 is not among the stored hashes; p-3 takes its title from its summary.
    assert [e.deferred is not None for e in again] == [True, False, False]
    assert (again[0].summary_html, again[0].image_url, again[0].categories) == ("", None, [])
    assert [replace(e.complete(), raw_hash=None) for e in again] == full
    assert [e.raw_hash for e in again] == [e.raw_hash for e in first]
    # Another context (new cleaning code, other aliases): every entry hashes differently.
    other = parse_source(fetched, stored=Stored("other", frozenset(hashes))).entries
    assert [e.deferred for e in other] == [None, None, None]
    assert not hashes & {e.raw_hash for e in other}


def test_new_category_aliases_reach_entries_whose_raw_form_is_unchanged(
    sessions: sessionmaker[Session], config: DigestConfig, tmp_path: Path
) -> None:
    path = rich_feed(tmp_path, rich_item("p-1", category="Cyber security"))
    run(sessions, config, [path], now=NOW)
    [article] = articles(sessions).values()
    assert article.categories == ["Data and security"]
    # The editors stop calling "Cyber security" "Data and security"; the feed is as it was.
    config.path.write_text(CONFIG.replace('aliases = ["Cyber security"]', "aliases = []"))
    report = run(sessions, load_config(config.path), [path], now=LATER)
    assert report.totals["updated"] == 1
    [article] = articles(sessions).values()
    assert article.categories == ["Cyber security"]


def test_articles_stored_before_raw_hashes_are_compared_as_before_and_get_one(
    sessions: sessionmaker[Session], config: DigestConfig, tmp_path: Path, writes: list[str]
) -> None:
    path = rich_feed(tmp_path, rich_item("p-1") + rich_item("p-2", **OTHER))
    run(sessions, config, [path], now=NOW)
    with sessions() as s, s.begin():
        for a in s.scalars(select(Article)):
            a.raw_hash = None  # as stored before migration 0012
    before = {url: (a.updated_at, a.content_hash) for url, a in articles(sessions).items()}
    writes.clear()
    report = run(sessions, config, [path], now=LATER)
    assert (report.totals["updated"], report.totals["unchanged"]) == (0, 2)
    assert {url: (a.updated_at, a.content_hash) for url, a in articles(sessions).items()} == before
    assert all(a.raw_hash for a in articles(sessions).values())
    assert all(w.startswith("UPDATE article SET raw_hash") for w in writes), writes
    writes.clear()
    run(sessions, config, [path], now=LATER)
    assert writes == []


def test_an_entry_unchanged_but_for_its_settled_link_is_cleaned_and_updated(
    sessions: sessionmaker[Session], config: DigestConfig, tmp_path: Path
) -> None:
    """Its raw form is as stored, but its link loses the fragment that told it apart from
    a post that has gone: the store cleans it after all, and moves the article."""
    page = "https://a.example.org/2026/11/23"
    post_a = rich_item("post-a", link=f"{page}#a", title="Morning one: the plan")
    post_b = rich_item("post-b", link=f"{page}#b", title="Morning two: the budget")
    path = rich_feed(tmp_path, post_a + post_b)
    run(sessions, config, [path], now=NOW)
    assert set(articles(sessions)) == {f"{page}#a", f"{page}#b"}
    rich_feed(tmp_path, post_a)
    report = run(sessions, config, [path], now=LATER)
    assert (report.totals["updated"], report.totals["unchanged"]) == (1, 0)
    moved = articles(sessions)[page]
    assert (moved.guid, moved.title, moved.summary_text) == (
        "post-a",
        "Morning one: the plan",
        "The plan, in brief.",
    )
    assert moved.image_url == RICH["image"]

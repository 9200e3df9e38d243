"""`digest ingest`: the summary table, --json, error lines and exit codes."""

from __future__ import annotations

import json
import shutil
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from digest import db
from digest.cli import cli
from digest.config import SAMPLE_CONFIG
from digest.models import Article

DATA = Path(__file__).parent / "data" / "ingest"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sqlite_url: str) -> Path:
    """A digest.toml in the working directory with two good sources and one bad one."""
    shutil.copy(DATA / "rss20.xml", tmp_path / "news.xml")
    shutil.copy(DATA / "jsonfeed11.json", tmp_path / "community.json")
    (tmp_path / "broken.xml").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(32))
    (tmp_path / "digest.toml").write_text(
        '[newsletters.weekly]\ntitle = "Weekly"\nlist = "weekly"\n'
        'sender = "news@example.org"\n'
        'sources = ["news.xml", "community.json", "broken.xml"]\n'
    )
    monkeypatch.setenv("DIGEST_DATABASE_URL", sqlite_url)
    return tmp_path


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, ["ingest", *args], catch_exceptions=False)


def count_articles(url: str) -> int:
    engine = db.make_engine(url)
    try:
        with db.session_factory(engine)() as s:
            return s.scalar(select(func.count()).select_from(Article)) or 0
    finally:
        engine.dispose()


def test_table_and_one_error_line_per_failed_source(env: Path, sqlite_url: str) -> None:
    result = invoke()
    assert result.exit_code == 0
    out = result.stdout
    assert "Source" in out and "Unchanged" in out and "Merged" in out and "Skipped" in out
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines() if "│" in line}
    cells = {name: [c for c in cols if c != "│"] for name, cols in lines.items()}
    assert cells["news.xml"] == ["rss", "3", "0", "0", "0", "0"]
    assert cells["community.json"] == ["jsonfeed", "2", "0", "0", "0", "2"]
    assert cells["broken.xml"] == ["failed", "–", "–", "–", "–", "–"]
    assert "3 sources: 5 new, 0 updated, 0 unchanged, 0 merged, 2 skipped, 1 failed" in out
    # Each skipped entry is named, with why.
    assert [line for line in out.splitlines() if line.startswith("community.json: ")] == [
        "community.json: skipped “No link at all”: no usable http(s) link: "
        "it has no url or external_url",
        "community.json: skipped “item 4”: item 4 is not a JSON object",
    ]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: {env / 'broken.xml'}: not a feed or article page: looks like a PNG image"
    ]
    assert not [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert "Traceback" not in result.output
    assert count_articles(sqlite_url) == 5


def test_second_run_counts_unchanged(env: Path) -> None:
    invoke()
    result = invoke("news.xml")
    assert result.exit_code == 0
    assert "1 source: 0 new, 0 updated, 3 unchanged, 0 merged, 0 skipped, 0 failed" in result.stdout
    # Nothing merged or skipped anywhere: those columns stay out of the way.
    assert "Unchanged" in result.stdout and "Merged" not in result.stdout


def test_json_report(env: Path) -> None:
    result = invoke("--json")
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["totals"] == {
        "sources": 3,
        "new": 5,
        "updated": 0,
        "unchanged": 0,
        "merged": 0,
        "skipped": 2,
        "errors": 1,
    }
    by_ref = {Path(s["ref"]).name: s for s in report["sources"]}
    assert by_ref["news.xml"] == {
        "ref": str(env / "news.xml"),
        "kind": "rss",
        "new": 3,
        "updated": 0,
        "unchanged": 0,
        "merged": 0,
        "skipped": 0,
        "error": None,
        "not_modified": False,
        "warnings": [],
        "dropped": [],
        "refused": False,
        "feeds": [],
        "newsletters": ["weekly"],
    }
    assert by_ref["community.json"]["dropped"][0] == {
        "action": "skipped",
        "reason": "no usable http(s) link: it has no url or external_url",
        "title": "No link at all",
        "url": None,
        "guid": "n-3",
    }
    assert by_ref["broken.xml"]["error"].endswith("looks like a PNG image")


def test_exit_code_1_when_every_source_fails(env: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dead = f"http://127.0.0.1:{port}/feed.xml"
    result = invoke("broken.xml", dead)
    assert result.exit_code == 1
    assert "2 sources: 0 new, 0 updated, 0 unchanged, 0 merged, 0 skipped, 2 failed" in (
        result.stdout
    )
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2
    assert errors[1].startswith(f"error: {dead}: cannot connect")
    assert invoke("--json", "broken.xml").exit_code == 1


def test_no_sources_is_success(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sqlite_url: str
) -> None:
    (tmp_path / "digest.toml").write_text(
        '[newsletters.x]\ntitle = "X"\nlist = "x"\nsender = "a@example.org"\n'
    )
    monkeypatch.setenv("DIGEST_DATABASE_URL", sqlite_url)
    result = invoke()
    assert result.exit_code == 0
    assert "No sources" in result.stdout
    assert json.loads(invoke("--json").stdout) == {
        "ok": True,
        "totals": {
            "sources": 0,
            "new": 0,
            "updated": 0,
            "unchanged": 0,
            "merged": 0,
            "skipped": 0,
            "errors": 0,
        },
        "sources": [],
    }


def test_bundled_sample_is_the_default(monkeypatch: pytest.MonkeyPatch, sqlite_url: str) -> None:
    if not SAMPLE_CONFIG.exists():
        pytest.skip("the bundled sample publication is not in this tree")
    monkeypatch.setenv("DIGEST_DATABASE_URL", sqlite_url)  # no ./digest.toml: the sample
    result = invoke()
    assert result.exit_code == 0, result.output
    assert "feeds/news.rss" in result.stdout
    assert "0 failed" in result.stdout
    assert count_articles(sqlite_url) >= 40


def test_help_has_an_example() -> None:
    result = CliRunner().invoke(cli, ["ingest", "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.stdout and "--json" in result.stdout


# ---------------------------------------------------------------------------
# Every skipped, merged or refused entry is named with its reason (issue 14)


@pytest.fixture
def wild(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sqlite_url: str) -> Path:
    """A newsletter whose sources are feeds and pages as real sites publish them."""
    for name in ("sponsor-slots.rss", "wp-atom-empty-href.xml", "home.html"):
        shutil.copy(DATA / name, tmp_path / name)
    (tmp_path / "digest.toml").write_text(
        '[newsletters.weekly]\ntitle = "Weekly"\nlist = "weekly"\n'
        'sender = "news@example.org"\n'
        'sources = ["sponsor-slots.rss", "wp-atom-empty-href.xml", "home.html"]\n'
    )
    monkeypatch.setenv("DIGEST_DATABASE_URL", sqlite_url)
    return tmp_path


def test_json_names_every_skipped_merged_and_refused_entry(wild: Path) -> None:
    result = invoke("--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    by_name = {Path(s["ref"]).name: s for s in report["sources"]}
    assert report["totals"]["merged"] == 1 and report["totals"]["skipped"] == 1
    [merged] = by_name["sponsor-slots.rss"]["dropped"]
    assert merged["action"] == "merged"
    assert merged["title"] == "Partner content: Why councils are choosing Local Gov Digital Live"
    assert merged["url"] == "https://events.partner.example.com/lgd-live?ref=localdigital-rss"
    assert "same link as “Sponsored: Book your place" in merged["reason"]
    [skipped] = by_name["wp-atom-empty-href.xml"]["dropped"]
    assert skipped["action"] == "skipped" and skipped["title"].startswith("Draft: our data")
    assert "is not a web address" in skipped["reason"]
    home = by_name["home.html"]
    assert home["refused"] is True and home["new"] == 0
    assert home["feeds"][0] == "https://www.northbridge-news.example/feed/"
    assert "not an article page" in home["error"]


def test_table_lines_name_them_too(wild: Path) -> None:
    result = invoke()
    assert result.exit_code == 0
    cells = {
        line.split()[0]: [c for c in line.split()[1:] if c != "│"]
        for line in result.stdout.splitlines()
        if "│" in line
    }
    assert cells["home.html"] == ["refused", "–", "–", "–", "–", "–"]
    assert "3 sources: 6 new, 0 updated, 0 unchanged, 1 merged, 1 skipped, 1 failed" in (
        result.stdout
    )
    named = [
        line for line in result.stdout.splitlines() if ": merged “" in line or ": skipped “" in line
    ]
    assert named == [
        "sponsor-slots.rss: merged “Partner content: Why councils are choosing Local Gov Digital "
        "Live”: same link as “Sponsored: Book your place at Local Gov Digital Live”, which is "
        "kept: entries sharing a link (a sponsor slot, a repeated post) are one article",
        "wp-atom-empty-href.xml: skipped “Draft: our data strategy, for comment”: no usable "
        "http(s) link: it has no link and its id "
        "'tag:digitalcouncil.example.org,2026-11-18:/drafts/data-strategy' is not a web address",
    ]
    assert "use its feed instead: https://www.northbridge-news.example/feed/" in result.stderr


def test_as_article_stores_a_named_page_and_needs_one(wild: Path) -> None:
    result = invoke("--as-article", "home.html")
    assert result.exit_code == 0, result.output
    assert "1 source: 1 new" in result.stdout
    refused = CliRunner().invoke(cli, ["ingest", "--as-article"])
    assert refused.exit_code == 2
    assert "--as-article applies to the sources you name" in refused.output


def test_a_source_in_no_newsletter_is_said_to_feed_none(wild: Path) -> None:
    shutil.copy(DATA / "rss10.rdf", wild / "elsewhere.rdf")
    result = invoke("elsewhere.rdf")
    assert result.exit_code == 0
    assert (
        "note: elsewhere.rdf is in no newsletter's sources, so its articles appear in no "
        "edition; add it to a newsletter's sources in digest.toml"
    ) in result.stderr
    report = json.loads(invoke("--json", "elsewhere.rdf", "sponsor-slots.rss").stdout)
    assert [s["newsletters"] for s in report["sources"]] == [[], ["weekly"]]


class _Site(ThreadingHTTPServer):
    """A site on 127.0.0.1: a home page that links its feed, and the feed."""

    pages: ClassVar[dict[str, tuple[str, bytes]]] = {}


class _Pages(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        found = _Site.pages.get(self.path)
        if found is None:
            self.send_error(404)
            return
        kind, body = found
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def site() -> Iterator[str]:
    server = _Site(("127.0.0.1", 0), _Pages)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01})
    thread.start()
    _Site.pages = {
        "/": (
            "text/html; charset=utf-8",
            b"<!DOCTYPE html><html><head><title>Fernleigh Parish Council</title>"
            b'<meta property="og:type" content="website">'
            b'<link rel="alternate" type="application/rss+xml" title="News" href="/news/rss">'
            b"</head><body><h1>Welcome</h1></body></html>",
        ),
        "/news/rss": ("application/rss+xml", (DATA / "rss-xhtml-doctype.xml").read_bytes()),
    }
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_home_page_over_http_is_refused_and_its_feed_works(
    site: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sqlite_url: str
) -> None:
    monkeypatch.setenv("DIGEST_DATABASE_URL", sqlite_url)
    (tmp_path / "digest.toml").write_text(
        f'[newsletters.parish]\ntitle = "Parish"\nlist = "parish"\nsender = "a@example.org"\n'
        f'sources = ["{site}/", "{site}/news/rss"]\n'
    )
    refused = invoke(f"{site}/")
    assert refused.exit_code == 1  # the only source named, and it was refused
    assert f"use its feed instead: {site}/news/rss;" in refused.stderr
    assert count_articles(sqlite_url) == 0
    feed = invoke(f"{site}/news/rss")  # the offered feed: an RSS file with an XHTML DOCTYPE
    assert feed.exit_code == 0, feed.output
    assert "1 source: 2 new" in feed.stdout
    assert count_articles(sqlite_url) == 2


def test_help_mentions_the_rules() -> None:
    out = CliRunner().invoke(cli, ["ingest", "--help"]).stdout
    assert "--as-article" in out and "merged" in out and "no newsletter" in " ".join(out.split())


def test_what_the_email_shows_is_what_the_site_published(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sqlite_url: str
) -> None:
    """Ingest, then compose, as a user would: a JSON Feed's ``Q&amp;A`` title shows as
    "Q&A" (not "&amp;") and an Atom summary's doubly escaped ``<img>`` shows as neither
    markup text nor a tag, in the HTML email and in its text twin (issues 14.1, 13.6)."""
    for name in ("jsonfeed-wild.json", "atom-escaped-summary.xml"):
        shutil.copy(DATA / name, tmp_path / name)
    (tmp_path / "digest.toml").write_text(
        '[newsletters.weekly]\ntitle = "Weekly"\nlist = "weekly"\nsender = "news@example.org"\n'
        'sources = ["jsonfeed-wild.json", "atom-escaped-summary.xml"]\n'
    )
    monkeypatch.setenv("DIGEST_DATABASE_URL", sqlite_url)
    assert invoke().exit_code == 0
    composed = CliRunner().invoke(
        cli, ["compose", "weekly", "--as-of", "2026-11-23", "--out", str(tmp_path / "out")]
    )
    assert composed.exit_code == 0, composed.output
    text = (tmp_path / "out" / "all.txt").read_text()
    html = (tmp_path / "out" / "all.html").read_text()
    assert "Q&A: the new digital minister on ‘boring’ technology" in text
    assert "Q&amp;A: the new digital minister on ‘boring’ technology" in html
    assert "&amp;amp;" not in html and "&amp;" not in text
    assert "Suppliers & buyers get six weeks to adjust." in text
    # Shown as text, a tag would be "<img" in the text twin and "&lt;img" in the HTML.
    assert "<img" not in text and "&lt;img" not in html
    assert "Every draft is public, from the first outline" in text

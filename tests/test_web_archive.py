"""Editions on the web: the web version of each variant, the archive page and its Atom feed."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from sqlalchemy import select

from digest.models import Edition, EditionStatus, Variant
from tests.support import web as support
from tests.support.web import client_for, web_world
from tests.support.world import World, add_readers, send

sqlite_template = support.sqlite_template
fast_db_url = support.fast_db_url

ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture
def sent(fast_db_url: str, tmp_path: Path) -> World:
    """A world whose 2026-W47 edition went out to two readers (one chose only Data)."""
    world = web_world(fast_db_url, tmp_path)
    add_readers(world.app, 1)
    add_readers(world.app, 1, start=1, categories=["Data"])
    report = send(world.app, backend="outbox")
    assert report.counts.sent == 2
    return world


def archive_on(world: World) -> None:
    config = Path(world.env["DIGEST_CONFIG"])
    config.write_text(
        config.read_text().replace('list = "weekly"', 'list = "weekly"\narchive = true')
    )


def test_the_web_version_is_the_sent_email_without_reader_data(sent: World) -> None:
    with client_for(sent) as client:
        full = client.get("/e/weekly/2026-W47/all")
        with sent.app.transaction() as s:
            partial_key = s.scalars(select(Variant.key).where(Variant.key != "all")).one()
        partial = client.get(f"/e/weekly/2026-W47/{partial_key}")
        assert client.get("/e/weekly/2026-W47/nope").status_code == 404
        assert client.get("/e/weekly/2026-W01/all").status_code == 404
        assert client.get("/e/other/2026-W47/all").status_code == 404
        explained = client.get("/u/preview")
    assert full.status_code == 200 and partial.status_code == 200
    assert "Hi there," in full.text and "Reader 0" not in full.text
    assert "https://news.example.org/u/preview" in full.text  # explains, unsubscribes no one
    assert "https://news.example.org/e/weekly/2026-W47/all" in full.text
    assert "Data story" in partial.text and "Care story" not in partial.text
    assert "frame-ancestors 'self'" in full.headers["content-security-policy"]
    assert "script-src" not in full.headers["content-security-policy"]
    assert full.headers["x-robots-tag"] == "noindex"
    assert "email you received" in explained.text


def test_a_planned_edition_is_not_on_the_web_yet(sent: World) -> None:
    with sent.app.transaction() as s:
        s.scalars(select(Edition)).one().status = EditionStatus.PLANNED
    with client_for(sent) as client:
        assert client.get("/e/weekly/2026-W47/all").status_code == 404


def test_the_archive_and_feed_are_opt_in(sent: World) -> None:
    with client_for(sent) as client:
        assert client.get("/archive/weekly").status_code == 404
        assert client.get("/archive/weekly/feed.atom").status_code == 404
        archive_on(sent)
        page = client.get("/archive/weekly")
        feed = client.get("/archive/weekly/feed.atom")
        subscribe = client.get("/subscribe/weekly")
    assert page.status_code == 200 and "The Weekly: past editions" in page.text
    assert 'href="https://news.example.org/e/weekly/2026-W47/all"' in page.text
    assert 'type="application/atom+xml"' in page.text and "/archive/weekly" in subscribe.text
    assert feed.headers["content-type"].startswith("application/atom+xml")
    root = ET.fromstring(feed.content)
    assert root.tag == f"{ATOM}feed"
    assert root.findtext(f"{ATOM}title") == "The Weekly"
    (entry,) = root.findall(f"{ATOM}entry")
    assert entry.findtext(f"{ATOM}title") == "The Weekly: Policy story 1"
    link = entry.find(f"{ATOM}link")
    assert link is not None and link.get("href") == "https://news.example.org/e/weekly/2026-W47/all"
    assert entry.findtext(f"{ATOM}updated")

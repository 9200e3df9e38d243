"""CSV export from the admin's subscriber list (both databases): the filters the page
shows, a UTF-8 byte order mark, formulas neutralised as `digest subscribers export`
does, and a file that imports back."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from subscribers import io as subscribers_io
from subscribers.service import add_subscriber
from tests.support import web as support
from tests.support.web import client_for, sign_in, web_world
from tests.support.world import World

sqlite_template = support.sqlite_template
fast_db_url = support.fast_db_url
fast_sqlite_url = support.fast_sqlite_url


@pytest.fixture
def world(fast_db_url: str, tmp_path: Path) -> World:
    world = web_world(fast_db_url, tmp_path)
    with world.app.transaction() as s:
        add_subscriber(s, "zoe@example.org", "weekly", name="Zoë Ünal", attributes={"city": "Köln"})
        add_subscriber(
            s,
            "eve@example.org",
            "weekly",
            name='=HYPERLINK("http://evil")',
            attributes={"note": "+1"},
        )
        add_subscriber(s, "other@example.net", "weekly", name="Other")
    return world


def test_the_list_downloads_as_csv_with_a_bom_and_no_formulas(world: World) -> None:
    with client_for(world) as client:
        sign_in(client)
        page = client.get("/admin/subscribers", params={"q": "example.org"})
        assert 'href="/admin/subscribers.csv?q=example.org"' in page.text
        response = client.get("/admin/subscribers.csv", params={"q": "example.org"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == 'attachment; filename="subscribers.csv"'
    body = response.content
    assert body.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))
    assert rows[0] == ["email", "name", "categories", "timezone", "city", "note"]
    by_email = {r[0]: r for r in rows[1:]}
    assert set(by_email) == {"zoe@example.org", "eve@example.org"}  # the filter applies
    assert by_email["zoe@example.org"][1] == "Zoë Ünal" and by_email["zoe@example.org"][4] == "Köln"
    assert by_email["eve@example.org"][1] == '\'=HYPERLINK("http://evil")'  # neutralised
    assert by_email["eve@example.org"][5] == "'+1"
    # the same neutralising as `digest subscribers export`
    assert subscribers_io.neutralise('=HYPERLINK("http://evil")') == by_email["eve@example.org"][1]


def test_the_export_imports_back(world: World) -> None:
    with client_for(world) as client:
        sign_in(client)
        body = client.get("/admin/subscribers.csv", params={"list": "weekly"}).content
    with world.app.transaction() as s:
        report = subscribers_io.import_csv(s, body, "weekly", dry_run=True)
    assert report.rejected == [] and report.unchanged == 3, report.counts()


def test_nobody_signed_in_cannot_export(world: World) -> None:
    with client_for(world) as client:
        assert client.get("/admin/subscribers.csv").status_code == 401

"""The admin console's suppression list over HTTP: search, a lift behind a confirmation
page with its CSRF token, the consent-log line, erased entries lifted by their address."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from subscribers import privacy, service
from subscribers.consent import By
from subscribers.models import ConsentSource, Status, SuppressionReason
from subscribers.suppression import is_suppressed, list_suppressions
from tests.support import web as support
from tests.support.web import client_for, csrf_of, page_csrf, sign_in, web_world
from tests.support.world import World

sqlite_template = support.sqlite_template
fast_db_url = support.fast_db_url


@pytest.fixture
def world(fast_db_url: str, tmp_path: Path) -> World:
    world = web_world(fast_db_url, tmp_path, readers=3)
    with world.app.transaction() as s:
        service.suppress(
            s,
            "reader0@example.net",
            SuppressionReason.HARD_BOUNCE,
            "hard bounce 5.1.1 smtp; 550 5.1.1 <reader0@example.net>: User unknown",
            by=By(ConsentSource.INBOUND, "digest inbound (lmtp)"),
        )
        service.suppress(s, "reader1@example.net", SuppressionReason.SPAM_REPORT, "abuse report")
        privacy.forget(s, "reader2@example.net")
    return world


def _entry_id(world: World, label: str) -> int:
    with world.app.transaction() as s:
        (entry,) = [e for e in list_suppressions(s)[1] if e.label().startswith(label)]
        return entry.id


def test_the_page_lists_and_searches(world: World) -> None:
    with client_for(world) as client:
        assert client.get("/admin/suppressions").status_code == 401
        sign_in(client)
        page = client.get("/admin/suppressions")
        assert page.status_code == 200
        assert "3 suppressed addresses found." in page.text
        assert "reader0@example.net" in page.text and "5.1.1" in page.text
        assert "(erased) " in page.text and 'href="/admin/suppressions"' in page.text
        found = client.get("/admin/suppressions", params={"q": "5.1.1"}).text
        assert "1 suppressed address found." in found and "reader1@" not in found
        spam = client.get("/admin/suppressions", params={"reason": "spam_report"}).text
        assert "reader1@example.net" in spam and "reader0@" not in spam
        assert client.get("/admin/suppressions", params={"reason": "nope"}).status_code == 400


def test_lift_asks_for_confirmation_and_keeps_the_reader_bounced(world: World) -> None:
    entry = _entry_id(world, "reader0@")
    with client_for(world) as client:
        sign_in(client)
        confirm = client.get(f"/admin/suppressions/{entry}/lift")
        assert confirm.status_code == 200
        assert "does <strong>not</strong> make the reader active again" in confirm.text
        token = csrf_of(confirm.text)
        path = f"/admin/suppressions/{entry}/lift"
        assert client.post(path, data={"confirm": "yes"}).status_code == 403  # no CSRF token
        unticked = client.post(path, data={"csrf": token, "why": "fixed"})
        assert unticked.status_code == 400 and "Tick the box" in unticked.text
        with world.app.transaction() as s:
            assert is_suppressed(s, "reader0@example.net")
        done = client.post(path, data={"csrf": token, "why": "mailbox fixed", "confirm": "yes"})
        assert done.status_code == 303
        subscriber_page = client.get(done.headers["location"]).text
        assert "lifted: they stay bounced and get no mail until they confirm" in subscriber_page
        assert "no change (bounced)" in subscriber_page and "mailbox fixed" in subscriber_page
        gone = client.get(f"/admin/suppressions/{entry}/lift")
        assert gone.status_code == 404
    with world.app.transaction() as s:
        assert not is_suppressed(s, "reader0@example.net")
        reader = service.find_subscriber(s, "reader0@example.net")
        assert reader is not None and reader.status is Status.BOUNCED
        line = privacy.describe(s, reader)["consent_log"][-1]
        assert line["actor"].startswith("admin (admin console, ") and line["note"]


def test_subscriber_page_shows_the_suppression_and_links_to_lift_it(world: World) -> None:
    entry = _entry_id(world, "reader0@")
    with world.app.transaction() as s:
        reader = service.find_subscriber(s, "reader0@example.net")
        assert reader is not None
        reader_id = reader.id
    with client_for(world) as client:
        sign_in(client)
        page = client.get(f"/admin/subscribers/{reader_id}").text
    assert re.search(r"<dt>Suppressed</dt><dd>hard_bounce since \d{4}-\d\d-\d\d", page)
    assert f'href="/admin/suppressions/{entry}/lift"' in page


def test_an_erased_entry_is_lifted_only_by_typing_its_address(world: World) -> None:
    entry = _entry_id(world, "(erased)")
    path = f"/admin/suppressions/{entry}/lift"
    with client_for(world) as client:
        sign_in(client)
        page = client.get(path)
        assert "only a hash of it is kept" in page.text and 'name="email"' in page.text
        token = page_csrf(client, path)
        wrong = client.post(
            path, data={"csrf": token, "email": "someone@example.net", "confirm": "yes"}
        )
        assert wrong.status_code == 400 and "it was erased" in wrong.text
        right = client.post(
            path, data={"csrf": token, "email": "Reader2@example.net", "confirm": "yes"}
        )
        assert right.status_code == 303 and right.headers["location"] == "/admin/suppressions"
    with world.app.transaction() as s:
        assert not is_suppressed(s, "reader2@example.net")

"""The admin console over HTTP: sign-in, sessions, CSRF, 401/403/404, subscribers,
CSV import with its report, segments with live counts, editions with engagement counts."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.models import Delivery, Edition, Event
from subscribers.db import utcnow
from subscribers.models import Segment, Status, Subscriber, Suppression
from subscribers.service import add_subscriber, find_subscriber
from tests.support import web as support
from tests.support.web import (
    PASSWORD,
    client_for,
    csrf_of,
    page_csrf,
    sign_in,
    web_world,
)
from tests.support.world import World, add_readers, send

sqlite_template = support.sqlite_template
fast_db_url = support.fast_db_url
fast_sqlite_url = support.fast_sqlite_url

ADMIN_PAGES = [
    "/admin",
    "/admin/subscribers",
    "/admin/import",
    "/admin/segments",
    "/admin/editions",
]


@pytest.fixture
def world(fast_db_url: str, tmp_path: Path) -> World:
    return web_world(fast_db_url, tmp_path)


@pytest.fixture
def lite(fast_sqlite_url: str, tmp_path: Path) -> World:
    return web_world(fast_sqlite_url, tmp_path)


# ---------------------------------------------------------------------------
# Signing in


def test_without_a_password_the_console_is_off(fast_sqlite_url: str, tmp_path: Path) -> None:
    world = web_world(fast_sqlite_url, tmp_path, password=None)
    with client_for(world) as client:
        for path in [*ADMIN_PAGES, "/admin/login", "/preview", "/api/lists"]:
            response = client.get(path)
            assert response.status_code == 404, path
        page = client.get("/admin")
        preview = client.get("/preview")
        post = client.post("/admin/login", data={"password": "x"})
    assert "DIGEST_ADMIN_PASSWORD" in page.text
    assert "run `digest preview` on your own machine" in preview.text
    assert post.status_code == 404


def test_pages_need_a_signed_in_session(lite: World) -> None:
    with client_for(lite) as client:
        for path in [*ADMIN_PAGES, "/preview", "/admin/subscribers/1"]:
            response = client.get(path)
            assert response.status_code == 401, path
            assert 'name="password"' in response.text  # the sign-in form, right there
        assert client.get("/api/lists").status_code == 401
        assert client.post("/admin/lists", data={"name": "x"}).status_code == 401


def test_sign_in_sets_a_hardened_cookie_and_sign_out_ends_it(lite: World) -> None:
    with client_for(lite) as client:
        token = page_csrf(client, "/admin/login?next=/admin/segments")
        wrong = client.post("/admin/login", data={"csrf": token, "password": "nope"})
        assert wrong.status_code == 401 and "That password is not right." in wrong.text
        right = client.post(
            "/admin/login", data={"csrf": token, "password": PASSWORD, "next": "/admin/segments"}
        )
        assert right.status_code == 303 and right.headers["location"] == "/admin/segments"
        cookie = right.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "secure" in cookie
        assert client.get("/admin").status_code == 200
        # the token from before signing in is worthless now
        assert client.post("/admin/logout", data={"csrf": token}).status_code == 403
        out = client.post("/admin/logout", data={"csrf": page_csrf(client, "/admin")})
        assert out.status_code == 303
        assert client.get("/admin").status_code == 401


def test_next_never_leads_to_another_site(lite: World) -> None:
    with client_for(lite) as client:
        token = page_csrf(client, "/admin/login")
        response = client.post(
            "/admin/login",
            data={"csrf": token, "password": PASSWORD, "next": "//evil.example/admin"},
        )
    assert response.headers["location"] == "/admin"


def test_every_post_needs_the_csrf_token(lite: World) -> None:
    with client_for(lite) as client:
        sign_in(client)
        posts = {
            "/admin/lists": {"name": "sneaky"},
            "/admin/segments": {"list": "weekly", "name": "s", "rule": '{"status": "active"}'},
            "/admin/import": {"list": "weekly"},
            "/admin/logout": {},
        }
        for path, data in posts.items():
            assert client.post(path, data=data).status_code == 403, path
            assert client.post(path, data={**data, "csrf": "forged"}).status_code == 403, path
        api = client.post("/api/segments/count", json={"list": "weekly", "rule": {}})
        assert api.status_code == 403
        assert client.get("/admin").status_code == 200  # still signed in
    with lite.app.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Segment)) == 0


# ---------------------------------------------------------------------------
# Lists and subscribers


def test_lists_and_subscriber_search(world: World) -> None:
    add_readers(world.app, 3)
    with world.app.transaction() as s:
        add_subscriber(s, "zed@example.org", "weekly", name="Zed Findme")
    with client_for(world) as client:
        sign_in(client)
        dashboard = client.get("/admin")
        assert dashboard.status_code == 200 and "<h1>Lists</h1>" in dashboard.text
        found = client.get("/admin/subscribers", params={"q": "findme"})
        by_status = client.get("/admin/subscribers", params={"list": "weekly", "status": "active"})
        none = client.get("/admin/subscribers", params={"status": "bounced"})
        assert client.get("/admin/subscribers", params={"status": "nope"}).status_code == 400
    assert "zed@example.org" in found.text and "1 subscriber found." in found.text
    assert "4 subscribers found." in by_status.text
    assert "0 subscribers found." in none.text


def test_the_api_and_the_pages_show_a_list_member_s_status_alike(world: World) -> None:
    """On a list, a reader who left it is "unsubscribed" there, though still active on
    another list: in the admin's search and in /api/subscribers (one search, one rule)."""
    from digest.web.security import CSRF_HEADER
    from subscribers.lists import create_list
    from subscribers.service import unsubscribe

    with world.app.transaction() as s:
        create_list(s, "monthly")
        sid = add_subscriber(s, "left@example.org", "weekly").subscriber.id
        add_subscriber(s, "left@example.org", "monthly")
        unsubscribe(s, sid, "weekly")
    with client_for(world) as client:
        sign_in(client)
        token = page_csrf(client, "/admin")
        page = client.get("/admin/subscribers", params={"list": "weekly", "status": "unsubscribed"})
        api = client.get(
            "/api/subscribers",
            params={"list": "weekly", "status": "unsubscribed"},
            headers={CSRF_HEADER: token},
        )
        everyone = client.get(
            "/api/subscribers", params={"q": "left@"}, headers={CSRF_HEADER: token}
        )
    assert "1 subscriber found." in page.text and "unsubscribed" in page.text
    assert api.status_code == 200, api.text
    (item,) = api.json()["items"]
    assert (item["email"], item["status"]) == ("left@example.org", "unsubscribed")
    assert [i["status"] for i in everyone.json()["items"]] == ["active"]  # the person


def test_create_a_list(lite: World) -> None:
    with client_for(lite) as client:
        sign_in(client)
        token = page_csrf(client, "/admin")
        response = client.post(
            "/admin/lists", data={"csrf": token, "name": "monthly", "description": "Once a month"}
        )
        assert response.status_code == 303
        page = client.get("/admin")
    assert "List &#39;monthly&#39; created." in page.text and "Once a month" in page.text


def test_edit_unsubscribe_and_forget_a_subscriber(world: World) -> None:
    with world.app.transaction() as s:
        sid = add_subscriber(
            s, "ed@example.org", "weekly", name="Ed", attributes={"sector": "health"}
        ).subscriber.id
        edition = Edition(
            newsletter="weekly", period="2026-W47", period_start=utcnow(), period_end=utcnow()
        )
        s.add(edition)
        s.flush()
        s.add(Delivery(edition_id=edition.id, subscriber_id=sid, email="ed@example.org"))
    with client_for(world) as client:
        sign_in(client)
        page = client.get(f"/admin/subscribers/{sid}")
        assert page.status_code == 200 and "sector = health" in page.text
        token = csrf_of(page.text)
        saved = client.post(
            f"/admin/subscribers/{sid}",
            data={
                "csrf": token,
                "name": "Edward",
                "categories": ["Data"],
                "attributes": "region = north\n",
                "timezone": "Europe/Paris",
            },
        )
        assert saved.status_code == 303
        bad = client.post(
            f"/admin/subscribers/{sid}",
            data={"csrf": token, "name": "Edward", "timezone": "Mars/Olympus"},
        )
        assert bad.status_code == 400 and "unknown timezone" in bad.text
        with world.app.transaction() as s:
            who = s.get(Subscriber, sid)
            assert who is not None and who.name == "Edward" and who.categories == ["Data"]
            assert who.attributes == {"region": "north"} and who.timezone == "Europe/Paris"

        out = client.post(f"/admin/subscribers/{sid}/unsubscribe", data={"csrf": token})
        assert out.status_code == 303
        with world.app.transaction() as s:
            who = s.get(Subscriber, sid)
            assert who is not None and who.status is Status.UNSUBSCRIBED
        # the consent log, on the page: what changed, by whom, from where
        logged = client.get(f"/admin/subscribers/{sid}").text
        log_table = logged[logged.index("<h2>Consent log</h2>") : logged.index("<h2>Erase</h2>")]
        rows = re.findall(r"<tr>\s*(.*?)\s*</tr>", log_table, re.S)[1:]
        cells = [re.findall(r"<td>(.*?)</td>", row, re.S)[1:5] for row in rows]
        assert cells == [
            ["(the person)", "— → active", "admin", ""],
            ["weekly", "— → active", "admin", ""],
            ["weekly", "active → unsubscribed", "admin", "admin (admin console, testclient)"],
            ["(the person)", "active → unsubscribed", "admin", "admin (admin console, testclient)"],
        ]

        unticked = client.post(f"/admin/subscribers/{sid}/forget", data={"csrf": token})
        assert unticked.status_code == 400
        gone = client.post(
            f"/admin/subscribers/{sid}/forget", data={"csrf": token, "confirm": "yes"}
        )
        assert gone.status_code == 303
        assert client.get(f"/admin/subscribers/{sid}").status_code == 404
    with world.app.transaction() as s:
        assert find_subscriber(s, "ed@example.org") is None
        assert s.scalar(select(func.count()).select_from(Suppression)) == 1
        # the ledger keeps the row for the edition's counts, not the address
        assert s.execute(select(Delivery.email, Delivery.subscriber_id)).all() == [(None, None)]


# ---------------------------------------------------------------------------
# CSV import


CSV = (
    "email,name,categories,sector\n"
    "one@example.org,One,Data,health\n"
    "two@example.org,Two,,education\n"
    "not-an-address,Bad,,\n"
    "one@example.org,Again,,\n"
    "three@example.org,Three,Astrology,\n"
)


def test_csv_import_shows_the_row_report(world: World) -> None:
    with client_for(world) as client:
        sign_in(client)
        token = page_csrf(client, "/admin/import")
        dry = client.post(
            "/admin/import",
            data={"csrf": token, "list": "weekly", "dry_run": "on"},
            files={"file": ("people.csv", CSV.encode(), "text/csv")},
        )
        assert dry.status_code == 200 and "dry run: nothing was changed" in dry.text
        with world.app.transaction() as s:
            assert s.scalar(select(func.count()).select_from(Subscriber)) == 0
        real = client.post(
            "/admin/import",
            data={"csrf": token, "list": "weekly"},
            files={"file": ("people.csv", CSV.encode(), "text/csv")},
        )
    assert real.status_code == 200
    counts = dict(re.findall(r"<dt>(\w+)</dt><dd>(\d+)</dd>", real.text))
    assert counts == {"Imported": "2", "Updated": "0", "Unchanged": "0", "Rejected": "3"}
    rows = re.findall(r'<td class="num">(\d+)</td><td>([^<]*)</td><td>([^<]*)</td>', real.text)
    assert [(line, email) for line, email, _ in rows] == [
        ("4", "not-an-address"),
        ("5", "one@example.org"),
        ("6", "three@example.org"),
    ]
    assert "duplicate in the file (see line 2)" in rows[1][2]
    assert "unknown category" in rows[2][2]
    with world.app.transaction() as s:
        one = find_subscriber(s, "one@example.org")
        assert one is not None and one.attributes == {"sector": "health"}
        assert one.status is Status.ACTIVE


def test_csv_import_accepts_the_categories_the_cli_accepts(world: World) -> None:
    """The "Other" section is a choice on import here as with `digest subscribers import`
    (one definition: DigestConfig.choosable_categories)."""
    csv = "email,categories\nann@example.org,Other\nbob@example.org,Astrology\n"
    with client_for(world) as client:
        sign_in(client)
        token = page_csrf(client, "/admin/import")
        report = client.post(
            "/admin/import",
            data={"csrf": token, "list": "weekly"},
            files={"file": ("p.csv", csv.encode(), "text/csv")},
        )
    counts = dict(re.findall(r"<dt>(\w+)</dt><dd>(\d+)</dd>", report.text))
    assert counts["Imported"] == "1" and counts["Rejected"] == "1"
    with world.app.transaction() as s:
        ann = find_subscriber(s, "ann@example.org")
        assert ann is not None and ann.categories == ["Other"]
    config = world.app.config
    assert config.choosable_categories(["weekly"]) == [
        *config.newsletter("weekly").category_names,
        "Other",
    ]
    assert (
        config.choosable_categories(["weekly"], other=False)
        == config.newsletter("weekly").category_names
    )
    assert config.choosable_categories(["no-such-list"]) is None  # nothing configured: any


def test_a_broken_csv_is_one_clear_error(lite: World) -> None:
    with client_for(lite) as client:
        sign_in(client)
        token = page_csrf(client, "/admin/import")
        response = client.post(
            "/admin/import",
            data={"csrf": token, "list": "weekly"},
            files={"file": ("x.csv", b"name,sector\nAnn,health\n", "text/csv")},
        )
        empty = client.post("/admin/import", data={"csrf": token, "list": "weekly"})
    assert response.status_code == 400 and "x.csv:" in response.text and "email" in response.text
    assert empty.status_code == 400 and "Choose a CSV file" in empty.text


# ---------------------------------------------------------------------------
# Segments


def test_segments_count_live_and_save(world: World) -> None:
    with world.app.transaction() as s:
        for i, sector in enumerate(["health", "health", "education"]):
            add_subscriber(s, f"s{i}@example.org", "weekly", attributes={"sector": sector})
    rule = json.dumps({"attr": "sector", "equals": "health"})
    with client_for(world) as client:
        sign_in(client)
        token = page_csrf(client, "/admin/segments")
        counted = client.post(
            "/admin/segments",
            data={"csrf": token, "list": "weekly", "name": "", "rule": rule, "action": "count"},
        )
        assert counted.status_code == 200
        assert "2 recipients match (2 members in any status)." in counted.text
        api = client.post(
            "/api/segments/count",
            json={"list": "weekly", "rule": {"attr": "sector", "equals": "education"}},
            headers={"X-CSRF-Token": token},
        )
        assert api.status_code == 200 and api.json() == {"recipients": 1, "members": 1}
        broken = client.post(
            "/admin/segments",
            data={"csrf": token, "list": "weekly", "name": "x", "rule": '{"atr": 1}'},
        )
        assert broken.status_code == 400 and "did you mean" in broken.text
        saved = client.post(
            "/admin/segments",
            data={
                "csrf": token,
                "list": "weekly",
                "name": "health",
                "rule": rule,
                "action": "save",
            },
        )
        assert saved.status_code == 303
        with world.app.transaction() as s:
            add_subscriber(s, "late@example.org", "weekly", attributes={"sector": "health"})
        listing = client.get("/admin/segments")
        filtered = client.get("/admin/subscribers", params={"segment": "weekly/health"})
    row = re.search(r"<th scope=\"row\">.*?health</a></th>(.*?)</tr>", listing.text, re.S)
    assert row is not None
    assert re.findall(r'<td class="num">(\d+)</td>', row.group(1)) == ["3", "3"]
    assert "3 subscribers found." in filtered.text


# ---------------------------------------------------------------------------
# Editions


def add_event(session: Session, edition_id: int, kind: str, email: str, n: int) -> None:
    session.add(
        Event(
            provider="sendgrid",
            provider_event_id=f"{kind}-{email}-{n}",
            type=kind,
            email=email,
            edition_id=edition_id,
            occurred_at=datetime(2026, 11, 23, 9, n, tzinfo=UTC),
            payload={},
        )
    )


def test_editions_show_delivery_and_engagement_counts(world: World) -> None:
    emails = add_readers(world.app, 4)
    report = send(world.app, backend="outbox")
    assert report.counts.sent == 4
    with world.app.transaction() as s:
        edition_id = s.scalars(select(Edition.id)).one()
        for e in emails:
            add_event(s, edition_id, "delivered", e, 0)
        for n in range(3):  # one reader opens three times: one reader, three events
            add_event(s, edition_id, "opened", emails[0], n + 1)
        add_event(s, edition_id, "opened", emails[1], 9)
        add_event(s, edition_id, "clicked", emails[1], 10)
        add_event(s, edition_id, "bounced", emails[3], 11)
        add_event(s, edition_id, "unsubscribed", emails[2], 12)
    with client_for(world) as client:
        sign_in(client)
        table = client.get("/admin/editions")
        detail = client.get(f"/admin/editions/{edition_id}")
        api = client.get(f"/api/editions/{edition_id}")
        assert client.get("/admin/editions/999999").status_code == 404
    row = re.search(r"weekly 2026-W47</a></th>(.*?)</tr>", table.text, re.S)
    assert row is not None
    assert re.findall(r'<td class="num">(\d+)</td>', row.group(1)) == ["4", "4", "1", "2", "1", "1"]
    assert detail.status_code == 200
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img"' in detail.text
    assert (
        "Sent: 4, Delivered: 4, Bounced: 1, Opened: 2, Clicked: 1, Unsubscribed: 1" in detail.text
    )
    assert "50.0 %" in detail.text  # opened by 2 of 4 delivered
    body = api.json()
    assert body["readers"]["opened"] == 2 and body["events"]["opened"] == 4
    assert body["deliveries"]["sent"] == 4

"""The web app's defences: headers on every page, the password hash, rate limits, sessions."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from digest.web.ratelimit import RateLimiter, retry_after
from digest.web.security import PAGE_CSP, AdminPassword, csrf_ok, csrf_token, rotate_csrf
from subscribers.service import add_subscriber, find_subscriber
from subscribers.tokens import make_token
from tests.support import web as support
from tests.support.web import (
    client_for,
    csrf_of,
    outbox_messages,
    page_csrf,
    sign_in,
    web_world,
)
from tests.support.world import World

sqlite_template = support.sqlite_template
fast_sqlite_url = support.fast_sqlite_url


@pytest.fixture
def lite(fast_sqlite_url: str, tmp_path: Path) -> World:
    return web_world(fast_sqlite_url, tmp_path)


def test_every_page_carries_the_security_headers(lite: World) -> None:
    with client_for(lite) as client:
        for path in ["/", "/subscribe/weekly", "/admin/login", "/nope", "/static/app.css"]:
            response = client.get(path)
            headers = response.headers
            assert headers["x-content-type-options"] == "nosniff", path
            assert headers["referrer-policy"] == "no-referrer", path
            assert headers["x-frame-options"] == "DENY", path
            assert headers["content-security-policy"] == PAGE_CSP, path
    # spelled out here, so that loosening the policy in the code fails this test
    assert PAGE_CSP == (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-src 'self'; form-action 'self'; base-uri 'none'; "
        "frame-ancestors 'none'"
    )


def test_pages_use_no_inline_script_or_style(lite: World) -> None:
    with client_for(lite, open_preview=True) as client:
        pages = [
            client.get(p).text for p in ["/", "/subscribe/weekly", "/preview?as_of=2026-11-23"]
        ]
    for html in pages:
        assert not re.search(r"<script(?![^>]*\bsrc=)", html)
        assert " style=" not in html and "<style" not in html
        assert html.count("<h1") == 1


def test_unknown_pages_are_html_404s_and_api_ones_json(lite: World) -> None:
    with client_for(lite) as client:
        page = client.get("/nowhere")
        api = client.get("/api/nowhere")
        method = client.delete("/")
    assert page.status_code == 404 and "<h1>Page not found</h1>" in page.text
    assert api.status_code == 404 and api.json() == {"error": "Not Found"}
    assert method.status_code == 405


def test_the_admin_password_is_kept_as_a_hash() -> None:
    password = AdminPassword("hunter2-but-longer", "secret")
    assert password.check("hunter2-but-longer")
    assert not password.check("hunter2-but-longeR")
    assert not password.check("")
    assert not password.check("x" * 5000)
    assert "hunter2" not in repr(vars(password))
    same = AdminPassword("hunter2-but-longer", "secret")
    assert same.fingerprint == password.fingerprint  # sessions survive a restart
    assert AdminPassword("changed", "secret").fingerprint != password.fingerprint


def test_csrf_tokens_belong_to_one_session() -> None:
    session: dict[str, object] = {}
    token = csrf_token(session)
    assert csrf_token(session) == token and len(token) >= 40
    assert csrf_ok(session, token)
    assert not csrf_ok(session, token[:-1] + "x")
    assert not csrf_ok(session, None)
    assert not csrf_ok({}, token)
    fresh = rotate_csrf(session)
    assert fresh != token and not csrf_ok(session, token)


def test_the_token_bucket_refills_over_time() -> None:
    now = [0.0]
    limiter = RateLimiter(2, 60.0, clock=lambda: now[0])
    assert limiter.take("a") == 0.0 and limiter.take("a") == 0.0
    wait = limiter.take("a")
    assert wait == pytest.approx(30.0)
    assert retry_after(wait) == "30"
    assert limiter.take("b") == 0.0  # another key has its own bucket
    now[0] = 30.0
    assert limiter.take("a") == 0.0
    assert limiter.take("a") > 0


def test_a_tampered_session_cookie_is_ignored(lite: World) -> None:
    with client_for(lite) as client:
        sign_in(client)
        cookie = client.cookies.get("digest_session")
        assert cookie
        client.cookies.clear()
        client.cookies.set("digest_session", cookie[:-3] + "abc")
        assert client.get("/admin").status_code == 401
        client.cookies.clear()
        client.cookies.set("digest_session", cookie)
        assert client.get("/admin").status_code == 200


# ---------------------------------------------------------------------------
# Control characters in names and searches


def _reader(world: World, address: str = "reader@example.net", name: str = "Reader") -> int:
    with world.app.session() as s:
        return add_subscriber(s, address, "weekly", name=name).subscriber.id


@pytest.mark.parametrize("name", ["Ann\x00", "Ann\r\nBcc: all@example.org", "Ann\nReader"])
def test_the_form_refuses_a_name_with_a_line_break_or_nul(lite: World, name: str) -> None:
    with client_for(lite) as client:
        token = page_csrf(client, "/subscribe/weekly")
        response = client.post(
            "/subscribe/weekly", data={"csrf": token, "email": "ann@example.net", "name": name}
        )
    # before: "check your inbox", and no confirmation email ever came
    assert response.status_code == 400
    assert "Write your name on one line" in response.text
    assert "Check your inbox" not in response.text
    assert outbox_messages(lite) == []
    with lite.app.session() as s:
        assert find_subscriber(s, "ann@example.net") is None


def test_other_control_characters_are_dropped_before_a_name_reaches_a_header(lite: World) -> None:
    with client_for(lite) as client:
        token = page_csrf(client, "/subscribe/weekly")
        response = client.post(
            "/subscribe/weekly",
            data={"csrf": token, "email": "ann@example.net", "name": "Ann\x1b[2J\x07 Reader"},
        )
    assert response.status_code == 200 and "Check your inbox" in response.text
    (message,) = outbox_messages(lite)
    assert message["To"].addresses[0].display_name == "Ann [2J Reader"
    with lite.app.session() as s:
        who = find_subscriber(s, "ann@example.net")
        assert who is not None and who.name == "Ann [2J Reader"


def test_preferences_and_the_admin_refuse_such_names_too(lite: World) -> None:
    sid = _reader(lite)
    token = make_token(lite.app.settings.secret_key.get_secret_value(), sid, "preferences")
    with client_for(lite) as client:
        page = client.get(f"/p/{token}")
        prefs = client.post(f"/p/{token}", data={"csrf": csrf_of(page.text), "name": "A\x00B"})
        sign_in(client)
        admin = client.post(
            f"/admin/subscribers/{sid}",
            data={"csrf": page_csrf(client, f"/admin/subscribers/{sid}"), "name": "A\r\nB"},
        )
    assert prefs.status_code == 400 and "holds a NUL character" in prefs.text
    assert admin.status_code == 400 and "holds a line break" in admin.text
    with lite.app.session() as s:
        assert find_subscriber(s, "reader@example.net").name == "Reader"  # type: ignore[union-attr]


def test_a_search_for_nul_matches_nobody(lite: World) -> None:
    _reader(lite, "a@example.net", "Ann")
    _reader(lite, "b@example.net", "Bob")
    with client_for(lite) as client:
        sign_in(client)
        everyone = client.get("/admin/subscribers")
        nul = client.get("/admin/subscribers?q=%00")
        listed = client.get("/admin/subscribers?q=%00&list=weekly")
        api = client.get("/api/subscribers?q=%00")
        ann = client.get("/admin/subscribers?q=ann")
    assert "a@example.net" in everyone.text and "b@example.net" in everyone.text
    # before: SQLite's LIKE stopped at the NUL, and the pattern matched every subscriber
    for response in (nul, listed):
        assert response.status_code == 200
        assert "a@example.net" not in response.text and "b@example.net" not in response.text
    assert api.status_code == 200 and api.json()["total"] == 0
    assert "a@example.net" in ann.text and "b@example.net" not in ann.text

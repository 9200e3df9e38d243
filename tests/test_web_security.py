"""The web app's defences: headers on every page, the password hash, rate limits, sessions."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from select import select as readable
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from digest.web import WebOptions, create_app
from digest.web.ratelimit import RateLimiter, retry_after
from digest.web.security import (
    CSRF_HEADER,
    PAGE_CSP,
    AdminPassword,
    csrf_ok,
    csrf_token,
    rotate_csrf,
)
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


def test_only_a_page_with_a_form_starts_a_session(lite: World) -> None:
    """The CSRF token (and so the session cookie) is made when a page prints it: a page
    without a form sets no cookie on a reader who only looks."""
    with client_for(lite) as client:
        home = client.get("/")
        assert home.status_code == 200 and "set-cookie" not in home.headers
        form = client.get("/subscribe/weekly")
        assert form.status_code == 200 and "set-cookie" in form.headers
        assert 'name="csrf" value="' in form.text


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
    with world.app.transaction() as s:
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
    with lite.app.transaction() as s:
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
    with lite.app.transaction() as s:
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
    with lite.app.transaction() as s:
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


# ---------------------------------------------------------------------------
# Bodies: nothing is read before the sign-in is checked, and nothing beyond the caps


class Counting:
    """The app, counting the request-body bytes it reads."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.read = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def counted() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                self.read += len(message.get("body", b""))
            return message

        await self.app(scope, counted, send)


def _rule_body(size: int) -> bytes:
    start = b'{"list": "weekly", "rule": {"attr": "a", "equals": "'
    return start + b"x" * (size - len(start) - 3) + b'"}}'


def test_an_anonymous_json_body_is_never_read(lite: World) -> None:
    counting = Counting(create_app(lite.app))
    with TestClient(counting, base_url="https://testserver") as client:
        big = client.post(
            "/api/segments/count",
            content=_rule_body(5 * 1024 * 1024),
            headers={"Content-Type": "application/json"},
        )
        small = client.post("/api/segments/count", json={"list": "weekly", "rule": {}})
    # before: FastAPI read and parsed the whole body, then the handler said 401
    assert big.status_code == 401 and small.status_code == 401
    assert big.json() == {"error": "Sign in to see this page."}
    assert big.headers["connection"] == "close"  # the rest of the upload is not waited for
    assert counting.read == 0


def test_json_bodies_are_capped_and_checked_after_the_sign_in(lite: World) -> None:
    counting = Counting(create_app(lite.app))
    with TestClient(counting, base_url="https://testserver", follow_redirects=False) as client:
        sign_in(client)
        headers = {CSRF_HEADER: page_csrf(client, "/admin"), "Content-Type": "application/json"}

        def post(body: Any, **extra: str) -> Any:
            return client.post("/api/segments/count", content=body, headers={**headers, **extra})

        before = counting.read
        large = post(_rule_body(200 * 1024))
        read_for_large = counting.read - before

        def pieces() -> Any:
            body = _rule_body(200 * 1024)
            for i in range(0, len(body), 16 * 1024):
                yield body[i : i + 16 * 1024]

        chunked = post(pieces())
        fits = post(json.dumps({"list": "weekly", "rule": {"status": "active"}}).encode())
        not_json = post(b"{nope")
        nan = post(b'{"list": "weekly", "rule": {"attr": "a", "equals": NaN}}')
        deep = post(b"[" * 30_000 + b"]" * 30_000)
        wrong_type = post(b"{}", **{"Content-Type": "text/plain"})
        off_schema = post(b'{"list": "weekly"}')
        bad_rule = post(
            json.dumps({"list": "weekly", "rule": {"signed_up": {"before": "9999-12-31"}}}).encode()
        )
    assert large.status_code == 413 and "larger than 64 KB" in large.json()["error"]
    assert read_for_large == 0  # refused on its Content-Length, unread
    assert chunked.status_code == 413
    assert fits.status_code == 200 and fits.json() == {"recipients": 0, "members": 0}
    assert not_json.status_code == 400 and "not JSON" in not_json.json()["error"]
    assert nan.status_code == 400
    assert deep.status_code == 400 and "nests far too deeply" in deep.json()["error"]
    assert wrong_type.status_code == 415
    assert off_schema.status_code == 400 and "rule: Field required" in off_schema.json()["error"]
    # before: OverflowError, a 500
    assert bad_rule.status_code == 400 and "9999-12-31 is out of range" in bad_rule.json()["error"]


def test_no_api_route_lets_the_framework_read_a_body() -> None:
    """Every body is read by the route itself, after the sign-in check (see digest.web.api)."""
    from fastapi.routing import APIRoute

    from digest.web import api

    routes = [r for r in api.router.routes if isinstance(r, APIRoute)]
    assert routes and all(r.body_field is None for r in routes)


def test_a_body_larger_than_any_route_takes_is_refused_unread(lite: World) -> None:
    counting = Counting(create_app(lite.app))
    with TestClient(counting, base_url="https://testserver") as client:
        response = client.post(
            "/subscribe/weekly",
            content=b"x" * (20 * 1024 * 1024 + 1),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        form = client.post(
            "/subscribe/weekly",
            content=b"email=" + b"x" * (300 * 1024),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert response.status_code == 413 and counting.read == 0
    assert response.headers["x-content-type-options"] == "nosniff"
    assert form.status_code == 413 and "larger than 256 KB" in form.text


def _call(web: Any, method: str, path: str, pieces: list[Any], headers: list[Any]) -> list[Any]:
    """One request straight through the ASGI app; ``pieces`` are what ``receive`` gives
    (a message, or None to wait for ever).  Returns what the app sent."""
    sent: list[Any] = []
    queue = list(pieces)

    async def receive() -> Any:
        if not queue:
            return {"type": "http.disconnect"}
        piece = queue.pop(0)
        if piece is None:
            await asyncio.sleep(3600)
        return piece

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 443),
        "state": {},
    }
    asyncio.run(web(scope, receive, send))
    return sent


FORM = [(b"content-type", b"application/x-www-form-urlencoded"), (b"content-length", b"100")]


def test_a_body_that_stops_arriving_is_408(lite: World) -> None:
    web = create_app(lite.app, options=WebOptions(body_timeout=0.2))
    part = {"type": "http.request", "body": b"csrf=abc&", "more_body": True}

    sent = _call(web, "POST", "/admin/login", [part, None], FORM)

    start = sent[0]
    assert start["status"] == 408
    assert (b"connection", b"close") in start["headers"]
    assert b"arrived too slowly (it stopped for 0.2 seconds" in b"".join(
        m.get("body", b"") for m in sent
    )


def test_a_client_that_goes_away_midway_is_one_line_in_the_log(
    lite: World, caplog: pytest.LogCaptureFixture
) -> None:
    web = create_app(lite.app)
    part = {"type": "http.request", "body": b"csrf=abc&", "more_body": True}

    with caplog.at_level(logging.INFO):
        sent = _call(web, "POST", "/subscribe/weekly", [part], FORM)  # then: disconnect

    # before: starlette's ClientDisconnect went up as "Exception in ASGI application"
    assert sent[0]["status"] == 400
    lines = [r for r in caplog.records if "went away" in r.getMessage()]
    assert len(lines) == 1 and lines[0].exc_info is None
    assert lines[0].getMessage() == (
        "POST /subscribe/weekly: the client went away while sending the body (127.0.0.1)"
    )
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# ---------------------------------------------------------------------------
# Sessions live in the database: signing out revokes them


def _client(web: Any, **kwargs: Any) -> TestClient:
    return TestClient(web, base_url="https://testserver", follow_redirects=False, **kwargs)


def _sign_out(client: TestClient, *, everywhere: bool = False) -> None:
    data = {"csrf": page_csrf(client, "/admin")}
    if everywhere:
        data["everywhere"] = "on"
    assert client.post("/admin/logout", data=data).status_code == 303


def test_a_cookie_copied_before_signing_out_is_worthless_after(lite: World) -> None:
    web = create_app(lite.app)
    with _client(web) as owner, _client(web) as thief:
        sign_in(owner)
        thief.cookies.set("digest_session", owner.cookies["digest_session"])
        assert thief.get("/admin").status_code == 200  # a copy works while signed in
        _sign_out(owner)
        # before: the copy kept working for 12 hours
        assert thief.get("/admin").status_code == 401
        assert thief.get("/api/lists").status_code == 401
        assert owner.get("/admin").status_code == 401
        sign_in(owner)  # signing in again makes a new session; the old one stays dead
        assert owner.get("/admin").status_code == 200
        assert thief.get("/admin").status_code == 401


def test_sign_out_everywhere_ends_every_session(lite: World) -> None:
    web = create_app(lite.app)
    with _client(web) as laptop, _client(web) as phone, _client(web) as copy:
        sign_in(laptop)
        sign_in(phone)
        copy.cookies.set("digest_session", phone.cookies["digest_session"])
        assert laptop.get("/admin").text.count("Sign out everywhere") == 1
        _sign_out(laptop, everywhere=True)
        assert "Signed out everywhere (2 sessions)." in laptop.get("/admin/login").text
        for client in (laptop, phone, copy):
            assert client.get("/admin").status_code == 401


def test_changing_the_password_signs_every_session_out(lite: World) -> None:
    from pydantic import SecretStr

    from digest.app import App
    from digest.models import WebSession

    with _client(create_app(lite.app)) as client:
        sign_in(client)
        cookie = client.cookies["digest_session"]
    changed = App(lite.app.settings.model_copy(update={"admin_password": SecretStr("new one!")}))
    try:
        with _client(create_app(changed)) as client:
            client.cookies.set("digest_session", cookie)
            assert client.get("/admin").status_code == 401
            sign_in(client, "new one!")
            assert client.get("/admin").status_code == 200
        with changed.transaction() as s:
            rows = s.scalars(select(WebSession).order_by(WebSession.id)).all()
            assert [r.revoked_at is not None for r in rows] == [True, False]
    finally:
        changed.close()


def test_the_database_holds_no_token_and_sessions_end_after_12_hours(lite: World) -> None:
    import hashlib

    import time_machine

    from digest.models import WebSession

    web = create_app(lite.app)
    travel = time_machine.travel("2026-11-23 08:00:00+00:00", tick=False)
    with travel as traveller, _client(web, headers={"User-Agent": "Test browser"}) as client:
        sign_in(client)
        with lite.app.transaction() as s:
            (row,) = s.scalars(select(WebSession)).all()
        token = _session_token(web, client.cookies["digest_session"])
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert token not in repr(vars(row)) and row.account == "admin"
        assert (row.user_agent, row.ip) == ("Test browser", "testclient")
        traveller.shift(12 * 3600 - 60)
        assert client.get("/admin").status_code == 200
        traveller.shift(61)
        assert client.get("/admin").status_code == 401


def _session_token(web: Any, cookie: str) -> str:
    """The sign-in token inside the signed session cookie (as the app reads it)."""
    import base64

    from itsdangerous import TimestampSigner

    from digest.web import SESSION_COOKIE  # noqa: F401  (the cookie's name)
    from digest.web.security import derive_key

    secret = web.state.web.secret
    signer = TimestampSigner(derive_key(secret, "digest.web.session"))
    data = json.loads(base64.b64decode(signer.unsign(cookie)))
    return str(data["signin"])


# ---------------------------------------------------------------------------
# Sign-in: exponential backoff per client IP, which the right password passes in time


def _login(client: TestClient, password: str) -> Any:
    token = page_csrf(client, "/admin/login")
    return client.post("/admin/login", data={"csrf": token, "password": password})


def test_wrong_passwords_make_the_next_try_wait_longer_and_longer(lite: World) -> None:
    import time_machine

    from tests.support.web import PASSWORD

    web = create_app(lite.app)
    travel = time_machine.travel("2026-11-23 08:00:00+00:00", tick=False)
    with travel as traveller, _client(web) as client, _client(web, client=("10.9.9.9", 1)) as other:
        assert [_login(client, "wrong").status_code for _ in range(4)] == [401] * 4
        fifth = _login(client, "wrong")  # the fifth failure: the next try waits 2 s
        assert fifth.status_code == 401 and "Wait 2 seconds" in fifth.text
        early = _login(client, PASSWORD)
        # before: a per-minute bucket that refused the right password too
        assert early.status_code == 429 and early.headers["retry-after"] == "2"
        assert _login(other, "wrong").status_code == 401  # another address is not held
        traveller.shift(2)
        assert _login(client, "wrong").status_code == 401  # waits 4 s now
        traveller.shift(3)
        assert _login(client, PASSWORD).status_code == 429
        traveller.shift(1)
        assert _login(client, PASSWORD).status_code == 303  # the owner gets in
        client.cookies.clear()
        # and a success forgets the failures
        assert [_login(client, "wrong").status_code for _ in range(5)] == [401] * 5


def test_the_backoff_doubles_up_to_its_longest_wait() -> None:
    from digest.web.ratelimit import Backoff

    now = [0.0]
    backoff = Backoff(free=2, longest=60.0, clock=lambda: now[0])
    assert [backoff.failed("a") for _ in range(9)] == [0, 2, 4, 8, 16, 32, 60, 60, 60]
    assert backoff.wait("a") == 60.0 and backoff.wait("b") == 0.0
    now[0] = 59.5
    assert backoff.wait("a") == pytest.approx(0.5)
    now[0] = 24 * 3600 + 61  # a day without failures: forgotten
    assert backoff.wait("a") == 0.0
    backoff.succeeded("a")
    assert backoff.failed("a") == 0


# ---------------------------------------------------------------------------
# Behind a proxy: X-Forwarded-For only from DIGEST_TRUSTED_PROXIES


def test_x_forwarded_for_counts_only_from_a_trusted_proxy(
    fast_sqlite_url: str, tmp_path: Path
) -> None:
    direct = web_world(fast_sqlite_url, tmp_path)
    with _client(create_app(direct.app), client=("127.0.0.1", 1)) as client:
        codes = [
            client.post(
                "/admin/login",
                data={"csrf": page_csrf(client, "/admin/login"), "password": "x"},
                headers={"X-Forwarded-For": f"203.0.113.{i}"},
            ).status_code
            for i in range(7)
        ]
    assert codes == [401] * 5 + [429] * 2  # one client, whatever it claims

    from digest.app import App

    behind = App(direct.app.settings.model_copy(update={"trusted_proxies": ["127.0.0.1/32"]}))
    with _client(create_app(behind), client=("127.0.0.1", 1)) as client:

        def attempt(forwarded: str) -> int:
            token = page_csrf(client, "/admin/login")
            headers = {"X-Forwarded-For": forwarded}
            data = {"csrf": token, "password": "x"}
            return client.post("/admin/login", data=data, headers=headers).status_code

        rotated = [attempt(f"203.0.113.{i}") for i in range(7)]
        same = [attempt("198.51.100.7") for _ in range(7)]
        # a client cannot slip its own address in front of the proxy's
        spoofed = [attempt(f"192.0.2.{i}, 198.51.100.7") for i in range(2)]
    behind.close()
    assert rotated == [401] * 7  # seven clients behind the proxy
    assert same == [401] * 5 + [429] * 2
    assert spoofed == [429, 429]


def test_the_trusted_proxies_setting_is_checked() -> None:
    from digest.config import load_settings
    from digest.errors import ConfigError

    assert load_settings(trusted_proxies="10.0.0.1, 192.168.0.0/24").trusted_proxies == [
        "10.0.0.1/32",
        "192.168.0.0/24",
    ]
    assert load_settings().trusted_proxies == []
    with pytest.raises(ConfigError, match=r"DIGEST_TRUSTED_PROXIES: .*'nginx' is not an IP"):
        load_settings(trusted_proxies="nginx")


# ---------------------------------------------------------------------------
# Error answers: clear 4xx, and the security headers on every one (500s too)


def _has_the_headers(response: Any, *, hsts: bool) -> bool:
    headers = response.headers
    return (
        headers.get("x-content-type-options") == "nosniff"
        and headers.get("x-frame-options") == "DENY"
        and headers.get("content-security-policy") == PAGE_CSP
        and headers.get("referrer-policy") == "no-referrer"
        and (headers.get("strict-transport-security") == "max-age=31536000") == hsts
    )


@pytest.mark.parametrize("https", [True, False], ids=["https", "http"])
def test_error_answers_carry_the_security_headers(
    fast_sqlite_url: str, tmp_path: Path, https: bool
) -> None:
    base = "https://news.example.org" if https else "http://127.0.0.1:8000"
    world = web_world(fast_sqlite_url, tmp_path, env={"DIGEST_BASE_URL": base})
    web = create_app(world.app)

    async def boom() -> None:
        raise RuntimeError("a bug")

    web.add_api_route("/boom", boom)
    with TestClient(web, base_url="https://testserver", raise_server_exceptions=False) as client:
        answers = {
            "404": client.get("/nowhere"),
            "405": client.delete("/"),
            "413": client.post(
                "/subscribe/weekly",
                content=b"x" * (20 * 1024 * 1024 + 1),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            ),
            "411": client.post("/subscribe/weekly", content=iter([b"email=x"])),
            "500": client.get("/boom"),
            "json 404": client.get("/api/nowhere"),
            "json 401": client.get("/api/lists"),
            "json 422": client.get("/api/editions/0"),
            "page": client.get("/"),
        }
    assert answers["500"].status_code == 500 and "Something went wrong" in answers["500"].text
    assert "a bug" not in answers["500"].text
    for name, response in answers.items():
        assert _has_the_headers(response, hsts=https), (name, dict(response.headers))


BIG = str(2**63)


def test_ids_beyond_the_database_s_range_are_404(lite: World) -> None:
    with client_for(lite) as client:
        sign_in(client)
        token = page_csrf(client, "/admin")
        answers = [
            client.get(f"/admin/subscribers/{BIG}"),
            client.get(f"/admin/editions/{BIG}"),
            client.get(f"/admin/subscribers/{2**31}"),
            client.post(f"/admin/subscribers/{BIG}", data={"csrf": token, "name": "x"}),
            client.post(f"/admin/subscribers/{BIG}/unsubscribe", data={"csrf": token}),
            client.post(f"/admin/subscribers/{BIG}/forget", data={"csrf": token}),
        ]
        api = client.get(f"/api/editions/{BIG}")
    # before: OverflowError ("Python int too large to convert to SQLite INTEGER"), a 500
    assert [r.status_code for r in answers] == [404] * len(answers)
    assert api.status_code == 422


def test_segment_rules_beyond_the_bounds_are_clear_400s_on_the_form(lite: World) -> None:
    many = json.dumps({"all": [{"attr": "a", "equals": str(i)} for i in range(250)]})
    rules = {
        "9999-12-31 is out of range": '{"signed_up": {"before": "9999-12-31"}}',
        "at most 200 conditions": many,
        "nests far too deeply": "[" * 15_000,
        "nests far too deeply ": "a = " + "[" * 10_000,  # TOML
    }
    with client_for(lite) as client:
        sign_in(client)
        for message, rule in rules.items():
            for action in ("count", "save"):
                token = page_csrf(client, "/admin/segments")
                data = {"csrf": token, "list": "weekly", "name": "big", "rule": rule}
                response = client.post("/admin/segments", data={**data, "action": action})
                assert response.status_code == 400, (message, action)
                assert message.strip() in response.text, (message, action)


def test_a_segment_saved_before_rules_were_bounded_breaks_no_page(lite: World) -> None:
    from subscribers.lists import get_list
    from subscribers.models import Segment

    huge = {"all": [{"attr": "a", "equals": str(i)} for i in range(995)]}
    with lite.app.transaction() as s:  # as an older version saved it, unchecked
        s.add(Segment(list_id=get_list(s, "weekly").id, name="huge", rule=huge, categories=[]))
    _reader(lite)
    with client_for(lite) as client:
        sign_in(client)
        segments = client.get("/admin/segments")
        people = client.get("/admin/subscribers")
        filtered = client.get("/admin/subscribers?segment=weekly/huge")
        token = csrf_of(segments.text)
        deleted = client.post(
            "/admin/segments/delete", data={"csrf": token, "list": "weekly", "name": "huge"}
        )
        after = client.get("/admin/segments")
    # before: "Expression tree is too large", a 500, until deleted by a hand-made POST
    assert segments.status_code == 200
    assert "This segment cannot be used: rule.all: a rule may hold at most 200" in segments.text
    assert "Delete huge" in segments.text
    assert people.status_code == 200 and "reader@example.net" in people.text
    assert filtered.status_code in (400, 404) and "at most 200 conditions" in filtered.text
    assert deleted.status_code == 303 and "No segments yet." in after.text


# ---------------------------------------------------------------------------
# Against a real server: `digest serve` on loopback, with short timeouts for the tests


@dataclass
class Live:
    url: str
    host: str
    port: int
    pid: int
    log: Path

    def memory(self) -> dict[str, int]:
        """The server's resident memory now and at its peak (VmRSS, VmHWM), in KiB."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        return {k: int(re.search(rf"{k}:\s+(\d+)", status).group(1)) for k in ("VmRSS", "VmHWM")}  # type: ignore[union-attr]

    def connect(self) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout=30)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc to read the server's memory")
    root = tmp_path_factory.mktemp("live")
    log = root / "server.log"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DIGEST_") and k != "SENDGRID_API_KEY"
    }
    env.update(
        DIGEST_DATABASE_URL=f"sqlite:///{root / 'digest.db'}",
        DIGEST_ADMIN_PASSWORD="the live server's password",
        DIGEST_SECRET_KEY="live-test-secret-key-of-some-length",
        PYTHONUNBUFFERED="1",
    )
    args = ["serve", "--port", "0", "--header-timeout", "1", "--body-timeout", "1"]
    with log.open("w") as errors:
        process = subprocess.Popen(
            [sys.executable, "-m", "digest.cli", *args],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.search(r"http://([\d.]+):(\d+)/", line)
        assert found, f"the server printed {line!r}; its log:\n{log.read_text()}"
        host, port = found.group(1), int(found.group(2))
        url = f"http://{host}:{port}"
        assert httpx.get(f"{url}/api/health", timeout=30).status_code == 200
        yield Live(url, host, port, process.pid, log)
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


def _upload(live: Live, how: str, size: int) -> None:
    """An anonymous ``size``-byte JSON post to /api/segments/count, sent ``how``."""
    body = _rule_body(size)
    head = "POST /api/segments/count HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    with live.connect() as sock:
        try:
            if how == "chunked":
                sock.sendall(f"{head}Transfer-Encoding: chunked\r\n\r\n".encode())
                for i in range(0, len(body), 1 << 20):
                    piece = body[i : i + (1 << 20)]
                    sock.sendall(b"%x\r\n%b\r\n" % (len(piece), piece))
                sock.sendall(b"0\r\n\r\n")
            else:
                expect = "Expect: 100-continue\r\n" if how == "expect" else ""
                sock.sendall(f"{head}{expect}Content-Length: {len(body)}\r\n\r\n".encode())
                if how == "expect" and not sock.recv(64).startswith(b"HTTP/1.1 100"):
                    return  # answered without asking for the body: nothing more to send
                for i in range(0, len(body), 1 << 20):
                    sock.sendall(body[i : i + (1 << 20)])
            sock.recv(64)
        except OSError:
            pass  # the server answered and closed the connection midway: as it should


def test_anonymous_uploads_cost_the_live_server_no_memory(live: Live) -> None:
    before = live.memory()
    size = 16 * 1024 * 1024  # under the 20 MB cap of every body: the route itself refuses
    uploads = [
        threading.Thread(target=_upload, args=(live, how, size))
        for how in ("length", "chunked", "expect", "length", "chunked")
    ]
    for upload in uploads:
        upload.start()
    for upload in uploads:
        upload.join()
    after = live.memory()

    assert httpx.get(f"{live.url}/api/health", timeout=30).status_code == 200
    # before: each body was read and parsed before the 401 (the peak grew by some 90 MB
    # for these five, by hundreds with larger bodies)
    grown = (after["VmHWM"] - before["VmHWM"]) // 1024
    assert grown < 24, f"the server's peak memory grew by {grown} MB"


def _closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(4096) == b""
    except ConnectionResetError:
        return True


def test_the_live_server_closes_connections_whose_headers_do_not_come(live: Live) -> None:
    with ExitStack() as stack:
        idle = [stack.enter_context(live.connect()) for _ in range(20)]
        for i, sock in enumerate(idle):
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n" if i % 2 else b"")
        trickle = stack.enter_context(live.connect())
        trickle.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        pending = {*idle, trickle}
        deadline = time.monotonic() + 60  # far beyond the 1 s the server is given
        sent = 0
        while pending and time.monotonic() < deadline:
            ready, _, _ = readable(list(pending), [], [], 0.2)
            for sock in ready:
                if _closed(sock):
                    pending.discard(sock)
            if trickle in pending:
                try:
                    trickle.sendall(b"a")  # a byte every 0.2 s: never a whole header
                    sent += 1
                except OSError:
                    pending.discard(trickle)
    # before: every one was held open for as long as the client liked
    assert not pending, f"{len(pending)} of 21 connections still open after {sent} bytes"


def test_a_body_that_trickles_in_is_408_on_the_live_server(live: Live) -> None:
    with live.connect() as sock:
        sock.sendall(
            b"POST /admin/login HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n"
            b"password="
        )
        answer = b""
        deadline = time.monotonic() + 60
        while not answer and time.monotonic() < deadline:
            ready, _, _ = readable([sock], [], [], 0.2)
            if ready:
                answer = sock.recv(4096)
            else:
                sock.sendall(b"x")  # a byte every 0.2 s: slower than any real client
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:100]


def test_a_client_leaving_midway_is_one_line_in_the_live_server_log(live: Live) -> None:
    with live.connect() as sock:
        sock.sendall(
            b"POST /admin/login HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n"
            b"password=half"
        )
    deadline = time.monotonic() + 30
    while "went away" not in live.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    log = live.log.read_text()
    assert "POST /admin/login: the client went away while sending the body" in log
    assert "Traceback" not in log and "Exception in ASGI application" not in log


def test_x_forwarded_for_from_loopback_does_not_reset_the_sign_in_limit(live: Live) -> None:
    with httpx.Client(base_url=live.url, timeout=30) as client:
        codes = []
        for i in range(7):
            token = csrf_of(client.get("/admin/login").text)
            response = client.post(
                "/admin/login",
                data={"csrf": token, "password": "a guess"},
                headers={"X-Forwarded-For": f"203.0.113.{i}"},  # a new "client" each time
            )
            codes.append(response.status_code)
    # before: uvicorn believed X-Forwarded-For from 127.0.0.1, so each guess came from a
    # fresh address and was never limited
    assert codes == [401] * 5 + [429] * 2

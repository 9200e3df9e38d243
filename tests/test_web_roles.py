"""Accounts and roles in the web app: every route walked for nobody, an editor and an
admin (a new route without a role check fails here), argon2 accounts signing in, the
bootstrap admin password, password changes and removals signing sessions out, the
account named in the consent log, and the per-account login backoff."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from httpx import Response
from sqlalchemy import select
from starlette.testclient import TestClient

from digest import accounts
from digest.web import WebOptions, create_app
from subscribers.models import ConsentEvent
from subscribers.service import add_subscriber
from tests.support import web as support
from tests.support.web import PASSWORD, client_for, csrf_of, page_csrf, web_world
from tests.support.world import World

sqlite_template = support.sqlite_template
fast_db_url = support.fast_db_url
fast_sqlite_url = support.fast_sqlite_url

ADMIN_EMAIL = "ada@example.org"
EDITOR_EMAIL = "grace@example.org"
ADMIN_PW = "admin password of ada"
EDITOR_PW = "editor password of grace"

#: Routes anyone may use (readers' pages, sign-in, the signed webhook, public API).
PUBLIC = {
    ("GET", "/"),
    ("GET", "/subscribe/{newsletter}"),
    ("POST", "/subscribe/{newsletter}"),
    ("GET", "/c/{token}"),
    ("POST", "/c/{token}"),
    ("GET", "/u/{token}"),
    ("POST", "/u/{token}"),
    ("GET", "/p/{token}"),
    ("POST", "/p/{token}"),
    ("POST", "/p/{token}/unsubscribe"),
    ("GET", "/e/{newsletter}/{period}/{variant}"),
    ("GET", "/archive/{newsletter}"),
    ("GET", "/archive/{newsletter}/feed.atom"),
    ("GET", "/admin/login"),
    ("POST", "/admin/login"),
    ("POST", "/admin/logout"),
    ("GET", "/api/health"),
    ("GET", "/api/newsletters"),
    ("POST", "/webhooks/sendgrid"),
    ("GET", "/r/{reader}/{link}"),  # a reader's tracked link (signed)
    ("GET", "/o/{reader}"),  # the open pixel (signed)
}
#: Routes editors may use (the editions and the preview); every other route is admins'.
EDITOR = {
    ("GET", "/admin"),  # an editor's console starts at the editions (a redirect)
    ("GET", "/admin/editions"),
    ("GET", "/admin/account"),  # one's own password
    ("POST", "/admin/account"),
    ("GET", "/admin/editions/{edition_id}"),
    ("GET", "/preview"),
    ("GET", "/preview/frame"),
    ("GET", "/preview/events"),
    ("POST", "/preview/send-test"),
    ("GET", "/api/preview"),
    ("GET", "/api/editions"),
    ("GET", "/api/editions/{edition_id}"),
    # the editor's desk: prepare, edit, test, approve, send, pause, resume, cancel
    ("POST", "/admin/editions/prepare"),
    ("GET", "/admin/editions/{edition_id}/frame"),
    ("GET", "/admin/editions/{edition_id}/events"),
    ("GET", "/admin/editions/{edition_id}/progress"),
    ("POST", "/admin/editions/{edition_id}/intro"),
    ("POST", "/admin/editions/{edition_id}/subject"),
    ("POST", "/admin/editions/{edition_id}/article"),
    ("POST", "/admin/editions/{edition_id}/new"),
    ("POST", "/admin/editions/{edition_id}/test"),
    ("POST", "/admin/editions/{edition_id}/approve"),
    ("GET", "/admin/editions/{edition_id}/send"),
    ("POST", "/admin/editions/{edition_id}/send"),
    ("POST", "/admin/editions/{edition_id}/schedule"),
    ("POST", "/admin/editions/{edition_id}/pause"),
    ("POST", "/admin/editions/{edition_id}/resume"),
    ("POST", "/admin/editions/{edition_id}/cancel"),
}
PARAMS = {
    "newsletter": "weekly",
    "token": "not-a-token",
    "period": "2026-W47",
    "variant": "all",
    "subscriber_id": "1",
    "edition_id": "1",
    "entry_id": "1",
    "reader": "not-a-token",
    "link": "not-a-token",
}
ADMINS_ONLY = "for admins only"
EDITORS_ONLY = "for editors and admins only"


def all_routes(web: Any) -> list[tuple[str, str]]:
    """(method, path) of every route of the app, however FastAPI nests its routers."""
    found: list[tuple[str, str]] = []

    def walk(routes: list[Any], prefix: str) -> None:
        for route in routes:
            if hasattr(route, "original_router"):  # FastAPI >= 0.16x: included routers
                walk(route.original_router.routes, prefix + route.include_context.prefix)
            elif getattr(route, "methods", None):
                for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
                    found.append((method, prefix + route.path))

    walk(list(web.router.routes), "")
    return found


def add_accounts(world: World) -> None:
    with world.app.transaction() as s:
        accounts.add(s, ADMIN_EMAIL, "admin", ADMIN_PW)
        accounts.add(s, EDITOR_EMAIL, "editor", EDITOR_PW)


def sign_in(client: TestClient, email: str, password: str) -> Any:
    token = page_csrf(client, "/admin/login")
    return client.post("/admin/login", data={"csrf": token, "email": email, "password": password})


@pytest.fixture
def world(fast_db_url: str, tmp_path: Path) -> World:
    world = web_world(fast_db_url, tmp_path, readers=2)
    add_accounts(world)
    return world


@pytest.fixture
def lite(fast_sqlite_url: str, tmp_path: Path) -> World:
    world = web_world(fast_sqlite_url, tmp_path, readers=2)
    add_accounts(world)
    return world


@pytest.fixture
def clients(lite: World) -> Iterator[dict[str, TestClient]]:
    options = WebOptions(live_reload_max=0.2, live_reload_poll=0.05)
    web = create_app(lite.app, options=options)
    made = {
        who: TestClient(web, base_url="https://testserver", follow_redirects=False)
        for who in ("nobody", "editor", "admin")
    }
    for client in made.values():
        client.__enter__()
    try:
        assert sign_in(made["editor"], EDITOR_EMAIL, EDITOR_PW).status_code == 303
        assert sign_in(made["admin"], ADMIN_EMAIL, ADMIN_PW).status_code == 303
        yield made
    finally:
        for client in made.values():
            client.__exit__(None, None, None)


def _call(client: TestClient, method: str, path: str) -> Any:
    url = path.format(**PARAMS)
    if method == "GET":
        return client.get(url)
    return client.request(method, url, data={"x": "1"})


def test_every_route_checks_the_role(lite: World, clients: dict[str, TestClient]) -> None:
    web = clients["nobody"].app
    routes = all_routes(web)
    assert len(routes) > 40 and ("GET", "/admin/subscribers") in routes
    unknown = (PUBLIC | EDITOR) - set(routes)
    assert not unknown, f"the tables name routes that no longer exist: {unknown}"
    for method, path in routes:
        where = f"{method} {path}"
        nobody = _call(clients["nobody"], method, path)
        editor = _call(clients["editor"], method, path)
        admin = _call(clients["admin"], method, path)
        for who, response in (("nobody", nobody), ("editor", editor), ("admin", admin)):
            assert response.status_code < 500, (where, who, response.text[:300])
        if (method, path) in PUBLIC:
            continue
        assert nobody.status_code == 401, (where, nobody.status_code)
        assert admin.status_code not in (401,), where
        assert ADMINS_ONLY not in admin.text and EDITORS_ONLY not in admin.text, where
        if (method, path) in EDITOR:
            assert editor.status_code != 401, where
            assert ADMINS_ONLY not in editor.text, where
        else:
            assert editor.status_code == 403, (where, editor.status_code)
            assert ADMINS_ONLY in editor.text, where


def test_an_editor_sees_the_editions_and_no_management(clients: dict[str, TestClient]) -> None:
    editor, admin = clients["editor"], clients["admin"]
    landing = editor.get("/admin")
    assert landing.status_code == 303 and landing.headers["location"] == "/admin/editions"
    page = editor.get("/admin/editions")
    assert page.status_code == 200
    assert 'href="/admin/subscribers"' not in page.text and 'href="/preview"' in page.text
    assert f"{EDITOR_EMAIL} (editor)" in page.text
    refused = editor.get("/admin/subscribers")
    assert refused.status_code == 403 and "Not for your role" in refused.text
    assert editor.get("/api/lists").json()["error"].startswith("This page is for admins only")
    assert admin.get("/admin/subscribers").status_code == 200
    assert 'href="/admin/users"' in admin.get("/admin").text


def test_accounts_sign_in_with_argon2(world: World) -> None:
    with world.app.transaction() as s:
        stored = accounts.get(s, ADMIN_EMAIL)
        assert stored is not None and stored.password_hash.startswith("$argon2id$")
        assert ADMIN_PW not in stored.password_hash
    with client_for(world) as client:
        wrong = sign_in(client, ADMIN_EMAIL, "not the password")
        assert wrong.status_code == 401 and "do not match an account" in wrong.text
        nobody = sign_in(client, "who@example.org", ADMIN_PW)
        assert nobody.status_code == 401 and "do not match an account" in nobody.text
        assert sign_in(client, "  ADA@Example.org ", ADMIN_PW).status_code == 303
        assert client.get("/admin/subscribers").status_code == 200


def test_the_bootstrap_password_works_until_an_admin_account_exists(
    fast_db_url: str, tmp_path: Path
) -> None:
    world = web_world(fast_db_url, tmp_path)
    with client_for(world) as client, client_for(world) as other:
        support.sign_in(client)  # no email: DIGEST_ADMIN_PASSWORD, the bootstrap admin
        assert client.get("/admin/subscribers").status_code == 200
        with world.app.transaction() as s:
            accounts.add(s, EDITOR_EMAIL, "editor", EDITOR_PW)
        assert client.get("/admin/subscribers").status_code == 200  # editors do not end it
        with world.app.transaction() as s:
            accounts.add(s, ADMIN_EMAIL, "admin", ADMIN_PW)
        # The first admin account ends the bootstrap: its session, and the password.
        assert client.get("/admin/subscribers").status_code == 401
        token = page_csrf(other, "/admin/login")
        refused = other.post("/admin/login", data={"csrf": token, "password": PASSWORD})
        assert refused.status_code == 401
        assert "only until the first admin account exists" in refused.text
        assert sign_in(other, ADMIN_EMAIL, ADMIN_PW).status_code == 303
        with world.app.transaction() as s:
            accounts.remove(s, ADMIN_EMAIL)
        assert other.get("/admin").status_code == 401  # removed: signed out
        support.sign_in(client)  # no admin account left: the password works again
        assert client.get("/admin").status_code == 200


def test_accounts_switch_the_console_on_without_the_admin_password(
    fast_db_url: str, tmp_path: Path
) -> None:
    world = web_world(fast_db_url, tmp_path, password=None)
    with client_for(world) as client:
        assert client.get("/admin").status_code == 404
        with world.app.transaction() as s:
            accounts.add(s, ADMIN_EMAIL, "admin", ADMIN_PW)
        assert client.get("/admin").status_code == 401
        token = page_csrf(client, "/admin/login")
        no_email = client.post("/admin/login", data={"csrf": token, "password": "whatever pw"})
        assert no_email.status_code == 401 and "email address" in no_email.text
        assert sign_in(client, ADMIN_EMAIL, ADMIN_PW).status_code == 303
        assert client.get("/admin").status_code == 200


def test_a_new_password_signs_the_account_out(world: World) -> None:
    with client_for(world) as client:
        assert sign_in(client, EDITOR_EMAIL, EDITOR_PW).status_code == 303
        assert client.get("/admin/editions").status_code == 200
        with world.app.transaction() as s:
            accounts.set_password(s, EDITOR_EMAIL, "a brand new password")
        assert client.get("/admin/editions").status_code == 401
        assert sign_in(client, EDITOR_EMAIL, EDITOR_PW).status_code == 401
        assert sign_in(client, EDITOR_EMAIL, "a brand new password").status_code == 303


def test_the_consent_log_names_the_account(world: World) -> None:
    with world.app.transaction() as s:
        added = add_subscriber(s, "reader@example.org", "weekly")
        reader = added.subscriber.id
    with client_for(world) as client:
        assert sign_in(client, ADMIN_EMAIL, ADMIN_PW).status_code == 303
        token = page_csrf(client, f"/admin/subscribers/{reader}")
        done = client.post(
            f"/admin/subscribers/{reader}/unsubscribe", data={"csrf": token, "list": "weekly"}
        )
        assert done.status_code == 303
    with world.app.transaction() as s:
        actors = s.scalars(
            select(ConsentEvent.actor).where(ConsentEvent.subscriber_id == reader)
        ).all()
    assert f"{ADMIN_EMAIL} (admin console, testclient)" in actors


def test_login_backoff_is_per_account_too(lite: World) -> None:
    options = WebOptions(login_free_failures=2)
    with client_for(lite, options=options) as client:
        backoff = client.app.state.web.login_backoff  # type: ignore[attr-defined]
        for _ in range(2):
            assert sign_in(client, EDITOR_EMAIL, "wrong password!").status_code == 401
        assert backoff.wait("testclient") > 0
        assert backoff.wait(f"account:{EDITOR_EMAIL}") > 0
        backoff.succeeded("testclient")  # as if from another address: the account waits
        token = csrf_of(client.get("/admin/login").text)
        waiting = client.post(
            "/admin/login",
            data={"csrf": token, "email": EDITOR_EMAIL, "password": EDITOR_PW},
        )
        assert waiting.status_code == 429 and "Retry-After" in waiting.headers
        assert "for this account" in waiting.text
        # Another account from that address is not held up by this one's failures.
        assert sign_in(client, ADMIN_EMAIL, ADMIN_PW).status_code == 303


def test_the_users_page_adds_resets_and_removes(world: World) -> None:
    with client_for(world) as client:
        assert sign_in(client, ADMIN_EMAIL, ADMIN_PW).status_code == 303
        page = client.get("/admin/users")
        assert page.status_code == 200 and EDITOR_EMAIL in page.text
        token = csrf_of(page.text)

        def add_lin(password: str, again: str) -> Response:
            data = {"csrf": token, "email": "lin@example.org", "role": "editor"}
            data |= {"password": password, "password_again": again}
            return client.post("/admin/users", data=data)

        differ = add_lin("lin's password 1", "lin's password 2")
        assert differ.status_code == 400 and "The two passwords differ." in differ.text
        short = add_lin("short", "short")
        assert short.status_code == 400 and "too short" in short.text
        added = add_lin("lin's password 1", "lin's password 1")
        assert added.status_code == 303
        reset = client.post(
            "/admin/users/password",
            data={"csrf": token, "email": "lin@example.org", "password": "lin's new password"},
        )
        assert reset.status_code == 303
        with world.app.transaction() as s:
            assert accounts.verify(s, "lin@example.org", "lin's new password") is not None
        own = client.post("/admin/users/remove", data={"csrf": token, "email": ADMIN_EMAIL})
        assert own.status_code == 303
        assert "cannot remove your own account" in client.get("/admin/users").text
        gone = client.post("/admin/users/remove", data={"csrf": token, "email": "lin@example.org"})
        assert gone.status_code == 303
    with world.app.transaction() as s:
        assert accounts.get(s, "lin@example.org") is None
        assert accounts.get(s, ADMIN_EMAIL) is not None


def test_console_changes_are_logged_with_the_account(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="digest.audit")
    with client_for(world) as client:
        assert sign_in(client, ADMIN_EMAIL, ADMIN_PW).status_code == 303
        token = page_csrf(client, "/admin")
        assert (
            client.post("/admin/lists", data={"csrf": token, "name": "monthly"}).status_code == 303
        )
    lines = [r.getMessage() for r in caplog.records if r.name == "digest.audit"]
    assert f"{ADMIN_EMAIL} signed in from testclient" in lines
    assert f"{ADMIN_EMAIL} (admin console, testclient) created the list 'monthly'" in lines


def test_the_open_preview_opens_the_preview_only(fast_sqlite_url: str, tmp_path: Path) -> None:
    world = web_world(fast_sqlite_url, tmp_path, password=None)
    with client_for(world, open_preview=True) as client:
        assert client.get("/preview?newsletter=weekly&as_of=2026-11-23").status_code == 200
        found = client.get("/api/preview", params={"newsletter": "weekly", "as_of": "2026-11-23"})
        assert found.status_code == 200, found.text
        for path in ("/admin", "/admin/editions", "/admin/editions/1", "/api/editions"):
            assert client.get(path).status_code == 404, path  # the console stays off


def test_anyone_signed_in_changes_their_own_password(world: World) -> None:
    with client_for(world) as client, client_for(world) as other:
        assert sign_in(other, EDITOR_EMAIL, EDITOR_PW).status_code == 303
        assert sign_in(client, EDITOR_EMAIL, EDITOR_PW).status_code == 303
        token = page_csrf(client, "/admin/account")
        wrong = client.post(
            "/admin/account",
            data={
                "csrf": token,
                "current": "not it",
                "password": "new pw of grace",
                "password_again": "new pw of grace",
            },
        )
        assert wrong.status_code == 400 and "current password is not right" in wrong.text
        done = client.post(
            "/admin/account",
            data={
                "csrf": token,
                "current": EDITOR_PW,
                "password": "new pw of grace",
                "password_again": "new pw of grace",
            },
        )
        assert done.status_code == 303
        assert client.get("/admin/editions").status_code == 200  # this browser stays in
        assert other.get("/admin/editions").status_code == 401  # the other is signed out
    with world.app.transaction() as s:
        assert accounts.verify(s, EDITOR_EMAIL, "new pw of grace") is not None

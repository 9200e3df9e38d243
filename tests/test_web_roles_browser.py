"""Roles in headless Chromium: an editor signs in with their own account and cannot
reach list or subscriber management (no links to it, 403 when typed in), while an admin
can. Served by uvicorn on 127.0.0.1; requests off the loopback server are aborted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from digest import accounts
from tests.support import web as support
from tests.support.browser import chromium
from tests.support.web import serving, web_world

pytestmark = pytest.mark.browser

try:
    from playwright.sync_api import Browser, Page, Route, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None  # type: ignore[assignment]

sqlite_template = support.sqlite_template
fast_sqlite_url = support.fast_sqlite_url

MANAGEMENT = ["/admin/subscribers", "/admin/import", "/admin/segments", "/admin/users"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


def _local_only(route: Route) -> None:
    if urlsplit(route.request.url).hostname == "127.0.0.1":
        route.continue_()
    else:
        route.abort()


def _sign_in(page: Page, base: str, email: str, password: str) -> None:
    page.goto(base + "/admin/login")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state("load")


def test_an_editor_cannot_reach_management_and_an_admin_can(
    browser: Browser, fast_sqlite_url: str, tmp_path: Path
) -> None:
    world = web_world(fast_sqlite_url, tmp_path, password=None)
    with world.app.transaction() as s:
        accounts.add(s, "ada@example.org", "admin", "admin password of ada")
        accounts.add(s, "grace@example.org", "editor", "editor password of grace")
    with serving(world) as base:
        editor = browser.new_context().new_page()
        editor.route("**/*", _local_only)
        _sign_in(editor, base, "grace@example.org", "editor password of grace")
        assert urlsplit(editor.url).path == "/admin/editions"  # an editor's console
        nav = editor.get_by_role("navigation", name="Admin")
        assert nav.get_by_role("link", name="Editions").count() == 1
        for label in ("Lists", "Subscribers", "Import", "Segments", "Users"):
            assert nav.get_by_role("link", name=label).count() == 0, label
        for path in MANAGEMENT:
            response = editor.goto(base + path)
            assert response is not None and response.status == 403, path
            assert editor.get_by_role("heading", name="Not for your role").count() == 1
        editor.goto(base + "/admin")
        assert urlsplit(editor.url).path == "/admin/editions"
        editor.context.close()

        admin = browser.new_context().new_page()
        admin.route("**/*", _local_only)
        _sign_in(admin, base, "ada@example.org", "admin password of ada")
        assert urlsplit(admin.url).path == "/admin"
        admin.get_by_role("navigation", name="Admin").get_by_role(
            "link", name="Subscribers"
        ).click()
        admin.wait_for_load_state("load")
        assert urlsplit(admin.url).path == "/admin/subscribers"
        assert admin.get_by_role("heading", level=1).inner_text() == "Subscribers"
        for path in MANAGEMENT:
            response = admin.goto(base + path)
            assert response is not None and response.status == 200, path
        admin.context.close()

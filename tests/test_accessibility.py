"""axe-core (bundled by axe-playwright-python) in headless Chromium: no serious or critical
accessibility violation on the composed email, the editor's preview, the public pages and
the admin console.

One browser and one server for the module; every page is reached as its user reaches
it (a reader signs up, confirms, changes preferences and leaves; an admin signs in).
Nothing leaves the machine: requests off the loopback server are aborted, and the
email's images get a small local PNG.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from digest.cli import cli
from digest.config import SAMPLE_CONFIG
from digest.models import Edition, EditionLink
from digest.personalize import personal_links
from digest.tracking import CLICK, record_hit
from digest.workers import register
from subscribers.service import find_subscriber
from tests.support.browser import chromium
from tests.support.web import PASSWORD, seed_sqlite, serving, web_world
from tests.support.world import AS_OF
from tests.support.world import send as send_edition
from tests.test_compose_browser import IMAGE

pytestmark = pytest.mark.browser

try:
    from axe_playwright_python.base import AXE_SCRIPT
    from playwright.sync_api import Browser, Page, Route, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None  # type: ignore[assignment]

#: What must not be there; "moderate" and "minor" findings are reported, not failed.
BLOCKING = {"serious", "critical"}
#: The email is framed in the preview page and checked on its own.
AXE_OPTIONS: dict[str, Any] = {"resultTypes": ["violations"], "iframes": False}
#: In dark mode only colours change: only contrast is checked again.
DARK_OPTIONS = {**AXE_OPTIONS, "runOnly": {"type": "rule", "values": ["color-contrast"]}}

sqlite_template = __import__("tests.support.web", fromlist=["sqlite_template"]).sqlite_template


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    missing = "playwright or axe-playwright-python is not installed (pip install -e .[dev])"
    if sync_playwright is None:  # axe's bundle is imported with Playwright above
        pytest.skip(missing)
    with chromium(missing) as b:
        yield b


def _local_only(route: Route) -> None:
    if urlsplit(route.request.url).hostname in ("127.0.0.1", "localhost"):
        route.continue_()
    elif route.request.resource_type == "image":
        route.fulfill(status=200, content_type="image/png", body=IMAGE)
    else:
        route.abort()


def _axe(page: Page, options: dict[str, Any]) -> list[dict[str, Any]]:
    """axe-core's violations on ``page`` (loaded once per document: a browser context
    made by :func:`axe_context` has it already)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE_SCRIPT)
    found: list[dict[str, Any]] = page.evaluate(
        "options => axe.run(document, options).then(r => r.violations)", options
    )
    return found


class Audit:
    """axe's findings, page by page."""

    def __init__(self) -> None:
        self.findings: dict[str, list[dict[str, Any]]] = {}

    def check(self, page: Page, name: str, *, dark: bool = True) -> None:
        """Every rule on the page as it is, then (``dark``) contrast in dark mode."""
        page.wait_for_load_state("load")
        page.emulate_media(color_scheme="light")
        self.findings[name] = _axe(page, AXE_OPTIONS)
        if dark:
            page.emulate_media(color_scheme="dark")
            self.findings[f"{name} (dark)"] = _axe(page, DARK_OPTIONS)
            page.emulate_media(color_scheme="light")

    def blocking(self) -> dict[str, list[str]]:
        return {
            name: [_describe(v) for v in found if v["impact"] in BLOCKING]
            for name, found in self.findings.items()
            if any(v["impact"] in BLOCKING for v in found)
        }

    def report(self) -> str:
        lines = []
        for name, found in self.findings.items():
            lines.append(f"{name}: " + (", ".join(_describe(v) for v in found) or "clean"))
        return "\n".join(lines)


def _describe(violation: dict[str, Any]) -> str:
    targets = "; ".join(" ".join(n["target"]) for n in violation["nodes"][:3])
    return f"{violation['id']} ({violation['impact']}, {len(violation['nodes'])}x: {targets})"


@pytest.fixture(scope="module")
def sample_email(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The sample's 2026-W47 edition (every section) as `digest compose` writes it."""
    root = tmp_path_factory.mktemp("a11y-sample")
    env = {
        "DIGEST_DATABASE_URL": f"sqlite:///{root / 'sample.db'}",
        "DIGEST_CONFIG": str(SAMPLE_CONFIG),
        "DIGEST_TEMPLATES": "",
        "DIGEST_BASE_URL": "https://news.example.org",
    }
    for args in (["ingest"], ["compose", "weekly", "--as-of", "2026-11-23", "--out", str(root)]):
        result = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
    return (root / "all.html").read_text(encoding="utf-8")


def test_the_composed_email_has_no_serious_violation(browser: Browser, sample_email: str) -> None:
    audit = Audit()
    page = browser.new_page(viewport={"width": 1024, "height": 900})
    page.route("**/*", _local_only)
    page.set_content(sample_email, wait_until="load")
    audit.check(page, "email")
    page.close()
    print(audit.report())
    assert not audit.blocking(), audit.blocking()


def _submit(page: Page) -> None:
    """Send the page's main form (the first one in <main>) as its user would."""
    page.locator("main form button[type=submit], main form button:not([type])").first.click()
    page.wait_for_load_state("load")


def test_the_web_pages_have_no_serious_violation(
    browser: Browser, sqlite_template: Path, tmp_path: Path
) -> None:
    world = web_world(seed_sqlite(f"sqlite:///{tmp_path / 'a11y.db'}", sqlite_template), tmp_path)
    config = Path(world.env["DIGEST_CONFIG"])
    config.write_text(
        config.read_text().replace(
            'list = "weekly"', 'list = "weekly"\narchive = true\ntrack_clicks = true'
        )
    )
    from tests.support.world import add_readers

    add_readers(world.app, 3)
    send_edition(world.app, "weekly", AS_OF, backend="outbox")
    with world.app.transaction() as s:
        edition_id = s.scalars(select(Edition.id)).one()
        # a click through a tracked link, so the edition page shows its top links and
        # the reader's page their activity
        reader0 = find_subscriber(s, "reader0@example.net")
        link = s.scalars(select(EditionLink.id).order_by(EditionLink.id)).first()
        assert reader0 is not None and link is not None
        record_hit(s, CLICK, edition_id, reader0.id, link)
        reader0_id = reader0.id
    # the editor's desk: a draft of the next week, edited
    from digest import desk
    from tests.test_edition_order import add_week_48

    add_week_48(world.app)
    draft = desk.prepare(world.app, "weekly", as_of=AS_OF + timedelta(days=7), actor="ann")
    desk.note(world.app, draft.edition_id, "A **word** from the editor.", actor="ann")
    desk.exclude(world.app, draft.edition_id, "https://news.example.org/w48/0", actor="ann")
    register(world.app.sessions, "worker-host:4242:a1b2c3", "outbox")  # the Workers page's row
    audit = Audit()
    with serving(world) as base:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.add_init_script(AXE_SCRIPT)  # in every page, before it loads
        page = context.new_page()
        page.route("**/*", _local_only)

        def visit(path: str, name: str) -> None:
            page.goto(base + path)
            audit.check(page, name)

        # A reader: the public pages.
        visit("/", "home")
        visit("/subscribe/weekly", "subscribe")
        page.evaluate("document.querySelector('main form').noValidate = true")
        page.locator("input[type=email]").fill("not an address")
        _submit(page)
        audit.check(page, "subscribe: a mistake")
        page.locator("input[type=email]").fill("robin@example.net")
        _submit(page)
        audit.check(page, "subscribe: check your inbox")
        with world.app.transaction() as s:
            robin = find_subscriber(s, "robin@example.net")
            assert robin is not None
            robin_id = robin.id
        links = personal_links(
            world.app.settings, robin_id, ("confirm", "preferences", "unsubscribe")
        )
        visit(urlsplit(links["confirm_url"]).path, "confirm")
        _submit(page)
        audit.check(page, "confirm: result")
        visit(urlsplit(links["preferences_url"]).path, "preferences")
        _submit(page)
        audit.check(page, "preferences: saved")
        visit(urlsplit(links["unsubscribe_url"]).path, "unsubscribe")
        _submit(page)
        audit.check(page, "unsubscribe: result")
        visit("/e/weekly/2026-W47/all", "web version")
        visit("/archive/weekly", "archive")
        visit("/no-such-page", "not found")

        # An admin: the console and the editor's preview.
        visit("/admin", "admin: sign in")
        page.locator("input[type=password]").fill(PASSWORD)
        _submit(page)
        audit.check(page, "admin: dashboard")
        visit("/admin/subscribers", "admin: subscribers")
        visit(f"/admin/subscribers/{robin_id}", "admin: subscriber")
        visit(f"/admin/subscribers/{reader0_id}", "admin: subscriber with activity")
        visit("/admin/import", "admin: import")
        upload = tmp_path / "people.csv"
        upload.write_text("email,name\nann@example.org,Ann\nbroken-address,Dan\n")
        page.locator("input[type=file]").set_input_files(str(upload))
        _submit(page)
        audit.check(page, "admin: import report")
        visit("/admin/segments", "admin: segments")
        page.locator("#c0-kind").select_option("category")
        page.locator("#c0-value").fill("Data")
        page.get_by_role("button", name="Write the rule and count").click()
        page.wait_for_load_state("load")
        audit.check(page, "admin: segment builder, counted")
        visit("/admin/embed", "admin: sign-up forms")
        visit("/admin/users", "admin: users")
        visit("/admin/account", "admin: your account")
        visit("/admin/editions", "admin: editions")
        visit(f"/admin/editions/{edition_id}", "admin: edition")
        visit(f"/admin/editions/{draft.edition_id}", "admin: editor's desk (a draft)")
        visit(f"/admin/editions/{draft.edition_id}/send", "admin: editor's desk, confirm a send")
        visit("/admin/workers", "admin: workers")
        visit("/preview?newsletter=weekly&as_of=2026-11-23", "preview")
        context.close()
    print(audit.report())
    assert len(audit.findings) == 2 * 31
    assert not audit.blocking(), audit.blocking()


def test_violations_are_caught(browser: Browser) -> None:
    """The harness: a page with an unlabelled field, an image without alt and grey on
    grey text is reported, serious or critical."""
    page = browser.new_page()
    page.set_content(
        '<html><body><input name="q"><img src="x.png">'
        '<p style="color:#aaa;background:#bbb">faint</p></body></html>'
    )
    audit = Audit()
    audit.check(page, "bad")
    page.close()
    ids = {re.sub(r" .*", "", v) for v in audit.blocking()["bad"]}
    assert {"label", "image-alt", "color-contrast"} <= ids

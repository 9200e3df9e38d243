"""The web app in headless Chromium, served by uvicorn on 127.0.0.1 (a random free port):
an editor previewing with live reload, a reader subscribing, confirming, changing
preferences and unsubscribing, an admin importing a CSV and building a segment.

Nothing leaves the machine: the browser aborts every request that is not to the
loopback server.  Each page is checked for a single h1, labelled inputs and Content
Security Policy violations, and screenshotted into the test's tmp folder; the key
screenshots are saved in each test's tmp folder.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from digest.models import Edition, Event
from digest.web import WebOptions
from subscribers.service import find_subscriber
from tests.support import web as support
from tests.support.browser import chromium
from tests.support.web import (
    PASSWORD,
    link_path,
    outbox_messages,
    serving,
    text_of,
    web_world,
)
from tests.support.world import AS_OF, World, send

pytestmark = pytest.mark.browser

#: Generous: the live-reload assertion is about the reload happening, not a stopwatch
#: (the page polls every 0.5 s; the measured delay is printed for the record).
RELOAD_TIMEOUT_MS = 10_000

try:
    import uvicorn  # noqa: F401  (the live server needs it)
    from playwright.sync_api import Browser, ConsoleMessage, Page, Route, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None  # type: ignore[assignment]

sqlite_template = support.sqlite_template
fast_sqlite_url = support.fast_sqlite_url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


@dataclass
class Visit:
    """One browser tab on the server: loopback only, CSP violations collected."""

    page: Page
    base: str
    shots: Path
    problems: list[str] = field(default_factory=list)

    def go(self, path: str) -> None:
        self.page.goto(self.base + path)

    def check_and_shoot(self, name: str) -> Path:
        """The page's structure checks, then a full-page screenshot."""
        page = self.page
        assert page.locator("h1").count() == 1, f"{name}: not exactly one h1"
        unlabelled = page.evaluate(
            """() => [...document.querySelectorAll(
                 'input:not([type=hidden]), select, textarea')]
               .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
               .map(el => el.name || el.id)"""
        )
        assert unlabelled == [], f"{name}: inputs without a label: {unlabelled}"
        assert self.problems == [], f"{name}: {self.problems}"
        path = self.shots / f"web-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path


def _loopback_only(route: Route) -> None:
    host = urlsplit(route.request.url).hostname
    if host in ("127.0.0.1", "localhost"):
        route.continue_()
    else:
        route.abort()


@contextmanager
def visit(
    browser: Browser, base: str, shots: Path, width: int = 1280, height: int = 900
) -> Iterator[Visit]:
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.route("**/*", _loopback_only)
    tab = Visit(page, base, shots)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            tab.problems.append(message.text)

    page.on("console", on_console)
    try:
        yield tab
    finally:
        context.close()


def wait_for_mail(world: World, count: int = 1) -> list[EmailMessage]:
    """The outbox once it holds ``count`` messages (confirmations go out in the background)."""
    deadline = time.monotonic() + 120  # a poll: no wait when it is quick
    while len(messages := outbox_messages(world)) < count:
        assert time.monotonic() < deadline, f"{len(messages)} of {count} messages arrived"
        time.sleep(0.05)
    return messages


# ---------------------------------------------------------------------------


def test_an_editor_previews_and_the_page_reloads_when_a_template_is_saved(
    browser: Browser, fast_sqlite_url: str, tmp_path: Path
) -> None:
    overrides = tmp_path / "my-templates"
    overrides.mkdir()
    preheader = overrides / "digest.preheader.txt.j2"
    preheader.write_text("Version one of the preheader\n")
    world = web_world(fast_sqlite_url, tmp_path, env={"DIGEST_TEMPLATES": str(overrides)})
    with (
        serving(world, open_preview=True, options=WebOptions(live_reload_poll=0.5)) as base,
        visit(browser, base, tmp_path, width=1500, height=1700) as tab,
    ):
        tab.go("/preview?newsletter=weekly&as_of=2026-11-23")
        page = tab.page
        page.get_by_text("Version one of the preheader").wait_for()
        page.wait_for_selector("[data-live-reload-state=on]")  # the stream is open
        frames = page.locator("iframe")
        assert frames.count() == 3
        for i in range(3):
            frames.nth(i).content_frame.get_by_text("Policy story 1").first.wait_for()
        tab.check_and_shoot("preview")

        started = time.monotonic()
        preheader.write_text("Version two, saved in the editor\n")
        page.get_by_text("Version two, saved in the editor").wait_for(timeout=RELOAD_TIMEOUT_MS)
        print(f"live reload took {time.monotonic() - started:.2f}s")
        tab.check_and_shoot("preview-reloaded")

        page.get_by_label("Variant").select_option(label="Only Data")
        page.get_by_role("button", name="Show").click()
        page.get_by_text("Data (2 articles)").wait_for()
        page.get_by_label("Send to").fill("editor@example.org")
        page.get_by_role("button", name="Send test copy").click()
        page.get_by_text(
            "Test copy for editor@example.org written to a file, not emailed"
        ).wait_for()
        tab.check_and_shoot("preview-test-sent")
    (message,) = outbox_messages(world)
    assert message["Subject"].startswith("[TEST] ")


def test_a_reader_subscribes_confirms_changes_preferences_and_unsubscribes(
    browser: Browser, fast_sqlite_url: str, tmp_path: Path
) -> None:
    world = web_world(fast_sqlite_url, tmp_path)
    with serving(world) as base, visit(browser, base, tmp_path, width=390) as tab:
        page = tab.page
        tab.go("/")
        tab.check_and_shoot("home")
        page.get_by_role("link", name="Subscribe to The Weekly").click()
        tab.check_and_shoot("subscribe")
        page.get_by_label("Email address").fill("reader@example.net")
        page.get_by_label("Your name").fill("Robin Reader")
        page.get_by_label("Data").check()
        page.get_by_label("Care").check()
        page.get_by_label("Your name").press("Enter")  # the keyboard submits the form
        page.get_by_role("heading", name="Check your inbox").wait_for()
        tab.check_and_shoot("subscribe-check-inbox")

        (message,) = wait_for_mail(world)  # sent after the page was answered
        tab.go(link_path(text_of(message), "c"))
        page.get_by_role("button", name="Yes, subscribe me").click()
        page.get_by_role("heading", name="You are subscribed").wait_for()
        tab.check_and_shoot("confirmed")

        page.get_by_role("link", name="Choose your sections or change your name").click()
        page.get_by_role("heading", name="Your preferences").wait_for()
        assert (
            page.get_by_label("Data").is_checked() and not page.get_by_label("Policy").is_checked()
        )
        page.get_by_label("Your name").fill("Robin R.")
        page.get_by_label("Policy").check()
        page.get_by_label("Pause for 2 weeks").check()
        page.get_by_role("button", name="Save preferences").click()
        page.get_by_text("Your preferences are saved.").wait_for()
        assert page.get_by_label("Your name").input_value() == "Robin R."
        tab.check_and_shoot("preferences")

        page.get_by_role("button", name="Unsubscribe from everything").click()
        page.get_by_role("heading", name="You are unsubscribed").wait_for()
        tab.check_and_shoot("unsubscribed")
    with world.app.transaction() as s:
        who = find_subscriber(s, "reader@example.net")
        assert who is not None and who.name == "Robin R." and str(who.status) == "unsubscribed"
        assert who.categories == []  # every section ticked is stored as "everything"


CSV = (
    "email,name,sector\n"
    "ann@example.org,Ann,health\n"
    "bob@example.org,Bob,education\n"
    "cat@example.org,Cat,health\n"
    "broken-address,Dan,health\n"
)


def test_an_admin_imports_a_csv_and_builds_a_segment(
    browser: Browser, fast_sqlite_url: str, tmp_path: Path
) -> None:
    world = web_world(fast_sqlite_url, tmp_path)
    upload = tmp_path / "people.csv"
    upload.write_text(CSV)
    with serving(world) as base, visit(browser, base, tmp_path) as tab:
        page = tab.page
        tab.go("/admin/import")
        page.get_by_role("heading", name="Sign in").wait_for()  # 401: the sign-in form
        tab.check_and_shoot("admin-login")
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()

        tab.go("/admin/import")
        page.get_by_label("Into list").select_option("weekly")
        page.get_by_label("CSV file").set_input_files(str(upload))
        page.get_by_role("button", name="Import").click()
        page.get_by_role("heading", name="Report for people.csv").wait_for()
        assert page.locator("dl.summary dd").all_inner_texts() == ["3", "0", "0", "1"]
        page.get_by_role("cell", name="broken-address").wait_for()
        tab.check_and_shoot("admin-import-report")

        page.get_by_role("link", name="Segments").click()
        page.get_by_label("Name", exact=True).fill("health")
        page.get_by_label("Rule (JSON)").fill('{"attr": "sector", "equals": "health"}')
        live = page.locator("#live-count")
        live.get_by_text("2 recipients match").wait_for()  # counted as typed (admin.js)
        page.get_by_role("button", name="Save segment").click()
        page.get_by_text("Segment 'health' saved on 'weekly'.").wait_for()
        row = page.get_by_role("row").filter(has_text='"sector"')
        assert row.locator("td.num").all_inner_texts() == ["2", "2"]
        tab.check_and_shoot("admin-segments")

        # The builder writes the same rule as the conditions change (admin.js).
        condition = page.get_by_role("group", name="Condition 1")
        condition.get_by_label("On", exact=True).select_option("attr")
        condition.get_by_label("Attribute name").fill("sector")
        condition.get_by_label("Value", exact=True).fill("health")
        live.get_by_text("2 recipients match").wait_for()
        page.wait_for_function("document.getElementById('seg-rule').value.includes('health')")
        assert page.get_by_label("Rule (JSON)").input_value() == (
            '{"attr":"sector","equals":"health"}'
        )

        row.get_by_role("link", name="health").click()
        page.get_by_text("2 subscribers found.").wait_for()
        tab.check_and_shoot("admin-subscribers")

        send(world.app, backend="outbox")
        with world.app.transaction() as s:
            edition_id = s.scalars(select(Edition.id)).one()
            for n, (kind, email) in enumerate(
                [
                    ("delivered", "ann@example.org"),
                    ("delivered", "bob@example.org"),
                    ("delivered", "cat@example.org"),
                    ("opened", "ann@example.org"),
                    ("opened", "bob@example.org"),
                    ("clicked", "ann@example.org"),
                ]
            ):
                s.add(
                    Event(
                        provider="sendgrid",
                        provider_event_id=f"e{n}",
                        type=kind,
                        email=email,
                        edition_id=edition_id,
                        occurred_at=AS_OF,
                        payload={},
                    )
                )
        page.get_by_role("link", name="Editions").click()
        page.get_by_role("link", name="weekly 2026-W47").click()
        chart = page.get_by_role("img", name="Delivery and engagement for weekly 2026-W47")
        chart.wait_for()
        assert chart.bounding_box() is not None
        tab.check_and_shoot("admin-edition")

"""The editor's desk in headless Chromium (issue 16, "Done when"), served by uvicorn on
127.0.0.1: the scheduler prepares a draft of a newsletter with ``approval =
"required"``; an editor signs in, opens it, writes an intro, excludes an article, makes
another the top story, sends a test copy and approves; the scheduled run then sends
exactly that edition (intro present, excluded article absent, the top story first, in
every variant, HTML and text).  An admin pauses and resumes a send from the browser
and watches its progress.  Nothing leaves the machine.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from digest import desk
from digest.models import RunOutcome
from digest.scheduling import runs
from tests.support import web as support
from tests.support.browser import chromium
from tests.support.web import PASSWORD, web_world
from tests.support.world import AS_OF, World, add_readers, send
from tests.test_web_browser import serving

pytestmark = pytest.mark.browser

try:
    from playwright.sync_api import Browser, Page, Route, expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None  # type: ignore[assignment]

sqlite_template = support.sqlite_template
fast_sqlite_url = support.fast_sqlite_url

#: 18 hours before Monday's 08:00 run, and a few minutes: the draft is due.
SUNDAY_AFTERNOON = datetime(2026, 11, 22, 14, 5, tzinfo=UTC)
INTRO = "**Budget week.** Three things you should not miss."
EXCLUDED = "Policy story 0"
TOP = "Data story 1"
ALL_TITLES = [f"{c} story {i}" for c in ("Policy", "Data", "Care") for i in (0, 1)]
#: Generous: these wait for the server's answer, they time nothing.
WAIT_MS = 15_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


def _local_only(route: Route) -> None:
    if urlsplit(route.request.url).hostname in ("127.0.0.1", "localhost"):
        route.continue_()
    else:
        route.abort()


def _world(fast_sqlite_url: str, tmp_path: Path) -> World:
    world = web_world(fast_sqlite_url, tmp_path, readers=2)
    add_readers(world.app, 1, categories=["Policy"], prefix="policy")
    add_readers(world.app, 1, categories=["Data", "Care"], prefix="datacare")
    add_readers(world.app, 1, categories=["Care"], prefix="care")
    config = Path(world.env["DIGEST_CONFIG"])
    config.write_text(
        config.read_text().replace(
            'timezone = "Europe/London"',
            'timezone = "Europe/London"\napproval = "required"\nprepare_before = "18h"',
        )
    )
    return world


def _sign_in(page: Page, base: str, then: str) -> None:
    page.goto(f"{base}/admin/login?next={then}")
    page.locator("input[type=password]").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}{then}")


def _flash(page: Page, text: str) -> None:
    expect(page.locator(".flash.success")).to_contain_text(text, timeout=WAIT_MS)


def _mail(world: World) -> list[EmailMessage]:
    out = []
    for path in sorted(world.outbox.rglob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        out.append(msg)
    return out


def _visible(html: str) -> str:
    start = html.index('class="dg-preheader"')
    return html[:start] + html[html.index("</div>", start) :]


def test_an_editor_prepares_edits_tests_and_approves_and_the_run_sends_it(
    browser: Browser, fast_sqlite_url: str, tmp_path: Path
) -> None:
    world = _world(fast_sqlite_url, tmp_path)
    ctx = runs.RunContext(world.app, backend="outbox")
    assert runs.prepare_drafts(ctx, now=SUNDAY_AFTERNOON) == [1]

    with serving(world) as base:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.route("**/*", _local_only)
        _sign_in(page, base, "/admin/editions/1")
        expect(page.locator("h1")).to_contain_text("The Weekly 2026-W47")
        expect(page.locator("#edition-status")).to_have_text("draft")

        page.locator("#desk-intro").fill(INTRO)
        page.get_by_role("button", name="Save intro").click()
        _flash(page, "Intro saved.")
        desktop = page.frame_locator("iframe.desktop")
        expect(desktop.locator("strong", has_text="Budget week.")).to_be_visible()

        page.get_by_role("button", name=f"Exclude: {EXCLUDED}").click()
        _flash(page, f"Excluded '{EXCLUDED}'")
        page.get_by_role("button", name=f"Make top story: {TOP}").click()
        _flash(page, "is the top story")
        expect(page.frame_locator("iframe.desktop").locator("h2").first).to_contain_text(TOP)
        expect(page.locator("pre.plain")).not_to_contain_text(EXCLUDED)

        page.locator("#desk-test-to").fill("me@example.org")
        page.get_by_role("button", name="Send test copy").click()
        expect(page.locator(".flash")).to_contain_text("me@example.org", timeout=WAIT_MS)
        page.get_by_role("button", name="Approve", exact=True).click()
        _flash(page, "Approved")
        expect(page.locator("#edition-status")).to_have_text("approved")
        page.close()

    (test_copy,) = _mail(world)
    assert test_copy["To"] == "me@example.org" and test_copy["Subject"].startswith("[TEST]")

    # Monday 08:00: the scheduled run sends exactly the approved edition
    result = runs.run_edition(ctx, "weekly", AS_OF)
    assert result.outcome is RunOutcome.SENT, result.detail
    readers = [m for m in _mail(world) if m["To"] != "me@example.org"]
    assert len(readers) == 5
    for msg in readers:
        html_part, text_part = msg.get_body(("html",)), msg.get_body(("plain",))
        assert html_part is not None and text_part is not None
        html = _visible(str(html_part.get_content()))
        text = " ".join(str(text_part.get_content()).split())
        assert "<strong>Budget week.</strong> Three things you should not miss." in html
        assert "Budget week. Three things you should not miss." in text
        for body in (html, text):
            assert EXCLUDED not in body
            if TOP in body:  # every variant with the Data section leads with it
                titles = [
                    t
                    for t in (f"{c} story {i}" for c in ("Policy", "Data", "Care") for i in (0, 1))
                    if t in body
                ]
                assert min(titles, key=body.index) == TOP
    assert sum(TOP in str(m.get_body(("plain",)).get_content()) for m in readers) == 3  # type: ignore[union-attr]
    log = [(e.actor, e.action) for e in desk.view(world.app, 1).log]
    assert log == [
        ("scheduler", "prepare"),
        ("admin", "note"),
        ("admin", "exclude"),
        ("admin", "top"),
        ("admin", "test"),
        ("admin", "approve"),
    ]


def test_an_admin_pauses_and_resumes_a_send_and_watches_it(
    browser: Browser, fast_sqlite_url: str, tmp_path: Path
) -> None:
    world = web_world(fast_sqlite_url, tmp_path, readers=6)
    desk.prepare(world.app, "weekly", as_of=AS_OF, actor="ann")
    desk.approve(world.app, 1, actor="ann")
    send(world.app, backend="outbox", enqueue=True)  # queued; no worker runs

    with serving(world) as base:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.route("**/*", _local_only)
        _sign_in(page, base, "/admin/editions/1")
        expect(page.locator("#progress-total")).to_have_text("6")
        expect(page.locator("#progress-sent")).to_have_text("0")
        expect(page.locator("[data-desk-events]")).to_have_attribute(
            "data-desk-events-state", "on", timeout=WAIT_MS
        )
        page.get_by_role("button", name="Pause").click()
        _flash(page, "Paused")
        expect(page.locator("#edition-status")).to_have_text("paused")
        assert desk.progress(world.app, 1).status == "paused"

        page.get_by_role("button", name="Resume").click()
        # The numbers come over the event stream and the desk says "sent"; or, when the
        # send was that quick, the page reloads on the change of state and shows the sent
        # edition's figures instead.  Either way the page ends showing all six sent.
        done = page.locator("#edition-status:text-is('sent')").or_(
            page.get_by_role("img", name=re.compile(r"\bSent: 6,"))
        )
        expect(done.first).to_be_visible(timeout=WAIT_MS)
        if page.locator("#progress-sent").count():
            expect(page.locator("#progress-sent")).to_have_text("6", timeout=WAIT_MS)
        # once it is all out, the page offers nothing that acts on a send in progress
        expect(page.get_by_role("button", name="Pause")).to_have_count(0, timeout=WAIT_MS)
        expect(page.get_by_role("button", name="Cancel edition")).to_have_count(0)
        # nor says it is still sending (the sent edition's figures, when the page
        # reloaded, have a "Sending" column in their ledger table: not a heading)
        expect(page.get_by_role("heading", name="Sending", exact=True)).to_have_count(0)
        page.close()
    assert len(_mail(world)) == 6
    assert [e.action for e in desk.view(world.app, 1).log][-2:] == ["pause", "resume"]

"""Screenshots of the editor's desk for the README: docs/screens/desk-draft.png (a draft
being edited beside the email as readers get it) and docs/screens/desk-progress.png (a
send going out, its numbers updated live).

Runs the bundled sample in a temporary folder (its own SQLite database and outbox),
serves the web app on 127.0.0.1 and drives Debian's Chromium with Playwright.  Nothing
leaves the machine: the browser aborts every request off the loopback server.

Usage: .venv/bin/python scripts/desk_screens.py [OUT_DIR]   (default: docs/screens)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
PASSWORD = "screenshots only"
AS_OF = datetime(2026, 11, 23, 8, tzinfo=UTC)
INTRO = """**Budget week.** The spending review landed on Wednesday: three pieces below
explain what it means for councils, and [the Treasury's own summary](https://www.gov.uk/)
is short enough to read over coffee.

- what changed for digital budgets
- what did not"""


def digest(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "-m", "digest.cli", *args], env=env, check=True, cwd=ROOT)


def main(out: Path) -> None:
    from playwright.sync_api import Route, sync_playwright

    work = Path(tempfile.mkdtemp(prefix="digest-desk-screens-"))
    env = {
        **os.environ,
        "DIGEST_DATABASE_URL": f"sqlite:///{work / 'digest.db'}",
        "DIGEST_CONFIG": str(ROOT / "digest" / "sample" / "digest.toml"),
        "DIGEST_OUTBOX_DIR": str(work / "outbox"),
        "DIGEST_ADMIN_PASSWORD": PASSWORD,
        "DIGEST_BASE_URL": "http://127.0.0.1:8000",
        "DIGEST_BACKEND": "outbox",
        "DIGEST_TEMPLATES": "",
    }
    digest(env, "init")
    digest(env, "ingest")
    digest(env, "lists", "create", "weekly", "--description", "The weekly digest")
    sample = ROOT / "digest" / "sample" / "subscribers.csv"
    digest(env, "subscribers", "import", str(sample), "--list", "weekly")
    os.environ.update(env)

    import uvicorn

    from digest import desk
    from digest.app import App
    from digest.cli.web import bind
    from digest.delivery.loop import SendOptions
    from digest.sender import Sender
    from digest.web import create_app
    from subscribers.service import add_subscriber

    app = App()
    with app.transaction() as s:
        for i in range(400):
            add_subscriber(s, f"reader{i}@example.net", "weekly", name=f"Reader {i}")
    draft = desk.prepare(app, "weekly", as_of=AS_OF, actor="ann@example.org")
    view = desk.view(app, draft.edition_id)
    articles = [a for _, lines in view.sections for a in lines]
    desk.note(app, draft.edition_id, INTRO, actor="ann@example.org")
    desk.exclude(app, draft.edition_id, articles[1].url, actor="ann@example.org")
    desk.move(app, draft.edition_id, articles[-1].url, actor="ann@example.org", top=True)
    desk.subject(app, draft.edition_id, "Budget week: what changed", actor="ann@example.org")

    web = create_app(app)
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(web, log_level="warning", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"

    def local_only(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            route.abort()

    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1600, "height": 1300})
        page.route("**/*", local_only)
        page.goto(f"{base}/admin/login?next=/admin/editions/{draft.edition_id}")
        page.locator("input[type=password]").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{base}/admin/editions/{draft.edition_id}")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(out / "desk-draft.png"))

        # the send: approved, planned, going out at 40 a second in a thread
        desk.approve(app, draft.edition_id, actor="ann@example.org")
        Sender(app, "outbox").send("weekly", AS_OF, enqueue=True)
        stop = threading.Event()
        sender = Sender(app, "outbox", options=SendOptions(rate=40), cancel=stop, batch_size=20)
        going = threading.Thread(target=sender.deliver, args=(draft.edition_id,), daemon=True)
        going.start()
        while desk.progress(app, draft.edition_id).counts.sent < 120:
            time.sleep(0.2)
        page.goto(f"{base}/admin/editions/{draft.edition_id}")
        page.wait_for_function(
            "document.querySelector('[data-desk-events]').getAttribute('data-progress')"
        )
        time.sleep(1.5)  # a second or two of the live rate
        page.screenshot(path=str(out / "desk-progress.png"))
        stop.set()
        going.join()
        browser.close()
    server.should_exit = True
    thread.join(10)
    app.close()
    print(f"wrote {out / 'desk-draft.png'} and {out / 'desk-progress.png'} (work in {work})")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screens")

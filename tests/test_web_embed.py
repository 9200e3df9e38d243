"""The embeddable sign-up form (both databases): the admin's snippet, posted cross-site
from the publication's page (another Origin, no session, no token), subscribes with
double opt-in; robots filling the honeypot get the same page and nothing happens; the
per-IP limit holds; a post that is neither this site's form nor the embedded one is
refused as before; the subscribe page's words come from `pitch`, the footer's from
`description`."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from digest.config import NewsletterConfig
from digest.web import create_app
from subscribers.models import Status
from subscribers.service import find_subscriber
from tests.support import web as support
from tests.support.web import BASE, client_for, outbox_messages, sign_in, web_world
from tests.support.world import World

sqlite_template = support.sqlite_template
fast_db_url = support.fast_db_url
fast_sqlite_url = support.fast_sqlite_url

ELSEWHERE = "https://publication.example.com"


@pytest.fixture
def world(fast_db_url: str, tmp_path: Path) -> World:
    return web_world(fast_db_url, tmp_path, env={"DIGEST_SUBSCRIBE_RATE": "3"})


def snippet(world: World) -> str:
    with client_for(world) as client:
        sign_in(client)
        page = client.get("/admin/embed")
    assert page.status_code == 200
    found = re.search(r'<textarea id="snippet-weekly"[^>]*>(.*?)</textarea>', page.text, re.S)
    assert found, page.text
    return html.unescape(found.group(1))


def form_of(snippet_html: str) -> tuple[str, dict[str, str]]:
    action = re.search(r'<form method="post" action="([^"]+)"', snippet_html)
    assert action
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', snippet_html))
    fields.update(
        re.findall(r'<input type="text" name="(website)"[^>]*value="([^"]*)"', snippet_html)
    )
    assert 'name="email"' in snippet_html and "<script" not in snippet_html
    return action.group(1), fields


def cross_site(world: World) -> TestClient:
    """A browser on the publication's site: no session here, an Origin from elsewhere."""
    web = create_app(world.app)
    return TestClient(
        web,
        base_url="https://testserver",
        follow_redirects=False,
        headers={"Origin": ELSEWHERE, "Referer": f"{ELSEWHERE}/join"},
    )


def test_the_snippet_posted_from_another_site_subscribes_with_double_opt_in(world: World) -> None:
    action, fields = form_of(snippet(world))
    assert action == f"{BASE}/subscribe/weekly"
    assert fields == {"source": "embed", "website": ""}
    with cross_site(world) as browser:
        response = browser.post("/subscribe/weekly", data={**fields, "email": "ann@example.net"})
    assert response.status_code == 200 and "Check your inbox" in response.text
    with world.app.transaction() as s:
        who = find_subscriber(s, "ann@example.net")
        assert who is not None and who.status is Status.PENDING  # until confirmed
    (message,) = outbox_messages(world)
    assert message["Subject"] == "Please confirm your subscription to The Weekly"


def test_robots_filling_the_honeypot_change_nothing(world: World) -> None:
    with cross_site(world) as browser:
        response = browser.post(
            "/subscribe/weekly",
            data={"source": "embed", "website": "http://spam", "email": "bot@example.net"},
        )
    assert response.status_code == 200 and "Check your inbox" in response.text
    with world.app.transaction() as s:
        assert find_subscriber(s, "bot@example.net") is None
    assert outbox_messages(world) == []


def test_embedded_sign_ups_are_rate_limited(world: World) -> None:
    with cross_site(world) as browser:
        codes = [
            browser.post(
                "/subscribe/weekly",
                data={"source": "embed", "website": "", "email": f"r{i}@example.net"},
            ).status_code
            for i in range(4)
        ]
        limited = browser.post(
            "/subscribe/weekly",
            data={"source": "embed", "website": "", "email": "late@example.net"},
        )
    assert codes == [200, 200, 200, 429]
    assert limited.status_code == 429 and "Retry-After" in limited.headers
    with world.app.transaction() as s:
        assert find_subscriber(s, "late@example.net") is None


def test_a_post_without_a_token_that_is_not_the_embed_is_refused(world: World) -> None:
    with cross_site(world) as browser:
        response = browser.post("/subscribe/weekly", data={"email": "x@example.net"})
        wrong = browser.post(
            "/subscribe/weekly",
            data={"csrf": "forged", "source": "embed", "email": "y@example.net"},
        )
    assert response.status_code == 403 and wrong.status_code == 403
    with world.app.transaction() as s:
        assert find_subscriber(s, "x@example.net") is None
        assert find_subscriber(s, "y@example.net") is None


def test_the_pitch_and_the_description_are_separate(world: World) -> None:
    config = world.root / "digest.toml"
    text = config.read_text()
    config.write_text(
        text.replace(
            'description = "You signed up for The Weekly."',
            'description = "You signed up for The Weekly."\npitch = "Five stories, every Monday."',
        )
    )
    with client_for(world) as client:
        page = client.get("/subscribe/weekly")
        home = client.get("/")
    assert "Five stories, every Monday." in page.text
    assert "You signed up for The Weekly." not in page.text
    assert "Five stories, every Monday." in home.text
    assert "Five stories, every Monday." in snippet(world)


def test_without_a_pitch_the_description_is_the_pitch() -> None:
    nl = NewsletterConfig.model_validate(
        {"name": "w", "title": "W", "list": "w", "sender": "a@example.org", "description": "Why"}
    )
    assert nl.subscribe_pitch == "Why"
    assert nl.model_copy(update={"pitch": "Join"}).subscribe_pitch == "Join"

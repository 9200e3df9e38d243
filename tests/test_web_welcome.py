"""The welcome email on confirming (both databases): sent once through the configured
backend (the outbox here), with the latest edition's web link when there is one,
translated, overridable as a template, and never sent again by a second confirm."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.support import web as support
from tests.support.web import (
    BASE,
    client_for,
    html_of,
    link_path,
    outbox_messages,
    page_csrf,
    text_of,
    web_world,
)
from tests.support.world import World, add_readers, send

sqlite_template = support.sqlite_template
fast_db_url = support.fast_db_url
fast_sqlite_url = support.fast_sqlite_url


@pytest.fixture
def world(fast_db_url: str, tmp_path: Path) -> World:
    return web_world(fast_db_url, tmp_path)


def _sign_up_and_confirm(client: TestClient, world: World, address: str) -> None:
    token = page_csrf(client, "/subscribe/weekly")
    client.post("/subscribe/weekly", data={"csrf": token, "email": address})
    confirmation = [m for m in outbox_messages(world) if "Please confirm" in m["Subject"]][-1]
    confirm = link_path(text_of(confirmation), "c")
    csrf = page_csrf(client, confirm)
    done = client.post(confirm, data={"csrf": csrf})
    assert done.status_code == 200 and "You are subscribed" in done.text
    again = client.post(confirm, data={"csrf": csrf})
    assert again.status_code == 200  # a second click: no second welcome


def _welcomes(world: World, address: str) -> list[object]:
    return [
        m
        for m in outbox_messages(world)
        if m["Subject"].startswith("Welcome to") and address in str(m["To"])
    ]


def test_a_welcome_with_the_latest_edition_once_confirmed(world: World) -> None:
    add_readers(world.app, 1)
    send(world.app)  # an edition went out: 2026-W47
    with client_for(world) as client:
        _sign_up_and_confirm(client, world, "ann@example.net")
    (welcome,) = _welcomes(world, "ann@example.net")
    assert welcome["Subject"] == "Welcome to The Weekly"  # type: ignore[index]
    text = text_of(welcome).replace("\r\n", "\n")  # type: ignore[arg-type]
    html = html_of(welcome)  # type: ignore[arg-type]
    latest = f"{BASE}/e/weekly/2026-W47/all"
    assert f"Read the latest edition:\n{latest}" in text
    assert f'href="{latest}"' in html
    assert "your subscription is confirmed" in text
    assert link_path(text, "u") and link_path(text, "p")  # their own links
    assert "List-Unsubscribe" in welcome  # type: ignore[operator]


def test_before_the_first_edition_the_welcome_has_no_edition_link(world: World) -> None:
    with client_for(world) as client:
        _sign_up_and_confirm(client, world, "bo@example.net")
    (welcome,) = _welcomes(world, "bo@example.net")
    assert "/e/" not in text_of(welcome) and "Read the latest edition" not in text_of(welcome)  # type: ignore[arg-type]


def test_the_welcome_template_is_overridable(fast_sqlite_url: str, tmp_path: Path) -> None:
    custom = tmp_path / "my-templates"
    custom.mkdir()
    (custom / "welcome.txt.j2").write_text(
        "Glad you are here, {{ first_name }}! {{ latest_url or 'no edition yet' }}\n",
        encoding="utf-8",
    )
    world = web_world(fast_sqlite_url, tmp_path, env={"DIGEST_TEMPLATES": str(custom)})
    with client_for(world) as client:
        _sign_up_and_confirm(client, world, "cy@example.net")
    (welcome,) = _welcomes(world, "cy@example.net")
    assert text_of(welcome).startswith("Glad you are here, there! no edition yet")  # type: ignore[arg-type]

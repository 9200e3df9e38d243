"""The admin console's Workers page and the dashboard's "waiting for workers" notice."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from digest.delivery.base import AccountLimit
from digest.delivery.throttle import SharedRate
from digest.workers import register
from tests.support import web as support
from tests.support.web import client_for, sign_in, web_world
from tests.support.world import World, bulk_readers, send

sqlite_template = support.sqlite_template
fast_db_url = support.fast_db_url


@pytest.fixture
def world(fast_db_url: str, tmp_path: Path) -> World:
    return web_world(fast_db_url, tmp_path, readers=0)


def _rows(html: str) -> list[list[str]]:
    """The cells' text of each row of the page's table body."""
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [
        [
            " ".join(re.sub(r"<[^>]+>", "", cell).split())
            for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        ]
        for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    ]


def test_workers_page_shows_each_worker_and_the_shared_rate(world: World) -> None:
    register(world.app.sessions, "far-host:12:abc", "sendgrid")
    register(world.app.sessions, f"{socket.gethostname()}:{2**22 + 99}:def", "sendgrid")
    SharedRate(world.app.sessions, AccountLimit("sendgrid:x:1", 400, "X")).reserve(100)
    with client_for(world) as client:
        assert client.get("/admin/workers").status_code == 401
        sign_in(client)
        page = client.get("/admin/workers")
        assert page.status_code == 200
        rows = _rows(page.text)
        assert sorted((r[0], r[1], r[2]) for r in rows) == sorted(
            [("far-host", "12", "running"), (socket.gethostname(), str(2**22 + 99), "lost")]
        )
        assert "sendgrid:x:1" in page.text and "400 messages per second" in page.text
        assert 'href="/admin/workers" aria-current="page"' in page.text


def test_dashboard_shows_an_edition_waiting_for_workers(world: World) -> None:
    bulk_readers(world.app, 3)
    send(world.app, enqueue=True)
    with client_for(world) as client:
        sign_in(client)
        notice = "weekly 2026-W47 is waiting for workers: 1 batch due and no worker running"
        assert notice in " ".join(client.get("/admin").text.split())
        register(world.app.sessions, "far-host:12:abc", "outbox")
        assert "waiting for workers" not in client.get("/admin").text

"""Helpers for the web app's tests: a client on a test world, CSRF tokens, the outbox."""

from __future__ import annotations

import email
import email.policy
import re
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import uvicorn
from sqlalchemy.engine import make_url
from starlette.testclient import TestClient

from digest import db
from digest.cli.web import bind
from digest.web import WebOptions, create_app
from tests.support.world import World, make_world

PASSWORD = "correct horse battery staple"
BASE = "https://news.example.org"

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database, made once per test session and copied per test."""
    path = tmp_path_factory.mktemp("template") / "migrated.db"
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    engine.dispose()
    return path


def seed_sqlite(db_url: str, template: Path) -> str:
    """``db_url`` with the migrated template copied in when it is a new SQLite file
    (migrating costs half a second per test; copying, nothing)."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite" and url.database:
        target = Path(url.database)
        if not target.exists():
            shutil.copyfile(template, target)
    return db_url


def web_world(
    db_url: str, root: Path, *, password: str | None = PASSWORD, **kwargs: object
) -> World:
    """make_world with an admin password (``password=None``: the console is off)."""
    env = {"DIGEST_ADMIN_PASSWORD": password} if password else {}
    env.update(kwargs.pop("env", {}) or {})  # type: ignore[arg-type]
    return make_world(db_url, root, env=env, **kwargs)  # type: ignore[arg-type]


@contextmanager
def client_for(
    world: World, *, open_preview: bool = False, options: WebOptions | None = None
) -> Iterator[TestClient]:
    """A client over https (the world's base URL is https, so cookies are Secure).

    Clicks and opens are written as they come (a test reads them at once), unless
    ``options`` says otherwise."""
    options = options or WebOptions(hit_flush_seconds=0)
    web = create_app(world.app, open_preview=open_preview, options=options)
    with TestClient(web, base_url="https://testserver", follow_redirects=False) as client:
        yield client


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def page_csrf(client: TestClient, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, response.text
    return csrf_of(response.text)


def sign_in(client: TestClient, password: str = PASSWORD) -> None:
    token = page_csrf(client, "/admin/login")
    response = client.post("/admin/login", data={"csrf": token, "password": password})
    assert response.status_code == 303, response.text


def outbox_messages(world: World) -> list[EmailMessage]:
    """Every .eml in the world's outbox, oldest first."""
    files = sorted(world.outbox.rglob("*.eml"), key=lambda p: p.stat().st_mtime_ns)
    return [
        email.message_from_bytes(p.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
        for p in files
    ]


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def html_of(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def link_path(text: str, kind: str) -> str:
    """The path of the first ``{BASE}/{kind}/TOKEN`` link in ``text``."""
    found = re.search(rf"{re.escape(BASE)}/{kind}/[A-Za-z0-9._-]+", text)
    assert found, f"no /{kind}/ link in {text[:300]!r}"
    return urlsplit(found.group(0)).path


@pytest.fixture
def fast_db_url(db_url: str, sqlite_template: Path) -> str:
    """conftest's ``db_url`` (SQLite and PostgreSQL), already migrated for SQLite."""
    return seed_sqlite(db_url, sqlite_template)


@pytest.fixture
def fast_sqlite_url(sqlite_url: str, sqlite_template: Path) -> str:
    """A migrated SQLite database only: for what does not depend on the database."""
    return seed_sqlite(sqlite_url, sqlite_template)


@contextmanager
def serving(world: World, **kwargs: Any) -> Iterator[str]:
    """The app under uvicorn in a background thread; yields its base URL."""
    web = create_app(world.app, **kwargs)
    sock = bind("127.0.0.1", 0)
    config = uvicorn.Config(web, log_level="warning", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120  # a poll: no wait when it is quick
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()

"""Admin pages show times in the newsletter's time zone, to the minute, with the zone."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest.web.pages import format_when
from subscribers.models import Subscriber
from subscribers.service import add_subscriber
from tests.support import web as support
from tests.support.web import client_for, sign_in, web_world
from tests.support.world import World

sqlite_template = support.sqlite_template
fast_db_url = support.fast_db_url
fast_sqlite_url = support.fast_sqlite_url

SIGNED_UP = datetime(2026, 7, 1, 12, 34, 56, tzinfo=UTC)


@pytest.fixture
def world(fast_db_url: str, tmp_path: Path) -> World:
    world = web_world(fast_db_url, tmp_path)
    config = world.root / "digest.toml"
    config.write_text(
        config.read_text().replace('timezone = "Europe/London"', 'timezone = "Europe/Berlin"')
    )
    return world


def test_subscriber_times_are_in_the_newsletter_zone(world: World) -> None:
    with world.app.transaction() as s:
        reader = add_subscriber(s, "ann@example.net", "weekly").subscriber
        s.get(Subscriber, reader.id).created_at = SIGNED_UP  # type: ignore[union-attr]
        reader_id = reader.id
    with client_for(world) as client:
        sign_in(client)
        listing = client.get("/admin/subscribers").text
        page = client.get(f"/admin/subscribers/{reader_id}").text
    assert "2026-07-01 14:34 CEST" in listing  # 12:34:56 UTC, to the minute
    assert "2026-07-01 14:34 CEST" in page
    assert "(UTC)" not in page


def test_format_when() -> None:
    from zoneinfo import ZoneInfo

    berlin = ZoneInfo("Europe/Berlin")
    assert format_when(SIGNED_UP, berlin) == "2026-07-01 14:34 CEST"
    assert format_when("2026-01-15T08:00:00+00:00", berlin) == "2026-01-15 09:00 CET"
    assert format_when(None, berlin) == "—"
    assert format_when(datetime(2026, 1, 15, 8, 0), ZoneInfo("UTC")) == "2026-01-15 08:00 UTC"

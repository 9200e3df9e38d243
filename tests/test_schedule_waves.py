"""Local-time waves: one edition, each reader's copy at the scheduled hour in their zone.

A London newsletter sent Monday 2026-11-23 08:00 GMT (08:00 UTC): readers in
America/New_York are due at 08:00 EST = 13:00 UTC, in America/Los_Angeles at
08:00 PST = 16:00 UTC; Asia/Tokyo's 08:00 had passed (23:00 UTC on Sunday), so
they get it with London and the readers without a timezone.  The clock is moved
with time-machine; only due batches go out at each instant.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from time_machine import TimeMachineFixture

from digest.cli import cli
from digest.config import NewsletterConfig
from digest.delivery.memory import MemoryBackend, MemoryMailbox
from digest.delivery.waves import WavePlanner
from digest.models import Delivery, DeliveryBatch, Edition, EditionStatus, SchedulerRun
from digest.worker import run_worker
from subscribers.models import Subscriber
from subscribers.service import add_subscriber
from tests.support.world import AS_OF, World, make_world, send
from tests.test_schedule import SUNDAY, configure, scheduler_pool

NEW_YORK = AS_OF + timedelta(hours=5)  # 08:00 EST
LOS_ANGELES = AS_OF + timedelta(hours=8)  # 08:00 PST
schedulers = pytest.fixture(scheduler_pool, name="schedulers")
ZONES = {
    "london": "Europe/London",
    "nozone": None,
    "tokyo": "Asia/Tokyo",
    "newyork": "America/New_York",
    "la": "America/Los_Angeles",
}


def local_world(db_url: str, tmp_path: Path, local_time: bool = True) -> World:
    world = make_world(db_url, tmp_path)
    configure(world, local_time=local_time)
    with world.app.transaction() as s:
        for key, zone in ZONES.items():
            for i in range(2):
                add_subscriber(s, f"{key}{i}@example.net", "weekly", timezone=zone)
    return world


def received(box: MemoryMailbox) -> Counter[str]:
    """Copies per zone key (every address must appear at most once: checked here)."""
    per_address = Counter(m["to"] for m in box.sent)
    assert set(per_address.values()) <= {1}, per_address
    return Counter(address.split("@")[0].rstrip("0123456789") for address in per_address)


def _zones(*keys: str) -> Counter[str]:
    return Counter({k: 2 for k in keys})


def test_each_readers_batch_waits_for_their_local_hour(
    db_url: str, tmp_path: Path, time_machine: TimeMachineFixture
) -> None:
    world = local_world(db_url, tmp_path)
    box = MemoryMailbox()
    time_machine.move_to(AS_OF + timedelta(seconds=5))
    report = send(world.app, backend_factory=lambda: MemoryBackend(box))
    assert received(box) == _zones("london", "nozone", "tokyo")
    assert report.waiting == 4 and report.next_wave == NEW_YORK
    with world.app.sessions() as s:
        waits = dict(
            s.execute(
                select(Subscriber.timezone, DeliveryBatch.not_before)
                .join(Delivery, Delivery.subscriber_id == Subscriber.id)
                .join(DeliveryBatch, DeliveryBatch.id == Delivery.batch_id)
            ).all()
        )
    assert waits == {
        "Europe/London": None,
        None: None,
        "Asia/Tokyo": None,
        "America/New_York": NEW_YORK,
        "America/Los_Angeles": LOS_ANGELES,
    }

    # a worker an hour before New York's wave sends nothing; at 13:00 it sends New York only
    time_machine.move_to(NEW_YORK - timedelta(hours=1))
    assert run_worker(world.app, once=True, backend_factory=lambda: MemoryBackend(box)).sent == 0
    time_machine.move_to(NEW_YORK + timedelta(seconds=5))
    assert run_worker(world.app, once=True, backend_factory=lambda: MemoryBackend(box)).sent == 2
    assert received(box) == _zones("london", "nozone", "tokyo", "newyork")

    # `digest send` run again at Los Angeles's hour finishes the one edition
    time_machine.move_to(LOS_ANGELES + timedelta(seconds=5))
    again = send(world.app, backend_factory=lambda: MemoryBackend(box))
    assert again.sent_now == 2 and again.waiting == 0 and again.next_wave is None
    assert received(box) == _zones(*ZONES)
    with world.app.sessions() as s:
        assert s.scalars(select(Edition.status)).all() == [EditionStatus.SENT]


def test_scheduler_sends_later_waves_on_time(
    db_url: str, tmp_path: Path, time_machine: TimeMachineFixture, schedulers: Any
) -> None:
    world = local_world(db_url, tmp_path)
    box = MemoryMailbox()
    time_machine.move_to(SUNDAY)
    scheduler = schedulers(world.app, box)
    time_machine.move_to(AS_OF + timedelta(seconds=5))
    scheduler.tick()
    assert received(box) == _zones("london", "nozone", "tokyo")
    waves = sorted(j.next_run_time for j in scheduler.get_jobs() if ":wave:" in j.id)
    assert waves == [NEW_YORK, LOS_ANGELES]

    expected = [
        (NEW_YORK - timedelta(minutes=1), ("london", "nozone", "tokyo")),
        (NEW_YORK + timedelta(seconds=5), ("london", "nozone", "tokyo", "newyork")),
        (LOS_ANGELES - timedelta(minutes=1), ("london", "nozone", "tokyo", "newyork")),
        (LOS_ANGELES + timedelta(seconds=5), tuple(ZONES)),
        (LOS_ANGELES + timedelta(hours=1), tuple(ZONES)),
    ]
    for instant, zones in expected:
        time_machine.move_to(instant)
        scheduler.tick()
        assert received(box) == _zones(*zones), instant
    assert not [j for j in scheduler.get_jobs() if ":wave:" in j.id]  # one-off jobs are gone
    with world.app.sessions() as s:
        assert s.scalars(select(Edition.status)).all() == [EditionStatus.SENT]
        detail = s.scalar(select(SchedulerRun.detail))
    assert detail is not None
    assert "4 waiting for local-time waves, next at 2026-11-23 13:00 UTC" in detail


def test_waves_of_a_hand_sent_edition_are_picked_up_by_the_scheduler(
    db_url: str, tmp_path: Path, time_machine: TimeMachineFixture, schedulers: Any
) -> None:
    world = local_world(db_url, tmp_path)
    box = MemoryMailbox()
    time_machine.move_to(AS_OF + timedelta(seconds=5))
    send(world.app, backend_factory=lambda: MemoryBackend(box))
    time_machine.move_to(AS_OF + timedelta(hours=1))
    scheduler = schedulers(world.app, box)
    scheduler.tick()  # its sweep finds the edition's waves and books them
    assert received(box) == _zones("london", "nozone", "tokyo")
    time_machine.move_to(NEW_YORK + timedelta(seconds=5))
    scheduler.tick()
    assert received(box) == _zones("london", "nozone", "tokyo", "newyork")


def test_without_local_time_everyone_gets_it_at_once(
    db_url: str, tmp_path: Path, time_machine: TimeMachineFixture
) -> None:
    world = local_world(db_url, tmp_path, local_time=False)
    box = MemoryMailbox()
    time_machine.move_to(AS_OF + timedelta(seconds=5))
    report = send(world.app, backend_factory=lambda: MemoryBackend(box))
    assert report.waiting == 0 and received(box) == _zones(*ZONES)


def test_digest_send_reports_the_waiting_waves(
    db_url: str, tmp_path: Path, time_machine: TimeMachineFixture, monkeypatch: Any
) -> None:
    world = local_world(db_url, tmp_path)
    for key, value in world.env.items():
        monkeypatch.setenv(key, value)
    time_machine.move_to(AS_OF + timedelta(seconds=5))
    result = CliRunner().invoke(
        cli, ["send", "weekly", "--as-of", "2026-11-23T08:00"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert len(list(world.outbox.rglob("*.eml"))) == 6
    text = " ".join(result.output.split())
    assert "4 deliveries scheduled for later waves (readers' local time), next at " in text
    assert "2026-11-23 13:00 UTC" in text


def _newsletter(timezone: str = "Europe/London") -> NewsletterConfig:
    return NewsletterConfig(
        name="weekly",
        title="W",
        list="weekly",
        sender="news@example.org",
        timezone=timezone,
        local_time=True,
    )


def test_wave_follows_each_zones_own_clock_changes() -> None:
    # 2026-03-09: New York is already on EDT (since 8 March), London still on GMT
    as_of = datetime(2026, 3, 9, 8, 0, tzinfo=UTC)
    plan = WavePlanner(_newsletter(), as_of, now=as_of)
    assert plan("America/New_York") == datetime(2026, 3, 9, 12, 0, tzinfo=UTC)
    # 2026-11-02: New York back on EST (since 1 November), London on GMT
    as_of = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    plan = WavePlanner(_newsletter(), as_of, now=as_of)
    assert plan("America/New_York") == datetime(2026, 11, 2, 13, 0, tzinfo=UTC)


def test_wave_edge_cases() -> None:
    plan = WavePlanner(_newsletter(), AS_OF, now=AS_OF)
    assert plan(None) is None and plan("Europe/London") is None
    assert plan("Asia/Tokyo") is None  # 08:00 there has passed: with the send
    assert plan("Not/AZone") is None  # unknown zones are treated as the newsletter's
    # sent late (noon), New York's 08:00 (13:00 UTC) is still ahead; Chicago's 14:00 UTC too
    late = WavePlanner(_newsletter(), AS_OF, now=AS_OF + timedelta(hours=4))
    assert late("America/New_York") == NEW_YORK
    # a run long after the fact: every wave is due at once
    stale = WavePlanner(_newsletter(), AS_OF, now=AS_OF + timedelta(days=2))
    assert stale("America/Los_Angeles") is None

"""The scheduler enqueues: at the scheduled time a run ingests and plans the edition, and
`digest worker` processes send it, local-time waves included (each wave a batch that waits
for its not_before).  Asked for by the deployment (`digest scheduler --enqueue`) or the
newsletter (``delivery = "workers"``)."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from time_machine import TimeMachineFixture

from digest.cli import cli
from digest.config import load_config
from digest.delivery.memory import MemoryBackend, MemoryMailbox
from digest.errors import ConfigError
from digest.models import Delivery, DeliveryBatch, DeliveryStatus, SchedulerRun
from digest.worker import run_worker
from digest.workers import register, waiting_for_workers
from tests.support.world import AS_OF, World
from tests.test_schedule import SUNDAY, configure
from tests.test_schedule_waves import LOS_ANGELES, NEW_YORK, _zones, local_world, received


def _env(world: World, monkeypatch: Any) -> None:
    for key, value in world.env.items():
        monkeypatch.setenv(key, value)


def _scheduler(*args: str) -> str:
    result = CliRunner().invoke(cli, ["scheduler", "--once", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("how", ["--enqueue", "delivery"])
def test_a_scheduled_run_plans_and_the_workers_send_each_wave(
    db_url: str,
    tmp_path: Path,
    monkeypatch: Any,
    time_machine: TimeMachineFixture,
    caplog: pytest.LogCaptureFixture,
    how: str,
) -> None:
    world = local_world(db_url, tmp_path)
    if how == "delivery":
        configure(world, local_time=True, delivery="workers")
    _env(world, monkeypatch)
    args = ("--enqueue",) if how == "--enqueue" else ()
    time_machine.move_to(SUNDAY)
    _scheduler(*args)  # writes the job; nothing due
    time_machine.move_to(AS_OF + timedelta(seconds=30))
    with caplog.at_level(logging.WARNING):
        out = _scheduler(*args)
    if how == "--enqueue":
        assert "enqueueing for `digest worker`" in out
    # nothing was sent by the scheduler: every reader is pending, the waves as batches
    assert not world.outbox.exists()
    with world.app.sessions() as s:
        assert set(s.scalars(select(Delivery.status))) == {DeliveryStatus.PENDING}
        waves = sorted({b for b in s.scalars(select(DeliveryBatch.not_before)) if b})
        assert waves == [NEW_YORK, LOS_ANGELES]
        run = s.scalars(select(SchedulerRun)).one()
        assert run.outcome == "sent"
        assert "10 queued for `digest worker`" in run.detail
        assert run.detail.endswith("no worker is running: start `digest worker`")
        (waiting,) = waiting_for_workers(s)
        assert waiting.batches >= 1
    assert "no worker is running" in caplog.text

    # the workers send each wave at its hour; the scheduler sends none of them
    box = MemoryMailbox()

    def work() -> int:
        return run_worker(world.app, once=True, backend_factory=lambda: MemoryBackend(box)).sent

    assert work() == 6
    assert received(box) == _zones("london", "nozone", "tokyo")
    time_machine.move_to(NEW_YORK + timedelta(seconds=5))
    _scheduler(*args)  # its sweep leaves the wave to the workers
    assert received(box) == _zones("london", "nozone", "tokyo")
    assert work() == 2
    time_machine.move_to(LOS_ANGELES + timedelta(seconds=5))
    assert work() == 2
    assert received(box) == _zones(*("london", "nozone", "tokyo", "newyork", "la"))


def test_with_a_worker_alive_the_run_says_so(
    db_url: str, tmp_path: Path, monkeypatch: Any, time_machine: TimeMachineFixture
) -> None:
    world = local_world(db_url, tmp_path, local_time=False)
    _env(world, monkeypatch)
    register(world.app.sessions, "far-host:12:abc", "outbox")
    time_machine.move_to(SUNDAY)
    _scheduler("--enqueue")
    time_machine.move_to(AS_OF + timedelta(seconds=30))
    _scheduler("--enqueue")
    with world.app.sessions() as s:
        run = s.scalars(select(SchedulerRun)).one()
        assert run.detail.endswith("; 1 worker(s) running")
        assert waiting_for_workers(s) == []


def test_without_enqueue_the_scheduler_still_sends(
    db_url: str, tmp_path: Path, monkeypatch: Any, time_machine: TimeMachineFixture
) -> None:
    world = local_world(db_url, tmp_path, local_time=False)
    _env(world, monkeypatch)
    time_machine.move_to(SUNDAY)
    _scheduler()
    time_machine.move_to(AS_OF + timedelta(seconds=30))
    _scheduler()
    assert len(list(world.outbox.rglob("*.eml"))) == 10


def test_an_unknown_delivery_is_one_line_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "digest.toml"
    path.write_text(
        '[newsletters.weekly]\ntitle = "W"\nlist = "weekly"\nsender = "a@example.org"\n'
        'delivery = "robots"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "newsletters.weekly.delivery" in message
    assert "is not one of 'direct', 'workers'" in message

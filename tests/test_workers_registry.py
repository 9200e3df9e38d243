"""The worker registry: workers register and beat, show as running, draining, stopped or
lost; a stopping worker releases its batches at once; `digest workers list` shows them;
editions queued while no worker runs are named as waiting for workers."""

from __future__ import annotations

import json
import socket
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from sqlalchemy import select, update

from digest.cli import cli
from digest.delivery import ledger
from digest.delivery.base import RecipientResult
from digest.delivery.envelopes import StoredEditions
from digest.delivery.loop import SendLoop, SendOptions
from digest.delivery.memory import MemoryBackend, MemoryMailbox
from digest.delivery.message import Post
from digest.models import (
    BatchStatus,
    Delivery,
    DeliveryBatch,
    DeliveryStatus,
    WorkerProcess,
    WorkerState,
)
from digest.worker import run_worker
from digest.workers import list_workers, register, waiting_for_workers
from subscribers.db import utcnow
from tests.support.world import World, bulk_readers, make_world, send

#: A process id no process has (beyond Linux's pid_max).
DEAD_PID = 2**22 + 4321


def _enqueue(world: World, readers: int, batch_size: int) -> None:
    bulk_readers(world.app, readers)
    report = send(world.app, enqueue=True, batch_size=batch_size)
    assert report.enqueued == readers


class HeldBackend(MemoryBackend):
    """Posts wait for ``release`` (after saying so), like a provider slow to answer."""

    def __init__(self, box: MemoryMailbox, posting: threading.Event, go: threading.Event) -> None:
        super().__init__(box, 1)
        self.posting, self.go = posting, go

    def send(self, post: Post) -> list[RecipientResult]:
        self.posting.set()
        self.go.wait(30)
        return super().send(post)


def test_a_draining_worker_finishes_its_post_and_releases_its_batches_at_once(
    db_url: str, tmp_path: Path
) -> None:
    world = make_world(db_url, tmp_path)
    _enqueue(world, 6, batch_size=3)
    box, posting, go = MemoryMailbox(), threading.Event(), threading.Event()
    stop = threading.Event()
    factory: Any = lambda: HeldBackend(box, posting, go)  # noqa: E731
    done: list[Any] = []
    worker = threading.Thread(
        target=lambda: done.append(
            run_worker(
                world.app,
                owner="host-a:1:drain",
                stop=stop,
                backend_factory=factory,
                heartbeat=0.05,
            )
        )
    )
    worker.start()
    assert posting.wait(30)  # its first post is with the provider
    with world.app.sessions() as s:
        (shown,) = list_workers(s)
        assert (shown.host, shown.state, shown.batches) == ("host-a", "running", 1)
        # a lease of five minutes: only the release lets another worker in before then
        held = s.scalars(select(DeliveryBatch).where(DeliveryBatch.claimed_by.is_not(None))).one()
        assert held.lease_until is not None and held.lease_until > utcnow() + timedelta(minutes=4)
    stop.set()  # SIGTERM: drain
    go.set()  # the post in hand is answered
    worker.join(30)
    (stats,) = done
    assert stats.sent == 1  # the post in hand finished; no other started
    with world.app.sessions() as s:
        assert (
            s.scalar(select(DeliveryBatch.id).where(DeliveryBatch.claimed_by.is_not(None))) is None
        )
        statuses = sorted(s.scalars(select(Delivery.status)))
        assert statuses.count(DeliveryStatus.SENT) == 1
        assert statuses.count(DeliveryStatus.PENDING) == 5
        (shown,) = list_workers(s)
        assert (shown.state, shown.batches, shown.sent) == ("stopped", 0, 1)
        assert shown.stopped_at is not None
    # another worker takes the rest at once, without waiting for any lease
    rest = run_worker(world.app, once=True, backend_factory=lambda: MemoryBackend(box, 1))
    assert rest.sent == 5 and len({m["to"] for m in box.sent}) == 6


def test_release_owner_frees_only_that_workers_batches(db_url: str, tmp_path: Path) -> None:
    world = make_world(db_url, tmp_path)
    _enqueue(world, 4, batch_size=2)
    lease = timedelta(hours=1)
    mine = ledger.claim_batch(world.app.sessions, "host-a:7:tok:1", lease)
    theirs = ledger.claim_batch(world.app.sessions, "host-a:77:tok:1", lease)
    assert mine is not None and theirs is not None
    rows = ledger.pending_rows(world.app.sessions, mine)
    ledger.start_post(world.app.sessions, mine, [rows[0].delivery_id], lease)  # in flight
    assert ledger.release_owner(world.app.sessions, "host-a:7:tok") == 1
    with world.app.sessions() as s:
        batches = dict(s.execute(select(DeliveryBatch.id, DeliveryBatch.status)).all())
        assert batches == {mine.batch_id: BatchStatus.PENDING, theirs.batch_id: BatchStatus.SENDING}
        caught = s.get(Delivery, rows[0].delivery_id)
        assert caught is not None and caught.status == DeliveryStatus.UNCERTAIN


def test_a_worker_without_heartbeat_or_process_is_lost(db_url: str, tmp_path: Path) -> None:
    world = make_world(db_url, tmp_path)
    here = socket.gethostname()
    old = register(world.app.sessions, "far-host:12:abc", "sendgrid")
    register(world.app.sessions, "far-host:13:def", "sendgrid")
    register(world.app.sessions, f"{here}:{DEAD_PID}:ghi", "sendgrid")
    with world.app.transaction() as s:
        s.execute(
            update(WorkerProcess)
            .where(WorkerProcess.id == old)
            .values(heartbeat_at=utcnow() - timedelta(minutes=2))
        )
    with world.app.sessions() as s:
        states = {w.name: w.state for w in list_workers(s)}
    assert states == {
        "far-host:12:abc": "lost",  # no heartbeat for two minutes
        "far-host:13:def": "running",  # another machine, beating: running
        f"{here}:{DEAD_PID}:ghi": "lost",  # this machine, and its process is gone
    }


def test_an_edition_queued_with_no_worker_alive_is_waiting_for_workers(
    db_url: str, tmp_path: Path
) -> None:
    world = make_world(db_url, tmp_path)
    _enqueue(world, 4, batch_size=2)
    with world.app.sessions() as s:
        (waiting,) = waiting_for_workers(s)
    assert (waiting.newsletter, waiting.period, waiting.batches) == ("weekly", "2026-W47", 2)
    register(world.app.sessions, "far-host:12:abc", "outbox")
    with world.app.sessions() as s:
        assert waiting_for_workers(s) == []  # a worker is alive: it will take them
        s.execute(update(WorkerProcess).values(state=WorkerState.STOPPED))
        assert len(waiting_for_workers(s)) == 1


def test_workers_list_command(db_url: str, tmp_path: Path, monkeypatch: Any) -> None:
    world = make_world(db_url, tmp_path)
    for key, value in world.env.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()
    empty = runner.invoke(cli, ["workers", "list"], catch_exceptions=False)
    assert empty.exit_code == 0 and "No workers running" in empty.output
    register(world.app.sessions, "far-host:12:abc", "sendgrid")
    stopped = register(world.app.sessions, "far-host:13:def", "sendgrid")
    with world.app.transaction() as s:
        s.execute(
            update(WorkerProcess)
            .where(WorkerProcess.id == stopped)
            .values(state=WorkerState.STOPPED, stopped_at=utcnow())
        )
    shown = runner.invoke(cli, ["workers", "list"], catch_exceptions=False)
    lines = [" ".join(line.split()) for line in shown.output.splitlines()]
    assert lines[0] == "host pid state started heartbeat batches sent"
    assert lines[1].startswith("far-host 12 running ") and lines[1].endswith(" 0 0")
    assert len(lines) == 2  # the stopped one only with --all
    data = json.loads(runner.invoke(cli, ["workers", "list", "--all", "--json"]).output)
    assert sorted(w["state"] for w in data["workers"]) == ["running", "stopped"]


def test_a_stop_during_the_rate_wait_starts_no_further_post(db_url: str, tmp_path: Path) -> None:
    """SIGTERM while a sender waits for its --rate turn: it stops there, and the batch
    goes back to the queue; the post it was waiting to send never starts."""
    world = make_world(db_url, tmp_path)
    _enqueue(world, 3, batch_size=3)
    box, cancel = MemoryMailbox(), threading.Event()
    loop = SendLoop(
        world.app.sessions,
        lambda: MemoryBackend(box, 1),
        StoredEditions(world.app),
        SendOptions(rate=0.5),  # one message every two seconds: the second post waits
        sleep=lambda _seconds: cancel.set(),  # the signal arrives during that wait
        cancel=cancel,
    )
    loop.run()
    assert len(box.sent) == 1
    with world.app.sessions() as s:
        statuses = sorted(s.scalars(select(Delivery.status)))
        assert statuses == [DeliveryStatus.PENDING] * 2 + [DeliveryStatus.SENT]
        batch = s.scalars(select(DeliveryBatch)).one()
        assert (batch.status, batch.claimed_by) == (BatchStatus.PENDING, None)

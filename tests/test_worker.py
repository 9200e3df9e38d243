"""digest worker: queued editions delivered by workers; stale claims taken over."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select, update

from digest.cli import cli
from digest.delivery import ledger
from digest.delivery.loop import SendOptions
from digest.delivery.memory import MemoryBackend, MemoryMailbox
from digest.models import Delivery, DeliveryBatch, DeliveryStatus, Edition, EditionStatus
from digest.worker import run_worker
from subscribers.db import utcnow
from tests.support.world import bulk_readers, make_world, send


def _enqueue(world, readers: int, batch_size: int = 10):  # type: ignore[no-untyped-def]
    bulk_readers(world.app, readers)
    report = send(world.app, enqueue=True, batch_size=batch_size)
    assert report.enqueued == readers and report.counts.pending == readers
    return report


def test_enqueue_then_worker_delivers(db_url: str, tmp_path: Path) -> None:
    world = make_world(db_url, tmp_path)
    _enqueue(world, 25)
    box = MemoryMailbox()
    stats = run_worker(world.app, once=True, backend_factory=lambda: MemoryBackend(box, 5))
    assert stats.sent == 25 and len({m["to"] for m in box.sent}) == 25
    with world.app.transaction() as s:
        assert s.scalar(select(Edition.status)) == EditionStatus.SENT


def test_concurrent_workers_never_share_a_batch(db_url: str, tmp_path: Path) -> None:
    world = make_world(db_url, tmp_path)
    _enqueue(world, 120, batch_size=7)
    box = MemoryMailbox()
    threads = [
        threading.Thread(
            target=run_worker,
            args=(world.app,),
            kwargs={
                "once": True,
                "owner": f"test-worker-{i}",
                "backend_factory": lambda: MemoryBackend(box, 3),
                "options": SendOptions(concurrency=2),
            },
        )
        for i in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    addresses = [m["to"] for m in box.sent]
    assert len(addresses) == 120 and len(set(addresses)) == 120


def test_batch_of_a_dead_local_worker_is_taken_over_at_once(db_url: str, tmp_path: Path) -> None:
    world = make_world(db_url, tmp_path)
    _enqueue(world, 6, batch_size=3)
    import socket

    dead = f"{socket.gethostname()}:{2**22 + 12345}"  # no such process
    claim = ledger.claim_batch(world.app.sessions, dead, timedelta(hours=1))
    assert claim is not None
    box = MemoryMailbox()
    stats = run_worker(world.app, once=True, backend_factory=lambda: MemoryBackend(box))
    assert stats.recovered == 0  # claimed but nothing in flight: nothing uncertain
    assert len(box.sent) == 6


def test_remote_claim_waits_for_its_lease(db_url: str, tmp_path: Path) -> None:
    world = make_world(db_url, tmp_path)
    _enqueue(world, 4, batch_size=2)
    remote = "another-host:4242"
    claim = ledger.claim_batch(world.app.sessions, remote, timedelta(hours=1))
    assert claim is not None
    rows = ledger.pending_rows(world.app.sessions, claim)
    ledger.start_post(world.app.sessions, claim, [rows[0].delivery_id], timedelta(hours=1))
    box = MemoryMailbox()
    run_worker(world.app, once=True, backend_factory=lambda: MemoryBackend(box))
    assert len(box.sent) == 2  # the other batch only: the remote lease still holds
    with world.app.transaction() as s:
        s.execute(update(DeliveryBatch).values(lease_until=utcnow() - timedelta(seconds=1)))
    stats = run_worker(world.app, once=True, backend_factory=lambda: MemoryBackend(box))
    # the message the remote worker had in flight is uncertain; the rest is sent
    assert stats.recovered == 1 and len(box.sent) == 3
    with world.app.transaction() as s:
        uncertain = s.scalars(
            select(Delivery.email).where(Delivery.status == DeliveryStatus.UNCERTAIN)
        ).all()
    assert uncertain == [rows[0].email]


def test_cli_enqueue_and_worker_once(db_url: str, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    world = make_world(db_url, tmp_path)
    bulk_readers(world.app, 3)
    for key, value in world.env.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()
    out = runner.invoke(cli, ["send", "weekly", "--as-of", "2026-11-23", "--enqueue"])
    assert out.exit_code == 0, out.output
    assert "3 deliveries queued for `digest worker`" in " ".join(out.output.split())
    out = runner.invoke(cli, ["worker", "--once", "--backend", "outbox"])
    assert out.exit_code == 0, out.output
    assert "worker: sent 3" in out.output
    assert len(list(world.outbox.rglob("*.eml"))) == 3

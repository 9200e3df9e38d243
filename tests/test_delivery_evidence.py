"""Uncertain deliveries settled from the provider's events (issue 15 §3), on both databases:
an event settles an uncertain delivery as it arrives, one stored before the delivery
became uncertain settles it when it does, and `--resend-uncertain` resends only what
the provider has not reported, once the grace period after the post is over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from digest import events
from digest.delivery import evidence, ledger
from digest.models import BatchStatus, Delivery, DeliveryBatch, DeliveryStatus
from digest.sender import Sender
from tests.support.world import World, add_readers, make_world, send

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _world(db_url: str, tmp_path: Path, readers: int = 4, **env: str) -> tuple[World, int]:
    world = make_world(db_url, tmp_path, env=env)
    add_readers(world.app, readers)
    result = send(world.app)
    assert result.edition_id is not None and result.counts.sent == readers
    return world, result.edition_id


def _ledger(world: World) -> list[tuple[int, int, DeliveryStatus, str | None]]:
    with world.app.transaction() as s:
        return [
            (d.id, d.subscriber_id or 0, d.status, d.reason)
            for d in s.scalars(select(Delivery).order_by(Delivery.id))
        ]


def _make_uncertain(world: World, ids: list[int], posted: datetime) -> None:
    with world.app.transaction() as s:
        s.execute(
            update(Delivery)
            .where(Delivery.id.in_(ids))
            .values(status=DeliveryStatus.UNCERTAIN, reason="in flight", updated_at=posted)
        )


def _event(edition_id: int, subscriber_id: int, kind: str, n: int = 0) -> events.ProviderEvent:
    return events.normalise_sendgrid(
        {
            "event": kind,
            "email": f"reader{subscriber_id}@example.net",
            "timestamp": int(NOW.timestamp()),
            "sg_event_id": f"ev-{edition_id}-{subscriber_id}-{kind}-{n}",
            "edition_id": str(edition_id),
            "subscriber_id": str(subscriber_id),
            "type": "bounce",
        }
    )


def _record(world: World, *items: events.ProviderEvent) -> None:
    summary = events.ingest(world.app.transaction, items)
    assert summary.stored == len(items), summary


def test_an_event_settles_an_uncertain_delivery_as_it_arrives(db_url: str, tmp_path: Path) -> None:
    world, edition = _world(db_url, tmp_path)
    rows = _ledger(world)
    (d1, s1, *_), (d2, s2, *_), (d3, _, *_), (_, s4, *_) = rows
    _make_uncertain(world, [d1, d2, d3], NOW)

    _record(
        world,
        _event(edition, s1, "processed"),
        _event(edition, s2, "dropped"),
        _event(edition, s4, "delivered"),  # s4 was sent: nothing to settle
    )

    after = {d: (status, reason) for d, _, status, reason in _ledger(world)}
    assert after[d1] == (
        DeliveryStatus.SENT,
        "was uncertain; sendgrid reported it queued: it went out",
    )
    assert after[d2] == (
        DeliveryStatus.FAILED,
        "was uncertain; sendgrid reported it dropped: not resent",
    )
    assert after[d3][0] is DeliveryStatus.UNCERTAIN  # no word on it yet
    assert after[rows[3][0]] == (DeliveryStatus.SENT, None)


def test_a_bounce_after_processed_does_not_reopen_a_settled_delivery(
    db_url: str, tmp_path: Path
) -> None:
    world, edition = _world(db_url, tmp_path, readers=1)
    [(d1, s1, *_)] = _ledger(world)
    _make_uncertain(world, [d1], NOW)
    _record(world, _event(edition, s1, "processed"))
    _record(world, _event(edition, s1, "bounce"))  # the ledger keeps "sent": it went out
    assert _ledger(world)[0][2] is DeliveryStatus.SENT


def test_resolve_prefers_a_refusal_and_counts(db_url: str, tmp_path: Path) -> None:
    """Events stored while the delivery was still in flight settle it once it is uncertain."""
    world, edition = _world(db_url, tmp_path, readers=3)
    (d1, s1, *_), (d2, s2, *_), (d3, _, *_) = _ledger(world)
    with world.app.transaction() as s:
        s.execute(update(Delivery).where(Delivery.id.in_([d1, d2, d3])).values(status="sending"))
    _record(
        world,
        _event(edition, s1, "processed"),
        _event(edition, s1, "delivered"),
        _event(edition, s2, "processed"),
        _event(edition, s2, "dropped"),
    )
    assert {status for _, _, status, _ in _ledger(world)} == {DeliveryStatus.SENDING}
    _make_uncertain(world, [d1, d2, d3], NOW)
    with world.app.transaction() as s:
        resolved = evidence.resolve(s, edition_id=edition)
    assert resolved == evidence.Resolved(sent=1, failed=1)
    assert [status for _, _, status, _ in _ledger(world)] == [
        DeliveryStatus.SENT,
        DeliveryStatus.FAILED,
        DeliveryStatus.UNCERTAIN,
    ]


def test_a_dead_senders_post_with_evidence_is_not_uncertain(db_url: str, tmp_path: Path) -> None:
    world, edition = _world(db_url, tmp_path, readers=2)
    (d1, s1, *_), (d2, _, *_) = _ledger(world)
    now = datetime.now(UTC)  # the lease is compared with the clock
    posted = now - timedelta(minutes=3)
    with world.app.transaction() as s:
        batch = DeliveryBatch(
            edition_id=edition,
            variant_id=s.scalar(select(Delivery.variant_id).where(Delivery.id == d1)),
            status=BatchStatus.SENDING,
            claimed_by="gone:1:x",
            lease_until=now - timedelta(minutes=1),
        )
        s.add(batch)
        s.flush()
        s.execute(
            update(Delivery)
            .where(Delivery.id.in_([d1, d2]))
            .values(status=DeliveryStatus.SENDING, batch_id=batch.id, updated_at=posted)
        )
    _record(world, _event(edition, s1, "processed"))

    assert ledger.recover_stale(world.app.sessions, edition) == 1
    statuses = {d: (status, reason) for d, _, status, reason in _ledger(world)}
    assert statuses[d1][0] is DeliveryStatus.SENT
    assert statuses[d2] == (DeliveryStatus.UNCERTAIN, ledger.UNCERTAIN_REASON)
    with world.app.transaction() as s:  # the time of the post is kept: the grace counts from it
        kept = s.scalar(select(Delivery.updated_at).where(Delivery.id == d2))
    assert kept is not None and kept.replace(tzinfo=UTC) == posted


def test_resend_waits_out_the_grace_period_after_the_post(db_url: str, tmp_path: Path) -> None:
    world, edition = _world(db_url, tmp_path, readers=4)
    (d1, _, *_), (d2, _, *_), (d3, _, *_), _ = _ledger(world)
    _make_uncertain(world, [d1, d2], NOW - timedelta(minutes=20))
    _make_uncertain(world, [d3], NOW - timedelta(minutes=5))
    with world.app.transaction() as s:  # an event stored by an older version: not yet applied
        s.add(events.Event(**_event_row(edition, d1)))

    grace = timedelta(minutes=15)
    again = ledger.resend_uncertain(world.app.sessions, edition, 100, grace=grace, now=NOW)

    assert again.resolved == evidence.Resolved(sent=1)
    assert again.requeued == 1  # d2: old enough, and no word from the provider
    assert again.waiting == 1  # d3: posted 5 minutes ago
    assert again.wait_until == NOW - timedelta(minutes=5) + grace
    statuses = {d: status for d, _, status, _ in _ledger(world)}
    assert statuses[d1] is DeliveryStatus.SENT
    assert statuses[d2] is DeliveryStatus.PENDING
    assert statuses[d3] is DeliveryStatus.UNCERTAIN


def _event_row(edition_id: int, delivery_id: int) -> dict[str, object]:
    return {
        "provider": "sendgrid",
        "provider_event_id": f"old-{delivery_id}",
        "type": "delivered",
        "email": None,
        "delivery_id": delivery_id,
        "edition_id": edition_id,
        "occurred_at": NOW,
        "payload": {},
    }


@pytest.mark.parametrize(
    ("backend", "key", "grace"),
    [
        ("sendgrid", "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE", 900),
        ("sendgrid", "", 0),  # no webhook: no word will ever come
        ("smtp", "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE", 0),
        ("outbox", "", 0),
    ],
)
def test_only_a_provider_that_reports_events_is_waited_for(
    sqlite_url: str, tmp_path: Path, backend: str, key: str, grace: int
) -> None:
    env = {
        "SENDGRID_API_KEY": "SG.x",
        "DIGEST_SMTP_URL": "smtp://127.0.0.1:2525",
        "DIGEST_SENDGRID_WEBHOOK_PUBLIC_KEY": key,
    }
    world = make_world(sqlite_url, tmp_path, env=env)
    assert Sender(world.app, backend).uncertain_grace == timedelta(seconds=grace)

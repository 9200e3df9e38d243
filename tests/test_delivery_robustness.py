"""The send loop under the situations a review found: a lapsed lease within one
process, erasure mid-send, international addresses, fatal errors in worker mode,
ids never reused, lost claims, missing results and settling.  (An outage and its
recovery: test_send.test_pauses_after_consecutive_failures_and_resumes.)"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from digest.delivery import ledger
from digest.delivery.base import FatalError
from digest.delivery.loop import SendOptions
from digest.delivery.memory import MemoryBackend, MemoryMailbox
from digest.delivery.message import Post
from digest.models import Delivery, DeliveryBatch, DeliveryStatus, Edition, EditionStatus
from digest.privacy import forget_person
from digest.worker import run_worker
from subscribers.db import utcnow
from subscribers.models import Subscriber
from subscribers.service import add_subscriber
from tests.support.smtp_server import SMTPServer
from tests.support.world import add_readers, bulk_readers, make_world, send

FAST = SendOptions(backoff_base=0, backoff_cap=0, max_attempts=2, pause_after=3)


def test_a_lapsed_claim_never_posts_rows_another_sender_took(db_url: str, tmp_path: Path) -> None:
    world = make_world(db_url, tmp_path)
    bulk_readers(world.app, 4)
    send(world.app, enqueue=True, batch_size=4)
    sessions = world.app.sessions
    owner = ledger.owner_id()
    first = ledger.claim_batch(sessions, owner, timedelta(minutes=5))
    assert first is not None
    rows = ledger.pending_rows(sessions, first)
    # The lease lapses and the batch is released; a sibling thread of the same
    # process takes it and starts posting the same readers.
    with world.app.transaction() as s:
        s.execute(update(DeliveryBatch).values(lease_until=utcnow() - timedelta(seconds=1)))
    ledger.recover_stale(sessions)
    second = ledger.claim_batch(sessions, f"{owner}:sibling", timedelta(minutes=5))
    assert second is not None and second.batch_id == first.batch_id
    taken = ledger.start_post(sessions, second, [r.delivery_id for r in rows], timedelta(minutes=5))
    assert taken == {r.delivery_id for r in rows}
    # The first holder wakes up: its claim is gone, and none of the rows are its to post.
    try:
        again = ledger.start_post(sessions, first, [r.delivery_id for r in rows], timedelta(1))
    except ledger.LostClaim:
        again = set()
    assert again == set()


def test_erasing_a_reader_mid_send_settles_their_row(db_url: str, tmp_path: Path) -> None:
    """Erased after their batch's rows were read, during the post before theirs."""
    world = make_world(db_url, tmp_path)
    add_readers(world.app, 3)
    send(world.app, enqueue=True, batch_size=10)
    box = MemoryMailbox()

    def erase_then_deliver(post: Post) -> list:  # type: ignore[type-arg]
        with world.app.transaction() as s:
            forget_person(s, "reader1@example.net")
        return MemoryBackend(box).deliver(post)

    box.script.append(erase_then_deliver)
    report = send(
        world.app,
        backend_factory=lambda: MemoryBackend(box, max_recipients=1),
        options=FAST,
    )
    assert sorted(m["to"] for m in box.sent) == ["reader0@example.net", "reader2@example.net"]
    assert report.counts.skipped == 1 and report.counts.pending == 0
    with world.app.transaction() as s:
        assert s.scalar(select(Edition.status)) == EditionStatus.SENT
        row = s.execute(
            select(Delivery.email, Delivery.reason).where(Delivery.status == DeliveryStatus.SKIPPED)
        ).one()
    assert row == (None, "erased on request")


def test_a_reader_deleted_without_erasure_is_skipped_not_spun_on(
    db_url: str, tmp_path: Path
) -> None:
    world = make_world(db_url, tmp_path)
    add_readers(world.app, 2)
    send(world.app, enqueue=True)
    with world.app.transaction() as s:
        s.delete(
            s.scalars(select(Subscriber).where(Subscriber.email == "reader0@example.net")).one()
        )
    stats = run_worker(world.app, once=True, backend_factory=lambda: MemoryBackend(MemoryMailbox()))
    assert stats.sent == 1
    with world.app.transaction() as s:
        assert s.scalar(select(Edition.status)) == EditionStatus.SENT


def _idn_readers(world) -> None:  # type: ignore[no-untyped-def]
    with world.app.transaction() as s:
        add_subscriber(s, "anna@müller.example", "weekly", name="Anna")
        add_subscriber(s, "jorg@example.net", "weekly", name="Jörg")
        add_subscriber(s, "plain@example.net", "weekly")
    with world.app.transaction() as s:  # stored before such addresses were refused at the door
        s.execute(
            update(Subscriber)
            .where(Subscriber.email == "jorg@example.net")
            .values(email="jörg@example.net", email_key="jörg@example.net")
        )


def test_international_addresses_over_smtp(db_url: str, tmp_path: Path) -> None:
    with SMTPServer() as server:
        world = make_world(db_url, tmp_path, env={"DIGEST_SMTP_URL": server.url})
        _idn_readers(world)
        report = send(world.app, backend="smtp", options=FAST)
        got = sorted(r.rcpt_tos[0] for r in server.sink.received)
    assert got == ["anna@xn--mller-kva.example", "plain@example.net"]
    assert report.counts.sent == 2 and report.counts.failed == 1
    with world.app.transaction() as s:
        reason = s.scalar(select(Delivery.reason).where(Delivery.status == DeliveryStatus.FAILED))
    assert reason is not None and "need SMTPUTF8" in reason


def test_international_addresses_in_the_outbox(db_url: str, tmp_path: Path) -> None:
    world = make_world(db_url, tmp_path)
    _idn_readers(world)
    report = send(world.app, backend="outbox", options=FAST)
    assert report.counts.sent == 2 and report.counts.failed == 1
    assert len(list(world.outbox.rglob("*.eml"))) == 2


def test_a_fatal_error_in_a_worker_pauses_that_edition(db_url: str, tmp_path: Path) -> None:
    world = make_world(db_url, tmp_path)
    bulk_readers(world.app, 3)
    send(world.app, enqueue=True)
    box = MemoryMailbox()
    box.script.append(FatalError("SendGrid answered 401: bad key"))
    stats = run_worker(world.app, once=True, backend_factory=lambda: MemoryBackend(box))
    assert stats.sent == 0 and box.posts == 1
    with world.app.transaction() as s:
        assert s.scalar(select(Edition.status)) == EditionStatus.PAUSED
        assert set(s.scalars(select(Delivery.status))) == {DeliveryStatus.PENDING}
    # paused editions are not claimed again until someone resumes them
    assert run_worker(world.app, once=True, backend_factory=lambda: MemoryBackend(box)).sent == 0
    assert box.posts == 1


def test_an_unexpected_error_mid_post_leaves_nothing_sending(db_url: str, tmp_path: Path) -> None:
    world = make_world(db_url, tmp_path)
    bulk_readers(world.app, 2)
    box = MemoryMailbox()

    def boom(post: Post) -> list:  # type: ignore[type-arg]
        raise RuntimeError("a bug")

    box.script.append(boom)
    with pytest.raises(RuntimeError, match="a bug"):
        send(world.app, backend_factory=lambda: MemoryBackend(box))
    with world.app.transaction() as s:
        assert set(s.scalars(select(Delivery.status))) == {DeliveryStatus.UNCERTAIN}
        assert s.scalar(select(DeliveryBatch.claimed_by)) is None


def test_subscriber_ids_are_never_reused(db_url: str, tmp_path: Path) -> None:
    world = make_world(db_url, tmp_path)
    with world.app.transaction() as s:
        gone = add_subscriber(s, "gone@example.net", "weekly").subscriber.id
    with world.app.transaction() as s:
        forget_person(s, "gone@example.net")
    with world.app.transaction() as s:
        new = add_subscriber(s, "new@example.net", "weekly").subscriber.id
    assert new > gone


def test_a_claim_lost_between_posts_ends_the_batch_for_this_sender(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once another sender has the batch, this one posts nothing more of it (and does
    not knock on the ledger once per remaining post)."""
    starts: list[int] = []
    start_post = ledger.start_post

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        starts.append(1)
        return start_post(*args, **kwargs)

    monkeypatch.setattr(ledger, "start_post", counted)
    world = make_world(db_url, tmp_path)
    add_readers(world.app, 3)
    send(world.app, enqueue=True, batch_size=10)
    box = MemoryMailbox()

    def first_then_taken(post: Post) -> list:  # type: ignore[type-arg]
        results = MemoryBackend(box).deliver(post)
        with world.app.transaction() as s:  # a sibling takes the batch over meanwhile
            s.execute(update(DeliveryBatch).values(claimed_by="elsewhere:1:x"))
        return results

    box.script.append(first_then_taken)
    run_worker(world.app, once=True, backend_factory=lambda: MemoryBackend(box, max_recipients=1))
    assert box.posts == 1 and len(box.sent) == 1
    assert len(starts) == 2  # the post that went, the one that found the claim gone
    with world.app.transaction() as s:
        statuses = sorted(s.scalars(select(Delivery.status)))
        batch = s.scalars(select(DeliveryBatch)).one()
    assert statuses == [DeliveryStatus.PENDING, DeliveryStatus.PENDING, DeliveryStatus.SENT]
    assert batch.claimed_by == "elsewhere:1:x"  # left to its new holder


def test_recipients_a_backend_gives_no_result_for_are_uncertain(
    db_url: str, tmp_path: Path
) -> None:
    world = make_world(db_url, tmp_path)
    add_readers(world.app, 3)
    box = MemoryMailbox()
    box.script.append(lambda post: MemoryBackend(box).deliver(post)[:1])  # one of three
    report = send(world.app, backend_factory=lambda: MemoryBackend(box), options=FAST)
    assert report.counts.sent == 1 and report.counts.uncertain == 2
    assert report.counts.pending == 0 and report.counts.sending == 0
    with world.app.transaction() as s:
        reasons = set(
            s.scalars(select(Delivery.reason).where(Delivery.status == DeliveryStatus.UNCERTAIN))
        )
        assert s.scalars(select(DeliveryBatch.status)).all() == ["done"]
    assert len(reasons) == 1 and "gave no result" in reasons.pop()


def test_an_edition_is_not_called_sent_while_a_batch_is_unfinished(
    db_url: str, tmp_path: Path
) -> None:
    """Settling looks at the batches first (cheap, every idle worker round): a batch
    still pending means not yet, even with nothing left in it; once a worker has
    closed it the deliveries are counted and the edition is sent."""
    world = make_world(db_url, tmp_path)
    add_readers(world.app, 2)
    send(world.app, enqueue=True)
    with world.app.transaction() as s:
        s.execute(update(Delivery).values(status=DeliveryStatus.SKIPPED, reason="test"))
        edition_id = s.scalars(select(Edition.id)).one()
    assert ledger.settle_edition(world.app.sessions, edition_id) == EditionStatus.SENDING
    run_worker(world.app, once=True, backend_factory=lambda: MemoryBackend(MemoryMailbox()))
    with world.app.transaction() as s:
        assert s.scalars(select(DeliveryBatch.status)).all() == ["done"]
        assert s.get(Edition, edition_id).status == EditionStatus.SENT  # type: ignore[union-attr]


def test_settling_leaves_paused_and_skipped_editions_as_they_are(
    db_url: str, tmp_path: Path
) -> None:
    world = make_world(db_url, tmp_path)
    add_readers(world.app, 1)
    report = send(world.app, backend_factory=lambda: MemoryBackend(MemoryMailbox()))
    for status in (EditionStatus.PAUSED, EditionStatus.SKIPPED):
        ledger.set_edition_status(world.app.sessions, report.edition_id, status)
        assert ledger.settle_edition(world.app.sessions, report.edition_id) == status
    ledger.set_edition_status(world.app.sessions, report.edition_id, EditionStatus.SENDING)
    assert ledger.settle_edition(world.app.sessions, report.edition_id) == EditionStatus.SENT

"""Provider events: the normalisation table, idempotent storage, matching, and effects."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from digest import db
from digest.events import (
    MAX_EVENT_DEPTH,
    BadEvent,
    EventType,
    ingest,
    ingest_sendgrid,
    normalise_sendgrid,
    read_sendgrid,
    record,
)
from digest.models import Delivery, Edition, Event
from subscribers import lists, service
from subscribers.models import Membership, Status, Subscriber, Suppression, SuppressionReason

WHEN = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def sg_event(name: str, email: str = "ann@example.com", **extra: Any) -> dict[str, Any]:
    """A SendGrid event as the webhook posts it (custom_args arrive as top-level keys)."""
    return {
        "email": email,
        "timestamp": int(WHEN.timestamp()),
        "event": name,
        "sg_event_id": f"{name}-{email}-{sorted(extra.items())}",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        **extra,
    }


def seed(session: Session, *emails: str) -> tuple[Edition, dict[str, Subscriber]]:
    """A list with active subscribers, an edition, and a delivery row for each of them."""
    lists.create_list(session, "weekly")
    lists.create_list(session, "news")
    people = {}
    for email in emails:
        added = service.add_subscriber(session, email, "weekly")
        service.add_subscriber(session, email, "news")
        people[email] = added.subscriber
    edition = Edition(
        newsletter="weekly", period="2026-W48", period_start=WHEN, period_end=WHEN, subject="Hi"
    )
    session.add(edition)
    session.flush()
    for person in people.values():
        session.add(Delivery(edition_id=edition.id, subscriber_id=person.id, email=person.email))
    session.commit()
    return edition, people


def recipients(session: Session, list_name: str = "weekly") -> list[str]:
    return [s.email for s in session.scalars(service.recipients(session, list_name))]


def count_events(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Event)) or 0


# ---------------------------------------------------------------------------
# Normalisation (no database)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("processed", EventType.QUEUED),
        ("delivered", EventType.DELIVERED),
        ("deferred", EventType.DEFERRED),
        ("bounce", EventType.BOUNCED),
        ("dropped", EventType.DROPPED),
        ("spamreport", EventType.COMPLAINED),
        ("unsubscribe", EventType.UNSUBSCRIBED),
        ("group_unsubscribe", EventType.UNSUBSCRIBED),
        ("open", EventType.OPENED),
        ("click", EventType.CLICKED),
        ("group_resubscribe", EventType.UNKNOWN),
        ("something_new", EventType.UNKNOWN),
    ],
)
def test_sendgrid_event_names_map_through_the_table(name, kind):
    assert normalise_sendgrid(sg_event(name)).type is kind


def test_a_bounce_is_hard_unless_its_type_is_blocked():
    assert normalise_sendgrid(sg_event("bounce", type="bounce")).type is EventType.BOUNCED
    assert normalise_sendgrid(sg_event("bounce")).type is EventType.BOUNCED
    assert normalise_sendgrid(sg_event("bounce", type="blocked")).type is EventType.BLOCKED


def test_normalising_reads_ids_time_and_reason():
    raw = sg_event(
        "bounce", type="bounce", reason="550 5.1.1 no such user", edition_id="7", subscriber_id="42"
    )

    event = normalise_sendgrid(raw)

    assert event.provider == "sendgrid"
    assert event.provider_event_id == raw["sg_event_id"]
    assert event.email == "ann@example.com"
    assert event.occurred_at == WHEN
    assert (event.edition_id, event.subscriber_id) == (7, 42)
    assert event.reason == "550 5.1.1 no such user"
    assert event.payload == raw


def test_odd_values_are_tolerated():
    event = normalise_sendgrid(
        {
            "event": 5,
            "email": "",
            "timestamp": "soon",
            "edition_id": "seven",
            "subscriber_id": "",
        }
    )

    assert event.type is EventType.UNKNOWN
    assert event.email is None
    assert event.occurred_at.tzinfo is UTC
    assert (event.edition_id, event.subscriber_id) == (None, None)


@pytest.mark.parametrize(
    "value",
    [2**31, str(2**31), 2**63, str(2**64), "9" * 400, "²", "١٢", "٣", "+5", "-5", "0", 0, -1, 1.0],
)
def test_ids_the_database_cannot_hold_are_no_ids(value):
    # an id of 2^63 was an OverflowError on SQLite, "²" a ValueError: a 500 for the batch
    event = normalise_sendgrid({"event": "open", "edition_id": value, "subscriber_id": value})

    assert (event.edition_id, event.subscriber_id) == (None, None)


def test_the_largest_id_the_database_holds_is_read():
    event = normalise_sendgrid({"event": "open", "edition_id": " 2147483647 ", "subscriber_id": 7})

    assert (event.edition_id, event.subscriber_id) == (2**31 - 1, 7)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("open", "not an event object but str"),
        (None, "not an event object but NoneType"),
        ([{"event": "open"}], "not an event object but list"),
        ({"event": "open", "x": json.loads("[" * 500 + "]" * 500)}, "nested deeper than 16"),
        ({"event": "open", "reason": "x" * 70_000}, "more than 65536"),
    ],
)
def test_items_that_are_no_events_are_bad_events(raw, reason):
    with pytest.raises(BadEvent, match=reason):
        read_sendgrid(raw)


def test_an_event_as_deep_as_allowed_is_read():
    nested: Any = "x"
    for _ in range(MAX_EVENT_DEPTH - 1):
        nested = [nested]
    assert read_sendgrid({"event": "click", "categories": nested}).type is EventType.CLICKED


def test_an_event_without_sg_event_id_gets_a_stable_id():
    raw = sg_event("open")
    del raw["sg_event_id"]

    first, again = normalise_sendgrid(raw), normalise_sendgrid(dict(reversed(raw.items())))

    assert first.provider_event_id.startswith("sha256:")
    assert first.provider_event_id == again.provider_event_id
    assert (
        first.provider_event_id != normalise_sendgrid({**raw, "event": "click"}).provider_event_id
    )


# ---------------------------------------------------------------------------
# Storage and matching


def test_an_event_is_stored_and_matched_to_its_delivery(session):
    edition, people = seed(session, "ann@example.com")
    ann = people["ann@example.com"]
    raw = sg_event("delivered", edition_id=str(edition.id), subscriber_id=str(ann.id))

    new_id = record(session, normalise_sendgrid(raw))
    session.commit()

    stored = session.get(Event, new_id)
    delivery = session.scalar(select(Delivery).where(Delivery.subscriber_id == ann.id))
    assert stored is not None and delivery is not None
    assert (stored.provider, stored.provider_event_id, stored.type) == (
        "sendgrid",
        raw["sg_event_id"],
        "delivered",
    )
    assert (stored.delivery_id, stored.edition_id) == (delivery.id, edition.id)
    assert stored.email == "ann@example.com"
    assert stored.occurred_at == WHEN
    assert stored.payload == raw


def test_events_without_or_with_unknown_custom_args_are_stored_unmatched(session):
    edition, _ = seed(session, "ann@example.com")
    bare = normalise_sendgrid(sg_event("open"))
    stranger = normalise_sendgrid(sg_event("click", edition_id="999", subscriber_id="1"))
    edition_only = normalise_sendgrid(sg_event("processed", edition_id=str(edition.id)))

    ids = [record(session, e) for e in (bare, stranger, edition_only)]
    session.commit()

    rows = [session.get(Event, i) for i in ids]
    assert [(r.delivery_id, r.edition_id) for r in rows if r] == [
        (None, None),
        (None, None),
        (None, edition.id),
    ]


def test_the_same_event_is_stored_once(session):
    seed(session, "ann@example.com")
    event = normalise_sendgrid(sg_event("open"))

    assert record(session, event) is not None
    assert record(session, event) is None
    session.commit()
    assert record(session, event) is None
    session.commit()

    assert count_events(session) == 1


def test_concurrent_posts_of_one_event_store_and_act_once(engine):
    sessions = db.session_factory(engine)
    with sessions() as session:
        _, people = seed(session, "ann@example.com")
    ann_id = people["ann@example.com"].id
    event = normalise_sendgrid(sg_event("unsubscribe", subscriber_id=str(ann_id)))
    start = threading.Barrier(4)
    results: list[Any] = []

    def transaction() -> Any:
        start.wait()
        return _transaction(sessions)

    def post() -> None:
        results.append(ingest(transaction, [event]))

    threads = [threading.Thread(target=post) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted((r.stored, r.duplicates, r.failed) for r in results) == [
        (0, 1, 0),
        (0, 1, 0),
        (0, 1, 0),
        (1, 0, 0),
    ]
    with sessions() as session:
        assert count_events(session) == 1


@contextmanager
def _transaction(sessions: sessionmaker[Session]) -> Iterator[Session]:
    with sessions() as session, session.begin():
        yield session


# ---------------------------------------------------------------------------
# Effects


def test_a_hard_bounce_suppresses_the_address_and_marks_the_subscriber_bounced(session):
    edition, people = seed(session, "ann@example.com", "bob@example.com")
    ann = people["ann@example.com"]
    raw = sg_event(
        "bounce",
        email="Ann@Example.com",
        type="bounce",
        reason="550 5.1.1 The email account does not exist",
        edition_id=str(edition.id),
        subscriber_id=str(ann.id),
    )

    record(session, normalise_sendgrid(raw))
    session.commit()

    entry = session.scalar(select(Suppression))
    assert entry is not None and entry.email == "ann@example.com"
    assert entry.reason is SuppressionReason.HARD_BOUNCE
    assert "does not exist" in entry.detail
    session.refresh(ann)
    assert ann.status is Status.BOUNCED
    assert recipients(session) == ["bob@example.com"]


def test_a_soft_bounce_is_recorded_but_suppresses_nothing(session):
    seed(session, "ann@example.com")

    record(session, normalise_sendgrid(sg_event("bounce", type="blocked", reason="try later")))
    session.commit()

    assert session.scalar(select(Suppression)) is None
    assert session.scalar(select(Event.type)) == "blocked"
    assert recipients(session) == ["ann@example.com"]


def test_a_spam_report_suppresses_and_marks_the_subscriber_complained(session):
    _, people = seed(session, "ann@example.com", "bob@example.com")

    record(session, normalise_sendgrid(sg_event("spamreport", email="bob@example.com")))
    session.commit()

    entry = session.scalar(select(Suppression))
    assert entry is not None and entry.reason is SuppressionReason.SPAM_REPORT
    bob = people["bob@example.com"]
    session.refresh(bob)
    assert bob.status is Status.COMPLAINED
    assert recipients(session) == ["ann@example.com"]


def test_an_unsubscribe_unsubscribes_from_every_list(session):
    _, people = seed(session, "ann@example.com", "bob@example.com")
    ann = people["ann@example.com"]

    record(session, normalise_sendgrid(sg_event("unsubscribe", subscriber_id=str(ann.id))))
    session.commit()

    session.refresh(ann)
    assert ann.status is Status.UNSUBSCRIBED
    statuses = session.scalars(
        select(Membership.status).where(Membership.subscriber_id == ann.id)
    ).all()
    assert statuses == [Status.UNSUBSCRIBED, Status.UNSUBSCRIBED]
    assert recipients(session, "weekly") == recipients(session, "news") == ["bob@example.com"]
    assert session.scalar(select(Suppression)) is None


def test_a_group_unsubscribe_without_custom_args_finds_the_subscriber_by_address(session):
    _, people = seed(session, "ann@example.com", "bob@example.com")

    record(session, normalise_sendgrid(sg_event("group_unsubscribe", email="BOB@example.com")))
    session.commit()

    bob = people["bob@example.com"]
    session.refresh(bob)
    assert bob.status is Status.UNSUBSCRIBED
    assert recipients(session) == ["ann@example.com"]


def test_an_unsubscribe_for_nobody_we_know_is_only_recorded(session):
    seed(session, "ann@example.com")

    record(session, normalise_sendgrid(sg_event("unsubscribe", email="who@example.com")))
    session.commit()

    assert count_events(session) == 1
    assert recipients(session) == ["ann@example.com"]


def test_a_replayed_unsubscribe_does_not_undo_a_later_resubscription(session):
    seed(session, "ann@example.com")
    event = normalise_sendgrid(sg_event("unsubscribe"))
    record(session, event)
    session.commit()
    asked = service.add_subscriber(session, "ann@example.com", "weekly", resubscribe=True)
    service.confirm(session, asked.subscriber.id, "weekly")  # the reader's own confirmation
    session.commit()
    assert recipients(session) == ["ann@example.com"]

    assert record(session, event) is None
    session.commit()

    assert recipients(session) == ["ann@example.com"]


def test_ingest_summarises_a_batch(engine):
    sessions = db.session_factory(engine)
    with sessions() as session:
        seed(session, "ann@example.com")
    names = ("processed", "delivered", "open", "open", "mystery")  # the same open twice
    batch = [normalise_sendgrid(sg_event(name)) for name in names]

    summary = ingest(lambda: _transaction(sessions), batch)

    assert summary.as_dict() == {
        "received": 5,
        "stored": 4,
        "duplicates": 1,
        "rejected": 0,
        "failed": 0,
        "types": {"delivered": 1, "opened": 2, "queued": 1, "unknown": 1},
    }


def test_a_bad_event_is_rejected_alone_and_the_rest_of_the_batch_counts(engine, caplog):
    sessions = db.session_factory(engine)
    with sessions() as session:
        _, people = seed(session, "ann@example.com")
    ann = people["ann@example.com"].id
    batch = [
        sg_event("open"),
        "not an event",
        sg_event("bounce", reason="\ud800"),  # text no database can store
        sg_event("unsubscribe", subscriber_id=str(ann)),
    ]

    summary = ingest_sendgrid(lambda: _transaction(sessions), batch)

    assert (summary.received, summary.stored, summary.rejected, summary.failed) == (4, 2, 2, 0)
    with sessions() as session:
        assert session.get(Subscriber, ann).status is Status.UNSUBSCRIBED
    rejected = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
    assert len(rejected) == 2 and all("\n" not in line for line in rejected)
    assert "#1 of a batch: not an event object but str" in rejected[0]

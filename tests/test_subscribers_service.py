"""Lists and subscribers: consent, unsubscribing, suppression, who gets mail, erasure."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from subscribers import lists, privacy, segments, service
from subscribers.db import utcnow
from subscribers.errors import (
    AlreadyExists,
    InvalidAddress,
    InvalidName,
    InvalidTimezone,
    NotFound,
    NotResubscribable,
    Suppressed,
)
from subscribers.models import (
    ConsentMethod,
    MailingList,
    Membership,
    Segment,
    Status,
    Subscriber,
    Suppression,
    SuppressionReason,
)
from subscribers.validate import email_hash


def emails(session: Session, stmt: object) -> list[str]:
    return [s.email for s in session.scalars(stmt)]  # type: ignore[call-overload]


@pytest.fixture
def weekly(session: Session) -> Session:
    lists.create_list(session, "weekly", description="The week")
    lists.create_list(session, "single", double_opt_in=False)
    session.commit()
    return session


# ---------------------------------------------------------------------------
# Lists


def test_lists(weekly: Session) -> None:
    session = weekly
    with pytest.raises(AlreadyExists, match="exists already"):
        lists.create_list(session, "weekly")
    with pytest.raises(InvalidName):
        lists.create_list(session, "has space")
    with pytest.raises(NotFound, match=r"no list called 'nope' \(lists: single, weekly\)"):
        lists.get_list(session, "nope")
    service.add_subscriber(session, "a@example.org", "weekly")
    service.add_subscriber(session, "b@example.org", "weekly")
    service.unsubscribe(session, service.get_subscriber(session, "b@example.org").id, "weekly")
    segments.create_segment(session, "weekly", "all", {"status": "active"})
    session.commit()
    summary = {s.mailing_list.name: s for s in lists.all_lists(session)}
    assert summary["weekly"].counts == {Status.ACTIVE: 1, Status.UNSUBSCRIBED: 1}
    assert summary["single"].total == 0
    assert lists.delete_list(session, "weekly") == 2
    session.commit()
    assert session.scalar(select(func.count()).select_from(Membership)) == 0
    assert session.scalar(select(func.count()).select_from(Segment)) == 0
    assert session.scalar(select(func.count()).select_from(Subscriber)) == 2  # people stay
    assert [m.name for m in session.scalars(select(MailingList))] == ["single"]


# ---------------------------------------------------------------------------
# Adding, consent, confirming


def test_admin_add_is_active_with_consent(weekly: Session) -> None:
    added = service.add_subscriber(
        weekly,
        " Ada.Lovelace@Example.ORG ",
        "weekly",
        name="Ada",
        categories=["data and security"],
        attributes={"sector": "health", "employees": 12},
        timezone="Europe/London",
        known_categories=["Data and security", "Health"],
    )
    weekly.commit()
    sub = added.subscriber
    assert (added.created, added.joined, added.changed) == (True, True, False)
    assert sub.email == "Ada.Lovelace@example.org"
    assert sub.email_key == "ada.lovelace@example.org"
    assert sub.status is Status.ACTIVE and added.membership.status is Status.ACTIVE
    assert sub.consent_method is ConsentMethod.ADMIN and sub.consent_at is not None
    assert sub.categories == ["Data and security"]
    assert sub.attributes == {"sector": "health", "employees": "12"}
    # The same person in another case is the same subscriber; fields update.
    again = service.add_subscriber(weekly, "ADA.LOVELACE@example.org", "weekly", name="Ada L.")
    assert (again.created, again.joined, again.changed) == (False, False, True)
    assert weekly.scalar(select(func.count()).select_from(Subscriber)) == 1
    assert service.find_subscriber(weekly, "ada.lovelace@EXAMPLE.org") is sub


def test_add_refuses_bad_input_without_writing(weekly: Session) -> None:
    with pytest.raises(InvalidAddress):
        service.add_subscriber(weekly, "nope@", "weekly")
    with pytest.raises(InvalidTimezone):
        service.add_subscriber(weekly, "a@example.org", "weekly", timezone="Moon/Base")
    with pytest.raises(NotFound):
        service.add_subscriber(weekly, "a@example.org", "missing")
    assert weekly.scalar(select(func.count()).select_from(Subscriber)) == 0


def test_form_signup_on_double_opt_in_waits_for_confirm(weekly: Session) -> None:
    added = service.add_subscriber(
        weekly, "f@example.org", "weekly", method=ConsentMethod.FORM, ip="203.0.113.9"
    )
    sub = added.subscriber
    assert sub.status is Status.PENDING and added.membership.status is Status.PENDING
    assert sub.consent_ip == "203.0.113.9"
    assert emails(weekly, service.recipients(weekly, "weekly")) == []
    service.confirm(weekly, sub.id)
    weekly.commit()
    assert sub.status is Status.ACTIVE and sub.confirmed_at is not None
    assert emails(weekly, service.recipients(weekly, "weekly")) == ["f@example.org"]
    # Single opt-in lists need no confirmation.
    single = service.add_subscriber(weekly, "s@example.org", "single", method=ConsentMethod.FORM)
    assert single.membership.status is Status.ACTIVE


def test_unsubscribe_one_list_then_all(weekly: Session) -> None:
    sub = service.add_subscriber(weekly, "u@example.org", "weekly").subscriber
    service.add_subscriber(weekly, "u@example.org", "single")
    service.unsubscribe(weekly, sub.id, "weekly", reason="one-click")
    weekly.commit()
    assert sub.status is Status.ACTIVE  # still on "single"
    assert emails(weekly, service.recipients(weekly, "weekly")) == []
    assert emails(weekly, service.recipients(weekly, "single")) == ["u@example.org"]
    service.unsubscribe(weekly, sub.id, "weekly")  # again: harmless
    service.unsubscribe(weekly, sub.id)
    weekly.commit()
    weekly.refresh(sub)
    assert sub.status is Status.UNSUBSCRIBED and sub.unsubscribed_at is not None
    statuses = weekly.scalars(select(Membership.status).where(Membership.subscriber_id == sub.id))
    assert set(statuses) == {Status.UNSUBSCRIBED}
    with pytest.raises(NotFound):
        service.unsubscribe(weekly, 999_999)


def test_last_list_unsubscribe_unsubscribes_the_person(weekly: Session) -> None:
    sub = service.add_subscriber(weekly, "one@example.org", "weekly").subscriber
    service.unsubscribe(weekly, sub.id, "weekly")
    assert sub.status is Status.UNSUBSCRIBED


def test_unsubscribed_people_are_not_added_back_silently(weekly: Session) -> None:
    sub = service.add_subscriber(weekly, "u@example.org", "weekly").subscriber
    service.add_subscriber(weekly, "u@example.org", "single")
    service.unsubscribe(weekly, sub.id, "weekly")
    with pytest.raises(NotResubscribable, match="unsubscribed from 'weekly' on 20"):
        service.add_subscriber(weekly, "u@example.org", "weekly")
    service.unsubscribe(weekly, sub.id)
    with pytest.raises(NotResubscribable, match="only the reader can resubscribe by confirming"):
        service.add_subscriber(weekly, "u@example.org", "single")
    # resubscribe: an admin cannot bring them back, only ask for a confirmation email
    asked = service.add_subscriber(weekly, "u@example.org", "weekly", resubscribe=True)
    assert asked.asked and not asked.joined
    assert asked.membership is not None and asked.membership.status is Status.UNSUBSCRIBED
    assert asked.subscriber.status is Status.UNSUBSCRIBED
    assert emails(weekly, service.recipients(weekly, "weekly")) == []
    # the reader's own confirmation brings them back, on that list only
    service.confirm(weekly, sub.id, "weekly")
    assert sub.status is Status.ACTIVE and sub.unsubscribed_at is None
    assert emails(weekly, service.recipients(weekly, "weekly")) == ["u@example.org"]
    assert emails(weekly, service.recipients(weekly, "single")) == []


def test_remove_from_list(weekly: Session) -> None:
    service.add_subscriber(weekly, "r@example.org", "weekly")
    service.remove_from_list(weekly, "r@example.org", "weekly")
    weekly.commit()
    assert weekly.scalar(select(func.count()).select_from(Membership)) == 0
    with pytest.raises(NotFound, match="is not on list 'weekly'"):
        service.remove_from_list(weekly, "r@example.org", "weekly")


def test_update_subscriber(weekly: Session) -> None:
    sub = service.add_subscriber(
        weekly, "p@example.org", "weekly", attributes={"sector": "health", "region": "north"}
    ).subscriber
    assert (
        service.update_subscriber(
            weekly, sub.id, categories=[], attributes={"region": "", "role": "cio"}
        )
        is True
    )
    assert sub.attributes == {"sector": "health", "role": "cio"}
    assert service.update_subscriber(weekly, sub.id, attributes={"role": "cio"}) is False


# ---------------------------------------------------------------------------
# Suppression


@pytest.mark.parametrize(
    ("reason", "status"),
    [
        (SuppressionReason.HARD_BOUNCE, Status.BOUNCED),
        (SuppressionReason.SPAM_REPORT, Status.COMPLAINED),
        (SuppressionReason.MANUAL, Status.UNSUBSCRIBED),
        (SuppressionReason.UNSUBSCRIBED, Status.UNSUBSCRIBED),
    ],
)
def test_suppress_marks_the_subscriber(
    weekly: Session, reason: SuppressionReason, status: Status
) -> None:
    sub = service.add_subscriber(weekly, "Bounce@Example.org", "weekly").subscriber
    weekly.commit()
    service.suppress(weekly, "bounce@example.ORG", reason, "550 no such user")
    service.suppress(weekly, "BOUNCE@example.org", reason, "again")  # idempotent upsert
    weekly.commit()
    weekly.refresh(sub)
    assert sub.status is status
    assert service.is_suppressed(weekly, "bounce@EXAMPLE.org")
    entry = weekly.scalars(select(Suppression)).one()
    assert entry.email == "bounce@example.org" and entry.reason is reason
    assert entry.detail == "again"
    assert entry.email_hash == email_hash("bounce@example.org")
    assert emails(weekly, service.recipients(weekly, "weekly")) == []
    with pytest.raises(Suppressed, match="suppression list"):
        service.add_subscriber(weekly, "bounce@example.org", "single")


def test_suppression_of_unknown_or_invalid_addresses(weekly: Session) -> None:
    service.suppress(weekly, "not an address", SuppressionReason.HARD_BOUNCE)
    service.suppress(weekly, "stranger@example.org", SuppressionReason.SPAM_REPORT)
    weekly.commit()
    assert service.is_suppressed(weekly, "Stranger@example.org")
    assert service.is_suppressed(weekly, "NOT AN ADDRESS")
    assert not service.is_suppressed(weekly, "other@example.org")


def test_erased_entries_stay_erased(weekly: Session) -> None:
    privacy.forget(weekly, "gone@example.org")
    service.suppress(weekly, "gone@example.org", SuppressionReason.HARD_BOUNCE, "bounce")
    weekly.commit()
    entry = weekly.scalars(select(Suppression)).one()
    assert (entry.reason, entry.email, entry.detail) == (SuppressionReason.ERASED, None, "")


# ---------------------------------------------------------------------------
# Who gets mail


def test_recipients_and_is_sendable(weekly: Session) -> None:
    add = service.add_subscriber
    ids = {
        name: add(
            weekly, f"{name}@example.org", "weekly", attributes={"sector": sector}
        ).subscriber.id
        for name, sector in [
            ("a", "health"),
            ("b", "health"),
            ("c", "edu"),
            ("d", "health"),
            ("e", "health"),
            ("f", "health"),
        ]
    }
    add(weekly, "g@example.org", "single", attributes={"sector": "health"})  # other list
    add(weekly, "p@example.org", "weekly", method=ConsentMethod.FORM)  # pending
    service.unsubscribe(weekly, ids["b"], "weekly")
    service.suppress(weekly, "d@example.org", SuppressionReason.HARD_BOUNCE)
    # Suppressed without the subscriber being marked (e.g. added before a sync): still excluded.
    weekly.add(
        Suppression(
            email_hash=email_hash("e@example.org"),
            email="e@example.org",
            reason=SuppressionReason.MANUAL,
        )
    )
    segments.create_segment(weekly, "weekly", "health", {"attr": "sector", "equals": "health"})
    weekly.commit()

    assert emails(weekly, service.recipients(weekly, "weekly")) == [
        "a@example.org",
        "c@example.org",
        "f@example.org",
    ]
    assert emails(weekly, service.recipients(weekly, "weekly", "health")) == [
        "a@example.org",
        "f@example.org",
    ]
    assert service.count(weekly, service.recipients(weekly, "weekly")) == 3
    everyone = list(ids.values())
    assert service.is_sendable(weekly, everyone, "weekly") == {ids["a"], ids["c"], ids["f"]}
    service.unsubscribe(weekly, ids["f"], "weekly")  # mid-send
    weekly.commit()
    assert service.is_sendable(weekly, everyone, "weekly") == {ids["a"], ids["c"]}
    assert service.is_sendable(weekly, [], "weekly") == set()
    assert service.is_sendable(weekly, everyone, "no-such-list") == set()
    weekly.get(Subscriber, ids["c"]).name = "Cleo Chen"  # type: ignore[union-attr]
    weekly.commit()
    # the send loop's re-check also gives each reader's current name ("" when none)
    assert service.sendable_names(weekly, everyone, "weekly") == {
        ids["a"]: "",
        ids["c"]: "Cleo Chen",
    }
    assert service.sendable_names(weekly, [], "weekly") == {}
    with pytest.raises(NotFound, match="segments: health"):
        service.recipients(weekly, "weekly", "nope")

    by_status = {
        status: emails(
            weekly, service.members(weekly, "weekly", status=status).with_only_columns(Subscriber)
        )
        for status in ("active", "pending", "unsubscribed", "bounced")
    }
    assert by_status["pending"] == ["p@example.org"]
    assert by_status["unsubscribed"] == ["b@example.org", "f@example.org"]
    assert by_status["bounced"] == ["d@example.org"]


def test_paused_readers_get_nothing_until_the_pause_ends(weekly: Session) -> None:
    a = service.add_subscriber(weekly, "a@example.org", "weekly").subscriber.id
    b = service.add_subscriber(weekly, "b@example.org", "weekly").subscriber.id
    service.pause(weekly, b, utcnow() + timedelta(days=14))
    weekly.commit()
    assert emails(weekly, service.recipients(weekly, "weekly")) == ["a@example.org"]
    assert service.is_sendable(weekly, [a, b], "weekly") == {a}
    service.pause(weekly, b, utcnow() - timedelta(seconds=1))  # the pause is over
    weekly.commit()
    assert service.is_sendable(weekly, [a, b], "weekly") == {a, b}
    service.pause(weekly, a, utcnow() + timedelta(days=1))
    service.pause(weekly, a, None)  # resumed by hand
    weekly.commit()
    assert len(emails(weekly, service.recipients(weekly, "weekly"))) == 2
    assert service.get_by_id(weekly, a).paused_until is None

"""Personal data in the subscribers tables: describe, export (subject access), erase."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from subscribers import lists, privacy, service
from subscribers.errors import Suppressed
from subscribers.models import (
    ConsentEvent,
    ConsentMethod,
    Membership,
    Subscriber,
    Suppression,
    SuppressionReason,
)
from subscribers.validate import email_hash


@pytest.fixture
def weekly(session: Session) -> Session:
    lists.create_list(session, "weekly", description="The week")
    lists.create_list(session, "single", double_opt_in=False)
    session.commit()
    return session


# ---------------------------------------------------------------------------
# Personal data


def test_export_personal_and_forget(weekly: Session) -> None:
    sub = service.add_subscriber(
        weekly,
        "Ada@Example.org",
        "weekly",
        name="Ada",
        attributes={"sector": "health"},
        method=ConsentMethod.FORM,
        ip="198.51.100.7",
    ).subscriber
    service.add_subscriber(weekly, "ada@example.org", "single")
    weekly.commit()

    data = privacy.export_personal(weekly, "ADA@example.org")
    json.dumps(data)  # JSON-ready
    assert data["subscriber"]["email"] == "Ada@example.org"
    assert data["subscriber"]["name"] == "Ada"
    assert data["subscriber"]["attributes"] == {"sector": "health"}
    assert data["subscriber"]["consent"]["ip"] == "198.51.100.7"
    assert data["subscriber"]["consent"]["method"] == "form"
    assert [m["list"] for m in data["subscriber"]["memberships"]] == ["single", "weekly"]
    assert data["suppression"] is None
    # the consent log: how they came to be where they are
    assert [
        (line["list"], line["from"], line["to"], line["source"], line["actor"])
        for line in data["subscriber"]["consent_log"]
    ] == [
        (None, None, "pending", "form", "198.51.100.7"),
        ("weekly", None, "pending", "form", "198.51.100.7"),
        ("single", None, "active", "admin", None),
        (None, "pending", "active", "admin", None),
    ]

    result = privacy.forget(weekly, "ada@EXAMPLE.org")
    weekly.commit()
    assert result.subscriber_id == sub.id and result.memberships == 2
    assert weekly.scalar(select(func.count()).select_from(Subscriber)) == 0
    assert weekly.scalar(select(func.count()).select_from(Membership)) == 0
    assert weekly.scalar(select(func.count()).select_from(ConsentEvent)) == 0
    entry = weekly.scalars(select(Suppression)).one()
    assert entry.email is None and entry.reason is SuppressionReason.ERASED
    assert entry.email_hash == email_hash("ada@example.org")
    # Nothing readable remains anywhere in the subscribers tables.
    for table in ("subscriber", "membership", "suppression", "consent_event"):
        dump = str(weekly.execute(select(Suppression.__table__.metadata.tables[table])).all())
        assert "ada" not in dump.lower() and "198.51" not in dump

    after = privacy.export_personal(weekly, "ada@example.org")
    assert after["subscriber"] is None
    assert after["suppression"]["reason"] == "erased" and after["suppression"]["email"] is None
    with pytest.raises(Suppressed):
        service.add_subscriber(weekly, "ada@example.org", "weekly")
    again = privacy.forget(weekly, "ada@example.org")  # repeatable
    assert again.subscriber_id is None


def test_forget_turns_a_bounce_entry_into_an_erased_one(weekly: Session) -> None:
    service.add_subscriber(weekly, "b@example.org", "weekly")
    service.suppress(weekly, "b@example.org", SuppressionReason.HARD_BOUNCE, "550 b@example.org")
    privacy.forget(weekly, "b@example.org")
    weekly.commit()
    entry = weekly.scalars(select(Suppression)).one()
    assert (entry.reason, entry.email, entry.detail) == (SuppressionReason.ERASED, None, "")

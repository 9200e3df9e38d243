"""The suppression list: listing and searching entries, and lifting one (with a consent-log
line, without bringing anyone back), erased entries lifted only by their address."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from subscribers import consent, privacy, service
from subscribers.consent import By
from subscribers.errors import ConsentRefused, NotFound, NotResubscribable
from subscribers.lists import create_list
from subscribers.models import ConsentSource, Status, Suppression, SuppressionReason
from subscribers.suppression import (
    LiftRefused,
    entry_for,
    is_suppressed,
    lift,
    list_suppressions,
)

ADMIN = By(ConsentSource.ADMIN, "command line (ann)")


@pytest.fixture
def listed(session: Session) -> Session:
    create_list(session, "weekly")
    for who in ("ada@example.org", "bob@example.org", "cy@example.net"):
        service.add_subscriber(session, who, "weekly")
    service.suppress(
        session,
        "ada@example.org",
        SuppressionReason.HARD_BOUNCE,
        "hard bounce 5.1.1 smtp; 550 5.1.1 User unknown",
        by=By(ConsentSource.INBOUND, "digest inbound (lmtp)"),
    )
    service.suppress(session, "bob@example.org", SuppressionReason.SPAM_REPORT, "abuse report")
    service.suppress(session, "zed@example.com", SuppressionReason.MANUAL, "asked by phone")
    privacy.forget(session, "cy@example.net")
    session.commit()
    return session


def test_list_shows_reason_date_detail_and_the_reader(listed: Session) -> None:
    total, rows = list_suppressions(listed)
    assert total == 4
    by_label = {e.label(): e for e in rows}
    ada = by_label["ada@example.org"]
    assert ada.reason is SuppressionReason.HARD_BOUNCE and "5.1.1" in ada.detail
    assert ada.status is Status.BOUNCED and ada.subscriber_id is not None
    assert by_label["zed@example.com"].subscriber_id is None
    (erased,) = [e for e in rows if e.erased]
    assert erased.label().startswith("(erased) ") and erased.reason is SuppressionReason.ERASED


def test_search_by_address_detail_and_reason(listed: Session) -> None:
    assert [e.email for e in list_suppressions(listed, search="ADA@")[1]] == ["ada@example.org"]
    assert [e.email for e in list_suppressions(listed, search="5.1.1")[1]] == ["ada@example.org"]
    found = list_suppressions(listed, reason="spam_report")[1]
    assert [e.email for e in found] == ["bob@example.org"]
    # a whole address finds its erased entry by hash
    (erased,) = list_suppressions(listed, search="Cy@Example.net")[1]
    assert erased.erased
    assert list_suppressions(listed, search="%")[0] == 0  # LIKE wildcards are text
    total, page = list_suppressions(listed, limit=2, offset=2)
    assert total == 4 and len(page) == 2


def test_lift_notes_it_and_does_not_bring_the_reader_back(listed: Session) -> None:
    done = lift(listed, "ada@example.org", by=ADMIN, why="she fixed her mailbox")
    listed.commit()
    assert not is_suppressed(listed, "ada@example.org")
    assert done.status is Status.BOUNCED and "until they confirm" in done.next_step()
    reader = service.find_subscriber(listed, "ada@example.org")
    assert reader is not None and reader.status is Status.BOUNCED
    line = privacy.describe(listed, reader)["consent_log"][-1]
    assert line["note"] and not line["request"]
    assert (line["from"], line["to"], line["source"]) == ("bounced", "bounced", "admin")
    assert line["actor"] == "command line (ann)"
    assert line["detail"].startswith("suppression lifted (hard_bounce since ")
    assert "5.1.1" in line["detail"] and "she fixed her mailbox" in line["detail"]
    assert consent.replay(consent.history(listed, reader.id)).problems == []
    # no import or admin can put them back; only their confirmation can
    with pytest.raises(NotResubscribable):
        service.add_subscriber(listed, "ada@example.org", "weekly")


def test_a_lifted_reader_comes_back_by_confirming(listed: Session) -> None:
    lift(listed, "ada@example.org", by=ADMIN)
    reader = service.find_subscriber(listed, "ada@example.org")
    assert reader is not None
    service.add_subscriber(listed, "ada@example.org", "weekly", resubscribe=True, by=ADMIN)
    service.confirm(listed, reader.id, "weekly")
    assert reader.status is Status.ACTIVE


def test_lifting_what_is_not_there(listed: Session) -> None:
    with pytest.raises(NotFound, match=r"nobody@example\.org is not on the suppression list"):
        lift(listed, "nobody@example.org", by=ADMIN)


def test_an_address_nobody_has_is_lifted_without_a_consent_line(listed: Session) -> None:
    done = lift(listed, "zed@example.com", by=ADMIN, why="typo")
    assert done.subscriber_id is None and "may be added" in done.next_step()
    assert not is_suppressed(listed, "zed@example.com")


def test_an_erased_entry_is_lifted_only_by_its_address(listed: Session) -> None:
    (erased,) = [e for e in list_suppressions(listed)[1] if e.erased]
    with pytest.raises(LiftRefused, match="it was erased"):
        lift(listed, "someone@else.org", by=ADMIN, entry_id=erased.id)
    assert is_suppressed(listed, "cy@example.net")
    lift(listed, "CY@example.net", by=ADMIN, entry_id=erased.id)
    assert not is_suppressed(listed, "cy@example.net")
    assert listed.scalar(select(Suppression).where(Suppression.id == erased.id)) is None


def test_entry_for(listed: Session) -> None:
    entry = entry_for(listed, "Bob@Example.org")
    assert entry is not None and entry.reason is SuppressionReason.SPAM_REPORT
    assert entry_for(listed, "nobody@example.org") is None


def test_only_admins_and_the_api_note_a_lift(listed: Session) -> None:
    reader = service.find_subscriber(listed, "ada@example.org")
    assert reader is not None
    with pytest.raises(ConsentRefused, match="inbound may not lift a suppression"):
        consent.lifted(listed, reader, By(ConsentSource.INBOUND))

"""Sign-ins kept in the database: found by token, revoked one by one, everywhere, or by a
password change; expired and revoked rows are forgotten after a month."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest import signins
from digest.models import WebSession

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def test_a_token_opens_its_session_until_it_expires_or_is_revoked(session: Session) -> None:
    token = signins.start(session, "admin", "fp-1", lifetime=HOUR, ip="10.0.0.1", now=NOW)
    other = signins.start(session, "admin", "fp-1", lifetime=HOUR, now=NOW)
    session.commit()

    found = signins.find(session, token, "fp-1", now=NOW + timedelta(minutes=59))
    assert found is not None and found.account == "admin"
    assert signins.find(session, token, "fp-1", now=NOW + HOUR) is None  # expired
    assert signins.find(session, token, "fp-2", now=NOW) is None  # the password changed
    assert signins.find(session, token + "x", "fp-1", now=NOW) is None
    assert signins.find(session, "", "fp-1", now=NOW) is None
    assert signins.active(session, "admin", now=NOW) == 2

    assert signins.revoke(session, token, now=NOW) is True
    assert signins.revoke(session, token, now=NOW) is False  # once
    assert signins.find(session, token, "fp-1", now=NOW) is None
    assert signins.find(session, other, "fp-1", now=NOW) is not None


def test_last_seen_is_written_at_most_once_a_minute(session: Session) -> None:
    token = signins.start(session, "admin", "fp", lifetime=HOUR, now=NOW)
    session.commit()

    signins.find(session, token, "fp", now=NOW + timedelta(seconds=30))
    row = session.scalars(select(WebSession)).one()
    assert row.last_seen_at == NOW
    signins.find(session, token, "fp", now=NOW + timedelta(seconds=90))
    assert row.last_seen_at == NOW + timedelta(seconds=90)


def test_everywhere_and_stale_credentials_revoke_one_account_only(session: Session) -> None:
    old = signins.start(session, "admin", "old-password", lifetime=HOUR, now=NOW)
    new = [signins.start(session, "admin", "new", lifetime=HOUR, now=NOW) for _ in range(2)]
    theirs = signins.start(session, "ann@example.org", "hers", lifetime=HOUR, now=NOW)

    assert signins.revoke_stale(session, "admin", "new", now=NOW) == 1
    assert signins.find(session, old, "old-password", now=NOW) is None
    assert signins.revoke_all(session, "admin", now=NOW) == 2
    assert all(signins.find(session, t, "new", now=NOW) is None for t in new)
    assert signins.find(session, theirs, "hers", now=NOW) is not None


def test_old_rows_are_forgotten_a_month_on(session: Session) -> None:
    token = signins.start(session, "admin", "fp", lifetime=HOUR, now=NOW)
    signins.revoke(session, token, now=NOW)
    signins.start(session, "admin", "fp", lifetime=HOUR, now=NOW + timedelta(days=20))
    assert session.scalar(select(func.count()).select_from(WebSession)) == 2
    signins.start(session, "admin", "fp", lifetime=HOUR, now=NOW + timedelta(days=31))
    assert session.scalar(select(func.count()).select_from(WebSession)) == 2

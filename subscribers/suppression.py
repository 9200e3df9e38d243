"""The suppression list: addresses never to be mailed, whatever their subscriptions say.

Entries are matched by :func:`subscribers.validate.email_hash` of the address key.
For bounces, spam reports and manual entries the key itself is kept in
``Suppression.email`` too (admins can read it, and the recipients query joins on
it); an erased address keeps only its hash.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import Table, case, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from subscribers import consent
from subscribers.db import in_values, utcnow
from subscribers.models import ConsentSource, Subscriber, Suppression, SuppressionReason
from subscribers.validate import email_hash, lookup_key


def suppress(
    session: Session,
    email: str,
    reason: SuppressionReason,
    detail: str = "",
    *,
    by: consent.By | None = None,
) -> None:
    """Put ``email`` on the suppression list (or update its entry) and mark its subscriber
    bounced, complained or unsubscribed accordingly (through :mod:`subscribers.consent`,
    as ``by``: an admin unless said otherwise).  Safe to call concurrently and again."""
    reason = SuppressionReason(reason)
    key = lookup_key(email)
    values: dict[str, Any] = {
        "email_hash": email_hash(key),
        "email": None if reason is SuppressionReason.ERASED else key,
        "reason": reason,
        "detail": detail,
        "created_at": utcnow(),
    }
    upsert_suppression(session, values)
    subscriber = session.scalars(select(Subscriber).where(Subscriber.email_key == key)).first()
    if subscriber is not None:
        cause = by or consent.By(ConsentSource.ADMIN)
        if not cause.detail:
            cause = consent.By(cause.source, cause.actor, detail or reason.value)
        consent.suppressed(session, subscriber, reason, cause)


def upsert_suppression(session: Session, values: dict[str, Any]) -> None:
    """Insert or update one suppression row (keyed by ``email_hash``) in one statement."""
    table = cast(Table, Suppression.__table__)
    dialect = session.get_bind().dialect.name
    stmt: Any
    if dialect == "postgresql":
        stmt = postgresql.insert(table).values(values)
    elif dialect == "sqlite":
        stmt = sqlite.insert(table).values(values)
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise NotImplementedError(dialect)
    excluded = stmt.excluded
    # An erased entry stays erased: a later bounce report must not bring the address back.
    still_erased = table.c.reason == SuppressionReason.ERASED
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.email_hash],
        set_={
            "reason": case((still_erased, table.c.reason), else_=excluded.reason),
            "email": case((still_erased, None), else_=excluded.email),
            "detail": case((still_erased, table.c.detail), else_=excluded.detail),
        },
    )
    session.execute(stmt)


def is_suppressed(session: Session, email: str) -> bool:
    """Whether ``email`` is on the suppression list."""
    return suppression_for(session, email) is not None


def suppression_for(session: Session, email: str) -> Suppression | None:
    """The suppression entry of ``email``, if any."""
    digest = email_hash(lookup_key(email))
    return session.scalars(select(Suppression).where(Suppression.email_hash == digest)).first()


def suppressed_hashes(session: Session, hashes: Iterable[str]) -> dict[str, SuppressionReason]:
    """Which of ``hashes`` are suppressed, with their reason (one query per call)."""
    wanted = list(hashes)
    if not wanted:
        return {}
    rows = session.execute(
        select(Suppression.email_hash, Suppression.reason).where(
            in_values(session, Suppression.email_hash, wanted)
        )
    )
    return {h: SuppressionReason(r) for h, r in rows}


__all__ = [
    "is_suppressed",
    "suppress",
    "suppressed_hashes",
    "suppression_for",
    "upsert_suppression",
]

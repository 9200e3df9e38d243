"""The suppression list: addresses never to be mailed, whatever their subscriptions say.

Entries are matched by :func:`subscribers.validate.email_hash` of the address key.
For bounces, spam reports and manual entries the key itself is kept in
``Suppression.email`` too (admins can read it, and the recipients query joins on
it); an erased address keeps only its hash.

Admins list and search the entries (:func:`list_suppressions`) and may lift one
(:func:`lift`): the entry is deleted and the reader's consent log gets a line saying
who lifted it, when and why.  Lifting brings no one back: a bounced, complained or
unsubscribed reader stays so, and gets mail again only once they confirm (a
confirmation email asked for with ``digest subscribers add … --resubscribe`` or the
sign-up form).  An erased entry keeps only a hash, so it is lifted only by someone who
types the address it was made from.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Select, Table, case, delete, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from subscribers import consent
from subscribers.db import in_values, utcnow
from subscribers.errors import NotFound, SubscribersError
from subscribers.models import (
    ConsentSource,
    Status,
    Subscriber,
    Suppression,
    SuppressionReason,
)
from subscribers.validate import email_hash, lookup_key

log = logging.getLogger("subscribers")


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


# ---------------------------------------------------------------------------
# Listing and lifting


class LiftRefused(SubscribersError):
    """A lift that cannot be done as asked (an erased entry without its address)."""


@dataclass(frozen=True)
class Entry:
    """One suppression entry, as admins see it."""

    id: int
    #: The address, or None for an erased entry (only its hash is kept).
    email: str | None
    email_hash: str
    reason: SuppressionReason
    detail: str
    since: datetime
    #: The reader with this address, if there is one, and their status.
    subscriber_id: int | None = None
    status: Status | None = None

    @property
    def erased(self) -> bool:
        return self.email is None

    def label(self) -> str:
        """The address, or ``(erased) 1a2b3c4d…`` for an erased entry."""
        return self.email or f"(erased) {self.email_hash[:12]}…"


def _search(
    session: Session, reason: SuppressionReason | str | None, search: str
) -> Select[*tuple[Any, ...]]:
    """(Suppression, subscriber id, subscriber status) rows."""
    stmt: Select[*tuple[Any, ...]] = select(Suppression, Subscriber.id, Subscriber.status)
    stmt = stmt.outerjoin(Subscriber, Subscriber.email_key == Suppression.email)
    if reason:
        stmt = stmt.where(Suppression.reason == SuppressionReason(reason))
    text = search.strip()
    if text:
        conditions = [
            Suppression.email.contains(text.lower(), autoescape=True),
            Suppression.detail.contains(text, autoescape=True),
        ]
        if "@" in text:  # a whole address also finds its erased (hashed) entry
            conditions.append(Suppression.email_hash == email_hash(lookup_key(text)))
        stmt = stmt.where(or_(*conditions))
    return stmt


def list_suppressions(
    session: Session,
    *,
    reason: SuppressionReason | str | None = None,
    search: str = "",
    limit: int | None = 50,
    offset: int = 0,
) -> tuple[int, list[Entry]]:
    """(how many entries match, the ``limit`` newest of them from ``offset``).

    ``search`` finds entries whose address or detail contains it (a bounce's status
    code, say); a whole address also finds the erased entry made from it."""
    stmt = _search(session, reason, search)
    total = int(session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
    page = stmt.order_by(Suppression.created_at.desc(), Suppression.id.desc()).offset(offset)
    if limit is not None:
        page = page.limit(limit)
    rows = [
        Entry(
            id=entry.id,
            email=entry.email,
            email_hash=entry.email_hash,
            reason=SuppressionReason(entry.reason),
            detail=entry.detail or "",
            since=entry.created_at,
            subscriber_id=subscriber_id,
            status=Status(status) if status else None,
        )
        for entry, subscriber_id, status in session.execute(page)
    ]
    return total, rows


def get_entry(session: Session, entry_id: int) -> Entry:
    """One entry by id (:class:`NotFound` when there is none)."""
    found = session.execute(_search(session, None, "").where(Suppression.id == entry_id)).first()
    if found is None:
        raise NotFound(f"no suppression entry with id {entry_id}; it may have been lifted")
    entry, subscriber_id, status = found
    return Entry(
        entry.id,
        entry.email,
        entry.email_hash,
        SuppressionReason(entry.reason),
        entry.detail or "",
        entry.created_at,
        subscriber_id,
        Status(status) if status else None,
    )


def entry_for(session: Session, email: str) -> Entry | None:
    """The entry of ``email`` as admins see it, if it is suppressed."""
    found = suppression_for(session, email)
    return get_entry(session, found.id) if found is not None else None


@dataclass(frozen=True)
class Lifted:
    """What :func:`lift` did."""

    entry: Entry
    #: The reader with the address (None: nobody has it; an erased entry has no reader).
    subscriber_id: int | None
    #: Their status, which lifting did not change.
    status: Status | None

    def next_step(self) -> str:
        """What the admin should know now, in one sentence."""
        if self.subscriber_id is None:
            return (
                "no reader has this address; it may be added or imported again, and a "
                "sign-up on the form works again"
            )
        status = self.status.value if self.status else "unknown"
        if self.status is Status.ACTIVE:
            return f"they are {status} and get mail again from the next send"
        return (
            f"they stay {status} and get no mail until they confirm: send a confirmation "
            "email with `digest subscribers add ADDRESS --list LIST --resubscribe`, or they "
            "sign up again on the form"
        )


def lift(
    session: Session,
    email: str,
    *,
    by: consent.By,
    why: str = "",
    entry_id: int | None = None,
) -> Lifted:
    """Take ``email`` off the suppression list, and note who did it, when and why in the
    reader's consent log (when someone has the address).  The reader's status does not
    change.  With ``entry_id``, that entry must be the one ``email`` hashes to (how an
    erased entry is lifted: by typing the address it was made from)."""
    key = lookup_key(email)
    digest = email_hash(key)
    if entry_id is not None:
        entry = get_entry(session, entry_id)
        if entry.email_hash != digest:
            raise LiftRefused(
                f"the address typed is not the one suppression entry {entry_id} was made from"
                + (" (it was erased: only its hash is kept)" if entry.erased else "")
            )
    else:
        found = session.scalars(select(Suppression.id).where(Suppression.email_hash == digest))
        entry_ids = found.all()
        if not entry_ids:
            raise NotFound(f"{email.strip()} is not on the suppression list")
        entry = get_entry(session, entry_ids[0])
    session.execute(delete(Suppression).where(Suppression.id == entry.id))
    subscriber = session.scalars(select(Subscriber).where(Subscriber.email_key == key)).first()
    if subscriber is not None:
        since = f"{entry.since:%Y-%m-%d}"
        was = f"{entry.reason.value} since {since}" + (f": {entry.detail}" if entry.detail else "")
        note = f"suppression lifted ({was})"
        note = f"{note}; {why.strip()}" if why.strip() else note
        detail = f"{note}; stays {Status(subscriber.status).value} until they confirm"
        consent.lifted(session, subscriber, consent.By(by.source, by.actor, detail))
    session.flush()
    log.info(
        "suppression entry %s (%s) lifted by %s%s",
        entry.id,
        entry.reason.value,
        by.actor or by.source.value,
        f": {why.strip()}" if why.strip() else "",
    )
    return Lifted(
        entry,
        subscriber.id if subscriber is not None else None,
        Status(subscriber.status) if subscriber is not None else None,
    )


def reasons() -> Sequence[str]:
    return [r.value for r in SuppressionReason]


__all__ = [
    "Entry",
    "LiftRefused",
    "Lifted",
    "entry_for",
    "get_entry",
    "is_suppressed",
    "lift",
    "list_suppressions",
    "reasons",
    "suppress",
    "suppressed_hashes",
    "suppression_for",
    "upsert_suppression",
]

"""The consent log: writing its lines, reading a reader's history, and replaying it.

Only :mod:`subscribers.consent` writes lines (one per change, one per request for a
confirmation email, one per suppression lifted); erasing a reader deletes theirs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from subscribers.consent.machine import GONE, Level, State, allowed
from subscribers.db import utcnow
from subscribers.models import ConsentEvent, ConsentSource, MailingList, Status

#: Longest ``detail`` kept (provider reasons can be long).
DETAIL_MAX = 500
ACTOR_MAX = 200


@dataclass(frozen=True)
class By:
    """Who causes a change: the source, for web and admin actions the client's IP
    address or the admin (``actor``), and a short note for the log (``detail``)."""

    source: ConsentSource
    actor: str | None = None
    detail: str = ""


def record(
    session: Session,
    subscriber_id: int,
    mlist: MailingList | None,
    old: Status | None,
    new: Status | None,
    by: By,
    *,
    at: datetime | None = None,
) -> ConsentEvent:
    """Write one line (the caller has checked the change against the machine)."""
    line = ConsentEvent(
        at=at or utcnow(),
        subscriber_id=subscriber_id,
        list_id=mlist.id if mlist is not None else None,
        list_name=mlist.name if mlist is not None else None,
        from_status=old,
        to_status=new,
        source=by.source,
        actor=by.actor[:ACTOR_MAX] if by.actor else None,
        detail=(by.detail or "")[:DETAIL_MAX],
    )
    session.add(line)
    return line


def line_values(
    mlist: MailingList | None, old: Status | None, new: Status | None, by: By, at: datetime
) -> dict[str, Any]:
    """The columns of a line but its subscriber, for bulk inserts."""
    return {
        "at": at,
        "list_id": mlist.id if mlist is not None else None,
        "list_name": mlist.name if mlist is not None else None,
        "from_status": old,
        "to_status": new,
        "source": by.source,
        "actor": by.actor[:ACTOR_MAX] if by.actor else None,
        "detail": (by.detail or "")[:DETAIL_MAX],
    }


def history(session: Session, subscriber_id: int) -> Sequence[ConsentEvent]:
    """A reader's lines, oldest first."""
    return session.scalars(
        select(ConsentEvent)
        .where(ConsentEvent.subscriber_id == subscriber_id)
        .order_by(ConsentEvent.id)
    ).all()


def is_request(line: ConsentEvent) -> bool:
    """A line that changed nothing on a list: a request for a confirmation email."""
    return line.from_status == line.to_status and line.list_name is not None


def is_note(line: ConsentEvent) -> bool:
    """A line that changed nothing of the reader's own: a note (a suppression lifted)."""
    return line.from_status == line.to_status and line.list_name is None


@dataclass(frozen=True)
class Replayed:
    """What a reader's log says their statuses are, and any line that does not follow."""

    reader: Status | None
    #: list name → status (None: not on the list)
    memberships: dict[str, Status | None]
    problems: list[str]


def replay(lines: Sequence[ConsentEvent]) -> Replayed:
    """Follow a reader's lines from nothing: each line must start where the last one
    ended and be a change the machine allows.  Lines of a deleted list are skipped
    (the list, and so its memberships, is gone)."""
    reader: Status | None = None
    members: dict[str, Status | None] = {}
    problems: list[str] = []
    for line in lines:
        if line.list_name is None:
            level, before = Level.READER, reader
        elif line.list_id is None:
            continue  # the list was deleted since
        else:
            level, before = Level.MEMBERSHIP, members.get(line.list_name)
        old, new = line.from_status, line.to_status
        if old != before:
            problems.append(
                f"line {line.id}: {level.value} {line.list_name or ''} was "
                f"{State.of(before).value}, the line starts from {State.of(old).value}"
            )
        target = State.of(new)
        if line.source is not ConsentSource.MIGRATION and not allowed(
            level, State.of(old), target, line.source
        ):
            problems.append(
                f"line {line.id}: {line.source.value} may not move a {level.value} "
                f"from {State.of(old).value} to {target.value}"
            )
        if level is Level.READER:
            reader = new
        else:
            members[line.list_name or ""] = new
    return Replayed(reader, members, problems)


def asked_since_leaving(session: Session, subscriber_id: int, mlist: MailingList) -> bool:
    """Whether a confirmation email for ``mlist`` was asked for (by the reader on the
    form, or by an admin) after the reader last left that list or everything."""
    left = session.scalar(
        select(func.max(ConsentEvent.id)).where(
            ConsentEvent.subscriber_id == subscriber_id,
            or_(ConsentEvent.list_id == mlist.id, ConsentEvent.list_name.is_(None)),
            ConsentEvent.to_status.in_(GONE),
            or_(
                ConsentEvent.from_status.is_(None),
                ConsentEvent.from_status != ConsentEvent.to_status,
            ),
        )
    )
    asked = session.scalar(
        select(func.max(ConsentEvent.id)).where(
            ConsentEvent.subscriber_id == subscriber_id,
            ConsentEvent.list_id == mlist.id,
            or_(
                and_(ConsentEvent.from_status.is_(None), ConsentEvent.to_status.is_(None)),
                ConsentEvent.from_status == ConsentEvent.to_status,
            ),
        )
    )
    return asked is not None and (left is None or asked > left)


def left_on(
    session: Session, subscriber_ids: Sequence[int], mlist: MailingList | None = None
) -> dict[int, datetime]:
    """When each of ``subscriber_ids`` last became unsubscribed, bounced or complained
    (as a reader, or on ``mlist``); readers with no such line are left out."""
    if not subscriber_ids:
        return {}
    where: list[ColumnElement[bool]] = [ConsentEvent.list_name.is_(None)]
    if mlist is not None:
        where.append(ConsentEvent.list_id == mlist.id)
    rows = session.execute(
        select(ConsentEvent.subscriber_id, func.max(ConsentEvent.at))
        .where(
            ConsentEvent.subscriber_id.in_(list(subscriber_ids)),
            or_(*where),
            ConsentEvent.to_status.in_(GONE),
        )
        .group_by(ConsentEvent.subscriber_id)
    )
    return {sid: at for sid, at in rows}


__all__ = [
    "By",
    "Replayed",
    "asked_since_leaving",
    "history",
    "is_note",
    "is_request",
    "left_on",
    "line_values",
    "record",
    "replay",
]

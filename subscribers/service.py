"""Subscribers: add, confirm, update, unsubscribe, remove, find; who receives a send;
erasure and personal-data export.

Statuses, and who gets mail:

* ``Subscriber.status`` is the person's own state: ``pending`` (has confirmed nothing
  yet), ``active``, ``unsubscribed`` (from everything), ``bounced``, ``complained``.
* ``Membership.status`` is their state on one list: ``pending`` (double opt-in not
  confirmed), ``active``, ``unsubscribed``.
* A *recipient* of a list is an active member who is an active subscriber and is not
  on the suppression list (see :func:`recipients`).

Consent: a form signup on a double opt-in list waits (pending) for its confirm link;
an admin add or an import is the admin asserting the person agreed, so it is active at
once and recorded with method ``admin`` or ``import``.  Nobody who unsubscribed,
bounced or complained is added back silently (``resubscribe=True`` is the admin saying
they asked to come back); a suppressed address is never added.

Nothing here commits: the caller owns the transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from subscribers.db import in_values, rowcount, utcnow
from subscribers.errors import NotFound, NotResubscribable, Suppressed
from subscribers.lists import find_list, get_list
from subscribers.models import (
    ConsentMethod,
    MailingList,
    Membership,
    Status,
    Subscriber,
    Suppression,
    SuppressionReason,
)
from subscribers.segments import compile_rule, get_segment
from subscribers.suppression import (
    is_suppressed,
    suppress,
    suppression_for,
    upsert_suppression,
)
from subscribers.validate import (
    check_timezone,
    clean_attributes,
    clean_categories,
    email_hash,
    lookup_key,
    merge_attributes,
    normalise,
)

log = logging.getLogger("subscribers")

#: Subscriber states that stop mail for good (until the person asks again).
GONE = (Status.UNSUBSCRIBED, Status.BOUNCED, Status.COMPLAINED)


@dataclass(frozen=True)
class Added:
    """What :func:`add_subscriber` did."""

    subscriber: Subscriber
    membership: Membership
    created: bool  # a new subscriber row
    joined: bool  # newly on this list (or back on it)
    changed: bool  # name, categories, attributes or timezone changed


# ---------------------------------------------------------------------------
# Finding people


def find_subscriber(session: Session, email: str) -> Subscriber | None:
    """The subscriber with this address (any case), or None."""
    key = lookup_key(email)
    return session.scalars(select(Subscriber).where(Subscriber.email_key == key)).first()


def get_subscriber(session: Session, email: str) -> Subscriber:
    subscriber = find_subscriber(session, email)
    if subscriber is None:
        raise NotFound(
            f"no subscriber with address {email!r}; add one with "
            f"`digest subscribers add {email} --list LIST`"
        )
    return subscriber


def get_by_id(session: Session, subscriber_id: int) -> Subscriber:
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        raise NotFound(f"no subscriber with id {subscriber_id}")
    return subscriber


def membership(session: Session, subscriber_id: int, list_id: int) -> Membership | None:
    return session.get(Membership, (subscriber_id, list_id))


# ---------------------------------------------------------------------------
# Adding and changing


def add_subscriber(
    session: Session,
    email: str,
    list_name: str,
    *,
    name: str | None = None,
    categories: Sequence[str] | None = None,
    attributes: Mapping[str, Any] | None = None,
    timezone: str | None = None,
    method: ConsentMethod = ConsentMethod.ADMIN,
    ip: str | None = None,
    resubscribe: bool = False,
    known_categories: Collection[str] | None = None,
) -> Added:
    """Put ``email`` on ``list_name`` (creating the subscriber if new) and update the
    fields given.  A form signup on a double opt-in list is pending until confirmed;
    admin adds and imports are active at once."""
    address = normalise(email)
    key = address.lower()
    mlist = get_list(session, list_name)
    entry = suppression_for(session, key)
    if entry is not None:
        raise Suppressed(
            f"{address} is on the suppression list ({entry.reason.value}, since "
            f"{entry.created_at:%Y-%m-%d}); it cannot be subscribed again"
        )
    cats = clean_categories(categories, known_categories) if categories is not None else None
    attrs = clean_attributes(attributes) if attributes else {}
    zone = check_timezone(timezone) if timezone else None
    now = utcnow()
    wants_confirm = method is ConsentMethod.FORM and mlist.double_opt_in

    subscriber = session.scalars(select(Subscriber).where(Subscriber.email_key == key)).first()
    created = subscriber is None
    if subscriber is None:
        subscriber = Subscriber(
            email=address,
            email_key=key,
            name=(name or "").strip(),
            status=Status.PENDING if wants_confirm else Status.ACTIVE,
            attributes=merge_attributes({}, attrs),
            categories=cats or [],
            timezone=zone,
            created_at=now,
            consent_method=method,
            consent_at=now,
            consent_ip=ip,
        )
        session.add(subscriber)
        session.flush()
    elif subscriber.status in GONE:
        if not resubscribe or subscriber.status is not Status.UNSUBSCRIBED:
            raise NotResubscribable(_gone_message(subscriber))
        _fresh_consent(subscriber, method, ip, now)
        subscriber.status = Status.PENDING if wants_confirm else Status.ACTIVE
        subscriber.unsubscribed_at = None

    member = membership(session, subscriber.id, mlist.id)
    joined = member is None or member.status is Status.UNSUBSCRIBED
    if member is not None and member.status is Status.UNSUBSCRIBED and not resubscribe:
        raise NotResubscribable(
            f"{address} unsubscribed from {list_name!r} on {member.updated_at:%Y-%m-%d}; "
            "add them back only if they asked to (pass resubscribe / --resubscribe)"
        )
    target = Status.PENDING if wants_confirm else Status.ACTIVE
    if member is None:
        member = Membership(
            subscriber_id=subscriber.id, list_id=mlist.id, status=target, created_at=now
        )
        session.add(member)
    elif member.status is not Status.ACTIVE:
        member.status = target
        member.updated_at = now
    if not created and target is Status.ACTIVE and subscriber.status is Status.PENDING:
        subscriber.status = Status.ACTIVE
    if not created and (joined or resubscribe) and subscriber.consent_method is None:
        _fresh_consent(subscriber, method, ip, now)

    changed = False
    if not created:
        changed = _apply(subscriber, name=name, categories=cats, attributes=attrs, timezone=zone)
    session.flush()
    return Added(subscriber, member, created, joined or created, changed)


def _fresh_consent(
    subscriber: Subscriber, method: ConsentMethod, ip: str | None, now: datetime
) -> None:
    subscriber.consent_method = method
    subscriber.consent_at = now
    subscriber.consent_ip = ip


def _gone_message(subscriber: Subscriber) -> str:
    what = {
        Status.UNSUBSCRIBED: "unsubscribed",
        Status.BOUNCED: "bounced (the address does not accept mail)",
        Status.COMPLAINED: "reported our mail as spam",
    }[subscriber.status]
    hint = (
        "add them back only if they asked to (pass resubscribe / --resubscribe)"
        if subscriber.status is Status.UNSUBSCRIBED
        else "they cannot be subscribed again"
    )
    return f"{subscriber.email} {what}; {hint}"


def _apply(
    subscriber: Subscriber,
    *,
    name: str | None,
    categories: list[str] | None,
    attributes: Mapping[str, str | None],
    timezone: str | None,
) -> bool:
    changed = False
    if name is not None and name.strip() != subscriber.name:
        subscriber.name = name.strip()
        changed = True
    if categories is not None and categories != list(subscriber.categories or []):
        subscriber.categories = categories
        changed = True
    if attributes:
        merged = merge_attributes(subscriber.attributes or {}, attributes)
        if merged != (subscriber.attributes or {}):
            subscriber.attributes = merged
            changed = True
    if timezone is not None and timezone != subscriber.timezone:
        subscriber.timezone = timezone
        changed = True
    return changed


def update_subscriber(
    session: Session,
    subscriber_id: int,
    *,
    name: str | None = None,
    categories: Sequence[str] | None = None,
    attributes: Mapping[str, Any] | None = None,
    timezone: str | None = None,
    known_categories: Collection[str] | None = None,
) -> bool:
    """Change the fields given (attributes merge; an empty value removes one).  An empty
    ``categories`` list means "all categories".  Returns whether anything changed."""
    subscriber = get_by_id(session, subscriber_id)
    changed = _apply(
        subscriber,
        name=name,
        categories=clean_categories(categories, known_categories)
        if categories is not None
        else None,
        attributes=clean_attributes(attributes) if attributes else {},
        timezone=check_timezone(timezone) if timezone else None,
    )
    session.flush()
    return changed


def confirm(session: Session, subscriber_id: int, list_name: str | None = None) -> Subscriber:
    """A confirm link was followed: pending memberships (of one list or all) become active."""
    subscriber = get_by_id(session, subscriber_id)
    if subscriber.status in GONE:
        raise NotResubscribable(_gone_message(subscriber))
    now = utcnow()
    stmt = update(Membership).where(
        Membership.subscriber_id == subscriber.id, Membership.status == Status.PENDING
    )
    if list_name is not None:
        stmt = stmt.where(Membership.list_id == get_list(session, list_name).id)
    session.execute(stmt.values(status=Status.ACTIVE, updated_at=now))
    if subscriber.status is Status.PENDING:
        subscriber.status = Status.ACTIVE
    subscriber.confirmed_at = subscriber.confirmed_at or now
    session.flush()
    return subscriber


def unsubscribe(
    session: Session, subscriber_id: int, list_name: str | None = None, *, reason: str = ""
) -> None:
    """Unsubscribe from one list, or from all of them (``list_name=None``).  Safe to repeat.

    Leaving the last list one was on makes the subscriber unsubscribed as a whole.
    The reason is logged (the schema keeps no column for it).
    """
    subscriber = get_by_id(session, subscriber_id)
    now = utcnow()
    live = Membership.status.in_([Status.ACTIVE, Status.PENDING])
    stmt = update(Membership).where(Membership.subscriber_id == subscriber.id, live)
    if list_name is not None:
        stmt = stmt.where(Membership.list_id == get_list(session, list_name).id)
    session.execute(stmt.values(status=Status.UNSUBSCRIBED, updated_at=now))
    remaining = session.scalar(
        select(func.count())
        .select_from(Membership)
        .where(Membership.subscriber_id == subscriber.id, live)
    )
    if not remaining and subscriber.status in (Status.ACTIVE, Status.PENDING):
        subscriber.status = Status.UNSUBSCRIBED
        subscriber.unsubscribed_at = now
    session.flush()
    log.info(
        "subscriber %s unsubscribed from %s%s",
        subscriber.id,
        repr(list_name) if list_name else "all lists",
        f" ({reason})" if reason else "",
    )


def remove_from_list(session: Session, email: str, list_name: str) -> None:
    """Take ``email`` off ``list_name`` entirely (the membership is deleted, not marked
    unsubscribed: a later import may add them again)."""
    subscriber = get_subscriber(session, email)
    mlist = get_list(session, list_name)
    gone = rowcount(
        session.execute(
            delete(Membership).where(
                Membership.subscriber_id == subscriber.id, Membership.list_id == mlist.id
            )
        )
    )
    if not gone:
        raise NotFound(f"{subscriber.email} is not on list {list_name!r}")
    session.expire(subscriber, ["memberships"])


# ---------------------------------------------------------------------------
# Who gets mail


def not_suppressed(session: Session) -> ColumnElement[bool]:
    """Filter: the subscriber's address is not on the suppression list.

    PostgreSQL plans ``NOT EXISTS`` as a hash or index anti-join.  SQLite runs it as
    one probe per row, which needs the index on ``suppression.email``; ``NOT IN``
    (subquery) is materialised once instead, so it stays fast even without it.
    """
    if session.get_bind().dialect.name == "postgresql":
        return ~exists().where(Suppression.email == Subscriber.email_key)
    listed = select(Suppression.email).where(Suppression.email.is_not(None))
    return Subscriber.email_key.not_in(listed)


def effective_status() -> ColumnElement[str]:
    """A subscriber's status on the joined list: their own status unless it is active,
    then their membership's (so bounced people show as bounced everywhere)."""
    return case((Subscriber.status == Status.ACTIVE, Membership.status), else_=Subscriber.status)


def not_paused(now: datetime | None = None) -> ColumnElement[bool]:
    """Filter: the reader has not paused their mail (or the pause is over)."""
    return or_(Subscriber.paused_until.is_(None), Subscriber.paused_until <= (now or utcnow()))


def pause(session: Session, subscriber_id: int, until: datetime | None) -> None:
    """Pause a reader's mail until ``until`` (None resumes it now)."""
    get_by_id(session, subscriber_id).paused_until = until


def recipients(session: Session, list_name: str, segment: str | None = None) -> Select[Subscriber]:
    """Who a send to ``list_name`` (and ``segment``) goes to: active members who are
    active subscribers, not suppressed, not paused, matching the segment rule; ordered by id.

    A query, not a list: stream it (``yield_per``) or page it by ``Subscriber.id``.
    """
    mlist = get_list(session, list_name)
    stmt = (
        select(Subscriber)
        .join(
            Membership,
            and_(Membership.subscriber_id == Subscriber.id, Membership.list_id == mlist.id),
        )
        .where(
            Membership.status == Status.ACTIVE,
            Subscriber.status == Status.ACTIVE,
            not_suppressed(session),
            not_paused(),
        )
        .order_by(Subscriber.id)
    )
    if segment is not None:
        stmt = stmt.where(compile_rule(get_segment(session, list_name, segment).rule))
    return stmt


def is_sendable(session: Session, subscriber_ids: Sequence[int], list_name: str) -> set[int]:
    """Which of ``subscriber_ids`` may still be mailed on ``list_name`` right now
    (one query: active member, active subscriber, not suppressed, not paused)."""
    return set(sendable_names(session, subscriber_ids, list_name))


def sendable_names(
    session: Session, subscriber_ids: Sequence[int], list_name: str
) -> dict[int, str]:
    """``{id: name}`` for those of ``subscriber_ids`` that may still be mailed on
    ``list_name`` right now (see :func:`is_sendable`): the send loop's re-check,
    which also gives each reader's current name for the greeting.

    On PostgreSQL the ids drive the query (``unnest`` of one array parameter) and
    reach both tables through their primary keys, so it stays about a thousand
    index lookups whatever the planner knows: a join through the list's name was
    planned as a hash of every membership (25 ms a batch at 100,000 readers), and
    ``id IN (…)`` on tables without statistics yet (right after a bulk import) as
    a loop over every member, minutes a batch.
    """
    ids = list(subscriber_ids)
    if not ids:
        return {}
    if session.get_bind().dialect.name == "postgresql":
        mlist = find_list(session, list_name)
        if mlist is None:
            return {}
        wanted = (
            func.unnest(bindparam(None, ids, type_=ARRAY(Integer)))
            .table_valued("id")
            .render_derived(name="wanted")
        )
        stmt = (
            select(Subscriber.id, Subscriber.name)
            .select_from(wanted)
            .join(Subscriber, Subscriber.id == wanted.c.id)
            .join(
                Membership,
                and_(Membership.subscriber_id == wanted.c.id, Membership.list_id == mlist.id),
            )
            .where(in_values(session, Membership.subscriber_id, ids))
        )
    else:
        stmt = (
            select(Subscriber.id, Subscriber.name)
            .join(Membership, Membership.subscriber_id == Subscriber.id)
            .join(MailingList, MailingList.id == Membership.list_id)
            .where(MailingList.name == list_name, Subscriber.id.in_(ids))
        )
    stmt = stmt.where(
        Membership.status == Status.ACTIVE,
        Subscriber.status == Status.ACTIVE,
        not_suppressed(session),
        not_paused(),
    )
    return {sid: name or "" for sid, name in session.execute(stmt)}


def members(
    session: Session,
    list_name: str,
    *,
    segment: str | None = None,
    status: Status | str | None = None,
) -> Select[Subscriber, Membership]:
    """Everyone on ``list_name`` whatever their status (filter by segment and by
    :func:`effective_status`), with their membership, ordered by id."""
    mlist = get_list(session, list_name)
    stmt = (
        select(Subscriber, Membership)
        .join(
            Membership,
            and_(Membership.subscriber_id == Subscriber.id, Membership.list_id == mlist.id),
        )
        .order_by(Subscriber.id)
    )
    if status is not None:
        stmt = stmt.where(effective_status() == Status(status).value)
    if segment is not None:
        stmt = stmt.where(compile_rule(get_segment(session, list_name, segment).rule))
    return stmt


def search(
    session: Session,
    list_name: str | None = None,
    *,
    segment: str | None = None,
    status: Status | str | None = None,
    query: str = "",
) -> Select[*tuple[Any, ...]]:
    """Subscribers whose address or name holds ``query``, ordered by id: the members of
    ``list_name`` (rows of subscriber and membership, filtered by segment and by
    :func:`effective_status`), or everyone (rows of one subscriber, by their own status).
    Read each row's status with :func:`shown_status`."""
    stmt: Select[*tuple[Any, ...]]
    if list_name:
        stmt = members(session, list_name, segment=segment, status=status)
    else:
        stmt = select(Subscriber).order_by(Subscriber.id)
        if status:
            stmt = stmt.where(Subscriber.status == Status(status))
    if query:
        stmt = stmt.where(
            or_(
                Subscriber.email_key.contains(query.lower(), autoescape=True),
                Subscriber.name.icontains(query, autoescape=True),
            )
        )
    return stmt


def shown_status(row: Any) -> Status:
    """The status of a :func:`search` row: on a list, the membership's while the person
    is active (the same as :func:`effective_status`, which filtered it), else the
    person's own."""
    sub = row[0]
    member = row[1] if len(row) > 1 else None
    if member is not None and sub.status is Status.ACTIVE:
        return Status(member.status)
    return Status(sub.status)


def count(session: Session, stmt: Select[*tuple[Any, ...]]) -> int:
    """How many rows ``stmt`` yields (counted in the database)."""
    inner = stmt.order_by(None).with_only_columns(Subscriber.id).subquery()
    return int(session.scalar(select(func.count()).select_from(inner)) or 0)


# ---------------------------------------------------------------------------
# Personal data: show, export, erase


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def describe(session: Session, subscriber: Subscriber) -> dict[str, Any]:
    """Everything held about one subscriber in the subscribers tables, JSON-ready."""
    rows = session.execute(
        select(MailingList.name, Membership)
        .join(Membership, Membership.list_id == MailingList.id)
        .where(Membership.subscriber_id == subscriber.id)
        .order_by(MailingList.name)
    ).all()
    return {
        "id": subscriber.id,
        "email": subscriber.email,
        "name": subscriber.name,
        "status": Status(subscriber.status).value,
        "attributes": dict(subscriber.attributes or {}),
        "categories": list(subscriber.categories or []),
        "timezone": subscriber.timezone,
        "created_at": _iso(subscriber.created_at),
        "confirmed_at": _iso(subscriber.confirmed_at),
        "unsubscribed_at": _iso(subscriber.unsubscribed_at),
        "paused_until": _iso(subscriber.paused_until),
        "consent": {
            "method": subscriber.consent_method.value if subscriber.consent_method else None,
            "at": _iso(subscriber.consent_at),
            "ip": subscriber.consent_ip,
        },
        "memberships": [
            {
                "list": list_name,
                "status": Status(m.status).value,
                "joined_at": _iso(m.created_at),
                "updated_at": _iso(m.updated_at),
            }
            for list_name, m in rows
        ],
    }


def _describe_suppression(entry: Suppression | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    return {
        "reason": SuppressionReason(entry.reason).value,
        "detail": entry.detail,
        "email": entry.email,
        "email_hash": entry.email_hash,
        "since": _iso(entry.created_at),
    }


def export_personal(session: Session, email: str) -> dict[str, Any]:
    """Everything the subscribers tables hold about ``email`` (a subject access request):
    the subscriber with memberships and consent, and any suppression entry.  Nothing held
    gives ``{"subscriber": None, "suppression": None}``."""
    subscriber = find_subscriber(session, email)
    return {
        "email": email.strip(),
        "exported_at": _iso(utcnow()),
        "subscriber": describe(session, subscriber) if subscriber else None,
        "suppression": _describe_suppression(suppression_for(session, email)),
    }


@dataclass(frozen=True)
class Forgotten:
    subscriber_id: int | None  # the erased row's id (None: no subscriber had the address)
    memberships: int
    email_hash: str


def forget(session: Session, email: str) -> Forgotten:
    """Erase everything about ``email``: the subscriber row and memberships are deleted
    (email, name, attributes, consent IP, …), any suppression entry loses its readable
    address, and a hashed ``erased`` suppression remains so the address is never
    imported again by accident.  Safe to repeat."""
    key = lookup_key(email)
    digest = email_hash(key)
    subscriber = session.scalars(select(Subscriber).where(Subscriber.email_key == key)).first()
    removed = 0
    subscriber_id = None
    if subscriber is not None:
        subscriber_id = subscriber.id
        removed = rowcount(
            session.execute(delete(Membership).where(Membership.subscriber_id == subscriber_id))
        )
        session.expunge(subscriber)
        session.execute(delete(Subscriber).where(Subscriber.id == subscriber_id))
    upsert_suppression(
        session,
        {
            "email_hash": digest,
            "email": None,
            "reason": SuppressionReason.ERASED,
            "detail": "",
            "created_at": utcnow(),
        },
    )
    session.flush()
    log.info("erased subscriber %s", subscriber_id)
    return Forgotten(subscriber_id, removed, digest)


__all__ = [
    "Added",
    "Forgotten",
    "add_subscriber",
    "confirm",
    "count",
    "describe",
    "effective_status",
    "export_personal",
    "find_subscriber",
    "forget",
    "get_by_id",
    "get_subscriber",
    "is_sendable",
    "is_suppressed",
    "members",
    "not_suppressed",
    "recipients",
    "remove_from_list",
    "search",
    "sendable_names",
    "shown_status",
    "suppress",
    "unsubscribe",
    "update_subscriber",
]

"""Subscribers: add, confirm, update, unsubscribe, remove, find; who receives a send.

Statuses, and who gets mail:

* ``Subscriber.status`` is the person's own state: ``pending`` (has confirmed nothing
  yet), ``active``, ``unsubscribed`` (from everything), ``bounced``, ``complained``.
* ``Membership.status`` is their state on one list: ``pending`` (double opt-in not
  confirmed), ``active``, ``unsubscribed``.
* A *recipient* of a list is an active member who is an active subscriber and is not
  on the suppression list (see :func:`recipients`).

Every status change goes through :mod:`subscribers.consent` (the state machine and
its log).  A form signup on a double opt-in list waits (pending) for its confirm link;
an admin add or an import is the admin asserting the person agreed, so it is active at
once and recorded with method ``admin`` or ``import``.  Nobody who unsubscribed,
bounced or complained is added back by anyone but themselves: ``resubscribe=True``
only records that a confirmation email is asked for (the caller sends it), and the
reader is back when they confirm.  A suppressed address is never added.

Personal data (describe, export, erase) is in :mod:`subscribers.privacy`.

Nothing here commits: the caller owns the transaction.
"""

from __future__ import annotations

import logging
import unicodedata
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
    exists,
    false,
    func,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from subscribers import consent
from subscribers.consent import GONE, By, Leaving
from subscribers.db import in_values, utcnow
from subscribers.errors import NotFound, NotResubscribable, Suppressed
from subscribers.lists import find_list, get_list
from subscribers.models import (
    ConsentMethod,
    ConsentSource,
    MailingList,
    Membership,
    Status,
    Subscriber,
    Suppression,
)
from subscribers.segments import compile_rule, get_segment
from subscribers.suppression import is_suppressed, suppress, suppression_for
from subscribers.validate import (
    check_timezone,
    clean_attributes,
    clean_categories,
    clean_name,
    lookup_key,
    merge_attributes,
    normalise,
)

log = logging.getLogger("subscribers")


@dataclass(frozen=True)
class Added:
    """What :func:`add_subscriber` did."""

    subscriber: Subscriber
    #: None only when ``asked`` and they were never on this list
    membership: Membership | None
    created: bool  # a new subscriber row
    joined: bool  # newly on this list
    changed: bool  # name, categories, attributes or timezone changed
    #: They had left (unsubscribed, bounced, complained): nothing changed but a
    #: confirmation email is asked for (``resubscribe=True``); send it.
    asked: bool = False


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
    everything: Collection[str] | None = None,
    by: By | None = None,
) -> Added:
    """Put ``email`` on ``list_name`` (creating the subscriber if new) and update the
    fields given.  A form signup on a double opt-in list is pending until confirmed;
    admin adds and imports are active at once.

    Someone who unsubscribed (from this list or everything), bounced or complained is
    refused (:class:`NotResubscribable`): only they can come back, by confirming.  With
    ``resubscribe`` the refusal becomes a recorded request for a confirmation email
    (``Added.asked``), which the caller sends.  ``by`` says who acts (default: the
    ``method`` from ``ip``); ``everything`` is passed to
    :func:`~subscribers.validate.clean_categories`.
    """
    by = by or By(ConsentSource(method.value), ip)
    address = normalise(email)
    name = clean_name(name) if name is not None else None
    key = address.lower()
    mlist = get_list(session, list_name)
    entry = suppression_for(session, key)
    if entry is not None:
        raise Suppressed(
            f"{address} is on the suppression list ({entry.reason.value}, since "
            f"{entry.created_at:%Y-%m-%d}); it cannot be subscribed again"
        )
    cats = (
        clean_categories(categories, known_categories, everything=everything)
        if categories is not None
        else None
    )
    attrs = clean_attributes(attributes) if attributes else {}
    zone = check_timezone(timezone) if timezone else None
    now = utcnow()
    wants_confirm = by.source is ConsentSource.FORM and mlist.double_opt_in
    target = Status.PENDING if wants_confirm else Status.ACTIVE

    subscriber = session.scalars(select(Subscriber).where(Subscriber.email_key == key)).first()
    if subscriber is None:
        subscriber = Subscriber(
            email=address,
            email_key=key,
            name=name or "",
            attributes=merge_attributes({}, attrs),
            categories=cats or [],
            timezone=zone,
            created_at=now,
            consent_method=method,
            consent_at=now,
            consent_ip=ip,
        )
        entered = consent.admit(session, subscriber, mlist, target, by)
        session.flush()
        return Added(subscriber, entered, True, True, False)

    member = membership(session, subscriber.id, mlist.id)
    if subscriber.status in GONE or (member is not None and member.status is Status.UNSUBSCRIBED):
        if not resubscribe:
            raise NotResubscribable(consent.gone_message(session, subscriber, mlist))
        consent.request(session, subscriber, mlist, by)
        changed = _apply(subscriber, name=name, categories=cats, attributes=attrs, timezone=zone)
        session.flush()
        return Added(subscriber, member, False, False, changed, asked=True)
    joined = member is None
    joining = consent.join(session, subscriber, mlist, target, by)
    if joined and subscriber.consent_method is None:
        subscriber.consent_method, subscriber.consent_at, subscriber.consent_ip = method, now, ip
    changed = _apply(subscriber, name=name, categories=cats, attributes=attrs, timezone=zone)
    session.flush()
    return Added(subscriber, joining, False, joined, changed)


def _apply(
    subscriber: Subscriber,
    *,
    name: str | None,
    categories: list[str] | None,
    attributes: Mapping[str, str | None],
    timezone: str | None,
) -> bool:
    changed = False
    name = clean_name(name) if name is not None else None
    if name is not None and name != subscriber.name:
        subscriber.name = name
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
    everything: Collection[str] | None = None,
) -> bool:
    """Change the fields given (attributes merge; an empty value removes one).  An empty
    ``categories`` list means "all categories", and so does a choice covering all of
    ``everything`` (see :func:`~subscribers.validate.clean_categories`).  Returns
    whether anything changed.  Statuses are not fields: see :mod:`subscribers.consent`."""
    subscriber = get_by_id(session, subscriber_id)
    changed = _apply(
        subscriber,
        name=name,
        categories=clean_categories(categories, known_categories, everything=everything)
        if categories is not None
        else None,
        attributes=clean_attributes(attributes) if attributes else {},
        timezone=check_timezone(timezone) if timezone else None,
    )
    session.flush()
    return changed


def confirm(
    session: Session, subscriber_id: int, list_name: str | None = None, *, by: By | None = None
) -> list[str]:
    """The reader followed their confirm link (for ``list_name``, or for every list they
    are pending on); returns the lists it makes them active on.  See
    :func:`subscribers.consent.confirm` for who it brings back."""
    subscriber = get_by_id(session, subscriber_id)
    mlist = get_list(session, list_name) if list_name is not None else None
    confirmed = consent.confirm(session, subscriber, mlist, by or By(ConsentSource.CONFIRM))
    session.flush()
    return confirmed


def unsubscribe(
    session: Session,
    subscriber_id: int,
    list_name: str | None = None,
    *,
    reason: str = "",
    by: By | None = None,
) -> list[str]:
    """Unsubscribe from one list, or from all of them (``list_name=None``); returns the
    lists left now.  Safe to repeat.

    Leaving the last list one was on makes the subscriber unsubscribed as a whole.
    ``by`` says who (default: an admin, with ``reason`` as the log's detail).
    """
    subscriber = get_by_id(session, subscriber_id)
    mlist = get_list(session, list_name) if list_name is not None else None
    left = consent.leave(session, subscriber, mlist, by or By(ConsentSource.ADMIN, None, reason))
    session.flush()
    log.info(
        "subscriber %s unsubscribed from %s%s",
        subscriber.id,
        repr(list_name) if list_name else "all lists",
        f" ({reason})" if reason else "",
    )
    return left


def unsubscribe_many(session: Session, requests: Sequence[Leaving]) -> list[list[str] | None]:
    """:func:`unsubscribe` for a burst of readers (one-click posts after a big send),
    in a few statements for all of them: each request's lists left now, or None when
    its reader or its list does not exist (nothing is done for it).  Safe to repeat."""
    results = consent.leave_many(session, requests)
    for request, left in zip(requests, results, strict=True):
        if left is not None:
            log.info(
                "subscriber %s unsubscribed from %s (%s)",
                request.subscriber_id,
                repr(request.list_name) if request.list_name else "all lists",
                request.by.source.value,
            )
    return results


def remove_from_list(session: Session, email: str, list_name: str, *, by: By | None = None) -> None:
    """Take ``email`` off ``list_name`` entirely: the membership is deleted, not marked
    unsubscribed, so a later import may add them again.  Someone who unsubscribed from
    the list cannot be removed (that record is what keeps imports from adding them)."""
    subscriber = get_subscriber(session, email)
    mlist = get_list(session, list_name)
    if membership(session, subscriber.id, mlist.id) is None:
        raise NotFound(f"{subscriber.email} is not on list {list_name!r}")
    consent.remove(session, subscriber, mlist, by or By(ConsentSource.ADMIN))
    session.flush()


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


def set_tracking(session: Session, subscriber_id: int, allowed: bool) -> bool:
    """Whether the reader's clicks and opens may be recorded (the preferences page's
    choice; ``False``: their links go straight to the article, no pixel).  Returns
    whether it changed.  Not a consent status: it does not touch whether they get mail."""
    subscriber = get_by_id(session, subscriber_id)
    if subscriber.no_tracking == (not allowed):
        return False
    subscriber.no_tracking = not allowed
    return True


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
    if query and any(unicodedata.category(c) == "Cc" for c in query):
        # No address or name holds control characters (see validate.clean_name); and a
        # NUL would end SQLite's LIKE pattern early, so that it matched everyone.
        stmt = stmt.where(false())
    elif query:
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


__all__ = [
    "GONE",
    "Added",
    "add_subscriber",
    "confirm",
    "count",
    "effective_status",
    "find_subscriber",
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

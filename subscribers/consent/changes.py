"""Every change of a reader's or a membership's status, checked against the machine
and written to the consent log.  No other code assigns ``Subscriber.status`` or
``Membership.status`` (a test checks).

Nothing here commits: the caller owns the transaction.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, literal, select
from sqlalchemy.orm import Session

from subscribers.consent.bulk import Leaving, leave_many
from subscribers.consent.log import By, asked_since_leaving, left_on, line_values, record
from subscribers.consent.machine import (
    ERASERS,
    GONE,
    REQUESTERS,
    Level,
    State,
    require,
)
from subscribers.db import utcnow
from subscribers.errors import ConsentRefused, NotResubscribable, Suppressed
from subscribers.models import (
    ConsentEvent,
    ConsentMethod,
    ConsentSource,
    MailingList,
    Membership,
    Status,
    Subscriber,
    Suppression,
    SuppressionReason,
)
from subscribers.validate import email_hash

#: Statuses of a membership that still gets (or is about to get) mail.
LIVE = (Status.ACTIVE, Status.PENDING)

RESUBSCRIBE_HINT = (
    "only the reader can resubscribe by confirming (the sign-up form sends them a "
    "confirmation email, and so does `digest subscribers add --resubscribe`)"
)


def _check(level: Level, old: Status | None, new: State, by: By) -> None:
    require(level, State.of(old), new, by.source)


# ---------------------------------------------------------------------------
# The two primitive changes


def set_reader(
    session: Session, subscriber: Subscriber, new: Status, by: By, *, now: datetime | None = None
) -> bool:
    """Move a reader to ``new`` (a new reader, not yet in the session, enters the
    session here); False when they are there already."""
    old = subscriber.status
    if old == new:
        return False
    _check(Level.READER, old, State.of(new), by)
    now = now or utcnow()
    subscriber.status = new
    if new is Status.UNSUBSCRIBED:
        subscriber.unsubscribed_at = now
    elif new is Status.ACTIVE:
        subscriber.unsubscribed_at = None
    if by.source is ConsentSource.CONFIRM:
        subscriber.confirmed_at = now
    if subscriber.id is None:
        session.add(subscriber)
        session.flush()
    record(session, subscriber.id, None, old, new, by, at=now)
    return True


def set_membership(
    session: Session,
    subscriber: Subscriber,
    mlist: MailingList,
    new: Status | None,
    by: By,
    *,
    now: datetime | None = None,
) -> Membership | None:
    """Move a reader's membership of ``mlist`` to ``new`` (None: off the list); returns
    the membership (None when there is none any more)."""
    member = session.get(Membership, (subscriber.id, mlist.id))
    old = member.status if member is not None else None
    if old == new:
        return member
    _check(Level.MEMBERSHIP, old, State.of(new), by)
    now = now or utcnow()
    if new is None:
        assert member is not None
        session.delete(member)
        session.flush()
        session.expire(subscriber, ["memberships"])
    elif member is None:
        member = Membership(
            subscriber_id=subscriber.id,
            list_id=mlist.id,
            status=new,
            created_at=now,
            updated_at=now,
        )
        session.add(member)
    else:
        member.status = new
        member.updated_at = now
    record(session, subscriber.id, mlist, old, new, by, at=now)
    return member if new is not None else None


# ---------------------------------------------------------------------------
# What the library does with them


def gone_message(session: Session, subscriber: Subscriber, mlist: MailingList | None) -> str:
    """Why ``subscriber`` cannot be put (back) on ``mlist`` by anyone but themselves."""
    member = session.get(Membership, (subscriber.id, mlist.id)) if mlist is not None else None
    on_list = member is not None and member.status is Status.UNSUBSCRIBED
    status = subscriber.status if subscriber.status in GONE else Status.UNSUBSCRIBED
    when = left_on(session, [subscriber.id], mlist if on_list else None).get(subscriber.id)
    if when is None:
        when = member.updated_at if on_list and member else subscriber.unsubscribed_at
    date = f" on {when:%Y-%m-%d}" if when else ""
    what = {
        Status.UNSUBSCRIBED: "unsubscribed",
        Status.BOUNCED: "bounced (the address did not accept mail)",
        Status.COMPLAINED: "reported our mail as spam",
    }[status]
    if on_list and subscriber.status not in GONE and mlist is not None:
        what = f"unsubscribed from {mlist.name!r}"
    return f"{subscriber.email} {what}{date}; {RESUBSCRIBE_HINT}"


def admit(
    session: Session, subscriber: Subscriber, mlist: MailingList, new: Status, by: By
) -> Membership:
    """A new reader (not yet in the session) joins ``mlist`` as ``new`` (pending or
    active): the reader and the membership both enter at that status."""
    now = utcnow()
    set_reader(session, subscriber, new, by, now=now)
    member = set_membership(session, subscriber, mlist, new, by, now=now)
    assert member is not None
    return member


def join(
    session: Session, subscriber: Subscriber, mlist: MailingList, want: Status, by: By
) -> Membership:
    """An existing reader joins ``mlist`` as ``want`` (pending or active; an active
    membership is never made pending).  Someone who unsubscribed (from this list or
    from everything), bounced or complained comes back only by confirming:
    :class:`NotResubscribable` for anyone else, before anything is written."""
    member = session.get(Membership, (subscriber.id, mlist.id))
    m_old = member.status if member is not None else None
    m_new = Status.ACTIVE if m_old is Status.ACTIVE else want
    gone = subscriber.status in GONE or m_old is Status.UNSUBSCRIBED
    if gone and by.source is not ConsentSource.CONFIRM:
        raise NotResubscribable(gone_message(session, subscriber, mlist))
    r_new = Status.ACTIVE if m_new is Status.ACTIVE else subscriber.status
    _check(Level.MEMBERSHIP, m_old, State.of(m_new), by)
    _check(Level.READER, subscriber.status, State.of(r_new), by)
    now = utcnow()
    member = set_membership(session, subscriber, mlist, m_new, by, now=now)
    set_reader(session, subscriber, r_new, by, now=now)
    assert member is not None
    return member


def _suppression(session: Session, subscriber: Subscriber) -> Suppression | None:
    key = subscriber.email_key or ""
    return session.scalars(
        select(Suppression).where(Suppression.email_hash == email_hash(key))
    ).first()


def confirm(
    session: Session, subscriber: Subscriber, mlist: MailingList | None, by: By
) -> list[str]:
    """The reader followed their confirm link (for ``mlist``, or, for links made before
    they named a list, for every list they are pending on).  Returns the lists they
    are now active on through it.

    Someone who unsubscribed, bounced or complained comes back only on a link for one
    list, and only when a confirmation email was asked for (by them on the form, or by
    an admin) after they left: an old link does not undo a later unsubscribe.
    """
    if by.source is not ConsentSource.CONFIRM:
        raise ConsentRefused(f"only the reader confirms; {by.source.value} may not")
    entry = _suppression(session, subscriber)
    if entry is not None:
        raise Suppressed(
            f"{subscriber.email} is on the suppression list ({entry.reason.value}); "
            "it cannot be subscribed again"
        )
    now = utcnow()
    confirmed: list[str] = []
    if mlist is None:
        if subscriber.status in GONE:
            raise NotResubscribable(gone_message(session, subscriber, None))
        pending = session.execute(
            select(MailingList, Membership)
            .join(Membership, Membership.list_id == MailingList.id)
            .where(Membership.subscriber_id == subscriber.id, Membership.status == Status.PENDING)
            .order_by(MailingList.name)
        ).all()
        for each, _member in pending:
            set_membership(session, subscriber, each, Status.ACTIVE, by, now=now)
            confirmed.append(each.name)
        if subscriber.status is Status.PENDING:
            set_reader(session, subscriber, Status.ACTIVE, by, now=now)
        subscriber.confirmed_at = subscriber.confirmed_at or now
        return confirmed
    member = session.get(Membership, (subscriber.id, mlist.id))
    coming_back = subscriber.status in GONE or (
        member is not None and member.status is Status.UNSUBSCRIBED
    )
    if coming_back and not asked_since_leaving(session, subscriber.id, mlist):
        raise NotResubscribable(
            f"{subscriber.email} left {mlist.name!r} after this confirm link was sent, so it "
            "no longer subscribes them; sign up again on the form for a new link"
        )
    if member is None or member.status is not Status.ACTIVE:
        set_membership(session, subscriber, mlist, Status.ACTIVE, by, now=now)
    set_reader(session, subscriber, Status.ACTIVE, by, now=now)
    if coming_back:
        subscriber.consent_method = ConsentMethod.FORM
        subscriber.consent_at = now
        subscriber.consent_ip = by.actor[:45] if by.actor else None
    subscriber.confirmed_at = subscriber.confirmed_at or now
    return [mlist.name]


def leave(session: Session, subscriber: Subscriber, mlist: MailingList | None, by: By) -> list[str]:
    """Unsubscribe from ``mlist`` (or from every list): its live membership becomes
    unsubscribed, and leaving the last live one (or everything) makes the reader
    unsubscribed as a whole.  Safe to repeat; returns the lists left now.

    One request of :func:`~subscribers.consent.bulk.leave_many`: the same statements
    whether one reader leaves or a burst of them does."""
    session.flush()
    wanted = Leaving(subscriber.id, mlist.name if mlist is not None else None, by)
    left = leave_many(session, [wanted])[0] or []
    session.expire(subscriber)
    for each in list(session.identity_map.values()):
        if isinstance(each, Membership) and each.subscriber_id == subscriber.id:
            session.expire(each)
    return left


def request(session: Session, subscriber: Subscriber, mlist: MailingList, by: By) -> None:
    """Note that a confirmation email for ``mlist`` is asked for (the form, or an admin):
    nothing changes until the reader confirms, but their confirmation may then bring
    them back (see :func:`confirm`)."""
    if by.source not in REQUESTERS:
        raise ConsentRefused(f"{by.source.value} may not ask for a confirmation email")
    member = session.get(Membership, (subscriber.id, mlist.id))
    status = member.status if member is not None else None
    record(session, subscriber.id, mlist, status, status, by)


def remove(session: Session, subscriber: Subscriber, mlist: MailingList, by: By) -> None:
    """Take a pending or active reader off ``mlist`` (the membership is deleted).  An
    unsubscribed membership stays: it is the record that keeps imports from adding
    them again."""
    member = session.get(Membership, (subscriber.id, mlist.id))
    if member is not None and member.status is Status.UNSUBSCRIBED:
        raise ConsentRefused(
            f"{subscriber.email} unsubscribed from {mlist.name!r}; that record stays so that "
            "no import adds them again (to erase everything about them, use "
            "`digest subscribers forget`)"
        )
    set_membership(session, subscriber, mlist, None, by)


#: What a suppression does to the reader's status.
STATUS_FOR_REASON = {
    SuppressionReason.HARD_BOUNCE: Status.BOUNCED,
    SuppressionReason.SOFT_BOUNCE: Status.BOUNCED,
    SuppressionReason.SPAM_REPORT: Status.COMPLAINED,
    SuppressionReason.UNSUBSCRIBED: Status.UNSUBSCRIBED,
    SuppressionReason.MANUAL: Status.UNSUBSCRIBED,
    SuppressionReason.ERASED: Status.UNSUBSCRIBED,
}


def suppressed(session: Session, subscriber: Subscriber, reason: SuppressionReason, by: By) -> None:
    """The reader's address went on the suppression list: a bounce or a spam report
    marks them bounced or complained; any other reason unsubscribes them from
    everything (a bounced or complained reader stays so)."""
    status = STATUS_FOR_REASON[SuppressionReason(reason)]
    if status is Status.UNSUBSCRIBED:
        leave(session, subscriber, None, by)
    else:
        set_reader(session, subscriber, status, by)


def lifted(session: Session, subscriber: Subscriber, by: By) -> None:
    """Note that the reader's address came off the suppression list: one line of the
    reader's own that changes nothing (``by.detail`` says why), since lifting a
    suppression brings no one back: only their confirmation does.  Admins only."""
    if by.source not in ERASERS:
        raise ConsentRefused(f"{by.source.value} may not lift a suppression")
    record(session, subscriber.id, None, subscriber.status, subscriber.status, by)


def erase(session: Session, subscriber: Subscriber, by: By) -> int:
    """Delete the reader, their memberships and their consent log (a hashed suppression
    entry, written by the caller, is all that stays); returns the memberships deleted."""
    _check(Level.READER, subscriber.status, State.ERASED, by)
    sid = subscriber.id
    session.execute(delete(ConsentEvent).where(ConsentEvent.subscriber_id == sid))
    removed = session.execute(delete(Membership).where(Membership.subscriber_id == sid))
    session.expunge(subscriber)
    session.execute(delete(Subscriber).where(Subscriber.id == sid))
    return int(getattr(removed, "rowcount", 0) or 0)


def drop_list(session: Session, mlist: MailingList, by: By) -> int:
    """Log every membership of ``mlist`` as deleted with it and delete them; returns
    how many (bulk statements: a million members never load)."""
    if by.source not in ERASERS:
        raise ConsentRefused(f"{by.source.value} may not delete a list")
    values = line_values(mlist, None, None, by, utcnow())
    columns = {k: v for k, v in values.items() if k != "from_status"}
    session.execute(
        insert(ConsentEvent).from_select(
            ["subscriber_id", "from_status", *columns],
            select(
                Membership.subscriber_id,
                Membership.status,
                *(literal(v, ConsentEvent.__table__.c[k].type) for k, v in columns.items()),
            ).where(Membership.list_id == mlist.id),
        )
    )
    removed = session.execute(delete(Membership).where(Membership.list_id == mlist.id))
    return int(getattr(removed, "rowcount", 0) or 0)


__all__ = [
    "LIVE",
    "RESUBSCRIBE_HINT",
    "STATUS_FOR_REASON",
    "admit",
    "confirm",
    "drop_list",
    "erase",
    "gone_message",
    "join",
    "leave",
    "lifted",
    "remove",
    "request",
    "set_membership",
    "set_reader",
    "suppressed",
]

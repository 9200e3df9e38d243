"""Mailing lists: create, find, count, delete."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from subscribers import consent
from subscribers.errors import AlreadyExists, InvalidName, NotFound
from subscribers.models import ConsentSource, MailingList, Membership, Segment, Status

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


@dataclass(frozen=True)
class ListSummary:
    """A list with its members counted by membership status."""

    mailing_list: MailingList
    counts: dict[Status, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def count(self, status: Status) -> int:
        return self.counts.get(status, 0)


def check_list_name(name: str) -> str:
    if not _NAME.fullmatch(name or ""):
        raise InvalidName(
            f"{name!r} is not a list name; use letters, digits, '.', '-' and '_' "
            "(up to 100, starting with a letter or digit)"
        )
    return name


def create_list(
    session: Session, name: str, *, description: str = "", double_opt_in: bool = True
) -> MailingList:
    """A new list; :class:`AlreadyExists` if the name is taken."""
    check_list_name(name)
    if find_list(session, name) is not None:
        raise AlreadyExists(f"a list called {name!r} exists already; pick another name")
    mlist = MailingList(name=name, description=description, double_opt_in=double_opt_in)
    session.add(mlist)
    session.flush()
    return mlist


def find_list(session: Session, name: str) -> MailingList | None:
    return session.scalars(select(MailingList).where(MailingList.name == name)).first()


def get_list(session: Session, name: str) -> MailingList:
    """The list called ``name``; :class:`NotFound` names the lists that do exist."""
    mlist = find_list(session, name)
    if mlist is None:
        names = session.scalars(select(MailingList.name).order_by(MailingList.name)).all()
        known = ", ".join(names) if names else "none yet"
        raise NotFound(
            f"no list called {name!r} (lists: {known}); create it with `digest lists create {name}`"
        )
    return mlist


def all_lists(session: Session) -> list[ListSummary]:
    """Every list, by name, with member counts (one query for the counts)."""
    lists = session.scalars(select(MailingList).order_by(MailingList.name)).all()
    counts = _counts(session, [m.id for m in lists])
    return [ListSummary(m, counts.get(m.id, {})) for m in lists]


def summary(session: Session, name: str) -> ListSummary:
    mlist = get_list(session, name)
    return ListSummary(mlist, _counts(session, [mlist.id]).get(mlist.id, {}))


def _counts(session: Session, list_ids: list[int]) -> dict[int, dict[Status, int]]:
    if not list_ids:
        return {}
    rows = session.execute(
        select(Membership.list_id, Membership.status, func.count())
        .where(Membership.list_id.in_(list_ids))
        .group_by(Membership.list_id, Membership.status)
    )
    out: dict[int, dict[Status, int]] = {}
    for list_id, status, n in rows:
        out.setdefault(list_id, {})[Status(status)] = n
    return out


def delete_list(session: Session, name: str, *, by: consent.By | None = None) -> int:
    """Delete a list with its memberships and segments (subscribers stay); returns the
    number of memberships removed, each noted in the consent log.  Bulk statements: a
    million members never load."""
    mlist = get_list(session, name)
    cause = by or consent.By(ConsentSource.ADMIN, None, f"list {name!r} deleted")
    removed = consent.drop_list(session, mlist, cause)
    session.execute(delete(Segment).where(Segment.list_id == mlist.id))
    session.execute(delete(MailingList).where(MailingList.id == mlist.id))
    session.expunge(mlist)
    return removed


__all__ = [
    "ListSummary",
    "all_lists",
    "check_list_name",
    "create_list",
    "delete_list",
    "find_list",
    "get_list",
    "summary",
]

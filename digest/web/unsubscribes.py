"""What an unsubscribe link does when posted (the page's button, or a mail provider's
RFC 8058 one-click post): the reader leaves the link's list, or everything, and the
edition the link came in counts it.  Written in batches by the web app's
:class:`~digest.web.groupcommit.GroupCommit` (``WebState.unsubscribes``), so a burst
of one-click posts after a big send costs a few statements a batch, not a
transaction each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from digest.events import EventType, OwnEvent, record_own_many
from subscribers.consent import By, Leaving
from subscribers.service import unsubscribe_many


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """One posted unsubscribe link: whose, which list (None: every list), from which
    edition's email (None: not from one), and who posted it."""

    subscriber_id: int
    list_name: str | None
    edition_id: int | None
    by: By


def unsubscribe_batch(session: Session, posts: Sequence[Unsubscribe]) -> list[list[str]]:
    """Each post's lists left now (``[]``: nothing left, for a reader or list that is
    gone or a reader who had left already), with an ``unsubscribed`` event on the
    edition of each post that left something."""
    lefts = unsubscribe_many(session, [Leaving(p.subscriber_id, p.list_name, p.by) for p in posts])
    events = [
        OwnEvent(
            EventType.UNSUBSCRIBED, p.edition_id, p.subscriber_id, f"{p.by.source.value}: {left}"
        )
        for p, left in zip(posts, lefts, strict=True)
        if left and p.edition_id is not None
    ]
    record_own_many(session, events)
    return [left or [] for left in lefts]


__all__ = ["Unsubscribe", "unsubscribe_batch"]

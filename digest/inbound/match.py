"""Whose message a bounce or a complaint is about: the reader, the edition, the delivery.

The first of these that gives an answer wins:

1. the VERP token of the address the report was sent to (the envelope recipient, or
   for a message read from a mailbox its ``Delivered-To``/``X-Original-To``/``To``):
   signed, so it is trusted as it is;
2. the VERP token of the returned copy's ``Return-Path`` (or an ARF report's
   ``Original-Mail-From``);
3. the signed token of the returned copy's ``List-Unsubscribe`` header;
4. only for bounces: the failed address the report names, if it is a reader's
   and digest has mailed it (a bounce for an address we never sent to is ignored,
   so a forged notice cannot suppress just anyone).

The edition is the delivery's.  Without a delivery it is taken from the returned
copy's ``Message-ID`` (``<newsletter.EDITION.READER@domain>``) when that names a
delivery of the same reader, else from the reader's latest delivery.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.delivery.verp import Verp, VerpRef
from digest.inbound.report import Original
from digest.models import Delivery, DeliveryStatus
from subscribers.errors import BadToken
from subscribers.models import Subscriber
from subscribers.service import find_subscriber
from subscribers.tokens import read_link

#: Our Message-IDs: ``<newsletter.edition_id.subscriber_id@domain>``.
_MESSAGE_ID = re.compile(r"<?[a-z0-9][a-z0-9_-]*\.(\d+)\.(\d+)@[^>]+>?")


@dataclass(frozen=True)
class Target:
    """Who and what a report is about."""

    subscriber_id: int | None
    #: The address we mailed (the delivery's, else the reader's).
    email: str | None
    edition_id: int | None = None
    delivery_id: int | None = None
    #: How it was found, for the log and the evidence.
    how: str = ""


def by_verp(session: Session, ref: VerpRef, how: str) -> Target | None:
    """The delivery (or reader) a VERP token names; None when it is gone."""
    if ref.kind == "d":
        delivery = session.get(Delivery, ref.id)
        if delivery is None:
            return None
        email = delivery.email
        if email is None and delivery.subscriber_id is not None:
            subscriber = session.get(Subscriber, delivery.subscriber_id)
            email = subscriber.email if subscriber is not None else None
        if email is None:
            return None  # erased since: nothing to act on
        return Target(delivery.subscriber_id, email, delivery.edition_id, delivery.id, how)
    subscriber = session.get(Subscriber, ref.id)
    if subscriber is None or not subscriber.email:
        return None
    return Target(subscriber.id, subscriber.email, None, None, how)


def first_verp(
    session: Session, verp: Verp | None, addresses: Iterable[str | None], how: str
) -> Target | None:
    if verp is None:
        return None
    for address in addresses:
        ref = verp.read(address) if address else None
        if ref is not None:
            target = by_verp(session, ref, how)
            if target is not None:
                return target
    return None


def by_unsubscribe_token(
    session: Session, secret: str, tokens: Iterable[str], original: Original
) -> Target | None:
    for token in tokens:
        try:
            link = read_link(secret, token, "unsubscribe")
        except BadToken:
            continue
        subscriber = session.get(Subscriber, link.subscriber_id)
        if subscriber is not None and subscriber.email:
            return with_edition(
                session,
                Target(subscriber.id, subscriber.email, how="List-Unsubscribe token"),
                original,
            )
    return None


def _hinted_delivery(session: Session, subscriber_id: int, original: Original) -> Delivery | None:
    found = _MESSAGE_ID.fullmatch((original.message_id or "").strip().lower())
    if found is None or int(found.group(2)) != subscriber_id:
        return None
    return session.scalars(
        select(Delivery).where(
            Delivery.edition_id == int(found.group(1)), Delivery.subscriber_id == subscriber_id
        )
    ).first()


def latest_delivery(session: Session, subscriber_id: int) -> Delivery | None:
    """The reader's most recent delivery that went out (or may have)."""
    return session.scalars(
        select(Delivery)
        .where(
            Delivery.subscriber_id == subscriber_id,
            Delivery.status.in_((DeliveryStatus.SENT, DeliveryStatus.UNCERTAIN)),
        )
        .order_by(Delivery.id.desc())
        .limit(1)
    ).first()


def with_edition(session: Session, target: Target, original: Original) -> Target:
    """``target`` with the edition and delivery filled in when it has none."""
    if target.delivery_id is not None or target.subscriber_id is None:
        return target
    delivery = _hinted_delivery(session, target.subscriber_id, original) or latest_delivery(
        session, target.subscriber_id
    )
    if delivery is None:
        return target
    return Target(target.subscriber_id, target.email, delivery.edition_id, delivery.id, target.how)


def by_address(session: Session, address: str, original: Original) -> Target | None:
    """A reader by the failed address a report names, if digest has mailed them."""
    subscriber = find_subscriber(session, address) if address else None
    if subscriber is None or not subscriber.email:
        return None
    target = with_edition(
        session, Target(subscriber.id, subscriber.email, how="the report's recipient"), original
    )
    return target if target.delivery_id is not None else None


def trusted_target(
    session: Session,
    verp: Verp | None,
    secret: str,
    addressed: Iterable[str | None],
    original: Original,
) -> Target | None:
    """Steps 1–3 of the module doc: the target from signed tokens only."""
    target = first_verp(session, verp, addressed, "VERP")
    if target is None:
        target = first_verp(session, verp, original.return_paths, "VERP of the returned copy")
    if target is None:
        target = by_unsubscribe_token(session, secret, original.unsubscribe_tokens, original)
    return target


__all__ = [
    "Target",
    "by_address",
    "by_unsubscribe_token",
    "by_verp",
    "first_verp",
    "latest_delivery",
    "trusted_target",
    "with_edition",
]

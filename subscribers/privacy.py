"""Personal data held in the subscribers tables: describe one reader, export
everything about an address (a subject access request), erase it.

The pipeline's own records (deliveries, events) are covered by ``digest.privacy``,
which builds on these.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from subscribers import consent
from subscribers.consent import By
from subscribers.db import utcnow
from subscribers.models import (
    ConsentEvent,
    ConsentSource,
    MailingList,
    Membership,
    Status,
    Subscriber,
    Suppression,
    SuppressionReason,
)
from subscribers.service import find_subscriber
from subscribers.suppression import suppression_for, upsert_suppression
from subscribers.validate import email_hash, lookup_key

log = logging.getLogger("subscribers")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def consent_line(line: ConsentEvent) -> dict[str, Any]:
    """One consent log line, JSON-ready (``list`` None: the reader's own status)."""
    return {
        "at": _iso(line.at),
        "list": line.list_name,
        "from": Status(line.from_status).value if line.from_status else None,
        "to": Status(line.to_status).value if line.to_status else None,
        "request": line.from_status == line.to_status and line.list_name is not None,
        "note": line.from_status == line.to_status and line.list_name is None,
        "source": ConsentSource(line.source).value,
        "actor": line.actor,
        "detail": line.detail,
    }


def describe(session: Session, subscriber: Subscriber) -> dict[str, Any]:
    """Everything held about one subscriber in the subscribers tables, JSON-ready: the
    record, memberships, consent and the consent log (oldest line first)."""
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
        "consent_log": [consent_line(line) for line in consent.history(session, subscriber.id)],
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
    the subscriber with memberships, consent and consent log, and any suppression entry.
    Nothing held gives ``{"subscriber": None, "suppression": None}``."""
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


def forget(session: Session, email: str, *, by: By | None = None) -> Forgotten:
    """Erase everything about ``email``: the subscriber row, memberships and consent log
    are deleted (email, name, attributes, consent IP, …), any suppression entry loses its
    readable address, and a hashed ``erased`` suppression remains so the address is never
    imported again by accident.  Safe to repeat."""
    key = lookup_key(email)
    digest = email_hash(key)
    subscriber = session.scalars(select(Subscriber).where(Subscriber.email_key == key)).first()
    removed = 0
    subscriber_id = None
    if subscriber is not None:
        subscriber_id = subscriber.id
        removed = consent.erase(session, subscriber, by or By(ConsentSource.ADMIN))
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


__all__ = ["Forgotten", "consent_line", "describe", "export_personal", "forget"]

"""Uncertain deliveries settled by what the provider said about them afterwards.

A delivery is *uncertain* when its post was handed over and no answer came back (the
sender was killed while waiting, the connection dropped after the request went out).
Retrying it could send a second copy; not retrying could leave a reader without theirs.
Providers that report events settle the question: SendGrid's Event Webhook posts a
``processed`` event for every message it accepted (then ``delivered``, ``bounce``,
``dropped``, …), each carrying the ``edition_id`` and ``subscriber_id`` that digest puts
in the message's ``custom_args``, so :mod:`digest.events` matches it to its delivery.

* An event saying the provider took the message (``queued``, ``delivered``, ``deferred``,
  an open, a click, a complaint, …) makes the delivery **sent**.
* A ``bounced`` or ``dropped`` event makes it **failed**: the provider did not get it to
  the reader, and sending it again would fare no better.

This happens as the event arrives (:func:`settle_one`), and again whenever deliveries
become uncertain (:func:`resolve`): an event may come before the crashed sender's
in-flight post is recovered.  What is left is resent only on request
(``digest send --resend-uncertain``), and only once the provider had time to report it
(``DIGEST_UNCERTAIN_GRACE`` after the post).  Only ``uncertain`` rows ever change here:
a delivery the ledger knows the fate of keeps it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from digest.models import Delivery, DeliveryStatus, Event

#: Event types (``digest.events.EventType`` values) that say the provider took the message.
ACCEPTED = frozenset(
    {"queued", "delivered", "deferred", "blocked", "opened", "clicked", "complained"}
    | {"unsubscribed"}
)
#: Event types that say it will not reach the reader: settled as failed, never resent.
REFUSED = frozenset({"bounced", "dropped"})
EVIDENCE = ACCEPTED | REFUSED


@dataclass(frozen=True)
class Resolved:
    """Uncertain deliveries settled from provider events: how many sent, how many failed."""

    sent: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return self.sent + self.failed

    def __add__(self, other: Resolved) -> Resolved:
        return Resolved(self.sent + other.sent, self.failed + other.failed)


def reason_for(event_type: str, provider: str) -> str:
    """What the ledger says about a delivery settled by an event (the same words for every
    delivery settled alike, so that reasons group in counts)."""
    if event_type in REFUSED:
        return f"was uncertain; {provider} reported it {event_type}: not resent"
    return f"was uncertain; {provider} reported it {event_type}: it went out"


def settle_one(
    session: Session,
    delivery_id: int,
    event_type: str,
    provider: str,
) -> bool:
    """Settle one delivery by one event, if the delivery is uncertain (True when it was).

    The caller owns the transaction (:func:`digest.events.record` calls this as it stores
    an event)."""
    if event_type not in EVIDENCE:
        return False
    status = DeliveryStatus.FAILED if event_type in REFUSED else DeliveryStatus.SENT
    result = session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.status == DeliveryStatus.UNCERTAIN)
        .values(
            status=status,
            reason=reason_for(event_type, provider),
            # the time of the post stays: settling is not sending
            updated_at=Delivery.updated_at,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def resolve(
    session: Session,
    *,
    edition_id: int | None = None,
    batch_id: int | None = None,
    delivery_ids: Sequence[int] | None = None,
) -> Resolved:
    """Settle every uncertain delivery (of an edition, a batch, or the ids given) that has
    provider events stored already.  A refusal wins over an acceptance (a ``processed``
    followed by a ``dropped`` is failed).  The caller owns the transaction."""
    scope: list[ColumnElement[bool]] = [Delivery.status == DeliveryStatus.UNCERTAIN]
    if edition_id is not None:
        scope.append(Delivery.edition_id == edition_id)
    if batch_id is not None:
        scope.append(Delivery.batch_id == batch_id)
    if delivery_ids is not None:
        if not delivery_ids:
            return Resolved()
        scope.append(Delivery.id.in_(list(delivery_ids)))
    rows = session.execute(
        select(Event.delivery_id, Event.type, Event.provider)
        .join(Delivery, Delivery.id == Event.delivery_id)
        .where(*scope, Event.type.in_(sorted(EVIDENCE)))
        .order_by(Event.delivery_id, Event.occurred_at)
    ).all()
    verdict: dict[int, tuple[str, str]] = {}
    for delivery_id, kind, provider in rows:
        if delivery_id is None:
            continue
        known = verdict.get(delivery_id)
        if known is None or (kind in REFUSED and known[0] not in REFUSED):
            verdict[delivery_id] = (kind, provider)
    sent = failed = 0
    for delivery_id, (kind, provider) in verdict.items():
        if settle_one(session, delivery_id, kind, provider):
            if kind in REFUSED:
                failed += 1
            else:
                sent += 1
    return Resolved(sent, failed)


__all__ = ["ACCEPTED", "EVIDENCE", "REFUSED", "Resolved", "reason_for", "resolve", "settle_one"]

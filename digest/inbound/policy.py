"""What digest does with a bounce, a complaint or an unsubscribe request received by mail.

* A **hard bounce** (5.x.x: the address does not exist, the domain takes no mail)
  suppresses the address at once: the reader becomes ``bounced``.
* A **soft bounce** (4.x.x given up on after retries, a full mailbox, a policy
  refusal, see :data:`digest.inbound.report.SOFT_DETAILS`) is counted; the
  ``DIGEST_SOFT_BOUNCE_LIMIT``-th within ``DIGEST_SOFT_BOUNCE_DAYS`` days suppresses the
  address (reason ``soft_bounce``, the reader ``bounced``).
* A **delay warning** (``Action: delayed``) is recorded and nothing more.
* A **complaint** (a feedback report) suppresses the address at once: the reader
  becomes ``complained``.
* An **unsubscribe request** (the ``List-Unsubscribe`` mailto, with the reader's signed
  token in its subject) unsubscribes the reader from the list the token names (every
  list for tokens that name none), like the one-click link.

Each bounce and complaint is also an :class:`~digest.models.Event` of its edition
(provider ``inbound``; types ``bounced``, ``blocked`` for soft bounces, ``deferred``,
``complained``), stored once per message and reader: a notice delivered twice (an MTA
retrying, the same notice read over LMTP and IMAP) counts once and acts once.  Every
status change goes through :mod:`subscribers.consent` (cause ``inbound`` or ``mailto``)
with the evidence in the consent log: the status code, the server's words, the edition.

Nothing here commits: the caller owns the transaction.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from digest.config import Settings
from digest.delivery.verp import Verp, verp_for
from digest.events import EventType, record_own
from digest.inbound.match import Target, by_address, trusted_target
from digest.inbound.report import Failure, Kind, Report, Severity
from digest.models import Edition, Event
from subscribers import service
from subscribers.consent import By
from subscribers.errors import BadToken
from subscribers.lists import find_list
from subscribers.models import ConsentSource, Subscriber, SuppressionReason
from subscribers.suppression import suppression_for
from subscribers.tokens import read_link

log = logging.getLogger(__name__)

#: ``Event.provider`` of everything received by mail.
PROVIDER = "inbound"
EVENT_TYPES = {
    Severity.HARD: EventType.BOUNCED,
    Severity.SOFT: EventType.BLOCKED,
    Severity.DELAYED: EventType.DEFERRED,
}


@dataclass(frozen=True)
class Outcome:
    """What one report did for one recipient: a word and a line for the log."""

    #: ``suppressed``, ``recorded``, ``unsubscribed``, ``duplicate`` or ``ignored``.
    action: str
    summary: str


@dataclass(frozen=True)
class Context:
    session: Session
    settings: Settings
    #: How the message came in: ``lmtp``, ``smtp``, ``imap``.
    via: str
    now: datetime

    @property
    def secret(self) -> str:
        return self.settings.secret_key.get_secret_value()

    @property
    def verp(self) -> Verp | None:
        address = self.settings.bounce_address
        return verp_for(address, self.secret) if address else None


def act(
    session: Session,
    settings: Settings,
    report: Report,
    recipient: str | None,
    *,
    via: str,
    now: datetime | None = None,
) -> Outcome:
    """Act on ``report`` as delivered to ``recipient`` (None: not known, e.g. read from a
    mailbox; the message's own ``Delivered-To``/``To`` headers stand in)."""
    ctx = Context(session, settings, via, now or datetime.now(UTC))
    addressed = [recipient] if recipient else list(report.addressed_to)
    if report.kind is Kind.BOUNCE:
        return _bounce(ctx, report, addressed)
    if report.kind is Kind.COMPLAINT:
        return _complaint(ctx, report, addressed)
    if report.kind is Kind.UNSUBSCRIBE:
        return _unsubscribe(ctx, report, recipient)
    what = report.detected_by or "not a bounce, a complaint or an unsubscribe request"
    return Outcome("ignored", f"message from {report.sender or 'nobody'} ({what}): dropped")


# ---------------------------------------------------------------------------
# Bounces


def _bounce(ctx: Context, report: Report, addressed: list[str]) -> Outcome:
    target = trusted_target(ctx.session, ctx.verp, ctx.secret, addressed, report.original)
    pairs: list[tuple[Target, Failure]] = []
    if target is not None:
        pairs.append((target, _failure_for(report.failures, target.email)))
    else:
        for failure in report.failures:
            found = by_address(ctx.session, failure.address, report.original)
            if found is not None:
                pairs.append((found, failure))
    if not pairs:
        n = len(report.failures)
        return Outcome(
            "ignored",
            f"bounce from {report.sender or 'nobody'} for {n} address{'es' if n != 1 else ''} "
            "that match no reader digest has mailed: dropped",
        )
    outcomes = [_one_bounce(ctx, report, t, f) for t, f in pairs]
    action = next((o.action for o in outcomes if o.action == "suppressed"), outcomes[0].action)
    return Outcome(action, "; ".join(o.summary for o in outcomes))


def _failure_for(failures: tuple[Failure, ...], email: str | None) -> Failure:
    """The failure about ``email``, else the worst one (a VERP match is trusted even when
    the report names another address: the reader's mail may be forwarded)."""
    for failure in failures:
        if email and failure.address.lower() == email.lower():
            return failure
    order = {Severity.HARD: 0, Severity.SOFT: 1, Severity.DELAYED: 2}
    return sorted(failures, key=lambda f: order[f.severity])[0]


def _one_bounce(ctx: Context, report: Report, target: Target, failure: Failure) -> Outcome:
    assert target.email is not None
    who = _who(target)
    where = _edition_label(ctx.session, target.edition_id)
    evidence = (
        f"{failure.severity.value} bounce {failure.describe()}{where}; reported by "
        f"{report.sender or 'an unnamed sender'} via {ctx.via}, matched by {target.how}"
    )
    kind = EVENT_TYPES[failure.severity]
    payload = {
        "severity": failure.severity.value,
        "status": failure.status,
        "diagnostic": failure.diagnostic,
        "action": failure.action,
        "recipient": failure.address,
        **_common_payload(ctx, report, target),
    }
    if not _store_event(ctx, report, target, kind, payload):
        seen = f"{who}: this {failure.severity.value} bounce was counted already"
        return Outcome("duplicate", seen)
    if failure.severity is Severity.HARD:
        return _suppress(ctx, target, SuppressionReason.HARD_BOUNCE, evidence, who)
    if failure.severity is Severity.DELAYED:
        return Outcome("recorded", f"{who}: delivery delayed ({failure.describe()}){where}")
    count = soft_bounces(ctx.session, target.email, ctx.now, ctx.settings.soft_bounce_days)
    limit, days = ctx.settings.soft_bounce_limit, ctx.settings.soft_bounce_days
    if count >= limit:
        detail = f"{count} soft bounces in {days} days (limit {limit}); the last: {evidence}"
        return _suppress(ctx, target, SuppressionReason.SOFT_BOUNCE, detail, who)
    return Outcome(
        "recorded",
        f"{who}: soft bounce {count} of {limit} in {days} days ({failure.describe()}){where}",
    )


def soft_bounces(session: Session, email: str, now: datetime, days: int) -> int:
    """Soft bounces received by mail for ``email`` in the ``days`` days up to ``now``."""
    since = now - timedelta(days=days)
    return int(
        session.scalar(
            select(func.count())
            .select_from(Event)
            .where(
                Event.type == EventType.BLOCKED.value,
                Event.provider == PROVIDER,
                func.lower(Event.email) == email.lower(),
                Event.occurred_at > since,
                Event.occurred_at <= now,
            )
        )
        or 0
    )


# ---------------------------------------------------------------------------
# Complaints and unsubscribe requests


def _complaint(ctx: Context, report: Report, addressed: list[str]) -> Outcome:
    original = report.original
    target = trusted_target(ctx.session, ctx.verp, ctx.secret, addressed, original)
    if target is None:
        for address in original.recipients:
            target = by_address(ctx.session, address, original)
            if target is not None:
                break
    if target is None or target.email is None:
        return Outcome(
            "ignored",
            f"complaint from {report.sender or 'nobody'} names no reader digest has mailed "
            "(no VERP address, no signed List-Unsubscribe token, the recipient redacted): dropped",
        )
    who = _who(target)
    where = _edition_label(ctx.session, target.edition_id)
    payload = {"feedback_type": report.feedback_type, **_common_payload(ctx, report, target)}
    if not _store_event(ctx, report, target, EventType.COMPLAINED, payload):
        return Outcome("duplicate", f"{who}: this complaint was counted already")
    evidence = (
        f"spam complaint (feedback type {report.feedback_type}){where}; reported by "
        f"{report.sender or 'an unnamed sender'} via {ctx.via}, matched by {target.how}"
    )
    return _suppress(ctx, target, SuppressionReason.SPAM_REPORT, evidence, who)


def _unsubscribe(ctx: Context, report: Report, recipient: str | None) -> Outcome:
    token = report.unsubscribe_token or ""
    try:
        link = read_link(ctx.secret, token, "unsubscribe")
    except BadToken as exc:
        return Outcome("ignored", f"unsubscribe request from {report.sender or 'nobody'}: {exc}")
    subscriber = ctx.session.get(Subscriber, link.subscriber_id)
    if subscriber is None:
        gone = f"unsubscribe request for subscriber {link.subscriber_id}, who is gone"
        return Outcome("ignored", gone)
    if link.list_name is not None and find_list(ctx.session, link.list_name) is None:
        return Outcome("ignored", f"unsubscribe request for list {link.list_name!r}, which is gone")
    to = recipient or next(iter(report.addressed_to), "the unsubscribe address")
    by = By(ConsentSource.MAILTO, report.sender or None, f"mailed {to} via {ctx.via}")
    left = service.unsubscribe(ctx.session, subscriber.id, link.list_name, by=by)
    if left and link.edition_id is not None:  # counts on the edition the link came in
        record_own(
            ctx.session,
            EventType.UNSUBSCRIBED,
            edition_id=link.edition_id,
            subscriber_id=subscriber.id,
            detail=f"mailto: {left}",
        )
    where = ", ".join(left) if left else "nothing (they had left already)"
    return Outcome("unsubscribed", f"subscriber {subscriber.id} unsubscribed by mail from {where}")


# ---------------------------------------------------------------------------
# Shared steps


def _who(target: Target) -> str:
    return f"subscriber {target.subscriber_id}" if target.subscriber_id else "an erased reader"


def _edition_label(session: Session, edition_id: int | None) -> str:
    edition = session.get(Edition, edition_id) if edition_id is not None else None
    return f", edition {edition.newsletter} {edition.period}" if edition is not None else ""


def _common_payload(ctx: Context, report: Report, target: Target) -> dict[str, Any]:
    return {
        "via": ctx.via,
        "matched_by": target.how,
        "subscriber_id": target.subscriber_id,
        "reported_by": report.sender,
        "subject": report.subject,
        "message": report.key,
        "detected_by": report.detected_by,
    }


def event_id(report: Report, target: Target) -> str:
    """One id per message and reader (a repeated notice is a duplicate)."""
    who = str(target.subscriber_id or (target.email or "").lower())
    digest = hashlib.sha256(f"{report.kind.value}|{report.key}|{who}".encode()).hexdigest()
    return f"{PROVIDER}:{report.kind.value}:{digest[:48]}"


def _store_event(
    ctx: Context, report: Report, target: Target, kind: EventType, payload: dict[str, Any]
) -> bool:
    """Insert the event unless it is there already; True when it is new."""
    table = cast(Table, Event.__table__)
    values = {
        "provider": PROVIDER,
        "provider_event_id": event_id(report, target),
        "type": kind.value,
        "email": (target.email or "")[:320] or None,
        "delivery_id": target.delivery_id,
        "edition_id": target.edition_id,
        "occurred_at": ctx.now,
        "payload": payload,
        "created_at": ctx.now,
    }
    dialect = ctx.session.get_bind().dialect.name
    insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert(table)
        .values(values)
        .on_conflict_do_nothing(index_elements=[table.c.provider_event_id])
        .returning(table.c.id)
    )
    return ctx.session.execute(stmt).scalar() is not None


def _suppress(
    ctx: Context, target: Target, reason: SuppressionReason, evidence: str, who: str
) -> Outcome:
    assert target.email is not None
    entry = suppression_for(ctx.session, target.email)
    if entry is not None and (entry.reason == reason or reason is SuppressionReason.SOFT_BOUNCE):
        return Outcome("recorded", f"{who}: suppressed already ({entry.reason.value}); {evidence}")
    by = By(ConsentSource.INBOUND, f"digest inbound ({ctx.via})", evidence)
    service.suppress(ctx.session, target.email, reason, evidence[:2000], by=by)
    return Outcome("suppressed", f"{who}: suppressed ({reason.value}): {evidence}")


__all__ = ["EVENT_TYPES", "PROVIDER", "Outcome", "act", "event_id", "soft_bounces"]

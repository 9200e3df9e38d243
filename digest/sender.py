"""The one sender: plan an edition, deliver it, settle it.

``digest send``, the scheduler (its runs and local-time waves) and ``digest
worker`` all send through a :class:`Sender`; it is the only place that builds the
send loop (:class:`~digest.delivery.loop.SendLoop`).  Its steps:

* :meth:`Sender.plan` — find or create the edition for the period (the one before
  a date, or one named by key; see :func:`~digest.editions.choose_period`), its
  contents frozen, and write the ledger for an audience (the whole list, or a
  segment), once.  Editions go out in period order: planning an edition older
  than one already going out is refused (:class:`~digest.editions.EditionOrderError`,
  nothing written) unless its period was named and ``force`` given; older
  editions queued but not started are paused;
* :meth:`Sender.prepare` — recover what stopped senders left in flight (it
  becomes *uncertain*), queue the uncertain again on request, and mark the
  edition sending when it has work;
* :meth:`Sender.deliver` — prepare, run the send loop for one edition (or, for
  workers, any edition's due batches), settle;
* :meth:`Sender.settle` — an edition with nothing outstanding is sent;
* :meth:`Sender.send` — plan and deliver (or, with ``enqueue``, plan and leave
  the delivering to workers), reported as a :class:`SendResult` whose
  :class:`SendOutcome` says what happened.

Running a send again for the same period finds the same edition and sends only
what is still pending.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import select

from digest.app import App
from digest.config import NewsletterConfig
from digest.delivery import ledger, waves
from digest.delivery.base import Backend
from digest.delivery.envelopes import StoredEditions
from digest.delivery.ledger import DeliveryCounts
from digest.delivery.loop import Progress, SendLoop, SendOptions
from digest.delivery.registry import BackendChoice, backend_class, resolve_backend
from digest.drafts import approve, record
from digest.editions import (
    BadPeriod,
    EditionOrderError,
    PeriodChoice,
    Purpose,
    choose_period,
    get_or_create_edition,
    order_problem,
    pause_overtaken,
)
from digest.errors import DeliveryError
from digest.models import Edition, EditionStatus, Variant
from digest.plan import audience_name, count_audience, plan_audiences
from subscribers.db import utcnow

log = logging.getLogger(__name__)


class SendOutcome(StrEnum):
    """What a send did."""

    #: Nothing written or sent: who would get what was counted.
    DRY_RUN = "dry_run"
    #: The period has no articles: no edition.
    NO_ARTICLES = "no_articles"
    #: Refused: a newer edition of the newsletter went out (or is going out) already,
    #: and editions go out in period order.  Nothing written or sent.
    OUT_OF_ORDER = "out_of_order"
    #: The edition has nobody to go to (no active readers on the list or segment).
    NO_READERS = "no_readers"
    #: The edition was made, but every reader was skipped (none of their sections has
    #: articles this period).
    ALL_SKIPPED = "all_skipped"
    #: Nothing was left to send: every planned reader has had theirs.
    ALREADY_DELIVERED = "already_delivered"
    #: Planned and left for `digest worker` processes.
    ENQUEUED = "enqueued"
    #: Delivered (or waiting for local-time waves); failures and uncertain ones counted.
    SENT = "sent"
    #: Too many consecutive failures, or a fatal one: the edition is paused.
    PAUSED = "paused"
    #: Stopped on request (SIGTERM, Ctrl-C) after the message in hand.
    STOPPED = "stopped"
    #: The edition is a draft awaiting an editor's approval (``approval = "required"``):
    #: nothing planned or sent.
    HELD = "held"


@dataclass(frozen=True)
class Plan:
    """The edition a send is for, and what planning its audience wrote."""

    newsletter: str
    period: str
    #: None when the period has no articles (and so no edition).
    edition_id: int | None
    #: True when this plan created the edition.
    created: bool = False
    #: Deliveries written now (0 when the audience had been planned before).
    planned: int = 0
    #: Why this period (see :func:`~digest.editions.choose_period`).
    choice: PeriodChoice | None = None
    #: Older editions, queued but not started, paused because this one overtook them.
    overtaken: tuple[str, ...] = ()
    #: The edition is a draft waiting for approval: no ledger was written.
    held: bool = False


@dataclass(frozen=True)
class DeliverResult:
    """What :meth:`Sender.prepare` found and :meth:`Sender.deliver` did."""

    #: Deliveries of the edition not settled yet when it started (edition sends only).
    outstanding: int = 0
    #: In flight when a sender stopped: now uncertain.
    recovered: int = 0
    #: Uncertain deliveries queued again (``resend_uncertain``).
    requeued: int = 0
    #: Uncertain deliveries settled from the provider's events instead (``resend_uncertain``):
    #: reported taken (sent) or bounced/dropped (failed), never resent.
    resolved_sent: int = 0
    resolved_failed: int = 0
    #: Uncertain deliveries posted less than the grace period ago, with no word from the
    #: provider yet: left uncertain, to be resent (if still unreported) after ``resend_after``.
    awaiting_evidence: int = 0
    resend_after: datetime | None = None
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    #: Handed over without an answer in this run.
    uncertain: int = 0
    #: Why the loop paused an edition, if it did.
    pause_reason: str | None = None
    #: Stopped on request before the end.
    stopped: bool = False

    @property
    def paused(self) -> bool:
        return self.pause_reason is not None


@dataclass
class SendResult:
    """What :meth:`Sender.send` did, for the CLI (``--json``: :meth:`to_dict`) and the
    scheduler."""

    newsletter: str
    period: str
    outcome: SendOutcome
    backend: BackendChoice
    edition_id: int | None = None
    created: bool = False
    #: Deliveries planned by this send.
    planned: int = 0
    delivered: DeliverResult = field(default_factory=DeliverResult)
    #: The edition's whole ledger after the send (would-be counts for a dry run).
    counts: DeliveryCounts = field(default_factory=DeliveryCounts)
    #: Readers per variant key.
    variants: dict[str, int] = field(default_factory=dict)
    skipped_reasons: dict[str, int] = field(default_factory=dict)
    #: Deliveries held for later local-time waves, and when the next one is due.
    waiting: int = 0
    next_wave: datetime | None = None
    elapsed: float = 0.0
    #: Which period, and why: ``2026-W47 (Mon 16 Nov – Sun 22 Nov): the week before …``.
    period_reason: str = ""
    #: Why the send was refused (:attr:`SendOutcome.OUT_OF_ORDER`).
    refusal: str | None = None
    #: Older editions, queued but not started, paused because this one overtook them.
    superseded: list[str] = field(default_factory=list)

    @property
    def recipients(self) -> int:
        return self.counts.total

    @property
    def sent_now(self) -> int:
        return self.delivered.sent

    @property
    def enqueued(self) -> int:
        """Deliveries left for `digest worker` processes."""
        return self.delivered.outstanding if self.outcome is SendOutcome.ENQUEUED else 0

    @property
    def pause_reason(self) -> str | None:
        return self.delivered.pause_reason

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; the flags older scripts read (``paused``, ``stopped``, …) are kept,
        worked out from ``outcome``."""
        return {
            "newsletter": self.newsletter,
            "period": self.period,
            "period_reason": self.period_reason,
            "outcome": self.outcome.value,
            "refusal": self.refusal,
            "superseded": self.superseded,
            "edition_id": self.edition_id,
            "created": self.created,
            "planned": self.planned,
            "recipients": self.recipients,
            "counts": self.counts.to_dict(),
            "variants": self.variants,
            "skipped_reasons": self.skipped_reasons,
            "sent_now": self.sent_now,
            "enqueued": self.enqueued,
            "uncertain_recovered": self.delivered.recovered,
            "requeued_uncertain": self.delivered.requeued,
            "uncertain_resolved_sent": self.delivered.resolved_sent,
            "uncertain_resolved_failed": self.delivered.resolved_failed,
            "uncertain_awaiting_evidence": self.delivered.awaiting_evidence,
            "uncertain_resend_after": (
                self.delivered.resend_after.isoformat() if self.delivered.resend_after else None
            ),
            "pause_reason": self.pause_reason,
            "waiting": self.waiting,
            "next_wave": self.next_wave.isoformat() if self.next_wave else None,
            "backend": self.backend.name,
            "backend_reason": self.backend.reason,
            "elapsed": round(self.elapsed, 3),
            "dry_run": self.outcome is SendOutcome.DRY_RUN,
            "no_articles": self.outcome is SendOutcome.NO_ARTICLES,
            "nothing_new": self.outcome
            in (SendOutcome.NO_READERS, SendOutcome.ALL_SKIPPED, SendOutcome.ALREADY_DELIVERED),
            "paused": self.outcome is SendOutcome.PAUSED,
            "stopped": self.outcome is SendOutcome.STOPPED,
        }


#: Told the loop's running totals and the deliveries outstanding when it started
#: (None when sending any edition's batches, as workers do).
ProgressCallback = Callable[[Progress, int | None], None]


class Sender:
    """Plans, delivers and settles editions through one backend.

    ``backend`` is a registry name, a :class:`BackendChoice` already resolved, or
    None (see :func:`~digest.delivery.registry.resolve_backend`);
    ``backend_factory`` replaces the registry's instances (tests, benchmarks).
    ``cancel`` stops a delivery after the message in hand; ``owner`` names this
    sender's claims on the ledger (default: host, process and a token).
    """

    def __init__(
        self,
        app: App,
        backend: str | BackendChoice | None = None,
        *,
        options: SendOptions | None = None,
        cancel: threading.Event | None = None,
        on_progress: ProgressCallback | None = None,
        backend_factory: Callable[[], Backend] | None = None,
        owner: str | None = None,
        batch_size: int | None = None,
    ) -> None:
        self.app = app
        if backend_factory is not None and not isinstance(backend, BackendChoice):
            self.backend = BackendChoice(backend or "custom", "a backend factory given in code")
            self._factory = backend_factory
            kind = backend_class(backend) if backend else Backend
        else:
            if not isinstance(backend, BackendChoice):
                backend = resolve_backend(app.settings, backend)
            self.backend = backend
            self._factory = backend_factory or backend.factory(app.settings)
            kind = backend.backend_class
        self.batch_size = batch_size or kind.batch_size
        #: How long an uncertain delivery waits for the provider's word before a resend
        #: (``DIGEST_UNCERTAIN_GRACE``, for providers that report events; else none).
        self.uncertain_grace = (
            timedelta(seconds=app.settings.uncertain_grace)
            if kind.reports_events(app.settings)
            else timedelta(0)
        )
        self.options = options or SendOptions()
        if self.options.account is None:  # the account's shared rate, when one is set
            account = kind.account_limit(app.settings)
            if account is not None:
                self.options = replace(self.options, account=account)
        limit = kind.connection_limit(app.settings)
        if limit is not None and self.options.concurrency > limit:
            # the relay's limit (e.g. SMTP's ?connections=N): one connection per thread
            self.options = replace(self.options, concurrency=limit)
        self.cancel = cancel or threading.Event()
        self.on_progress = on_progress
        self.owner = owner

    # -- the steps ---------------------------------------------------------
    def choose(
        self,
        newsletter: str,
        as_of: datetime | None = None,
        period: str | PeriodChoice | None = None,
    ) -> PeriodChoice:
        """The period a send is for (see :func:`~digest.editions.choose_period`): the one
        given (a :class:`PeriodChoice` as is, or a key), else the one before ``as_of``,
        else the one due now."""
        if isinstance(period, PeriodChoice):
            return period
        nl = self.app.config.newsletter(newsletter)
        return choose_period(
            nl, as_of=as_of, period=period, purpose=Purpose.SEND, given_as="the send time given"
        )

    def plan(
        self,
        newsletter: str,
        as_of: datetime | None = None,
        *,
        period: str | PeriodChoice | None = None,
        segment: str | None = None,
        force: bool = False,
        segments: Sequence[str] = (),
    ) -> Plan:
        """Find or create the edition for the period (see :meth:`choose`) and write the
        ledger for ``segment`` (None: the whole list), unless it was written before.

        Raises :class:`~digest.editions.EditionOrderError`, having written nothing, when
        a newer edition of the newsletter has gone out (or is going out, or is queued)
        and this is not a resumption of an edition already going out; ``force`` (only
        with a period named by key) sends it all the same.  Older editions queued but
        not started are paused once this one is planned (:attr:`Plan.overtaken`).

        ``segments`` (instead of ``segment``) plans several segments in one pass over
        the list (:func:`~digest.plan.plan_audiences`).
        """
        nl = self.app.config.newsletter(newsletter)
        choice = self.choose(nl.name, as_of, period)
        _check_force(nl.name, choice, force)
        audiences: list[str | None] = list(segments) or [segment]
        if not force:
            with self.app.sessions() as s:
                for each in audiences:
                    problem = order_problem(s, nl, choice.period, audience_name(each))
                    if problem is not None:
                        raise problem
        required = nl.approval == "required"
        edition, created = get_or_create_edition(
            self.app,
            nl,
            choice.period,
            EditionStatus.DRAFT if required else EditionStatus.PLANNED,
        )
        if edition is None:
            return Plan(nl.name, choice.period.key, None, choice=choice)
        if created and required:
            with self.app.transaction() as s:
                record(s, edition.id, "scheduler", "prepare", "draft prepared at send time")
        if not self._approved(nl, edition.id):
            return Plan(nl.name, choice.period.key, edition.id, created, choice=choice, held=True)
        counts = plan_audiences(self.app, nl, edition.id, audiences, self.batch_size, choice.as_of)
        overtaken: list[str] = []
        if counts is not None and counts.planned:
            with self.app.transaction() as s:
                current = s.get(Edition, edition.id)
                assert current is not None
                overtaken = pause_overtaken(s, current)
            for key in overtaken:
                log.warning(
                    "%s: %s was queued but had not started going out; paused, since %s "
                    "overtook it (to send it anyway: digest send %s --period %s --force)",
                    nl.name,
                    key,
                    choice.period.key,
                    nl.name,
                    key,
                )
        return Plan(
            nl.name,
            choice.period.key,
            edition.id,
            created,
            counts.planned if counts else 0,
            choice,
            tuple(overtaken),
        )

    def _approved(self, nl: NewsletterConfig, edition_id: int) -> bool:
        """May the edition's ledger be written?  A draft of an ``approval = "auto"``
        newsletter is approved here (and the log says so); one that needs an editor's
        approval is not (False).  An approved edition becomes planned; a cancelled one is
        refused."""
        with self.app.transaction() as s:
            edition = s.get(Edition, edition_id)
            assert edition is not None
            if edition.status == EditionStatus.CANCELLED:
                raise DeliveryError(
                    f"{nl.name} {edition.period}: edition {edition.id} was cancelled; "
                    "it is not sent"
                )
            if edition.status == EditionStatus.DRAFT:
                if nl.approval == "required":
                    return False
                approve(s, edition, "approval = auto")
            if edition.status == EditionStatus.APPROVED:
                edition.status = EditionStatus.PLANNED
        return True

    def prepare(
        self, edition_id: int, *, resend_uncertain: bool = False, resume: bool = False
    ) -> DeliverResult:
        """Get an edition ready to deliver: what stopped senders left in flight becomes
        uncertain (and, with ``resend_uncertain``, every uncertain delivery is queued
        again); an edition with work is marked sending.  ``resume`` also sets a paused
        (or already sent) edition going again, as `digest send` does; waves and workers
        leave a paused edition paused."""
        recovered = ledger.recover_stale(self.app.sessions, edition_id)
        again = (
            ledger.resend_uncertain(
                self.app.sessions, edition_id, self.batch_size, grace=self.uncertain_grace
            )
            if resend_uncertain
            else ledger.Requeued()
        )
        with self.app.transaction() as s:
            outstanding = ledger.outstanding(s, edition_id)
            edition = s.get(Edition, edition_id)
            assert edition is not None
            if outstanding and (resume or edition.status == EditionStatus.PLANNED):
                edition.status = EditionStatus.SENDING
        return DeliverResult(
            outstanding,
            recovered,
            again.requeued,
            resolved_sent=again.resolved.sent,
            resolved_failed=again.resolved.failed,
            awaiting_evidence=again.waiting,
            resend_after=again.wait_until,
        )

    def deliver(
        self,
        edition_id: int | None = None,
        *,
        resend_uncertain: bool = False,
        resume: bool = False,
    ) -> DeliverResult:
        """Send what is due: of one edition (prepared first, see :meth:`prepare`), or of
        any sendable edition when ``edition_id`` is None (workers); then settle."""
        if edition_id is None:
            ready = DeliverResult(recovered=ledger.recover_stale(self.app.sessions))
            total: int | None = None
        else:
            ready = self.prepare(edition_id, resend_uncertain=resend_uncertain, resume=resume)
            total = ready.outstanding
            if not total:
                self.settle(edition_id)
                return ready
        callback = self.on_progress
        loop = SendLoop(
            self.app.sessions,
            self._factory,
            StoredEditions(self.app),
            self.options,
            on_progress=(lambda p: callback(p, total)) if callback else None,
            owner=self.owner,
            cancel=self.cancel,
        )
        result = loop.run(edition_id)
        self.settle(edition_id)
        p = result.progress
        return replace(
            ready,
            sent=p.sent,
            failed=p.failed,
            skipped=p.skipped,
            uncertain=p.uncertain,
            pause_reason=(result.reason or "paused") if result.paused else None,
            stopped=self.cancel.is_set(),
        )

    def settle(self, edition_id: int | None = None) -> None:
        """Mark the edition (or, when None, every sending edition) sent once nothing of it
        is outstanding; a paused one stays paused."""
        if edition_id is not None:
            ledger.settle_edition(self.app.sessions, edition_id)
            return
        with self.app.sessions() as s:
            ids = list(s.scalars(select(Edition.id).where(Edition.status == EditionStatus.SENDING)))
        for each in ids:
            ledger.settle_edition(self.app.sessions, each)

    # -- all of it ---------------------------------------------------------
    def send(
        self,
        newsletter: str,
        as_of: datetime | None = None,
        *,
        period: str | PeriodChoice | None = None,
        force: bool = False,
        segment: str | None = None,
        dry_run: bool = False,
        resend_uncertain: bool = False,
        enqueue: bool = False,
        segments: Sequence[str] = (),
    ) -> SendResult:
        """Create or resume the edition for the period (``period``, else the one before
        ``as_of``, else the one due now) and deliver it (with ``enqueue``, only plan it:
        workers deliver it).  An edition older than one already going out is refused
        (:attr:`SendOutcome.OUT_OF_ORDER`, nothing written) unless ``period`` names it
        and ``force`` is given.  ``segments`` sends to several segments at once (planned
        in one pass over the list; a reader in two gets one copy)."""
        started = time.monotonic()
        choice = self.choose(newsletter, as_of, period)
        if len(segments) == 1:
            segment, segments = segments[0], ()
        if dry_run:
            if segments:
                raise ValueError("a dry run counts one audience: give at most one segment")
            return self._dry_run(newsletter, choice, segment, force)
        try:
            plan = self.plan(
                newsletter, period=choice, segment=segment, force=force, segments=segments
            )
        except EditionOrderError as refused:
            return SendResult(
                refused.newsletter,
                choice.period.key,
                SendOutcome.OUT_OF_ORDER,
                self.backend,
                period_reason=str(choice),
                refusal=str(refused),
            )
        result = SendResult(
            plan.newsletter,
            plan.period,
            SendOutcome.SENT,
            self.backend,
            period_reason=str(choice),
            superseded=list(plan.overtaken),
        )
        if plan.edition_id is None:
            result.outcome = SendOutcome.NO_ARTICLES
            return result
        if plan.held:
            result.edition_id, result.created = plan.edition_id, plan.created
            result.outcome = SendOutcome.HELD
            result.refusal = (
                f"{plan.newsletter} {plan.period}: edition {plan.edition_id} is a draft waiting "
                f'for an editor\'s approval (approval = "required"); approve it with '
                f"`digest editions approve {plan.edition_id}` or on its page in the admin"
            )
            result.elapsed = time.monotonic() - started
            return result
        result.edition_id, result.created, result.planned = (
            plan.edition_id,
            plan.created,
            plan.planned,
        )
        if enqueue:
            result.delivered = self.prepare(
                plan.edition_id, resend_uncertain=resend_uncertain, resume=True
            )
            self.settle(plan.edition_id)
        else:
            result.delivered = self.deliver(
                plan.edition_id, resend_uncertain=resend_uncertain, resume=True
            )
        self._fill_counts(result, plan.edition_id)
        result.outcome = _outcome(result, enqueue=enqueue)
        result.elapsed = time.monotonic() - started
        return result

    def _fill_counts(self, result: SendResult, edition_id: int) -> None:
        with self.app.sessions() as s:
            # one pass over the edition's deliveries, not one per figure
            tally = ledger.edition_tally(s, edition_id)
            result.counts = tally.counts
            result.skipped_reasons = tally.skipped_reasons
            result.variants = {
                key: tally.per_variant.get(variant_id, 0)
                for variant_id, key in s.execute(
                    select(Variant.id, Variant.key)
                    .where(Variant.edition_id == edition_id)
                    .order_by(Variant.id)
                ).all()
            }
            result.waiting, result.next_wave = waves.waiting(s, edition_id, utcnow())

    def _dry_run(
        self, newsletter: str, choice: PeriodChoice, segment: str | None, force: bool
    ) -> SendResult:
        nl = self.app.config.newsletter(newsletter)
        period, reason = choice.period, str(choice)
        _check_force(nl.name, choice, force)
        if not force:
            with self.app.sessions() as s:
                problem = order_problem(s, nl, period, audience_name(segment))
            if problem is not None:
                return SendResult(
                    nl.name,
                    period.key,
                    SendOutcome.OUT_OF_ORDER,
                    self.backend,
                    period_reason=reason,
                    refusal=str(problem),
                )
        counted = count_audience(self.app, nl, period, segment)
        if counted is None:
            return SendResult(
                nl.name, period.key, SendOutcome.NO_ARTICLES, self.backend, period_reason=reason
            )
        return SendResult(
            nl.name,
            period.key,
            SendOutcome.DRY_RUN,
            self.backend,
            edition_id=counted.edition_id,
            counts=DeliveryCounts(
                pending=sum(counted.variants.values()),
                skipped=sum(counted.skipped_reasons.values()),
            ),
            variants=counted.variants,
            skipped_reasons=counted.skipped_reasons,
            period_reason=reason,
        )


def _check_force(newsletter: str, choice: PeriodChoice, force: bool) -> None:
    """``force`` sends an older edition only when its period was named by key."""
    if force and not choice.named:
        raise BadPeriod(
            "--force needs --period: name the edition to send out of order, e.g. "
            f"digest send {newsletter} --period {choice.period.key} --force"
        )


def _outcome(result: SendResult, *, enqueue: bool) -> SendOutcome:
    done = result.delivered
    if done.paused:
        return SendOutcome.PAUSED
    if done.stopped:
        return SendOutcome.STOPPED
    if done.outstanding:
        return SendOutcome.ENQUEUED if enqueue else SendOutcome.SENT
    if result.counts.total == 0:
        return SendOutcome.NO_READERS
    if result.created:
        return SendOutcome.ALL_SKIPPED
    return SendOutcome.ALREADY_DELIVERED


__all__ = [
    "DeliverResult",
    "Plan",
    "ProgressCallback",
    "SendOutcome",
    "SendResult",
    "Sender",
]

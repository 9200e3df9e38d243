"""One scheduled run of a newsletter: claim it, ingest, send, record what happened.

A run is identified by (newsletter, scheduled time).  Before doing anything a
run *claims* its slot in ``scheduler_run`` (under a lock: PostgreSQL advisory
lock, SQLite's ``BEGIN IMMEDIATE``), so two schedulers over one database do
the work once; the other logs that the slot is taken.  Even without the claim
an edition is unique per period and every delivery is claimed batch by batch,
so nobody is mailed twice.

What a run records is a :class:`~digest.models.RunOutcome`; the send's own
:class:`~digest.sender.SendOutcome` becomes one through :data:`RUN_OUTCOMES`.
Sending goes through the one :class:`~digest.sender.Sender`.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from types import MappingProxyType
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from digest import desk, workers
from digest.app import App
from digest.collect import period_for
from digest.config import NewsletterConfig
from digest.delivery import ledger, waves
from digest.delivery.base import Backend
from digest.delivery.loop import SendOptions
from digest.delivery.registry import BackendChoice
from digest.editions import PeriodChoice, Purpose, choose_period, find_edition
from digest.errors import DigestError, NotFound, ScheduleError
from digest.ingest import IngestReport, ingest
from digest.models import Edition, EditionStatus, RunOutcome, SchedulerRun
from digest.queries import last_runs
from digest.schedule_rules import fire_times, trigger_for
from digest.sender import Sender, SendOutcome, SendResult
from subscribers.db import utcnow
from subscribers.errors import SubscribersError

log = logging.getLogger(__name__)

#: Runs that the next scheduler start takes up again.
RESUMABLE = frozenset({RunOutcome.STOPPED, RunOutcome.INTERRUPTED})
#: A run still marked running after this long is taken to be dead (any host).
STALE_RUN = timedelta(hours=12)
#: Problems a user fixes (bad config, missing list, …): logged as one line, no traceback.
USER_ERRORS = (DigestError, SubscribersError)

#: What a scheduled run records for each outcome of its send.
RUN_OUTCOMES: Mapping[SendOutcome, RunOutcome] = MappingProxyType(
    {
        SendOutcome.SENT: RunOutcome.SENT,
        SendOutcome.ENQUEUED: RunOutcome.SENT,
        SendOutcome.PAUSED: RunOutcome.PAUSED,
        SendOutcome.STOPPED: RunOutcome.STOPPED,
        SendOutcome.NO_ARTICLES: RunOutcome.SKIPPED,
        SendOutcome.OUT_OF_ORDER: RunOutcome.SKIPPED,
        SendOutcome.NO_READERS: RunOutcome.SKIPPED,
        SendOutcome.ALL_SKIPPED: RunOutcome.SKIPPED,
        SendOutcome.ALREADY_DELIVERED: RunOutcome.SKIPPED,
        SendOutcome.DRY_RUN: RunOutcome.SKIPPED,
        SendOutcome.HELD: RunOutcome.HELD,
    }
)


@dataclass
class RunContext:
    """What a run needs besides its newsletter and time."""

    app: App
    #: Set on SIGTERM/SIGINT: the send finishes the message in hand and stops.
    cancel: threading.Event = field(default_factory=threading.Event)
    backend: str | BackendChoice | None = None
    backend_factory: Callable[[], Backend] | None = None
    options: SendOptions | None = None
    owner: str = field(default_factory=ledger.owner_id)
    #: Told (newsletter, edition id, wave times) when an edition has later waves.
    on_waves: Callable[[str, int, list[datetime]], None] | None = None
    #: Every run only plans its edition and leaves the sending to `digest worker`
    #: processes (`digest scheduler --enqueue`); else per newsletter (``delivery``).
    enqueue: bool = False

    def enqueues(self, newsletter: NewsletterConfig) -> bool:
        """True when the newsletter's runs leave the sending (waves too) to workers."""
        return self.enqueue or newsletter.delivery == "workers"

    @cached_property
    def sender(self) -> Sender:
        """The sender every run and wave of this context goes through."""
        return Sender(
            self.app,
            self.backend,
            options=self.options,
            cancel=self.cancel,
            backend_factory=self.backend_factory,
        )


@dataclass
class RunResult:
    """What one scheduled run did."""

    newsletter: str
    scheduled_for: datetime
    #: None when another scheduler holds the slot (nothing was done here).
    outcome: RunOutcome | None
    detail: str
    run_id: int | None = None
    report: SendResult | None = None
    ingested: IngestReport | None = None
    #: Which period the run sends, and why.
    choice: PeriodChoice | None = None
    #: A dry run: nothing claimed, ingested, written or sent (``outcome`` is None).
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "newsletter": self.newsletter,
            "scheduled_for": self.scheduled_for.isoformat(),
            "outcome": self.outcome.value if self.outcome else None,
            "detail": self.detail,
            "period": self.choice.period.key if self.choice else None,
            "period_reason": str(self.choice) if self.choice else None,
            "dry_run": self.dry_run,
            "run_id": self.run_id,
            "send": self.report.to_dict() if self.report else None,
            "ingest": self.ingested.totals if self.ingested else None,
        }


# ---------------------------------------------------------------------------
# The scheduler_run ledger


def _lock_newsletter(session: Session, newsletter: str) -> None:
    """Serialise claims on one newsletter's runs (SQLite transactions already are)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    digest = hashlib.blake2b(f"digest-run:{newsletter}".encode(), digest_size=8).digest()
    key = int.from_bytes(digest, "big", signed=True)
    session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


def _slot(session: Session, newsletter: str, scheduled_for: datetime) -> SchedulerRun | None:
    return session.scalars(
        select(SchedulerRun)
        .where(SchedulerRun.newsletter == newsletter, SchedulerRun.scheduled_for == scheduled_for)
        .order_by(SchedulerRun.id.desc())
    ).first()


def _is_dead(run: SchedulerRun, now: datetime) -> bool:
    """True when a running run's scheduler is gone: a process of this host that no
    longer runs, or (any host) a run started longer ago than :data:`STALE_RUN`."""
    if run.started_at is not None and now - run.started_at > STALE_RUN:
        return True
    return run.owner is not None and ledger.owner_is_dead(run.owner)


def claim_run(
    app: App, newsletter: str, scheduled_for: datetime, owner: str, *, manual: bool = False
) -> int | None:
    """Take the (newsletter, time) slot; its run id, or None when it is taken or done.

    A slot whose run stopped or was interrupted can be taken again; ``manual``
    (``digest schedule run``) also takes over a finished slot, but never one that
    a live scheduler is running.
    """
    now = utcnow()
    with app.transaction() as s:
        _lock_newsletter(s, newsletter)
        run = _slot(s, newsletter, scheduled_for)
        if run is None:
            run = SchedulerRun(newsletter=newsletter, scheduled_for=scheduled_for)
            s.add(run)
        elif run.outcome == RunOutcome.RUNNING and not _is_dead(run, now):
            if manual:
                raise ScheduleError(
                    f"{newsletter}: the run for {scheduled_for:%Y-%m-%d %H:%M} UTC is in progress "
                    f"(running on {run.owner or 'an unknown host'}); wait for it to finish, or "
                    "stop that scheduler first"
                )
            return None
        elif not (manual or run.outcome in RESUMABLE or run.outcome == RunOutcome.RUNNING):
            return None
        run.outcome = RunOutcome.RUNNING
        run.owner = owner
        run.started_at = now
        run.finished_at = None
        run.detail = "in progress"
        s.flush()
        return run.id


def finish_run(app: App, run_id: int, outcome: RunOutcome, detail: str) -> None:
    with app.transaction() as s:
        run = s.get(SchedulerRun, run_id)
        if run is not None:
            run.outcome = outcome
            run.detail = detail
            run.finished_at = utcnow()


def record_missed(app: App, newsletter: str, scheduled_for: datetime, detail: str) -> bool:
    """Record a run that will not happen (once, even if two schedulers notice)."""
    with app.transaction() as s:
        _lock_newsletter(s, newsletter)
        if _slot(s, newsletter, scheduled_for) is not None:
            return False
        s.add(
            SchedulerRun(
                newsletter=newsletter,
                scheduled_for=scheduled_for,
                finished_at=utcnow(),
                outcome=RunOutcome.MISSED,
                detail=detail,
            )
        )
    return True


# ---------------------------------------------------------------------------
# Running


def local(newsletter: NewsletterConfig, moment: datetime) -> str:
    """A time as the newsletter's readers see it: ``Mon 2026-11-23 08:00 GMT``."""
    return f"{moment.astimezone(newsletter.zone):%a %Y-%m-%d %H:%M %Z}"


def missed_detail(newsletter: NewsletterConfig, scheduled_for: datetime, why: str) -> str:
    return (
        f"{why}; not sent late. To send it now: digest schedule run {newsletter.name} "
        f"--as-of {scheduled_for.isoformat()}"
    )


def _ingest(app: App, newsletter: NewsletterConfig) -> IngestReport:
    refs = [app.config.resolve_source(src) for src in newsletter.sources]
    if not refs:
        return IngestReport()
    report = ingest(app.sessions, app.config, app.settings, refs)
    for error in report.errors:
        log.warning("%s: ingest: %s", newsletter.name, error)
    return report


def run_choice(newsletter: NewsletterConfig, scheduled_for: datetime) -> PeriodChoice:
    """The period a run due at ``scheduled_for`` sends: the one before that time."""
    return choose_period(
        newsletter,
        as_of=scheduled_for,
        purpose=Purpose.SEND,
        given_as="the time this run was scheduled for",
    )


def run_edition(
    ctx: RunContext,
    newsletter: str,
    scheduled_for: datetime,
    *,
    manual: bool = False,
    dry_run: bool = False,
    choice: PeriodChoice | None = None,
) -> RunResult:
    """Ingest the newsletter's sources, then send the edition for the period before
    ``scheduled_for`` (or ``choice``, which says why); recorded in ``scheduler_run``.
    Safe to call twice.  A run whose edition is older than one already going out is
    recorded as skipped, saying why (editions go out in period order).

    ``dry_run``: say what the run would send, to whom, and which period and why;
    nothing is claimed, ingested, written or sent.
    """
    app = ctx.app
    nl = app.config.newsletter(newsletter)
    choice = choice or run_choice(nl, scheduled_for)
    if dry_run:
        would = ctx.sender.send(nl.name, period=choice, dry_run=True)
        return RunResult(
            nl.name,
            scheduled_for,
            None,
            describe(nl, would)[1],
            report=would,
            choice=choice,
            dry_run=True,
        )
    run_id = claim_run(app, nl.name, scheduled_for, ctx.owner, manual=manual)
    if run_id is None:
        log.info(
            "%s: the run due %s is taken by another scheduler", nl.name, local(nl, scheduled_for)
        )
        return RunResult(nl.name, scheduled_for, None, "handled by another scheduler")
    result = RunResult(nl.name, scheduled_for, RunOutcome.RUNNING, "", run_id, choice=choice)
    log.info("%s: run due %s started; period %s", nl.name, local(nl, scheduled_for), choice)
    try:
        if not ctx.cancel.is_set():  # a stop may come while the run waited for a thread
            result.ingested = _ingest(app, nl)
        if ctx.cancel.is_set():
            result.outcome = RunOutcome.STOPPED
            result.detail = "stopped before sending; resumed at next start"
        else:
            if nl.approval == "required":  # editions approved after their run was held
                send_approved(ctx, slot_of=nl.name)
            later = _approved_for_later(app, nl, choice)
            if later is not None:  # the desk set its own time: the sweep sends it then
                result.outcome, result.detail = RunOutcome.SKIPPED, later
            else:
                enqueue = ctx.enqueues(nl)
                result.report = ctx.sender.send(nl.name, period=choice, enqueue=enqueue)
                result.outcome, result.detail = describe(nl, result.report, result.ingested)
                held = result.report
                if held.outcome is SendOutcome.HELD and held.created and held.edition_id:
                    _notify(ctx, held.edition_id)
                if result.report.outcome is SendOutcome.ENQUEUED:
                    result.detail += _worker_note(app, nl)
    except Exception as exc:
        result.outcome, result.detail = RunOutcome.FAILED, _one_line(exc)
        finish_run(app, run_id, RunOutcome.FAILED, result.detail)
        if manual:
            raise  # the command line shows it
        if isinstance(exc, USER_ERRORS):
            log.error("%s: run due %s failed: %s", nl.name, local(nl, scheduled_for), exc)
        else:
            log.exception("%s: run due %s failed", nl.name, local(nl, scheduled_for))
        return result
    finish_run(app, run_id, result.outcome, result.detail)
    # a refused run is a warning in the scheduler's log; `digest schedule run` prints it
    refused = result.report is not None and result.report.outcome is SendOutcome.OUT_OF_ORDER
    level = (
        logging.WARNING
        if (refused and not manual) or result.outcome in (RunOutcome.STOPPED, RunOutcome.PAUSED)
        else logging.INFO
    )
    log.log(
        level,
        "%s: run due %s %s: %s",
        nl.name,
        local(nl, scheduled_for),
        result.outcome,
        result.detail,
    )
    report = result.report
    enqueued = report is not None and report.outcome is SendOutcome.ENQUEUED
    # the workers send an enqueued edition's waves (each batch waits for its not_before)
    if (
        report is not None
        and report.waiting
        and report.edition_id
        and ctx.on_waves
        and not enqueued
    ):
        with app.sessions() as s:
            times = waves.future_waves(s, report.edition_id, utcnow())
        ctx.on_waves(nl.name, report.edition_id, times)
    return result


def describe(
    newsletter: NewsletterConfig, report: SendResult, ingested: IngestReport | None = None
) -> tuple[RunOutcome, str]:
    """(what the run records, one line on what its send did)."""
    edition = f"edition {report.edition_id} ({report.period})"
    counts = report.counts
    match report.outcome:
        case SendOutcome.NO_ARTICLES:
            detail = f"no new articles for {report.period}; nothing to send"
        case SendOutcome.OUT_OF_ORDER:
            detail = report.refusal or f"{report.period} is older than an edition already sent"
        case SendOutcome.PAUSED:
            detail = (
                f"{edition} paused: {report.pause_reason}; fix the cause, then "
                f"`digest send {newsletter.name}` resumes it"
            )
        case SendOutcome.STOPPED:
            detail = f"{edition} stopped after {report.sent_now} sent; resumed at next start"
        case SendOutcome.HELD:
            detail = report.refusal or f"{edition} is a draft waiting for approval"
        case SendOutcome.NO_READERS:
            detail = f"{edition}: nobody to send it to (no active readers on the list)"
        case SendOutcome.ALL_SKIPPED:
            detail = f"{edition}: nothing to send ({counts.skipped} skipped)"
        case SendOutcome.ALREADY_DELIVERED:
            detail = f"{edition} was already delivered"
        case SendOutcome.DRY_RUN:
            detail = (
                f"{report.period}: would send {counts.pending} ({counts.skipped} skipped); "
                "a dry run, nothing written or sent"
            )
        case SendOutcome.SENT | SendOutcome.ENQUEUED:
            parts = [
                f"{edition}: {report.sent_now} sent now ({counts.sent} in all)",
                f"{counts.failed} failed",
                f"{counts.skipped} skipped",
            ]
            if counts.uncertain:
                parts.append(f"{counts.uncertain} uncertain")
            if report.enqueued:
                parts.append(f"{report.enqueued} queued for `digest worker`")
            if report.waiting and report.next_wave is not None:
                parts.append(
                    f"{report.waiting} waiting for local-time waves, next at "
                    f"{report.next_wave:%Y-%m-%d %H:%M} UTC"
                )
            for key in report.superseded:
                parts.append(f"{key} paused (queued, not started, and older than this edition)")
            if ingested is not None and ingested.errors:
                parts.append(
                    f"{len(ingested.errors)} of {len(ingested.results)} sources failed to load"
                )
            detail = "; ".join(parts)
    return RUN_OUTCOMES[report.outcome], detail


def _notify(ctx: RunContext, edition_id: int) -> None:
    """Tell the editors a draft waits for them; a failure to mail them is logged only."""
    # a backend given in code (tests, benchmarks) cannot send test copies: use the settings'
    backend = ctx.backend if ctx.backend_factory is None else None
    try:
        desk.notify_editors(ctx.app, edition_id, backend=backend)
    except USER_ERRORS as exc:
        log.error("edition %s: the editors could not be told of the draft: %s", edition_id, exc)


def prepare_drafts(ctx: RunContext, now: datetime | None = None) -> list[int]:
    """For each newsletter with ``approval = "required"`` whose next run is within its
    ``prepare_before``: ingest, prepare that run's draft (once) and tell the editors.
    Returns the ids of the drafts made now."""
    app = ctx.app
    now = now or utcnow()
    made: list[int] = []
    for nl in app.config.newsletters.values():
        if nl.approval != "required" or ctx.cancel.is_set():
            continue
        upcoming = fire_times(trigger_for(nl.schedule, nl.zone), now, 1)
        if not upcoming or upcoming[0] - nl.prepare_ahead > now:
            continue
        choice = run_choice(nl, upcoming[0])
        with app.sessions() as s:
            if find_edition(s, nl.name, choice.period.key) is not None:
                continue
        try:
            _ingest(app, nl)
            prepared = desk.prepare(
                app,
                nl.name,
                as_of=upcoming[0],
                actor="scheduler",
                why=f"draft prepared {nl.prepare_before} before the run due "
                f"{local(nl, upcoming[0])}",
            )
        except NotFound as exc:  # no articles yet: looked at again at the next sweep
            log.info("%s: no draft prepared yet: %s", nl.name, exc)
            continue
        except USER_ERRORS as exc:
            log.warning("%s: no draft prepared: %s", nl.name, exc)
            continue
        if prepared.created:
            log.info(
                "%s: draft edition %s (%s) prepared for the run due %s; waiting for approval",
                nl.name,
                prepared.edition_id,
                choice.period.key,
                local(nl, upcoming[0]),
            )
            made.append(prepared.edition_id)
            _notify(ctx, prepared.edition_id)
    return made


def send_approved(ctx: RunContext, *, slot_of: str | None = None) -> int:
    """Send the approved editions that are due: scheduled from the desk for a time that
    has come, or approved after their scheduled run was held (``late_approval = "now"``;
    at a run of ``slot_of``, that newsletter's whatever it says).  Returns how many."""
    sent = 0
    for edition_id in desk.due_approved(ctx.app, slot_of=slot_of):
        if ctx.cancel.is_set():
            break
        try:
            with ctx.app.sessions() as s:
                edition = s.get(Edition, edition_id)
                nl = ctx.app.config.newsletters.get(edition.newsletter) if edition else None
            enqueue = nl is not None and ctx.enqueues(nl)
            result = desk.send(
                ctx.app, edition_id, actor="scheduler", sender=ctx.sender, enqueue=enqueue
            )
        except USER_ERRORS as exc:
            log.error("edition %s: not sent: %s", edition_id, exc)
            continue
        log.info("edition %s sent when due: %s", edition_id, result.outcome)
        sent += 1
    return sent


def _approved_for_later(app: App, nl: NewsletterConfig, choice: PeriodChoice) -> str | None:
    """Why the run does not send its edition now: it was approved to go out at a later
    time (``send_at``), which the scheduler's sweep keeps (:func:`send_approved`)."""
    with app.sessions() as s:
        edition = find_edition(s, nl.name, choice.period.key)
        if edition is None or edition.status != EditionStatus.APPROVED or not edition.send_at:
            return None
        send_at = edition.send_at
    if send_at.tzinfo is None:
        send_at = send_at.replace(tzinfo=UTC)
    if send_at <= utcnow():
        return None
    return (
        f"edition {edition.id} ({choice.period.key}) was approved to go out at "
        f"{local(nl, send_at)}; it is sent then"
    )


def _worker_note(app: App, newsletter: NewsletterConfig) -> str:
    """What the run's record adds about the workers; a warning in the log when none runs."""
    with app.sessions() as s:
        running = workers.alive(s)
    if running:
        return f"; {running} worker(s) running"
    log.warning(
        "%s: the edition is queued for workers, but no worker is running: start `digest "
        "worker` (the admin console shows it as waiting for workers)",
        newsletter.name,
    )
    return "; no worker is running: start `digest worker`"


def resume_edition(ctx: RunContext, edition_id: int) -> tuple[int, list[datetime]]:
    """Send whatever of an edition is due now; (sent, times of the waves still waiting).

    Idempotent: only pending, due batches of a planned or sending edition are claimed
    (:func:`ledger.claim_batch` sees to that), each by one sender; a paused edition
    stays paused.
    """
    done = ctx.sender.deliver(edition_id)
    if done.paused:
        log.warning("edition %s paused: %s", edition_id, done.pause_reason)
    with ctx.app.sessions() as s:
        later = waves.future_waves(s, edition_id, utcnow())
    return done.sent, later


def sweep(ctx: RunContext) -> int:
    """Send every due wave of every sending edition; have the later ones scheduled.

    Catches waves of editions sent by hand (`digest send`) and of any run whose
    wave jobs were lost.  First prepares the drafts that fall due (``approval =
    "required"``, :func:`prepare_drafts`) and sends approved editions whose time has
    come (:func:`send_approved`).  Returns how many wave messages went out.
    """
    app = ctx.app
    prepare_drafts(ctx)
    send_approved(ctx)
    with app.sessions() as s:
        pending = waves.editions_with_waves(s)
    total = 0
    for edition_id, name in pending:
        nl = app.config.newsletters.get(name)
        if nl is not None and ctx.enqueues(nl):
            continue  # its workers send its waves
        if name not in app.config.newsletters:
            log.warning(
                "edition %s of %r has waves waiting, but %r is no longer in %s",
                edition_id,
                name,
                name,
                app.config.path,
            )
            continue
        if ctx.cancel.is_set():
            break
        sent, later = resume_edition(ctx, edition_id)
        total += sent
        if sent:
            log.info("%s: edition %s: %d sent in a local-time wave", name, edition_id, sent)
        if later and ctx.on_waves:
            ctx.on_waves(name, edition_id, later)
    return total


def is_fire_time(newsletter: NewsletterConfig, moment: datetime) -> bool:
    """True when ``moment`` is one of the newsletter's scheduled times."""
    trigger = trigger_for(newsletter.schedule, newsletter.zone)
    upcoming = fire_times(trigger, moment - timedelta(seconds=1), 1)
    return bool(upcoming) and upcoming[0] == moment


def runs_to_resume(app: App, grace: timedelta) -> list[tuple[str, datetime]]:
    """Scheduled runs that a stopped or dead scheduler left unfinished, to run again.

    The latest run of each newsletter counts when it stopped or was interrupted:
    it is taken up again if it is still within the grace time, or if its edition
    had started going out (those readers' neighbours must get it too).
    """
    now = utcnow()
    todo: list[tuple[str, datetime]] = []
    with app.transaction() as s:
        latest = last_runs(s)
        for name, run in latest.items():
            nl = app.config.newsletters.get(name)
            if nl is None:
                continue
            if run.outcome == RunOutcome.RUNNING and _is_dead(run, now):
                run.outcome = RunOutcome.INTERRUPTED
                run.detail = f"the scheduler running it ({run.owner or 'unknown'}) stopped"
                run.finished_at = now
            if run.outcome not in RESUMABLE or not is_fire_time(nl, run.scheduled_for):
                continue
            edition = find_edition(s, name, period_for(nl, run.scheduled_for).key)
            started = edition is not None and edition.status in (
                EditionStatus.PLANNED,
                EditionStatus.SENDING,
            )
            if started or now - run.scheduled_for <= grace:
                todo.append((name, run.scheduled_for))
            else:
                log.warning(
                    "%s: the run due %s was %s and is now past the grace time; not resumed",
                    name,
                    local(nl, run.scheduled_for),
                    run.outcome,
                )
    return todo


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else ""
    if isinstance(exc, USER_ERRORS) and first:
        return first
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


__all__ = [
    "RUN_OUTCOMES",
    "RunContext",
    "RunResult",
    "claim_run",
    "describe",
    "finish_run",
    "last_runs",
    "local",
    "prepare_drafts",
    "record_missed",
    "resume_edition",
    "run_choice",
    "run_edition",
    "runs_to_resume",
    "send_approved",
    "sweep",
]

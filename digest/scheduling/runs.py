"""One scheduled run of a newsletter: claim it, ingest, send, record what happened.

A run is identified by (newsletter, scheduled time).  Before doing anything a
run *claims* its slot in ``scheduler_run`` (under a lock: PostgreSQL advisory
lock, SQLite's ``BEGIN IMMEDIATE``), so two schedulers over one database do
the work once; the other logs that the slot is taken.  Even without the claim
an edition is unique per period and every delivery is claimed batch by batch,
so nobody is mailed twice.

Outcomes recorded: ``sent``, ``skipped`` (no new articles, or already
delivered), ``missed`` (due while no scheduler ran, beyond the grace time; not
sent late), ``stopped`` (SIGTERM/SIGINT mid-run; resumed at the next start),
``interrupted`` (the scheduler running it died; resumed likewise), ``paused``
(too many delivery failures) and ``failed`` (an error, in ``detail``).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from digest.app import App
from digest.collect import period_for
from digest.config import NewsletterConfig
from digest.delivery import ledger
from digest.delivery.backends import Backend
from digest.delivery.base import SendLoop, SendOptions
from digest.delivery.factory import make_backend
from digest.errors import DigestError, ScheduleError
from digest.ingest import IngestReport, ingest
from digest.models import EditionStatus, SchedulerRun
from digest.scheduling import waves
from digest.scheduling.rules import fire_times, trigger_for
from digest.send import Editions, SendReport, find_edition, send_edition
from subscribers.db import utcnow
from subscribers.errors import SubscribersError

log = logging.getLogger(__name__)

RUNNING = "running"
SENT = "sent"
SKIPPED = "skipped"
MISSED = "missed"
STOPPED = "stopped"
INTERRUPTED = "interrupted"
PAUSED = "paused"
FAILED = "failed"
#: Runs that the next scheduler start takes up again.
RESUMABLE = frozenset({STOPPED, INTERRUPTED})
#: A run still marked running after this long is taken to be dead (any host).
STALE_RUN = timedelta(hours=12)
_OWNER_PREFIX = "running on "
#: Problems a user fixes (bad config, missing list, …): logged as one line, no traceback.
USER_ERRORS = (DigestError, SubscribersError)


@dataclass
class RunContext:
    """What a run needs besides its newsletter and time."""

    app: App
    #: Set on SIGTERM/SIGINT: the send finishes the message in hand and stops.
    cancel: threading.Event = field(default_factory=threading.Event)
    backend: str | None = None
    backend_factory: Callable[[], Backend] | None = None
    options: SendOptions | None = None
    owner: str = field(default_factory=ledger.owner_id)
    #: Told (newsletter, edition id, wave times) when an edition has later waves.
    on_waves: Callable[[str, int, list[datetime]], None] | None = None

    def make_backend(self) -> Backend:
        if self.backend_factory is not None:
            return self.backend_factory()
        return make_backend(self.backend or self.app.settings.backend, self.app.settings)


@dataclass
class RunResult:
    newsletter: str
    scheduled_for: datetime
    #: None when another scheduler holds the slot (nothing was done here).
    outcome: str | None
    detail: str
    run_id: int | None = None
    report: SendReport | None = None
    ingested: IngestReport | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "newsletter": self.newsletter,
            "scheduled_for": self.scheduled_for.isoformat(),
            "outcome": self.outcome,
            "detail": self.detail,
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


def run_owner(run: SchedulerRun) -> str | None:
    """Who holds a running run (host:pid), from its detail."""
    if run.outcome == RUNNING and run.detail.startswith(_OWNER_PREFIX):
        return run.detail[len(_OWNER_PREFIX) :]
    return None


def _is_dead(run: SchedulerRun, now: datetime) -> bool:
    if run.started_at is not None and now - run.started_at > STALE_RUN:
        return True
    owner = run_owner(run)
    return owner is not None and ledger.owner_is_dead(owner)


def claim_run(
    app: App, newsletter: str, scheduled_for: datetime, owner: str, *, manual: bool = False
) -> int | None:
    """Take the (newsletter, time) slot; its run id, or None when it is taken or done.

    A slot whose run stopped or was interrupted can be taken again; ``manual``
    (``digest schedule run``) also takes over a finished slot, but never one that
    a live scheduler is running.
    """
    now = utcnow()
    with app.session() as s:
        _lock_newsletter(s, newsletter)
        run = _slot(s, newsletter, scheduled_for)
        if run is None:
            run = SchedulerRun(newsletter=newsletter, scheduled_for=scheduled_for)
            s.add(run)
        elif run.outcome == RUNNING and not _is_dead(run, now):
            if manual:
                raise ScheduleError(
                    f"{newsletter}: the run for {scheduled_for:%Y-%m-%d %H:%M} UTC is in progress "
                    f"({run.detail}); wait for it to finish, or stop that scheduler first"
                )
            return None
        elif not (manual or run.outcome in RESUMABLE or run.outcome == RUNNING):
            return None
        run.outcome = RUNNING
        run.started_at = now
        run.finished_at = None
        run.detail = f"{_OWNER_PREFIX}{owner}"
        s.flush()
        return run.id


def finish_run(app: App, run_id: int, outcome: str, detail: str) -> None:
    with app.session() as s:
        run = s.get(SchedulerRun, run_id)
        if run is not None:
            run.outcome = outcome
            run.detail = detail
            run.finished_at = utcnow()


def record_missed(app: App, newsletter: str, scheduled_for: datetime, detail: str) -> bool:
    """Record a run that will not happen (once, even if two schedulers notice)."""
    with app.session() as s:
        _lock_newsletter(s, newsletter)
        if _slot(s, newsletter, scheduled_for) is not None:
            return False
        s.add(
            SchedulerRun(
                newsletter=newsletter,
                scheduled_for=scheduled_for,
                finished_at=utcnow(),
                outcome=MISSED,
                detail=detail,
            )
        )
    return True


def last_runs(session: Session) -> dict[str, SchedulerRun]:
    """The latest run of each newsletter (by scheduled time)."""
    latest: dict[str, SchedulerRun] = {}
    rows = session.scalars(
        select(SchedulerRun).order_by(SchedulerRun.scheduled_for, SchedulerRun.id)
    )
    for run in rows:
        latest[run.newsletter] = run
    return latest


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


def run_edition(
    ctx: RunContext, newsletter: str, scheduled_for: datetime, *, manual: bool = False
) -> RunResult:
    """Ingest the newsletter's sources, then send the edition for the period before
    ``scheduled_for``; recorded in ``scheduler_run``.  Safe to call twice."""
    app = ctx.app
    nl = app.config.newsletter(newsletter)
    run_id = claim_run(app, nl.name, scheduled_for, ctx.owner, manual=manual)
    if run_id is None:
        log.info(
            "%s: the run due %s is taken by another scheduler", nl.name, local(nl, scheduled_for)
        )
        return RunResult(nl.name, scheduled_for, None, "handled by another scheduler")
    result = RunResult(nl.name, scheduled_for, RUNNING, "", run_id)
    log.info("%s: run due %s started", nl.name, local(nl, scheduled_for))
    try:
        if not ctx.cancel.is_set():  # a stop may come while the run waited for a thread
            result.ingested = _ingest(app, nl)
        if ctx.cancel.is_set():
            result.outcome, result.detail = STOPPED, "stopped before sending; resumed at next start"
        else:
            result.report = send_edition(
                app,
                nl.name,
                scheduled_for,
                backend=ctx.backend,
                options=ctx.options,
                backend_factory=ctx.backend_factory,
                cancel=ctx.cancel,
            )
            result.outcome, result.detail = describe(nl, result.report, result.ingested)
    except Exception as exc:
        result.outcome, result.detail = FAILED, _one_line(exc)
        finish_run(app, run_id, FAILED, result.detail)
        if manual:
            raise  # the command line shows it
        if isinstance(exc, USER_ERRORS):
            log.error("%s: run due %s failed: %s", nl.name, local(nl, scheduled_for), exc)
        else:
            log.exception("%s: run due %s failed", nl.name, local(nl, scheduled_for))
        return result
    finish_run(app, run_id, result.outcome, result.detail)
    level = logging.WARNING if result.outcome in (STOPPED, PAUSED) else logging.INFO
    log.log(
        level,
        "%s: run due %s %s: %s",
        nl.name,
        local(nl, scheduled_for),
        result.outcome,
        result.detail,
    )
    report = result.report
    if report is not None and report.waiting and report.edition_id and ctx.on_waves:
        with app.sessions() as s:
            times = waves.future_waves(s, report.edition_id, utcnow())
        ctx.on_waves(nl.name, report.edition_id, times)
    return result


def describe(
    newsletter: NewsletterConfig, report: SendReport, ingested: IngestReport | None = None
) -> tuple[str, str]:
    """(outcome, one-line detail) for a send report."""
    edition = f"edition {report.edition_id} ({report.period})"
    if report.no_articles:
        return SKIPPED, f"no new articles for {report.period}; nothing to send"
    if report.paused:
        return PAUSED, (
            f"{edition} paused: {report.pause_reason}; fix the cause, then "
            f"`digest send {newsletter.name}` resumes it"
        )
    if report.stopped:
        return STOPPED, f"{edition} stopped after {report.sent_now} sent; resumed at next start"
    if report.nothing_new and report.recipients == 0:
        return SKIPPED, f"{edition}: nobody to send it to (no active readers on the list)"
    if report.nothing_new and report.created:
        return SKIPPED, f"{edition}: nothing to send ({report.counts.get('skipped', 0)} skipped)"
    if report.nothing_new:
        return SKIPPED, f"{edition} was already delivered"
    counts = report.counts
    parts = [
        f"{edition}: {report.sent_now} sent now ({counts.get('sent', 0)} in all)",
        f"{counts.get('failed', 0)} failed",
        f"{counts.get('skipped', 0)} skipped",
    ]
    if counts.get("uncertain"):
        parts.append(f"{counts['uncertain']} uncertain")
    if report.waiting and report.next_wave is not None:
        parts.append(
            f"{report.waiting} waiting for local-time waves, next at "
            f"{report.next_wave:%Y-%m-%d %H:%M} UTC"
        )
    if ingested is not None and ingested.errors:
        parts.append(f"{len(ingested.errors)} of {len(ingested.results)} sources failed to load")
    return SENT, "; ".join(parts)


def resume_edition(ctx: RunContext, edition_id: int) -> tuple[int, list[datetime]]:
    """Send whatever of an edition is due now; (sent, times of the waves still waiting).

    Idempotent: only pending, due batches of a planned or sending edition are claimed
    (:func:`ledger.claim_batch` sees to that), each by one sender.
    """
    app = ctx.app
    ledger.recover_stale(app.sessions, edition_id)
    loop = SendLoop(app.sessions, ctx.make_backend, Editions(app), ctx.options, cancel=ctx.cancel)
    result = loop.run(edition_id)
    sent = result.progress.sent
    if result.paused:
        log.warning("edition %s paused: %s", edition_id, result.reason)
    ledger.settle_edition(app.sessions, edition_id)
    with app.sessions() as s:
        later = waves.future_waves(s, edition_id, utcnow())
    return sent, later


def sweep(ctx: RunContext) -> int:
    """Send every due wave of every sending edition; have the later ones scheduled.

    Catches waves of editions sent by hand (`digest send`) and of any run whose
    wave jobs were lost.  Returns how many messages went out.
    """
    app = ctx.app
    with app.sessions() as s:
        pending = waves.editions_with_waves(s)
    total = 0
    for edition_id, name in pending:
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
    with app.session() as s:
        latest = last_runs(s)
        for name, run in latest.items():
            nl = app.config.newsletters.get(name)
            if nl is None:
                continue
            if run.outcome == RUNNING and _is_dead(run, now):
                run.outcome = INTERRUPTED
                run.detail = f"the scheduler running it ({run_owner(run) or 'unknown'}) stopped"
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
    "FAILED",
    "INTERRUPTED",
    "MISSED",
    "PAUSED",
    "RUNNING",
    "SENT",
    "SKIPPED",
    "STOPPED",
    "RunContext",
    "RunResult",
    "claim_run",
    "describe",
    "finish_run",
    "last_runs",
    "local",
    "record_missed",
    "resume_edition",
    "run_edition",
    "runs_to_resume",
    "sweep",
]

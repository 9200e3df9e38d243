"""`digest scheduler`: APScheduler 3 with its jobs in the project's database.

Jobs (ids are stable, so a restart or a second scheduler replaces, never adds):

* ``digest:NAME`` — one per newsletter: a :class:`~digest.schedule_rules.LocalCronTrigger`
  in the newsletter's timezone; ``coalesce=True``, ``max_instances=1`` and
  ``misfire_grace_time`` = ``DIGEST_SCHEDULER_MISFIRE_GRACE``.  A run missed by
  more than that is logged and recorded as ``missed``, never sent late.
* ``digest:NAME:wave:EDITION:TIME`` — one-off jobs at each later local-time wave
  of an edition; they send only the batches that are due (idempotent).
* ``digest:NAME:resume:TIME`` — at start, a run that a stopped or dead scheduler
  left unfinished is taken up again.
* ``digest::sweep`` — every few minutes, due waves of any sending edition
  (e.g. one sent by hand with `digest send`) go out.

The job store is APScheduler's ``SQLAlchemyJobStore`` on the app's engine: it
creates its own table, ``apscheduler_jobs``.  At start every newsletter's job is
written again (``replace_existing=True``); a job whose rule is unchanged keeps
its stored next run time, so a run that fell due while no scheduler was running
is still handled: run when within the grace time, else recorded as missed.
Jobs of newsletters no longer in ``digest.toml`` are removed.

Runs execute on :class:`RunExecutor`, an APScheduler executor that calls each
job as ``func(*args, call=JobCall(context, due_time))`` and applies the grace
time itself.  Time comes from ``datetime.now`` only (APScheduler's and ours), so a
test moves the whole process's clock (time-machine) and calls :meth:`tick`.

Only APScheduler's public API is used (plus the hooks it documents for custom
executors and job stores), except in :meth:`DigestScheduler._process_due_jobs`,
which says why.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from traceback import format_tb
from typing import Any

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobExecutionEvent,
    JobSubmissionEvent,
    SchedulerEvent,
)
from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job
from apscheduler.jobstores.base import BaseJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine, inspect
from sqlalchemy.exc import SQLAlchemyError

from digest.api import Digest
from digest.app import App
from digest.config import NewsletterConfig
from digest.delivery.base import Backend
from digest.delivery.loop import SendOptions
from digest.delivery.registry import BackendChoice
from digest.errors import ScheduleError
from digest.schedule_rules import fire_times, same_trigger, trigger_for
from digest.scheduling import runs
from subscribers.db import utcnow

log = logging.getLogger(__name__)

JOB_TABLE = "apscheduler_jobs"
#: The one job store's (and executor's) alias.
ALIAS = "default"
PREFIX = "digest:"
SWEEP_ID = "digest::sweep"
SWEEP_EVERY = timedelta(minutes=5)
#: Longest sleep of the main loop: it looks at the clock at least this often.
MAX_SLEEP = 60.0
#: Slots recorded one by one as missed after a long outage (older ones are only counted).
MAX_MISSED_RECORDS = 20


def edition_job_id(newsletter: str) -> str:
    return f"{PREFIX}{newsletter}"


def _stamp(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y%m%dT%H%M%SZ}"


# ---------------------------------------------------------------------------
# Job functions.  APScheduler stores them by reference with their own arguments;
# RunExecutor adds ``call``: the run's context and the time it was due.


@dataclass(frozen=True)
class JobCall:
    context: runs.RunContext
    #: When the job was due (not when it started).
    due: datetime


def _required(call: JobCall | None) -> JobCall:
    if call is None:
        raise ScheduleError("digest jobs run only inside `digest scheduler` (its RunExecutor)")
    return call


def edition_job(
    newsletter: str, original: datetime | None = None, *, call: JobCall | None = None
) -> runs.RunResult:
    """The newsletter's scheduled run (``original``: the slot a resumed run belongs to)."""
    ctx, due = _required(call).context, _required(call).due
    result = runs.run_edition(ctx, newsletter, original or due)
    nl = ctx.app.config.newsletters.get(newsletter)
    if nl is not None:
        upcoming = fire_times(trigger_for(nl.schedule, nl.zone), utcnow(), 1)
        if upcoming:
            log.info("%s: next run %s", newsletter, runs.local(nl, upcoming[0]))
    return result


def wave_job(newsletter: str, edition_id: int, *, call: JobCall | None = None) -> int:
    """A local-time wave: send what of the edition is due now."""
    ctx, due = _required(call).context, _required(call).due
    nl = ctx.app.config.newsletters.get(newsletter)
    if nl is not None and ctx.enqueues(nl):
        log.info("%s: edition %s: wave due %s is for the workers", newsletter, edition_id, due)
        return 0
    sent, later = runs.resume_edition(ctx, edition_id)
    log.info("%s: edition %s: wave due %s: %d sent", newsletter, edition_id, due, sent)
    if later and ctx.on_waves:
        ctx.on_waves(newsletter, edition_id, later)
    return sent


def sweep_job(*, call: JobCall | None = None) -> int:
    """Due waves of every sending edition."""
    return runs.sweep(_required(call).context)


def newsletter_of(job: Job) -> str | None:
    """The newsletter a job belongs to (its first argument), or None (the sweep)."""
    if job.func in (edition_job, wave_job) and job.args:
        return str(job.args[0])
    return None


def due_times(trigger: Any, first: datetime | None, now: datetime) -> list[datetime]:
    """The fire times from ``first`` up to ``now`` (both included), from the trigger's
    public ``get_next_fire_time``: the slots that fell due while nothing ran."""
    times: list[datetime] = []
    fire = first
    while fire is not None and fire <= now:
        times.append(fire)
        fire = trigger.get_next_fire_time(fire, now)
    return times


# ---------------------------------------------------------------------------
# APScheduler parts


class DatabaseJobStore(SQLAlchemyJobStore):
    """APScheduler's SQLAlchemy job store on the app's engine (which it must not dispose)."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine=engine, tablename=JOB_TABLE)

    def start(self, scheduler: Any, alias: str) -> None:
        BaseJobStore.start(self, scheduler, alias)
        try:
            self.jobs_t.create(self.engine, checkfirst=True)
        except SQLAlchemyError:  # another scheduler created it at the same moment
            if not inspect(self.engine).has_table(JOB_TABLE):
                raise

    def shutdown(self) -> None:
        """The engine belongs to the App, which closes it."""


class RunExecutor(BaseExecutor):
    """Runs jobs on a thread pool as ``func(*args, **kwargs, call=JobCall(context, due))``.

    A run later than its job's ``misfire_grace_time`` is not started: the
    context's ``on_missed`` hears of it instead.  ``_do_submit_job``,
    ``_run_job_success`` and ``_run_job_error`` are the hooks APScheduler's
    ``BaseExecutor`` defines for its subclasses (each built-in executor uses them).
    """

    def __init__(
        self,
        context: runs.RunContext,
        on_missed: Callable[[Job, datetime, timedelta], None],
        workers: int = 4,
        jobstore: str = ALIAS,
    ) -> None:
        super().__init__()
        self.context = context
        self.on_missed = on_missed
        #: The store this executor's jobs come from (for the events it reports).
        self.jobstore = jobstore
        self._pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="digest-run")
        self._futures: set[Future[list[JobExecutionEvent]]] = set()
        self._futures_lock = threading.Lock()

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        future = self._pool.submit(self._run, job, list(run_times))
        with self._futures_lock:
            self._futures.add(future)
        future.add_done_callback(partial(self._done, job.id))

    def _run(self, job: Job, run_times: list[datetime]) -> list[JobExecutionEvent]:
        events: list[JobExecutionEvent] = []
        alias = self.jobstore
        for run_time in run_times:
            late = utcnow() - run_time
            grace = job.misfire_grace_time
            if grace is not None and late > timedelta(seconds=grace):
                self.on_missed(job, run_time, late)
                events.append(JobExecutionEvent(EVENT_JOB_MISSED, job.id, alias, run_time))
                continue
            try:
                value = job.func(*job.args, **job.kwargs, call=JobCall(self.context, run_time))
            except Exception as exc:
                log.exception("job %s (due %s) failed", job.id, run_time)
                events.append(
                    JobExecutionEvent(
                        EVENT_JOB_ERROR,
                        job.id,
                        alias,
                        run_time,
                        exception=exc,
                        traceback="".join(format_tb(exc.__traceback__)),
                    )
                )
            else:
                events.append(
                    JobExecutionEvent(EVENT_JOB_EXECUTED, job.id, alias, run_time, retval=value)
                )
        return events

    def _done(self, job_id: str, future: Future[list[JobExecutionEvent]]) -> None:
        with self._futures_lock:
            self._futures.discard(future)
        exc = future.exception()
        if exc is not None:  # a BaseException (the process is going down)
            self._run_job_error(job_id, exc, exc.__traceback__)
        else:
            self._run_job_success(job_id, future.result())

    def join(self) -> None:
        """Wait until every submitted run has finished."""
        while True:
            with self._futures_lock:
                pending = set(self._futures)
            if not pending:
                return
            wait(pending)

    def shutdown(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=not wait)


class DigestScheduler(BaseScheduler):
    """One scheduler process: the newsletters' jobs, their waves, and recovery.

    ``start()`` writes the jobs and returns; ``serve()`` then runs until ``stop``
    is set (SIGTERM/SIGINT), after which the run in hand finishes the message it
    is sending and everything shuts down.  ``tick()`` runs what is due now and
    waits for it: tests call it at chosen instants (see the module doc).
    """

    def __init__(
        self,
        app: App,
        *,
        backend: str | BackendChoice | None = None,
        backend_factory: Callable[[], Backend] | None = None,
        options: SendOptions | None = None,
        stop: threading.Event | None = None,
        grace: int | None = None,
        workers: int = 4,
        enqueue: bool = False,
    ) -> None:
        self.app = app
        self.stop_event = stop or threading.Event()
        self.grace = grace or app.settings.scheduler_misfire_grace
        self.context = runs.RunContext(
            app,
            cancel=self.stop_event,
            backend=backend,
            backend_factory=backend_factory,
            options=options,
            on_waves=self.schedule_waves,
            enqueue=enqueue,
        )
        self._wake = threading.Event()
        super().__init__(
            timezone=UTC,
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": self.grace,
            },
        )
        self.executor = RunExecutor(self.context, self._missed, workers, ALIAS)
        self.add_executor(self.executor, ALIAS)
        self.add_jobstore(DatabaseJobStore(app.engine), ALIAS)
        self.add_listener(self._max_instances, EVENT_JOB_MAX_INSTANCES)

    # -- lifecycle ---------------------------------------------------------
    def start(self, paused: bool = False) -> None:
        """Write the jobs (replacing stale ones), plan recovery, then start processing."""
        if self.context.enqueue:
            log.info("enqueueing every run for `digest worker` processes (--enqueue)")
        else:
            log.info("sending through backend %s", self.context.sender.backend)
            for nl in self.app.config.newsletters.values():
                if nl.delivery == "workers":
                    log.info(
                        '%s: runs enqueued for `digest worker` (delivery = "workers")', nl.name
                    )
        super().start(paused=True)
        self.sync_jobs()
        self._resume_unfinished()
        self.add_job(
            sweep_job,
            IntervalTrigger(seconds=int(SWEEP_EVERY.total_seconds()), timezone=UTC),
            id=SWEEP_ID,
            name="local-time waves of any sending edition",
            replace_existing=True,
            next_run_time=utcnow(),
            misfire_grace_time=None,
        )
        if not paused:
            self.resume()

    def shutdown(self, wait: bool = True) -> None:
        super().shutdown(wait)
        self._wake.set()

    def wakeup(self) -> None:
        self._wake.set()

    def _process_due_jobs(self) -> float | None:
        """Submit every job due now; seconds until the next one is due (None: no job).

        The one use of APScheduler's private API.  ``_process_jobs`` is the round
        its own schedulers run in their main loops (``BlockingScheduler``,
        ``BackgroundScheduler``); APScheduler 3 has no public call for "process
        what is due now, once", which :meth:`tick` needs (tests and ``--once``
        drive the scheduler at chosen instants) and :meth:`serve` uses so that a
        stop request (SIGTERM) is handled by our loop, in the main thread.
        """
        wait_seconds: float | None = self._process_jobs()
        return wait_seconds

    def tick(self) -> float | None:
        """Run every job due now and wait for the runs; seconds until the next is due."""
        wait_seconds = self._process_due_jobs()
        self.executor.join()
        return wait_seconds

    def serve(self) -> None:
        """Process jobs as they fall due until ``stop`` is set; then shut down cleanly."""
        try:
            while not self.stop_event.is_set():
                wait_seconds = self._process_due_jobs()
                timeout = MAX_SLEEP if wait_seconds is None else min(wait_seconds, MAX_SLEEP)
                self._wake.wait(timeout)
                self._wake.clear()
        finally:
            self.stop_event.set()
            if self.running:
                self.shutdown(wait=True)

    # -- jobs --------------------------------------------------------------
    def sync_jobs(self) -> list[tuple[NewsletterConfig, datetime | None]]:
        """One job per newsletter in digest.toml; others removed.  (newsletter, next run)."""
        now = utcnow()
        newsletters = self.app.config.newsletters
        for job in self.get_jobs():
            name = newsletter_of(job)
            if name is not None and name not in newsletters:
                self.remove_job(job.id)
                log.info(
                    "removed job %s: newsletter %r is no longer in %s",
                    job.id,
                    name,
                    self.app.config.path,
                )
        planned: list[tuple[NewsletterConfig, datetime | None]] = []
        for nl in newsletters.values():
            trigger = trigger_for(nl.schedule, nl.zone)
            next_run = trigger.get_next_fire_time(None, now)
            existing = self.get_job(edition_job_id(nl.name))
            if (
                existing is not None
                and existing.next_run_time is not None
                and same_trigger(existing.trigger, trigger)
            ):
                next_run = self._carry_over(nl, existing, now)
            self.add_job(
                edition_job,
                trigger,
                args=(nl.name,),
                id=edition_job_id(nl.name),
                name=f"{nl.name} edition",
                replace_existing=True,
                next_run_time=next_run,
                misfire_grace_time=self.grace,
                coalesce=True,
                max_instances=1,
            )
            when = runs.local(nl, next_run) if next_run else "never"
            log.info("%s: schedule %r (%s); next run %s", nl.name, nl.schedule, nl.timezone, when)
            planned.append((nl, next_run))
        return planned

    def _carry_over(self, nl: NewsletterConfig, job: Job, now: datetime) -> datetime:
        """A kept job's next run; slots that fell due while no scheduler ran and that
        coalescing folds away are recorded as missed (the last one is left to run)."""
        if job.next_run_time > now:
            return job.next_run_time
        due = due_times(job.trigger, job.next_run_time, now)
        if not due:
            return job.next_run_time
        folded = due[:-1]
        if len(folded) > MAX_MISSED_RECORDS:
            log.warning(
                "%s: %d runs fell due while no scheduler was running",
                nl.name,
                len(folded),
            )
        for slot in folded[-MAX_MISSED_RECORDS:]:
            runs.record_missed(
                self.app,
                nl.name,
                slot,
                runs.missed_detail(nl, slot, "missed: no scheduler was running"),
            )
            log.warning("%s: the run due %s was missed (no scheduler running)", nl.name, slot)
        return due[-1]

    def _resume_unfinished(self) -> None:
        grace = timedelta(seconds=self.grace)
        now = utcnow()
        for name, slot in runs.runs_to_resume(self.app, grace):
            log.info("%s: taking up the unfinished run due %s", name, slot.isoformat())
            self.add_job(
                edition_job,
                DateTrigger(run_date=now, timezone=UTC),
                args=(name,),
                kwargs={"original": slot},
                id=f"{edition_job_id(name)}:resume:{_stamp(slot)}",
                name=f"{name} edition (resumed)",
                replace_existing=True,
                next_run_time=now,
                misfire_grace_time=None,
            )

    def schedule_waves(self, newsletter: str, edition_id: int, times: list[datetime]) -> None:
        """One-off jobs that send an edition's later waves when they fall due."""
        for moment in times:
            self.add_job(
                wave_job,
                DateTrigger(run_date=moment, timezone=UTC),
                args=(newsletter, edition_id),
                id=f"{edition_job_id(newsletter)}:wave:{edition_id}:{_stamp(moment)}",
                name=f"{newsletter} edition {edition_id} wave",
                replace_existing=True,
                next_run_time=moment,
                misfire_grace_time=None,
            )
        if times:
            log.info(
                "%s: edition %s: %d later wave(s), next at %s UTC",
                newsletter,
                edition_id,
                len(times),
                f"{min(times):%Y-%m-%d %H:%M}",
            )

    # -- misfires ----------------------------------------------------------
    def _missed(self, job: Job, run_time: datetime, late: timedelta) -> None:
        if job.func is not edition_job:
            return
        nl = self.app.config.newsletters.get(job.args[0])
        if nl is None:
            return
        why = (
            f"missed by {_duration(late)} (more than the {self.grace} s grace, "
            "DIGEST_SCHEDULER_MISFIRE_GRACE)"
        )
        runs.record_missed(self.app, nl.name, run_time, runs.missed_detail(nl, run_time, why))
        log.warning("%s: the run due %s was %s; not sent late", nl.name, run_time, why)

    def _max_instances(self, event: SchedulerEvent) -> None:
        if not isinstance(event, JobSubmissionEvent):
            return
        job = self.get_job(event.job_id, event.jobstore)
        if job is None or job.func is not edition_job or "original" in job.kwargs:
            return  # waves and sweeps: the next one catches up
        name = str(job.args[0])
        nl = self.app.config.newsletters.get(name)
        if nl is None:
            return
        for run_time in event.scheduled_run_times:
            why = "skipped: the previous run was still in progress"
            runs.record_missed(self.app, name, run_time, runs.missed_detail(nl, run_time, why))
            log.warning("%s: the run due %s was %s", name, run_time, why)


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {rest % 60:02d}s"


# ---------------------------------------------------------------------------
# What `digest schedule list` shows


def overview(app: App, now: datetime | None = None, count: int = 3) -> list[dict[str, Any]]:
    """Each newsletter's rule, timezone, next ``count`` fire times and last run, JSON-ready
    (:meth:`digest.api.Digest.schedule`)."""
    return [row.to_dict() for row in Digest(app).schedule(count=count, now=now or utcnow())]


__all__ = [
    "ALIAS",
    "JOB_TABLE",
    "DatabaseJobStore",
    "DigestScheduler",
    "RunExecutor",
    "due_times",
    "edition_job",
    "edition_job_id",
    "newsletter_of",
    "overview",
    "sweep_job",
    "wave_job",
]

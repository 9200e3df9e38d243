"""digest as a Python library: one :class:`Digest` whose methods are the whole API.

>>> from digest import make_digest
>>> with make_digest() as d:            # settings from the environment and ./.env
...     report = d.ingest()              # every newsletter's sources
...     result = d.send("weekly", backend="outbox")   # the edition due now
...     print(result.outcome, result.counts.sent)

(README, "Using digest from Python", has a complete example.)

The command line, the web app, the scheduler and the workers are adapters over this
object (``digest/cli``, ``digest/web``, ``digest/scheduling``, ``digest/worker.py``);
below it sit the sender, the parts (ingest, collect, compose, delivery) and the
foundation (settings, models, the database), which are internal.  Methods return
dataclasses (:mod:`digest.api.results`, or the library's own reports) that stay valid
after the method's transaction has ended.

Modelled on ``reader`` (``make_reader()`` returns a ``Reader`` whose methods are the
API) and ``sqlite-utils`` (the CLI a thin wrapper over ``Database``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.api.results import (
    Composition,
    EditionDetail,
    Erasure,
    LastRun,
    ListInfo,
    Person,
    ScheduleInfo,
    SegmentInfo,
    SubscriberPage,
    SubscriberRow,
    Suppressed,
    Waiting,
)
from digest.app import App
from digest.config import NewsletterConfig, Settings
from digest.editions import PeriodChoice, Purpose, choose_period
from digest.models import Delivery, DeliveryStatus
from digest.queries import RuleCount, last_runs, list_editions, rule_count
from subscribers.consent import By
from subscribers.errors import SubscribersError
from subscribers.models import ConsentSource, Status

if TYPE_CHECKING:
    from digest.collect import Collection
    from digest.compose import WrittenVariant
    from digest.delivery.loop import SendOptions
    from digest.delivery.registry import BackendChoice
    from digest.ingest import IngestReport, SourceResult
    from digest.sender import Plan, ProgressCallback, Sender, SendResult
    from digest.sendtest import CopiesSent
    from digest.stats import EditionStats
    from subscribers.io import ImportReport, Progress

#: Who acts, in the consent log, for a change made through the library.
LIBRARY = By(ConsentSource.ADMIN, "python", "")


class Digest:
    """One running digest: settings, newsletters and the database, and everything that
    can be done with them.  Nothing is read until a method needs it.

    Build it with :func:`make_digest` (settings from the environment and ``.env``, or
    given), or over an existing :class:`~digest.app.App`.  Close it (or use it as a
    context manager) to release the database connections.
    """

    def __init__(self, app: App | None = None) -> None:
        self.app = app if app is not None else App()

    # -- the pieces ---------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        return self.app.settings

    def newsletters(self) -> list[NewsletterConfig]:
        """The newsletters in the config (``digest.toml``, or the bundled sample)."""
        return list(self.app.config.newsletters.values())

    def newsletter(self, name: str) -> NewsletterConfig:
        """Newsletter ``name`` (:class:`~digest.errors.ConfigError` naming the known ones)."""
        return self.app.config.newsletter(name)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A database session that commits on success and rolls back on any error."""
        with self.app.transaction() as session:
            yield session

    def close(self) -> None:
        self.app.close()

    def __enter__(self) -> Digest:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- ingest and collect -------------------------------------------------------

    def ingest(
        self,
        sources: Sequence[str] | None = None,
        *,
        as_article: bool = False,
        progress: Callable[[SourceResult], None] | None = None,
    ) -> IngestReport:
        """Read feeds and article pages (``sources``: URLs or paths; None: every source in
        the config) into the article store, each source on its own."""
        from digest.ingest import ingest

        refs = list(sources) if sources is not None else None
        return ingest(
            self.app.sessions,
            self.app.config,
            self.settings,
            refs,
            progress=progress,
            as_article=as_article,
        )

    def period(
        self,
        newsletter: str,
        as_of: datetime | None = None,
        *,
        period: str | PeriodChoice | None = None,
        purpose: Purpose = Purpose.PREVIEW,
    ) -> PeriodChoice:
        """The period a command would use, and why (:func:`~digest.editions.choose_period`):
        ``period`` by key (or as chosen before), the one before ``as_of``, or, without
        either, the edition the next scheduled run sends (``Purpose.PREVIEW``) or the one
        due now (``SEND``)."""
        if isinstance(period, PeriodChoice):
            return period
        return choose_period(
            self.newsletter(newsletter),
            as_of=as_of,
            period=period,
            purpose=purpose,
            given_as="given as as_of",
        )

    def collect(
        self,
        newsletter: str,
        as_of: datetime | None = None,
        *,
        period: str | PeriodChoice | None = None,
    ) -> Collection:
        """The articles of the period (see :meth:`period`), grouped by section."""
        from digest.collect import collect_period

        nl = self.newsletter(newsletter)
        choice = self.period(newsletter, as_of, period=period)
        with self.transaction() as session:
            return collect_period(session, nl, choice.period)

    # -- compose and preview ------------------------------------------------------

    def compose(
        self,
        newsletter: str,
        as_of: datetime | None = None,
        *,
        period: str | PeriodChoice | None = None,
        segment: str | None = None,
    ) -> Composition:
        """Render the period's edition: the full edition and one variant per distinct set
        of sections the readers (of ``segment``, or of the whole list) chose."""
        from digest.audience import section_sets
        from digest.collect import collect_period
        from digest.compose import Composer, variant_key
        from subscribers.errors import NotFound as NoList

        nl = self.newsletter(newsletter)
        choice = self.period(newsletter, as_of, period=period)
        with self.transaction() as session:
            collection = collect_period(session, nl, choice.period)
            if collection.is_empty:
                return Composition(choice, collection, {})
            everything = tuple(s.name for s in collection.sections)
            try:
                readers = section_sets(session, nl, collection, segment)
            except NoList:
                if segment is not None:
                    raise
                readers = {}  # no subscriber list yet: the full edition only
            variants = Composer(self.settings, nl).render_all(collection, [everything, *readers])
        by_key: dict[str, int] = {}
        for sections, count in readers.items():
            if sections:
                key = variant_key(sections, everything)
                by_key[key] = by_key.get(key, 0) + count
        return Composition(choice, collection, variants, by_key, readers.get((), 0))

    def write_previews(
        self, composition: Composition, out_dir: Path, *, keep_mjml: bool = False
    ) -> list[WrittenVariant]:
        """Write a composition's variants as KEY.html and KEY.txt (and KEY.mjml) files,
        with preview values in the personal fields."""
        from digest.compose import write_previews

        return write_previews(
            self.settings,
            composition.collection,
            composition.variants.values(),
            out_dir,
            keep_mjml=keep_mjml,
        )

    def config_warnings(self, newsletter: str) -> list[str]:
        """What the config gets wrong about composing ``newsletter`` (a locale whose
        emails' words have no translation), one line each."""
        from digest.compose import config_warnings

        return config_warnings(self.app.config, self.newsletter(newsletter))

    # -- sending --------------------------------------------------------------------

    def backend(
        self, name: str | None = None, *, sending: bool = True, requested_by: str = "backend"
    ) -> BackendChoice:
        """The delivery backend ``name`` (None: as the settings choose), and why."""
        from digest.delivery.registry import resolve_backend

        return resolve_backend(self.settings, name, requested_by=requested_by, sending=sending)

    def sender(
        self,
        backend: str | BackendChoice | None = None,
        *,
        options: SendOptions | None = None,
        cancel: threading.Event | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> Sender:
        """A :class:`~digest.sender.Sender` (plan, deliver, settle) on this digest."""
        from digest.sender import Sender

        return Sender(self.app, backend, options=options, cancel=cancel, on_progress=on_progress)

    def plan(
        self,
        newsletter: str,
        as_of: datetime | None = None,
        *,
        period: str | PeriodChoice | None = None,
        segment: str | None = None,
        segments: Sequence[str] = (),
        force: bool = False,
        backend: str | BackendChoice | None = None,
    ) -> Plan:
        """Find or create the period's edition and write its ledger for ``segment`` (None:
        the whole list; ``segments``: several in one pass) in batches the size of
        ``backend``'s posts (default: the backend the settings choose); editions go out in
        period order unless ``force`` with a named ``period``
        (:class:`~digest.editions.EditionOrderError` otherwise)."""
        return self.sender(backend).plan(
            newsletter, as_of, period=period, segment=segment, segments=segments, force=force
        )

    def send(
        self,
        newsletter: str,
        as_of: datetime | None = None,
        *,
        period: str | PeriodChoice | None = None,
        backend: str | BackendChoice | None = None,
        segment: str | None = None,
        segments: Sequence[str] = (),
        force: bool = False,
        dry_run: bool = False,
        resend_uncertain: bool = False,
        enqueue: bool = False,
        options: SendOptions | None = None,
        cancel: threading.Event | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> SendResult:
        """Create or resume the period's edition and deliver it, exactly once per reader
        (``enqueue``: only plan it, for ``digest worker``); ``segments`` sends to several
        segments at once, planned in one pass (a reader in two gets one copy);
        :attr:`SendResult.outcome` says what happened."""
        sender = self.sender(backend, options=options, cancel=cancel, on_progress=on_progress)
        return sender.send(
            newsletter,
            as_of,
            period=period,
            force=force,
            segment=segment,
            segments=segments,
            dry_run=dry_run,
            resend_uncertain=resend_uncertain,
            enqueue=enqueue,
        )

    def resume(
        self,
        edition: int | str,
        *,
        backend: str | BackendChoice | None = None,
        resend_uncertain: bool = False,
        options: SendOptions | None = None,
        cancel: threading.Event | None = None,
    ) -> SendResult:
        """Send what is left of an edition (by id or ``NEWSLETTER/PERIOD``): a resumption,
        so never refused for the order of editions."""
        from digest.editions import require_edition

        with self.transaction() as session:
            found = require_edition(session, str(edition))
            newsletter, period = found.newsletter, found.period
        return self.send(
            newsletter,
            period=period,
            backend=backend,
            resend_uncertain=resend_uncertain,
            options=options,
            cancel=cancel,
        )

    def send_test(
        self,
        newsletter: str,
        to: Sequence[str],
        as_of: datetime | None = None,
        *,
        variant: str = "all",
        backend: str | BackendChoice | None = None,
    ) -> CopiesSent:
        """Send a marked [TEST] copy of the period's edition (the next scheduled one, or the
        one before ``as_of``) to editors; the ledger is not touched."""
        from digest.sendtest import send_test

        nl = self.newsletter(newsletter)
        when = self.period(newsletter, as_of)
        return send_test(self.app, nl, list(to), when.as_of, variant=variant, backend=backend)

    # -- editions -------------------------------------------------------------------

    def editions(
        self, newsletter: str | None = None, *, limit: int | None = None
    ) -> list[EditionStats]:
        """Editions, newest period first, with delivery and engagement counts."""
        from digest.stats import edition_stats

        with self.transaction() as session:
            return edition_stats(session, list_editions(session, newsletter, limit=limit))

    def edition_stats(self, edition: int | str) -> EditionStats:
        """One edition's delivery and engagement counts (by id or ``NEWSLETTER/PERIOD``)."""
        from digest.editions import require_edition
        from digest.stats import edition_stats

        with self.transaction() as session:
            (stats,) = edition_stats(session, [require_edition(session, str(edition))])
            return stats

    def edition(self, edition: int | str) -> EditionDetail:
        """One edition (by id or ``NEWSLETTER/PERIOD``): its ledger counts, the reasons for
        failures and skips, the uncertain readers and the deliveries per variant."""
        from digest.delivery import ledger
        from digest.editions import require_edition

        with self.transaction() as session:
            e = require_edition(session, str(edition))
            tally = ledger.edition_tally(session, e.id)
            variants = {str(v): n for v, n in tally.per_variant.items()}
            without = sum(tally.statuses.values()) - sum(tally.per_variant.values())
            if without:  # readers planned with no variant (skipped), as "None"
                variants["None"] = without
            uncertain = session.scalars(
                select(Delivery.email)
                .where(Delivery.edition_id == e.id, Delivery.status == DeliveryStatus.UNCERTAIN)
                .order_by(Delivery.id)
                .limit(200)
            ).all()
            return EditionDetail(
                id=e.id,
                newsletter=e.newsletter,
                period=e.period,
                status=e.status.value,
                subject=e.subject,
                created_at=e.created_at,
                counts=dict(tally.statuses),
                failed_reasons=dict(tally.failed_reasons),
                skipped_reasons=dict(tally.skipped_reasons),
                uncertain=list(uncertain),
                variants=variants,
            )

    # -- lists ------------------------------------------------------------------------

    def newsletters_of(self, list_name: str) -> list[str]:
        """The newsletters (by name) that mail ``list_name``."""
        return sorted(
            n for n, nl in self.app.config.newsletters.items() if nl.list_name == list_name
        )

    def _list_info(self, session: Session, summary: Any) -> ListInfo:
        from subscribers import segments, service

        mlist = summary.mailing_list
        return ListInfo(
            name=mlist.name,
            description=mlist.description,
            double_opt_in=mlist.double_opt_in,
            created_at=mlist.created_at,
            counts={s.value: summary.count(s) for s in Status},
            recipients=service.count(session, service.recipients(session, mlist.name)),
            segments=[s.name for s in segments.list_segments(session, mlist.name)],
            newsletters=self.newsletters_of(mlist.name),
            categories=self.app.config.choosable_categories([mlist.name]),
        )

    def lists(self) -> list[ListInfo]:
        """Every mailing list, by name, with its counts."""
        from subscribers import lists

        with self.transaction() as session:
            return [self._list_info(session, s) for s in lists.all_lists(session)]

    def mailing_list(self, name: str) -> ListInfo:
        """One mailing list (:class:`subscribers.errors.NotFound` naming the known ones)."""
        from subscribers import lists

        with self.transaction() as session:
            return self._list_info(session, lists.summary(session, name))

    def create_list(
        self, name: str, *, description: str = "", double_opt_in: bool = False
    ) -> ListInfo:
        """Create a mailing list (refused if one has the name)."""
        from subscribers import lists

        with self.transaction() as session:
            lists.create_list(session, name, description=description, double_opt_in=double_opt_in)
        return self.mailing_list(name)

    # -- subscribers ------------------------------------------------------------------

    def subscribers(
        self,
        list_name: str | None = None,
        *,
        segment: str | None = None,
        status: Status | str | None = None,
        query: str = "",
        limit: int | None = 50,
        offset: int = 0,
    ) -> SubscriberPage:
        """Search: the members of ``list_name`` (one segment, one status), or everyone,
        whose address or name holds ``query``, by id; ``limit`` None: all of them."""
        from subscribers import service

        with self.transaction() as session:
            stmt = service.search(session, list_name, segment=segment, status=status, query=query)
            total = service.count(session, stmt)
            if limit is not None:
                stmt = stmt.limit(limit)
            rows = []
            for row in session.execute(stmt.offset(offset or None)):
                sub = row[0]
                joined = row[1].created_at if len(row) > 1 else sub.created_at
                rows.append(
                    SubscriberRow(
                        id=sub.id,
                        email=sub.email,
                        name=sub.name,
                        status=service.shown_status(row).value,
                        categories=list(sub.categories or []),
                        attributes=dict(sub.attributes or {}),
                        joined_at=joined,
                        created_at=sub.created_at,
                    )
                )
            return SubscriberPage(total, rows)

    def describe(self, email: str) -> Person:
        """Everything held about one subscriber in the subscribers tables (status, lists,
        consent and its log, attributes) and whether the address is suppressed."""
        from subscribers import privacy, service

        with self.transaction() as session:
            subscriber = service.get_subscriber(session, email)
            record = privacy.describe(session, subscriber)
            entry = service.suppression_for(session, email)
            suppressed = (
                Suppressed(entry.reason.value, entry.created_at, entry.detail) if entry else None
            )
            return Person(
                id=subscriber.id,
                email=subscriber.email,
                name=subscriber.name,
                status=Status(subscriber.status).value,
                record=record,
                suppression=suppressed,
            )

    def import_subscribers(
        self,
        source: Path | str | bytes | IO[bytes],
        list_name: str,
        *,
        dry_run: bool = False,
        actor: str = "python",
        progress: Progress | None = None,
    ) -> ImportReport:
        """Import a CSV file into a list, in one transaction, reporting on every row (see
        :func:`subscribers.io.import_csv`); ``dry_run`` changes nothing."""
        from subscribers import io

        config = self.app.config
        with self.transaction() as session:
            return io.import_csv(
                session,
                source,
                list_name,
                known_categories=config.choosable_categories([list_name]),
                everything=config.choosable_categories([list_name], other=False),
                dry_run=dry_run,
                actor=actor,
                progress=progress,
            )

    def export_subscribers(
        self, list_name: str, out: IO[str] | Path, *, segment: str | None = None
    ) -> int:
        """Write a list's recipients (of ``segment``) as CSV that imports back; returns how
        many were written."""
        from subscribers import io

        with self.transaction() as session:
            if isinstance(out, Path):
                with out.open("w", encoding="utf-8", newline="") as fh:
                    return io.export_csv(session, fh, list_name, segment=segment)
            return io.export_csv(session, out, list_name, segment=segment)

    def forget(self, email: str, *, by: By | None = None) -> Erasure:
        """Erase everything about one person (right to erasure): their record, memberships
        and consent log go, their address is cleared from delivery and event records, and
        a hash of it stays suppressed so no import adds them again.  Safe to repeat."""
        from digest.privacy import forget_person

        with self.transaction() as session:
            result, cleared = forget_person(session, email, by=by or LIBRARY)
        return Erasure(email, result.subscriber_id, result.memberships, cleared)

    def export_personal(self, email: str) -> dict[str, Any]:
        """Everything held about one person (subject access request) as the JSON document
        handed to them: subscriber, lists, consent log, suppression, deliveries, events."""
        from digest.privacy import personal_data

        with self.transaction() as session:
            return personal_data(session, email)

    # -- segments ---------------------------------------------------------------------

    def segments(self, list_name: str | None = None) -> list[SegmentInfo]:
        """Saved segments (of one list, or all), with how many each matches now."""
        from subscribers import segments

        with self.transaction() as session:
            out = []
            for seg in segments.list_segments(session, list_name):
                owner = seg.mailing_list.name
                counts: RuleCount | None = None
                problem = None
                try:
                    counts = rule_count(session, owner, seg.rule)
                except SubscribersError as exc:  # saved before rules were bounded
                    problem = str(exc)
                out.append(
                    SegmentInfo(
                        list_name=owner,
                        name=seg.name,
                        rule=dict(seg.rule),
                        categories=list(seg.categories or []),
                        created_at=seg.created_at,
                        recipients=counts.recipients if counts else None,
                        members=counts.members if counts else None,
                        problem=problem,
                    )
                )
            return out

    def count_rule(self, list_name: str, rule: Mapping[str, Any]) -> RuleCount:
        """How many of a list's recipients (and members) a rule matches, before saving it."""
        with self.transaction() as session:
            return rule_count(session, list_name, dict(rule))

    # -- schedule ---------------------------------------------------------------------

    def schedule(self, *, count: int = 3, now: datetime | None = None) -> list[ScheduleInfo]:
        """Each newsletter's rule, timezone, next ``count`` fire times and last run, and
        deliveries held for later waves."""
        from digest.delivery import waves
        from digest.schedule_rules import fire_times, trigger_for

        now = now or datetime.now(UTC)
        with self.transaction() as session:
            latest = last_runs(session)
            held: dict[str, list[Waiting]] = {}
            for edition_id, name in waves.editions_with_waves(session):
                deliveries, first = waves.waiting(session, edition_id, now)
                if deliveries:
                    held.setdefault(name, []).append(Waiting(edition_id, deliveries, first))
        rows = []
        for nl in self.newsletters():
            last = latest.get(nl.name)
            rows.append(
                ScheduleInfo(
                    newsletter=nl.name,
                    schedule=nl.schedule,
                    timezone=nl.timezone,
                    local_time=nl.local_time,
                    next=fire_times(trigger_for(nl.schedule, nl.zone), now, count),
                    last_run=(
                        LastRun(
                            last.scheduled_for,
                            last.outcome.value,
                            last.owner,
                            last.detail,
                            last.finished_at,
                        )
                        if last is not None
                        else None
                    ),
                    waiting=held.get(nl.name, []),
                )
            )
        return rows


def make_digest(settings: Settings | None = None, **overrides: Any) -> Digest:
    """A :class:`Digest` on ``settings`` (None: read from the environment and ``.env``,
    with ``overrides`` such as ``database_url=...`` or ``config_path=...`` on top)."""
    return Digest(App(settings, **overrides))


__all__ = [
    "Composition",
    "Digest",
    "EditionDetail",
    "Erasure",
    "LastRun",
    "ListInfo",
    "Person",
    "RuleCount",
    "ScheduleInfo",
    "SegmentInfo",
    "SubscriberPage",
    "SubscriberRow",
    "Suppressed",
    "Waiting",
    "make_digest",
]

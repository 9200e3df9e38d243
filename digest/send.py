"""Send an edition: create or resume it, plan its ledger, deliver, report.

``send_edition`` is what ``digest send`` and the scheduler call.  An edition is
unique per (newsletter, period): running it again resumes the same edition and
sends only what is still pending.  Its contents are frozen when it is created
(the article ids per section), so a resumed send renders the same email even if
new articles arrived in between.  Each audience (the whole list, or a segment)
is planned once, in one transaction: a crash while planning leaves nothing.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Text, cast, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digest import audience
from digest.app import App
from digest.collect import Collection, Period, Section, collect_period, period_for
from digest.compose import Composer, RenderedVariant, sections_for, variant_key
from digest.config import NewsletterConfig
from digest.delivery import ledger
from digest.delivery.backends import Backend
from digest.delivery.base import Progress, SendLoop, SendOptions
from digest.delivery.factory import backend_class
from digest.delivery.factory import backend_factory as make_factory
from digest.delivery.message import Envelope, list_id_header
from digest.errors import DeliveryError, NotFound
from digest.models import Article, Delivery, Edition, EditionStatus, Variant
from digest.personalize import fill_shared, recipient_fields, web_url
from digest.scheduling import waves
from subscribers.db import utcnow
from subscribers.models import Subscriber
from subscribers.service import recipients

ALL_AUDIENCE = "*"
NO_SECTIONS = "none of the reader's chosen categories has articles this period"


@dataclass
class SendReport:
    newsletter: str
    period: str
    edition_id: int | None = None
    created: bool = False
    no_articles: bool = False
    dry_run: bool = False
    planned: int = 0
    variants: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    skipped_reasons: dict[str, int] = field(default_factory=dict)
    uncertain_recovered: int = 0
    requeued_uncertain: int = 0
    sent_now: int = 0
    nothing_new: bool = False
    #: Deliveries left for `digest worker` processes (``--enqueue``).
    enqueued: int = 0
    #: Stopped by a signal before the end (the next run resumes).
    stopped: bool = False
    paused: bool = False
    pause_reason: str | None = None
    #: Deliveries held for later local-time waves, and when the next one is due.
    waiting: int = 0
    next_wave: datetime | None = None
    backend: str = ""
    elapsed: float = 0.0

    @property
    def recipients(self) -> int:
        return sum(self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items()}
        data["recipients"] = self.recipients
        return data


# ---------------------------------------------------------------------------
# Editions and their frozen contents


def _freeze(collection: Collection) -> dict[str, Any]:
    return {
        "sections": [[s.name, [a.id for a in s.articles]] for s in collection.sections],
        "audiences": [],
    }


def edition_collection(
    session: Session, newsletter: NewsletterConfig, edition: Edition
) -> Collection:
    """The collection an edition was created with (its articles as they are now)."""
    period = Period(edition.period, edition.period_start, edition.period_end)
    ids = [i for _, ids in edition.contents.get("sections", []) for i in ids]
    by_id = {a.id: a for a in session.scalars(select(Article).where(Article.id.in_(ids)))}
    sections = [
        Section(name, [by_id[i] for i in ids if i in by_id])
        for name, ids in edition.contents.get("sections", [])
    ]
    return Collection(newsletter, period, [s for s in sections if s.articles])


def period_collection(
    session: Session, newsletter: NewsletterConfig, period: Period
) -> tuple[Edition | None, Collection]:
    """The period's edition and its frozen collection, or (None, the articles as they are
    now) when no edition exists yet: what previews and test copies show."""
    edition = find_edition(session, newsletter.name, period.key)
    if edition is not None:
        return edition, edition_collection(session, newsletter, edition)
    return None, collect_period(session, newsletter, period)


def find_edition(session: Session, newsletter: str, period: str) -> Edition | None:
    return session.scalars(
        select(Edition).where(Edition.newsletter == newsletter, Edition.period == period)
    ).first()


def get_or_create_edition(
    app: App, newsletter: NewsletterConfig, period: Period
) -> tuple[Edition | None, bool]:
    """The edition for ``period``, created from the period's articles if need be.

    Returns (None, False) when there is no edition and nothing to put in one.
    Two processes racing here end up with the same single edition.
    """
    with app.session() as s:
        edition = find_edition(s, newsletter.name, period.key)
        if edition is not None:
            return edition, False
        collection = collect_period(s, newsletter, period)
        if collection.is_empty:
            return None, False
    try:
        with app.session() as s:
            edition = Edition(
                newsletter=newsletter.name,
                period=period.key,
                period_start=period.start,
                period_end=period.end,
                status=EditionStatus.PLANNED,
                contents=_freeze(collection),
            )
            s.add(edition)
        return edition, True
    except IntegrityError:
        with app.session() as s:
            edition = find_edition(s, newsletter.name, period.key)
        return edition, False


# ---------------------------------------------------------------------------
# Planning one audience


def _lock_edition(session: Session, edition_id: int) -> Edition:
    q = select(Edition).where(Edition.id == edition_id)
    if session.get_bind().dialect.name == "postgresql":
        q = q.with_for_update()
    edition = session.scalars(q).one()
    return edition


def _variant_rows(
    session: Session,
    composer: Composer,
    collection: Collection,
    edition: Edition,
    section_sets: list[tuple[str, ...]],
) -> dict[str, int]:
    """Variant ids by key, rendering (once each) the ones this edition lacks."""
    existing = {
        v.key: v.id
        for v in session.scalars(select(Variant).where(Variant.edition_id == edition.id))
    }
    all_sections = [s.name for s in collection.sections]
    missing = [s for s in section_sets if s and variant_key(s, all_sections) not in existing]
    rendered: dict[str, RenderedVariant] = (
        composer.render_all(collection, missing) if missing else {}
    )
    for key, variant in rendered.items():
        row = Variant(
            edition_id=edition.id,
            key=key,
            sections=list(variant.sections),
            subject=variant.subject,
            preheader=variant.preheader,
            html=variant.html,
            text=variant.text,
        )
        session.add(row)
        session.flush()
        existing[key] = row.id
    if not edition.subject and rendered:
        full = rendered.get("all") or next(iter(rendered.values()))
        edition.subject = full.subject
    return existing


def _planned_recipients(
    session: Session,
    newsletter: NewsletterConfig,
    collection: Collection,
    edition_id: int,
    segment: str | None,
    fixed: tuple[str, ...],
    wave: Callable[[str | None], datetime | None] | None = None,
) -> Iterator[ledger.PlannedRecipient]:
    all_sections = [s.name for s in collection.sections]
    q = (
        recipients(session, newsletter.list_name, segment)
        .where(
            ~exists().where(
                Delivery.edition_id == edition_id, Delivery.subscriber_id == Subscriber.id
            )
        )
        .with_only_columns(
            # as text: a reader's choice is one of a few distinct values, decoded
            # (and mapped to a variant) once each rather than once per reader
            Subscriber.id,
            Subscriber.email,
            cast(Subscriber.categories, Text),
            Subscriber.timezone,
        )
    )
    cache: dict[str | None, str | None] = {}
    for sub_id, email, categories, zone in session.execute(q.execution_options(yield_per=2000)):
        key = cache.get(categories, _UNSEEN)
        if key is _UNSEEN:
            choice = _categories(categories)
            sections = sections_for(collection, choice, fixed)
            key = cache[categories] = variant_key(sections, all_sections) if sections else None
        not_before = wave(zone) if wave is not None and key else None
        yield ledger.PlannedRecipient(
            sub_id, email or "", key, None if key else NO_SECTIONS, not_before
        )


_UNSEEN = "\x00unseen"


def _categories(raw: str | None) -> list[str]:
    """A reader's stored category choice (JSON text) as a list; anything else: none."""
    try:
        value = json.loads(raw) if raw else []
    except ValueError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


def plan_audience(
    app: App,
    newsletter: NewsletterConfig,
    edition_id: int,
    segment: str | None,
    batch_size: int,
    as_of: datetime | None = None,
) -> ledger.PlanCounts | None:
    """Write the ledger for one audience of an edition (None if it was planned before).

    With ``local_time = true``, each reader's batch waits for the send's local hour
    (``as_of``) in the reader's own timezone (see :mod:`digest.scheduling.waves`).
    """
    marker = segment or ALL_AUDIENCE
    with app.session() as s:
        edition = _lock_edition(s, edition_id)
        if marker in edition.contents.get("audiences", []):
            return None
        collection = edition_collection(s, newsletter, edition)
        fixed = audience.segment_categories(s, newsletter, segment)
        sets = [k for k in audience.section_sets(s, newsletter, collection, segment) if k]
        composer = Composer(app.settings, newsletter)
        variant_ids = _variant_rows(s, composer, collection, edition, sets)
        counts = ledger.plan_deliveries(
            s,
            edition.id,
            _planned_recipients(
                s,
                newsletter,
                collection,
                edition.id,
                segment,
                fixed,
                waves.planner(newsletter, as_of, utcnow()),
            ),
            variant_ids,
            batch_size,
        )
        contents = dict(edition.contents)
        contents["audiences"] = [*contents.get("audiences", []), marker]
        edition.contents = contents
    if counts.planned + counts.skipped >= ledger.ANALYZE_AFTER:
        ledger.refresh_statistics(app.engine)
    return counts


# ---------------------------------------------------------------------------
# Delivering


def _list_id(newsletter: NewsletterConfig) -> str:
    domain = newsletter.sender_address.rpartition("@")[2]
    return list_id_header(newsletter.title, newsletter.name, domain)


def envelope(
    newsletter: NewsletterConfig,
    edition: Edition,
    key: str,
    subject: str,
    html: str,
    text: str,
    *,
    test: bool = False,
) -> Envelope:
    return Envelope(
        newsletter=newsletter.name,
        edition_id=edition.id,
        period=edition.period,
        variant_key=key,
        sender=newsletter.sender_address,
        sender_name=newsletter.sender_name,
        reply_to=newsletter.reply_to,
        list_id=_list_id(newsletter),
        subject=subject,
        html=html,
        text=text,
        unsubscribe_mailto=newsletter.unsubscribe_mailto,
        test=test,
        message_nonce=edition.message_nonce or "",
    )


class Editions:
    """Resolves any edition's envelope, reader fields and list (cached), for the send loop."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._envelopes: dict[int, Envelope] = {}
        self._editions: dict[int, tuple[Edition, NewsletterConfig]] = {}
        self._lock = threading.Lock()

    def _edition(self, edition_id: int) -> tuple[Edition, NewsletterConfig]:
        cached = self._editions.get(edition_id)  # once per reader: no lock once it is known
        if cached is not None:
            return cached
        with self._lock:
            if edition_id not in self._editions:
                with self.app.sessions() as s:
                    edition = s.get(Edition, edition_id)
                if edition is None:
                    raise NotFound(f"edition {edition_id} does not exist")
                newsletter = self.app.config.newsletter(edition.newsletter)
                self._editions[edition_id] = (edition, newsletter)
            return self._editions[edition_id]

    def list_name(self, edition_id: int) -> str:
        return self._edition(edition_id)[1].list_name

    def envelope(self, variant_id: int) -> Envelope:
        if variant_id not in self._envelopes:
            with self.app.sessions() as s:
                v = s.get(Variant, variant_id)
                if v is None:
                    raise NotFound(f"variant {variant_id} does not exist")
                key, subject, html, text, edition_id = (
                    v.key,
                    v.subject,
                    v.html,
                    v.text,
                    v.edition_id,
                )
            edition, newsletter = self._edition(edition_id)
            # The web version's link is the same for every reader of the variant:
            # filled in once here, not substituted per reader.
            shared = {"web_url": web_url(self.app.settings, newsletter.name, edition.period, key)}
            html = fill_shared(html, shared, html=True)
            text = fill_shared(text, shared, html=False)
            subject = fill_shared(subject, shared, html=False)
            env = envelope(newsletter, edition, key, subject, html, text)
            with self._lock:
                self._envelopes[variant_id] = env
        return self._envelopes[variant_id]

    def fields(self, row: ledger.Row, env: Envelope) -> dict[str, str]:
        newsletter = self._edition(env.edition_id)[1]
        assert row.subscriber_id is not None  # rows of erased readers are skipped before
        return recipient_fields(
            self.app.settings,
            subscriber_id=row.subscriber_id,
            name=row.name,
            email=row.email,
            newsletter=env.newsletter,
            period=env.period,
            variant_key=env.variant_key,
            locale=newsletter.locale,
        )


def send_edition(
    app: App,
    newsletter_name: str,
    as_of: datetime,
    *,
    backend: str | None = None,
    segment: str | None = None,
    dry_run: bool = False,
    resend_uncertain: bool = False,
    options: SendOptions | None = None,
    on_progress: Callable[[Progress, int], None] | None = None,
    backend_factory: Callable[[], Backend] | None = None,
    batch_size: int | None = None,
    enqueue: bool = False,
    cancel: threading.Event | None = None,
) -> SendReport:
    """Create or resume the edition for the period before ``as_of`` and deliver it."""
    started = time.monotonic()
    newsletter = app.config.newsletter(newsletter_name)
    period = period_for(newsletter, as_of)
    backend_name = backend or app.settings.backend
    factory = backend_factory or make_factory(backend_name, app.settings)
    report = SendReport(newsletter.name, period.key, backend=backend_name)
    if dry_run:
        return _dry_run(app, newsletter, period, segment, report)
    batch_size = batch_size or backend_class(backend_name).batch_size
    edition, created = get_or_create_edition(app, newsletter, period)
    if edition is None:
        report.no_articles = True
        return report
    report.edition_id, report.created = edition.id, created
    planned = plan_audience(app, newsletter, edition.id, segment, batch_size, as_of)
    if planned is not None:
        report.planned = planned.planned
    report.uncertain_recovered = ledger.recover_stale(app.sessions, edition.id)
    if resend_uncertain:
        report.requeued_uncertain = ledger.resend_uncertain(app.sessions, edition.id, batch_size)
    with app.session() as s:
        pending = ledger.outstanding(s, edition.id)
        current = s.get(Edition, edition.id)
        assert current is not None
        if pending and current.status != EditionStatus.SENDING:
            # planned, paused, or sent before this audience was added
            current.status = EditionStatus.SENDING
    if pending and enqueue:
        report.enqueued = pending
    elif pending:
        loop = SendLoop(
            app.sessions,
            factory,
            Editions(app),
            options,
            cancel=cancel,
            on_progress=(lambda p: on_progress(p, pending)) if on_progress else None,
        )
        result = loop.run(edition.id)
        report.stopped = bool(cancel and cancel.is_set())
        report.sent_now = result.progress.sent
        report.paused, report.pause_reason = result.paused, result.reason
    else:
        report.nothing_new = True
    ledger.settle_edition(app.sessions, edition.id)
    _fill_counts(app, edition.id, report)
    with app.sessions() as s:
        report.waiting, report.next_wave = waves.waiting(s, edition.id, utcnow())
    report.elapsed = time.monotonic() - started
    return report


def _fill_counts(app: App, edition_id: int, report: SendReport) -> None:
    with app.sessions() as s:
        # one pass over the edition's deliveries, not one per figure
        tally = ledger.edition_tally(s, edition_id)
        report.counts = tally.statuses
        report.skipped_reasons = tally.skipped_reasons
        report.variants = {
            key: tally.per_variant.get(variant_id, 0)
            for variant_id, key in s.execute(
                select(Variant.id, Variant.key)
                .where(Variant.edition_id == edition_id)
                .order_by(Variant.id)
            ).all()
        }


def _dry_run(
    app: App, newsletter: NewsletterConfig, period: Period, segment: str | None, report: SendReport
) -> SendReport:
    report.dry_run = True
    with app.session() as s:
        edition, collection = period_collection(s, newsletter, period)
        if edition is not None:
            report.edition_id = edition.id
        if collection.is_empty:
            report.no_articles = True
            return report
        sets = audience.section_sets(s, newsletter, collection, segment)
    all_sections = [sec.name for sec in collection.sections]
    for sections, count in sets.items():
        if sections:
            key = variant_key(sections, all_sections)
            report.variants[key] = report.variants.get(key, 0) + count
        else:
            report.skipped_reasons[NO_SECTIONS] = count
    report.counts = {
        "pending": sum(report.variants.values()),
        "skipped": sum(report.skipped_reasons.values()),
    }
    return report


def require_edition(session: Session, ref: str) -> Edition:
    """An edition by id, or by ``NEWSLETTER/PERIOD``."""
    if ref.isdigit():
        edition = session.get(Edition, int(ref))
    else:
        newsletter, _, period = ref.partition("/")
        edition = find_edition(session, newsletter, period)
    if edition is None:
        raise NotFound(
            f"no edition {ref!r}; give its id or NEWSLETTER/PERIOD as `digest editions list` shows"
        )
    return edition


__all__ = ["DeliveryError", "SendReport", "edition_collection", "send_edition"]

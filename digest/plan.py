"""Planning an edition for an audience: one ledger row per reader, before anything is sent.

An audience is the whole list or a segment of it.  Each is planned once, in one
transaction (a crash while planning leaves nothing): its variants are rendered
(once each), every reader gets a pending delivery of their variant, or a
skipped one with the reason, and the audience is recorded in
``edition_audience``.  With ``local_time = true`` each reader's batch waits for
the send's local hour in the reader's own timezone (:mod:`digest.delivery.waves`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Text, cast, exists, select
from sqlalchemy.orm import Session

from digest import audience
from digest.app import App
from digest.collect import Collection, Period
from digest.compose import Composer, RenderedVariant, sections_for, variant_key
from digest.config import NewsletterConfig
from digest.delivery import ledger, waves
from digest.editions import edition_collection, period_collection
from digest.models import WHOLE_LIST, Delivery, Edition, EditionAudience, Variant
from subscribers.db import utcnow
from subscribers.models import Subscriber

NO_SECTIONS = "none of the reader's chosen categories has articles this period"


def audience_name(segment: str | None) -> str:
    """How an audience is recorded: the segment's name, or ``*`` for the whole list."""
    return segment or WHOLE_LIST


def _lock_edition(session: Session, edition_id: int) -> Edition:
    q = select(Edition).where(Edition.id == edition_id)
    if session.get_bind().dialect.name == "postgresql":
        q = q.with_for_update()
    return session.scalars(q).one()


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


_UNSEEN = "\x00unseen"


def _categories(raw: str | None) -> list[str]:
    """A reader's stored category choice (JSON text) as a list; anything else: none."""
    try:
        value = json.loads(raw) if raw else []
    except ValueError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


def _planned_recipients(
    session: Session,
    newsletter: NewsletterConfig,
    collection: Collection,
    edition_id: int,
    segments: Sequence[str | None],
    fixed: Sequence[tuple[str, ...]],
    wave: Callable[[str | None], datetime | None] | None = None,
) -> Iterator[ledger.PlannedRecipient]:
    """Every reader of ``segments`` not planned yet, in one pass over the list, with
    their variant (from their choice, or the first matching segment's fixed categories)."""
    all_sections = [s.name for s in collection.sections]
    query, which = audience.audiences_query(session, newsletter, segments)
    q = query.where(
        ~exists().where(Delivery.edition_id == edition_id, Delivery.subscriber_id == Subscriber.id)
    ).with_only_columns(
        # as text: a reader's choice is one of a few distinct values, decoded
        # (and mapped to a variant) once each rather than once per reader
        Subscriber.id,
        Subscriber.email,
        cast(Subscriber.categories, Text),
        Subscriber.timezone,
        which,
    )
    cache: dict[tuple[int, str | None], str | None] = {}
    for sub_id, email, categories, zone, index in session.execute(
        q.execution_options(yield_per=5000)
    ):
        key = cache.get((index, categories), _UNSEEN)
        if key is _UNSEEN:
            choice = _categories(categories)
            sections = sections_for(collection, choice, fixed[index])
            key = cache[(index, categories)] = (
                variant_key(sections, all_sections) if sections else None
            )
        not_before = wave(zone) if wave is not None and key else None
        yield ledger.PlannedRecipient(
            sub_id, email or "", key, None if key else NO_SECTIONS, not_before
        )


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
    (``as_of``) in the reader's own timezone.
    """
    return plan_audiences(app, newsletter, edition_id, [segment], batch_size, as_of)


def plan_audiences(
    app: App,
    newsletter: NewsletterConfig,
    edition_id: int,
    segments: Sequence[str | None],
    batch_size: int,
    as_of: datetime | None = None,
) -> ledger.PlanCounts | None:
    """Write the ledger for several audiences of an edition at once (None if every one
    was planned before): one query counts their readers' choices, one pass over the
    list writes everyone's delivery, so batches fill across segments (a reader in two
    segments is planned for the first).  Audiences planned before are left out.
    """
    with app.transaction() as s:
        edition = _lock_edition(s, edition_id)
        done = set(
            s.scalars(
                select(EditionAudience.audience).where(EditionAudience.edition_id == edition_id)
            )
        )
        todo = list(dict.fromkeys(seg for seg in segments if audience_name(seg) not in done))
        if not todo:
            return None
        collection = edition_collection(s, newsletter, edition)
        fixed = [audience.segment_categories(s, newsletter, seg) for seg in todo]
        sets = [k for k in audience.audiences_section_sets(s, newsletter, collection, todo) if k]
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
                todo,
                fixed,
                waves.planner(newsletter, as_of, utcnow()),
            ),
            variant_ids,
            batch_size,
        )
        for seg in todo:
            s.add(EditionAudience(edition_id=edition.id, audience=audience_name(seg)))
    if counts.planned + counts.skipped >= ledger.ANALYZE_AFTER:
        ledger.refresh_statistics(app.engine)
    return counts


@dataclass
class AudienceCounts:
    """Who of an audience would get which variant (a dry run: nothing written)."""

    #: The period's edition, when one exists already.
    edition_id: int | None
    #: Readers per variant key.
    variants: dict[str, int] = field(default_factory=dict)
    #: Readers who would get nothing, by reason.
    skipped_reasons: dict[str, int] = field(default_factory=dict)


def count_audience(
    app: App, newsletter: NewsletterConfig, period: Period, segment: str | None
) -> AudienceCounts | None:
    """What planning ``segment`` (None: the whole list) would write, without writing it;
    None when the period has no articles."""
    with app.transaction() as s:
        edition, collection = period_collection(s, newsletter, period)
        if collection.is_empty:
            return None
        sets = audience.section_sets(s, newsletter, collection, segment)
    counts = AudienceCounts(edition.id if edition is not None else None)
    all_sections = [sec.name for sec in collection.sections]
    for sections, count in sets.items():
        if sections:
            key = variant_key(sections, all_sections)
            counts.variants[key] = counts.variants.get(key, 0) + count
        else:
            counts.skipped_reasons[NO_SECTIONS] = count
    return counts


__all__ = [
    "NO_SECTIONS",
    "AudienceCounts",
    "audience_name",
    "count_audience",
    "plan_audience",
    "plan_audiences",
]

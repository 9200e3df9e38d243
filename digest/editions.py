"""Editions: one per (newsletter, period), their contents frozen when they are made,
sent in period order.

An edition is unique per (newsletter, period): running a send again finds the
same edition.  Its contents are frozen when it is created (the article ids per
section), so a resumed send renders the same email even if new articles
arrived in between.  The audiences its ledger was written for are rows of
``edition_audience`` (see :mod:`digest.plan`).

Which period a command uses, and why, is decided in one place,
:func:`choose_period`: a send sends the edition due now (the period before now),
while what an editor looks at (preview, compose, collect, test copies) is the
edition the next scheduled run will send.

A newsletter's editions go out in period order (:func:`order_problem`): planning
readers for an edition whose period ends before that of one already going out
(or queued to) is refused, naming both, unless the period was named and the user
confirmed (``--period KEY --force``).  Resuming an edition that has started going
out is never refused.  An edition queued for workers that has not started when a
newer one is planned is paused (:func:`pause_overtaken`), so no worker sends it
after the newer one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import exists, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digest.app import App
from digest.collect import Collection, Period, Section, collect_period, period_for
from digest.config import NewsletterConfig
from digest.errors import DeliveryError, DigestError, NotFound
from digest.models import (
    Article,
    BatchStatus,
    DeliveryBatch,
    Edition,
    EditionAudience,
    EditionStatus,
)


def freeze(collection: Collection) -> dict[str, Any]:
    """An edition's ``contents``: the article ids of each section, in order."""
    return {"sections": [[s.name, [a.id for a in s.articles]] for s in collection.sections]}


def edition_collection(
    session: Session, newsletter: NewsletterConfig, edition: Edition
) -> Collection:
    """The collection an edition was created with (its articles as they are now)."""
    period = Period(edition.period, edition.period_start, edition.period_end)
    frozen = edition.contents.get("sections", [])
    ids = [i for _, ids in frozen for i in ids]
    by_id = {a.id: a for a in session.scalars(select(Article).where(Article.id.in_(ids)))}
    sections = [Section(name, [by_id[i] for i in ids if i in by_id]) for name, ids in frozen]
    top = edition.contents.get("top")
    return Collection(
        newsletter,
        period,
        [s for s in sections if s.articles],
        intro=str(edition.contents.get("intro") or ""),
        top_id=top if isinstance(top, int) and top in by_id else None,
        subject=str(edition.contents.get("subject") or "") or None,
        ordered=bool(edition.contents.get("ordered")),
    )


def find_edition(session: Session, newsletter: str, period: str) -> Edition | None:
    return session.scalars(
        select(Edition).where(Edition.newsletter == newsletter, Edition.period == period)
    ).first()


def period_collection(
    session: Session, newsletter: NewsletterConfig, period: Period
) -> tuple[Edition | None, Collection]:
    """The period's edition and its frozen collection, or (None, the articles as they are
    now) when no edition exists yet: what previews and test copies show."""
    edition = find_edition(session, newsletter.name, period.key)
    if edition is not None:
        return edition, edition_collection(session, newsletter, edition)
    return None, collect_period(session, newsletter, period)


def get_or_create_edition(
    app: App,
    newsletter: NewsletterConfig,
    period: Period,
    status: EditionStatus = EditionStatus.PLANNED,
) -> tuple[Edition | None, bool]:
    """(The edition for ``period``, whether this call created it), created from the
    period's articles if need be (with ``status``: a draft for editors, or planned).

    Returns (None, False) when there is no edition and nothing to put in one.
    Two processes racing here end up with the same single edition.
    """
    with app.transaction() as s:
        edition = find_edition(s, newsletter.name, period.key)
        if edition is not None:
            return edition, False
        collection = collect_period(s, newsletter, period)
        if collection.is_empty:
            return None, False
    try:
        with app.transaction() as s:
            edition = Edition(
                newsletter=newsletter.name,
                period=period.key,
                period_start=period.start,
                period_end=period.end,
                status=status,
                contents=freeze(collection),
            )
            s.add(edition)
        return edition, True
    except IntegrityError:
        with app.transaction() as s:
            edition = find_edition(s, newsletter.name, period.key)
        return edition, False


def planned_audiences(session: Session, edition_id: int) -> list[str]:
    """The audiences an edition's ledger has been written for, in the order they were."""
    return list(
        session.scalars(
            select(EditionAudience.audience)
            .where(EditionAudience.edition_id == edition_id)
            .order_by(EditionAudience.id)
        )
    )


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


# ---------------------------------------------------------------------------
# Which period, and why


class Purpose(StrEnum):
    """What a period is chosen for."""

    #: Sending: the edition due now, the period before now.
    SEND = "send"
    #: Looking at it (preview, compose, collect, test copies): the edition the next
    #: scheduled run will send.
    PREVIEW = "preview"


class BadPeriod(DigestError):
    """A period asked for by key that this newsletter cannot have, or a bad combination."""

    exit_code = 2


@dataclass(frozen=True)
class PeriodChoice:
    """The period a command uses, and why (``str()``: the line commands print)."""

    period: Period
    #: Why this period: "the week before now (--as-of not given), the edition due now".
    reason: str
    #: The send time the period is counted back from (now, for a period named by key).
    as_of: datetime
    #: Its days in the newsletter's timezone: "Mon 16 Nov – Sun 22 Nov".
    days: str
    #: True when the period was named by its key (``--period``).
    named: bool = False

    def __str__(self) -> str:
        return f"{self.period.key} ({self.days}): {self.reason}"


_WEEK_KEY = re.compile(r"^(\d{4})-W(\d{1,2})$")
_DAYS_KEY = re.compile(r"^(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})$")


def _span(newsletter: NewsletterConfig) -> str:
    """What one period is: "the week", "the day", "the 7 days"."""
    if newsletter.window == "week":
        return "the week"
    days = int(newsletter.window[:-1])
    return "the day" if days == 1 else f"the {days} days"


def _day(d: date, *, weekday: bool, year: bool) -> str:
    text = f"{d.day} {d:%b}"
    if weekday:
        text = f"{d:%a} {text}"
    return f"{text} {d.year}" if year else text


def period_days(newsletter: NewsletterConfig, period: Period, *, short: bool = False) -> str:
    """A period's days in the newsletter's timezone: "Mon 16 Nov – Sun 22 Nov", or with
    ``short`` "16–22 Nov" (the year is shown when the period crosses one)."""
    first, last = period.local_dates(newsletter)
    years = first.year != last.year
    if first == last:
        return _day(first, weekday=not short, year=False)
    if short and not years and first.month == last.month:
        return f"{first.day}–{_day(last, weekday=False, year=False)}"
    ends = [_day(d, weekday=not short, year=years) for d in (first, last)]
    return " – ".join(ends)


def _moment(newsletter: NewsletterConfig, moment: datetime, now: datetime) -> str:
    """A send time as readers' calendars show it: "Monday 23 November 08:00" (the year
    when it is not this year; no time at midnight)."""
    local = moment.astimezone(newsletter.zone)
    text = f"{local:%A} {local.day} {local:%B}"
    if local.year != now.astimezone(newsletter.zone).year:
        text += f" {local.year}"
    if local.time() != time(0):
        text += f" {local:%H:%M}"
    return text


def _clock(newsletter: NewsletterConfig, moment: datetime) -> str:
    """A past moment, briefly: "Fri 27 Nov 10:00"."""
    local = moment.astimezone(newsletter.zone)
    return f"{local:%a} {local.day} {local:%b %H:%M}"


def _local_midnight(day: date, newsletter: NewsletterConfig) -> datetime:
    return datetime.combine(day, time(0), tzinfo=newsletter.zone).astimezone(UTC)


def period_from_key(newsletter: NewsletterConfig, key: str, now: datetime | None = None) -> Period:
    """The period named ``key`` (``2026-W47``, or ``2026-11-16..2026-11-22`` for a window
    of days); a key this newsletter's window cannot have is a :class:`BadPeriod` saying
    what one looks like."""
    key = key.strip()
    example = period_for(newsletter, now or datetime.now(UTC)).key
    if newsletter.window == "week":
        match = _WEEK_KEY.match(key)
        if match is None:
            raise BadPeriod(
                f"{key!r} is not a period of {newsletter.name}: {newsletter.name}'s periods are "
                f"ISO weeks, written like {example}"
            )
        year, week = int(match[1]), int(match[2])
        _check_year(key, year)
        try:
            monday = date.fromisocalendar(year, week, 1)
        except ValueError:
            raise BadPeriod(
                f"{key!r}: {year} has no week {week}; write an ISO week like {example}"
            ) from None
        return Period(
            f"{year}-W{week:02d}",
            _local_midnight(monday, newsletter),
            _local_midnight(monday + timedelta(days=7), newsletter),
        )
    days = int(newsletter.window[:-1])
    unit = "day" if days == 1 else f"{days} days"
    first, last = _days_of(_DAYS_KEY.match(key))
    if first is None or last is None:
        raise BadPeriod(
            f"{key!r} is not a period of {newsletter.name}: {newsletter.name}'s periods are "
            f"{unit}, written FIRST..LAST like {example}"
        )
    _check_year(key, first.year, last.year)
    spans = (last - first).days + 1
    if spans != days:
        spanned = f"spans {spans} days" if spans > 0 else "ends before it starts (spans no days)"
        raise BadPeriod(
            f"{key!r} {spanned}, but {newsletter.name}'s window is {newsletter.window}; "
            f"write FIRST..LAST like {example}"
        )
    return Period(
        key,
        _local_midnight(first, newsletter),
        _local_midnight(last + timedelta(days=1), newsletter),
    )


def _check_year(key: str, *years: int) -> None:
    if not all(1971 <= y <= 9998 for y in years):
        raise BadPeriod(f"{key!r} is out of range; pick a period between 1971 and 9998")


def _days_of(match: re.Match[str] | None) -> tuple[date | None, date | None]:
    if match is None:
        return None, None
    try:
        return date.fromisoformat(match[1]), date.fromisoformat(match[2])
    except ValueError:
        return None, None


def next_scheduled_send(newsletter: NewsletterConfig, now: datetime) -> datetime | None:
    """The newsletter's next scheduled run after ``now`` (None if its rule fires no more)."""
    from digest.schedule_rules import fire_times, trigger_for  # APScheduler only when needed

    upcoming = fire_times(trigger_for(newsletter.schedule, newsletter.zone), now, 1)
    return upcoming[0] if upcoming else None


def choose_period(
    newsletter: NewsletterConfig,
    *,
    as_of: datetime | None = None,
    period: str | None = None,
    purpose: Purpose = Purpose.SEND,
    now: datetime | None = None,
    given_as: str = "given with --as-of",
) -> PeriodChoice:
    """The period a command uses, and why: the one place that decides.

    * ``period`` (a key, ``--period``): that period;
    * ``as_of`` (``--as-of``; ``given_as`` says where it came from, for the reason):
      the period before it;
    * neither: for :attr:`Purpose.SEND` the period before ``now`` (the edition due
      now); for :attr:`Purpose.PREVIEW` the period before the next scheduled run
      (on a Sunday, this week's articles for Monday's send).
    """
    now = now or datetime.now(UTC)
    if period is not None and as_of is not None:
        raise BadPeriod("give --period or --as-of, not both")

    def chosen(p: Period, reason: str, at: datetime, named: bool = False) -> PeriodChoice:
        return PeriodChoice(p, reason, at, period_days(newsletter, p), named)

    if period is not None:
        return chosen(
            period_from_key(newsletter, period, now), "asked for with --period", now, True
        )
    span = _span(newsletter)
    if as_of is not None:
        if as_of.tzinfo is None:
            raise ValueError("as_of must be timezone-aware")
        return chosen(
            period_for(newsletter, as_of),
            f"{span} before {_moment(newsletter, as_of, now)}, {given_as}",
            as_of,
        )
    if purpose is Purpose.PREVIEW:
        upcoming = next_scheduled_send(newsletter, now)
        if upcoming is not None:
            return chosen(
                period_for(newsletter, upcoming),
                f"{span} before {_moment(newsletter, upcoming, now)}, the next scheduled send",
                upcoming,
            )
    return chosen(
        period_for(newsletter, now),
        f"{span} before now (--as-of not given), the edition due now",
        now,
    )


# ---------------------------------------------------------------------------
# Editions go out in period order


class EditionOrderError(DeliveryError):
    """Sending this edition would put it after a newer one (nothing was written)."""

    def __init__(self, message: str, *, newsletter: str, period: str, newer: str) -> None:
        super().__init__(message)
        self.newsletter = newsletter
        self.period = period
        self.newer = newer


def _has_batches() -> Any:
    """Edition has readers to send to (its ledger holds deliveries that are not skipped)."""
    return exists().where(DeliveryBatch.edition_id == Edition.id)


def _started() -> Any:
    """Edition has started going out: a sender has taken up one of its batches."""
    return exists().where(
        DeliveryBatch.edition_id == Edition.id,
        or_(DeliveryBatch.status != BatchStatus.PENDING, DeliveryBatch.attempts > 0),
    )


def has_started(session: Session, edition_id: int) -> bool:
    """True once a sender has taken up one of the edition's batches."""
    return bool(
        session.scalar(
            select(exists(select(Edition.id).where(Edition.id == edition_id, _started())))
        )
    )


def newest_going_out(session: Session, newsletter: str, after: datetime) -> Edition | None:
    """The newest edition of ``newsletter`` whose period ends after ``after`` and that
    went out, is going out or is queued to (its ledger holds readers to send to)."""
    return session.scalars(
        select(Edition)
        .where(Edition.newsletter == newsletter, Edition.period_end > after, _has_batches())
        .order_by(Edition.period_end.desc(), Edition.id.desc())
        .limit(1)
    ).first()


def order_problem(
    session: Session, newsletter: NewsletterConfig, period: Period, audience: str
) -> EditionOrderError | None:
    """Why planning ``audience`` for ``period``'s edition would send it out of order, or
    None when it may go ahead.

    Resuming (the edition has started going out and ``audience`` was planned) is
    always fine; otherwise the edition must not be older than the newest edition of
    the newsletter already sent, going out or queued.
    """
    existing = find_edition(session, newsletter.name, period.key)
    if (
        existing is not None
        and audience in planned_audiences(session, existing.id)
        and has_started(session, existing.id)
    ):
        return None
    newer = newest_going_out(session, newsletter.name, period.end)
    if newer is None:
        return None
    newer_period = Period(newer.period, newer.period_start, newer.period_end)
    since = (
        session.scalar(
            select(func.min(EditionAudience.planned_at)).where(
                EditionAudience.edition_id == newer.id
            )
        )
        or newer.created_at
    )
    when = _clock(newsletter, since)
    if newer.status == EditionStatus.SENT:
        which = f"which went out on {when}"
    elif not has_started(session, newer.id):
        which = f"which is queued to go out (planned on {when})"
    elif newer.status == EditionStatus.PAUSED:
        which = f"which started going out on {when} and is paused"
    else:
        which = f"which has been going out since {when}"
    key = period.key
    message = (
        f"{newsletter.name}: {key} ({period_days(newsletter, period, short=True)}) is older "
        f"than {newer.period} ({period_days(newsletter, newer_period, short=True)}), {which}; "
        "digest sends a newsletter's editions in order. To send "
        f"{key} anyway: digest send {newsletter.name} --period {key} --force"
    )
    return EditionOrderError(message, newsletter=newsletter.name, period=key, newer=newer.period)


def pause_overtaken(session: Session, edition: Edition) -> list[str]:
    """Pause the older editions of ``edition``'s newsletter that are queued (planned for
    workers) but have not started going out: sent now, they would arrive after it.
    Returns their periods; ``digest send NEWSLETTER --period KEY --force`` sends one."""
    overtaken = session.scalars(
        select(Edition)
        .where(
            Edition.newsletter == edition.newsletter,
            Edition.id != edition.id,
            Edition.period_end < edition.period_end,
            Edition.status.in_([EditionStatus.PLANNED, EditionStatus.SENDING]),
            _has_batches(),
            ~_started(),
        )
        .order_by(Edition.period_end)
    ).all()
    for older in overtaken:
        older.status = EditionStatus.PAUSED
    return [older.period for older in overtaken]


__all__ = [
    "BadPeriod",
    "EditionOrderError",
    "PeriodChoice",
    "Purpose",
    "choose_period",
    "edition_collection",
    "find_edition",
    "freeze",
    "get_or_create_edition",
    "has_started",
    "newest_going_out",
    "next_scheduled_send",
    "order_problem",
    "pause_overtaken",
    "period_collection",
    "period_days",
    "period_from_key",
    "planned_audiences",
    "require_edition",
]

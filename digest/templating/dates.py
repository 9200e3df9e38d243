"""Dates in the newsletter's locale and timezone (Babel, CLDR patterns)."""

from __future__ import annotations

import functools
import re
from datetime import date, datetime, tzinfo

from babel import Locale
from babel.dates import format_date, format_skeleton, parse_pattern

_NAMED_FORMATS = {"short", "medium", "long", "full"}
_LONG_MONTH = re.compile(r"(?<![ML])(MMM|LLL)(?![ML])")


def _local(value: date | datetime, zone: tzinfo) -> date | datetime:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(zone)
    return value


def format_day(value: date | datetime, fmt: str, locale: str, zone: tzinfo) -> str:
    """A date in ``locale``: ``fmt`` is short/medium/long/full or a CLDR skeleton (``MMMd``)."""
    day = _local(value, zone)
    if isinstance(day, datetime):
        day = day.date()
    return _format_local_day(day, fmt, locale)


@functools.lru_cache(maxsize=4096)
def _format_local_day(day: date, fmt: str, locale: str) -> str:
    # Cached: a digest prints the same few days dozens of times, and Babel takes
    # tens of microseconds for each.
    if fmt in _NAMED_FORMATS:
        return format_date(day, fmt, locale=locale)
    return format_skeleton(fmt, day, locale=locale)


def format_date_range(first: date, last: date, locale: str, *, long_months: bool = True) -> str:
    """``16 – 22 November 2026`` (en_GB), ``16.–22. November 2026`` (de_DE): CLDR's
    interval pattern for day-month-year, with the month spelled out.  Both years
    show when they differ."""
    loc = Locale.parse(locale)
    if first == last:
        return format_date(first, "long" if long_months else "medium", locale=loc)
    pieces = loc.interval_formats.get("yMMMd")
    if not pieces:
        return f"{format_date(first, 'long', locale=loc)} – {format_date(last, 'long', locale=loc)}"
    if first.year != last.year:
        field = "y"
    elif first.month != last.month:
        field = "M"
    else:
        field = "d"
    patterns = list(pieces.get(field) or pieces["y"])
    if long_months:
        patterns = [_LONG_MONTH.sub(lambda m: m.group(0) + m.group(0)[0], p) for p in patterns]
    return "".join(
        parse_pattern(p).apply(day, loc) for p, day in zip(patterns, (first, last), strict=True)
    )


def day_format(first: date, last: date) -> str:
    """The CLDR skeleton for an article's day in a period from ``first`` to ``last``:
    day and month (``MMMd``), with the year (``yMMMd``) when the period crosses a
    year boundary or is longer than a year, so no two days read the same."""
    if first.year != last.year or (last - first).days >= 365:
        return "yMMMd"
    return "MMMd"


__all__ = ["day_format", "format_date_range", "format_day"]

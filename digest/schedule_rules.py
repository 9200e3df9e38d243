"""Schedule rules from ``digest.toml`` and the APScheduler triggers they become.

Two spellings are accepted (case does not matter):

* friendly: ``"mon 08:00"``, ``"mon,thu 08:00"``, ``"daily 07:30"``;
* a 5-field crontab: ``"MIN HOUR DAY-OF-MONTH MONTH DAY-OF-WEEK"``, e.g. ``"0 8 * * 1"``.

Crontab days of the week follow cron (0 or 7 = Sunday, 1 = Monday), not
APScheduler's own numbering (0 = Monday): they are translated to day names here.
Cron fires when *either* a restricted day of month or a restricted day of week
matches; to keep one meaning, a rule may restrict only one of the two.

Every rule is read in the newsletter's timezone by :class:`LocalCronTrigger`, a
``CronTrigger`` that fires once per wall-clock time: in the hour that repeats
when clocks go back, the second pass is skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: Cron's numbering: 0 and 7 are Sunday.
_CRON_DAY = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
_FRIENDLY = re.compile(r"^(?P<days>[a-z,\s]+?)\s+(?P<hour>\d{1,2}):(?P<minute>\d{2})$")
HELP = (
    "write e.g. 'mon 08:00', 'mon,thu 08:00', 'daily 07:30' or a 5-field crontab "
    "like '0 8 * * 1' (minute hour day-of-month month day-of-week)"
)


@dataclass(frozen=True)
class Rule:
    """A parsed schedule: APScheduler cron fields (``day_of_week`` as day names)."""

    text: str
    minute: str
    hour: str
    day: str = "*"
    month: str = "*"
    day_of_week: str = "*"

    def fields(self) -> dict[str, str]:
        return {
            "minute": self.minute,
            "hour": self.hour,
            "day": self.day,
            "month": self.month,
            "day_of_week": self.day_of_week,
        }


def parse_schedule(text: str) -> Rule:
    """Read a schedule; a mistake is a ValueError that says how to write it."""
    value = " ".join(str(text).split()).lower()
    if not value:
        raise ValueError(f"the schedule is empty; {HELP}")
    fields = value.split(" ")
    rule = _parse_crontab(value, fields) if len(fields) == 5 else _parse_friendly(value)
    try:
        trigger = LocalCronTrigger(timezone=UTC, **rule.fields())
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid schedule ({exc}); {HELP}") from None
    if trigger.get_next_fire_time(None, datetime(2000, 1, 1, tzinfo=UTC)) is None:
        raise ValueError(f"{text!r} never fires (no such date); {HELP}")
    return Rule(text=text, **rule.fields())


def _parse_friendly(value: str) -> Rule:
    match = _FRIENDLY.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a schedule; {HELP}")
    hour, minute = int(match["hour"]), int(match["minute"])
    if hour > 23 or minute > 59:
        raise ValueError(f"{value!r}: {hour:02d}:{minute:02d} is not a time of day; {HELP}")
    days = [d.strip() for d in match["days"].split(",")]
    if days == ["daily"]:
        dow = "*"
    else:
        unknown = [d for d in days if d not in DAY_NAMES]
        if unknown:
            raise ValueError(
                f"{value!r}: {unknown[0]!r} is not a day; use mon, tue, wed, thu, fri, sat, sun "
                f"(comma-separated) or 'daily'; {HELP}"
            )
        dow = ",".join(d for d in DAY_NAMES if d in days)
    return Rule(text=value, minute=str(minute), hour=str(hour), day_of_week=dow)


def _parse_crontab(value: str, fields: list[str]) -> Rule:
    minute, hour, day, month, dow = fields
    names = _cron_days(value, dow)
    if day != "*" and names != "*":
        raise ValueError(
            f"{value!r} restricts both the day of month and the day of week, which cron "
            "reads as 'either'; set one of them to '*'"
        )
    return Rule(text=value, minute=minute, hour=hour, day=day, month=month, day_of_week=names)


def _cron_days(value: str, field: str) -> str:
    """A cron day-of-week field (0/7 = Sunday) as APScheduler day names ('*' for every day)."""
    chosen: set[int] = set()
    for part in field.split(","):
        base, _, step_text = part.partition("/")
        step = _cron_number(value, step_text, 1, 7) if step_text else 1
        if base == "*":
            first, last = 0, 6
        elif "-" in base:
            lo, _, hi = base.partition("-")
            first, last = _cron_day(value, lo), _cron_day(value, hi)
            if last == 0 and first > 0:  # "sat-sun", "5-7": Sunday closes the week
                last = 7
            if first > last:
                raise ValueError(f"{value!r}: the day range {base!r} runs backwards; {HELP}")
        else:
            first = _cron_day(value, base)
            last = 6 if step_text else first
        chosen.update(n % 7 for n in range(first, last + 1, step))
    if chosen == set(range(7)):
        return "*"
    # cron's 0 (Sunday) .. 6 (Saturday) to APScheduler's names, Monday first
    return ",".join(DAY_NAMES[(n - 1) % 7] for n in sorted(chosen, key=lambda n: (n - 1) % 7))


def _cron_day(value: str, token: str) -> int:
    token = token.strip()
    if token in _CRON_DAY:
        return _CRON_DAY[token]
    return _cron_number(value, token, 0, 7)


def _cron_number(value: str, token: str, low: int, high: int) -> int:
    if not token.isdigit() or not low <= int(token) <= high:
        raise ValueError(f"{value!r}: {token!r} is not a day of the week (0-7 or sun-sat); {HELP}")
    return int(token)


class LocalCronTrigger(CronTrigger):
    """A CronTrigger that fires once per wall-clock time in its timezone.

    APScheduler 3's CronTrigger steps through days by adding 24 hours to an aware
    time, so across a clock change it can land an hour off and skip a day (a
    ``mon 00:02`` London rule skipped the Monday after the clocks went forward;
    agronholm/apscheduler#529, #606), and it fires a time in the hour that repeats
    twice.  This one matches the rule against the *wall clock*: the same fields
    on a clock without clock changes (UTC), each match then read as a time in the
    timezone.  A time that repeats (clocks going back) fires on its first pass
    only; a time that does not exist (clocks going forward) fires once, shifted
    forward by the gap (``01:30`` on the day London skips 01:00–02:00 fires at
    02:30 BST).
    """

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        # Where to start looking, as CronTrigger itself decides it.
        if previous_fire_time is not None:
            start = min(now, previous_fire_time + timedelta(microseconds=1))
            if start == previous_fire_time:
                start += timedelta(microseconds=1)
        else:
            start = max(now, self.start_date) if self.start_date else now
        zone = self.timezone
        wall_clock = self._wall_clock()
        # The wall time of ``start`` (its first pass, if it repeats), on the plain clock.
        cursor = start.astimezone(zone).replace(tzinfo=UTC, fold=0)
        while True:
            match = wall_clock.get_next_fire_time(None, cursor)
            if match is None:
                return None
            fire = match.replace(tzinfo=zone, fold=0).astimezone(UTC).astimezone(zone)
            if self.end_date is not None and fire > self.end_date:
                return None
            if fire >= start:
                return fire
            # Its instant is before ``start``: a repeated hour's first pass already
            # gone (the second pass never fires), or a shifted gap time; look on.
            cursor = match + timedelta(microseconds=1)

    def _wall_clock(self) -> CronTrigger:
        """The same fields on UTC, a clock with no clock changes (built once; not
        pickled with the job, so made again after APScheduler loads it)."""
        cached: CronTrigger | None = self.__dict__.get("_wall")
        if cached is None:
            fields = {f.name: str(f) for f in self.fields if not f.is_default}
            cached = self.__dict__["_wall"] = CronTrigger(timezone=UTC, **fields)
        return cached


def trigger_for(schedule: str, timezone: str | tzinfo) -> LocalCronTrigger:
    """The trigger of a schedule in a timezone (an IANA name or a tzinfo)."""
    zone = ZoneInfo(timezone) if isinstance(timezone, str) else timezone
    return LocalCronTrigger(timezone=zone, **parse_schedule(schedule).fields())


def fire_times(trigger: CronTrigger, after: datetime, count: int) -> list[datetime]:
    """The next ``count`` fire times strictly after ``after`` (aware, in the trigger's zone)."""
    times: list[datetime] = []
    previous: datetime | None = None
    now = after + timedelta(microseconds=1)
    while len(times) < count:
        fire = trigger.get_next_fire_time(previous, now)
        if fire is None:
            break
        times.append(fire)
        previous, now = fire, fire + timedelta(microseconds=1)
    return times


def same_trigger(a: Any, b: Any) -> bool:
    """True when two triggers fire at the same times (same fields and timezone)."""
    return type(a) is type(b) and repr(a) == repr(b)


__all__ = [
    "DAY_NAMES",
    "LocalCronTrigger",
    "Rule",
    "fire_times",
    "parse_schedule",
    "same_trigger",
    "trigger_for",
]

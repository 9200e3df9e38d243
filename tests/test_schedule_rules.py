"""Schedule rules: the grammar, cron's day numbering, validation in digest.toml, and DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.config import load_config
from digest.errors import ConfigError
from digest.schedule_rules import DAY_NAMES, fire_times, parse_schedule, trigger_for

LONDON = ZoneInfo("Europe/London")


@pytest.mark.parametrize(
    ("text", "dow", "hour", "minute"),
    [
        ("mon 08:00", "mon", "8", "0"),
        ("Mon 8:05", "mon", "8", "5"),
        ("mon,thu 08:00", "mon,thu", "8", "0"),
        ("thu, mon  08:00", "mon,thu", "8", "0"),
        ("daily 07:30", "*", "7", "30"),
        ("0 8 * * 1", "mon", "8", "0"),  # cron: 1 is Monday (APScheduler's 1 would be Tuesday)
        ("0 8 * * 0", "sun", "8", "0"),
        ("0 8 * * 7", "sun", "8", "0"),
        ("30 6 * * 1-5", "mon,tue,wed,thu,fri", "6", "30"),
        ("0 8 * * sat-sun", "sat,sun", "8", "0"),
        ("0 8 * * 0-2", "mon,tue,sun", "8", "0"),
        ("0 8 * * */2", "tue,thu,sat,sun", "8", "0"),
        ("0 8 * * *", "*", "8", "0"),
    ],
)
def test_grammar(text: str, dow: str, hour: str, minute: str) -> None:
    rule = parse_schedule(text)
    assert (rule.day_of_week, rule.hour, rule.minute) == (dow, hour, minute)


def test_crontab_monday_fires_on_mondays() -> None:
    trigger = trigger_for("0 8 * * 1", "Europe/London")
    fires = fire_times(trigger, datetime(2026, 11, 20, tzinfo=UTC), 3)
    assert [f.strftime("%a %H:%M") for f in fires] == ["Mon 08:00"] * 3


def test_crontab_day_of_month() -> None:
    trigger = trigger_for("15 9 1 * *", "UTC")
    fires = fire_times(trigger, datetime(2026, 11, 20, tzinfo=UTC), 2)
    assert fires == [
        datetime(2026, 12, 1, 9, 15, tzinfo=UTC),
        datetime(2027, 1, 1, 9, 15, tzinfo=UTC),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mon 8am", "'mon 8am' is not a schedule; write e.g. 'mon 08:00'"),
        ("monday 08:00", "'monday' is not a day; use mon, tue"),
        ("mon 24:00", "24:00 is not a time of day"),
        ("", "the schedule is empty"),
        ("0 8 * *", "is not a schedule"),
        ("0 8 1 * 1", "restricts both the day of month and the day of week"),
        ("0 8 31 2 *", "never fires"),
        ("61 8 * * *", "is not a valid schedule"),
        ("0 8 * * 8", "'8' is not a day of the week (0-7 or sun-sat)"),
        ("0 8 * * 5-1", "the day range '5-1' runs backwards"),
    ],
)
def test_bad_rules_say_how_to_write_one(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_schedule(text)
    assert message in str(info.value)


def test_bad_schedule_in_digest_toml_names_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "digest.toml"
    path.write_text(
        '[newsletters.weekly]\ntitle = "W"\nlist = "weekly"\nsender = "news@example.org"\n'
        'schedule = "monday at 8"\n'
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(
        f"{path}: newsletters.weekly.schedule: 'monday at 8' is not a schedule; write e.g."
    )


def _fires(schedule: str, start: datetime, count: int) -> list[datetime]:
    return fire_times(trigger_for(schedule, "Europe/London"), start, count)


def test_london_monday_eight_across_march_change() -> None:
    # clocks go forward on Sunday 2026-03-29
    fires = _fires("mon 08:00", datetime(2026, 3, 20, tzinfo=UTC), 3)
    assert [f.astimezone(UTC) for f in fires] == [
        datetime(2026, 3, 23, 8, tzinfo=UTC),  # 08:00 GMT
        datetime(2026, 3, 30, 7, tzinfo=UTC),  # 08:00 BST
        datetime(2026, 4, 6, 7, tzinfo=UTC),
    ]
    assert {(f.hour, f.minute) for f in fires} == {(8, 0)}


def test_london_monday_eight_across_october_change() -> None:
    # clocks go back on Sunday 2026-10-25
    fires = _fires("mon 08:00", datetime(2026, 10, 15, tzinfo=UTC), 3)
    assert [f.astimezone(UTC) for f in fires] == [
        datetime(2026, 10, 19, 7, tzinfo=UTC),  # 08:00 BST
        datetime(2026, 10, 26, 8, tzinfo=UTC),  # 08:00 GMT
        datetime(2026, 11, 2, 8, tzinfo=UTC),
    ]


def test_repeated_hour_fires_once_when_clocks_go_back() -> None:
    # 01:30 happens twice on 2026-10-25 (BST, then GMT): one run, the first
    fires = _fires("daily 01:30", datetime(2026, 10, 24, 12, tzinfo=UTC), 2)
    assert [f.astimezone(UTC) for f in fires] == [
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        datetime(2026, 10, 26, 1, 30, tzinfo=UTC),
    ]


def test_missing_hour_fires_once_when_clocks_go_forward() -> None:
    # 01:30 does not exist on 2026-03-29: it runs once, just after the jump (02:30 BST)
    fires = _fires("daily 01:30", datetime(2026, 3, 28, 12, tzinfo=UTC), 2)
    assert [f.astimezone(UTC) for f in fires] == [
        datetime(2026, 3, 29, 1, 30, tzinfo=UTC),
        datetime(2026, 3, 30, 0, 30, tzinfo=UTC),
    ]


@settings(max_examples=60, deadline=None)
@given(
    days=st.sets(st.sampled_from(DAY_NAMES), min_size=1),
    hour=st.integers(0, 23).filter(lambda h: h != 1),  # 01:xx meets the DST gap and repeat
    minute=st.integers(0, 59),
    offset=st.integers(0, 365 * 24),
)
def test_friendly_rules_fire_on_their_days_at_their_local_time(
    days: set[str], hour: int, minute: int, offset: int
) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=offset)
    text = f"{','.join(sorted(days))} {hour:02d}:{minute:02d}"
    fires = _fires(text, start, 8)
    assert len(fires) == 8 and fires == sorted(set(fires)) and fires[0] > start
    for fire in fires:
        local = fire.astimezone(LONDON)
        assert DAY_NAMES[local.weekday()] in days
        assert (local.hour, local.minute) == (hour, minute)
    # nothing skipped: consecutive fires are at most a week apart
    assert all(b - a <= timedelta(days=7, hours=1) for a, b in pairwise(fires))


@pytest.mark.parametrize(
    ("rule", "zone", "after", "expected"),
    [
        # The Monday after the clocks go forward (London, Sunday 29 March 2026).
        (
            "mon 00:02",
            "Europe/London",
            datetime(2026, 3, 23, 1, tzinfo=UTC),
            ["2026-03-30T00:02:00+01:00", "2026-04-06T00:02:00+01:00"],
        ),
        # Weekdays at midnight across the US change (agronholm/apscheduler#529).
        (
            "0 0 * * 1-5",
            "US/Central",
            datetime(2021, 3, 12, 6, 1, tzinfo=UTC),
            ["2021-03-15T00:00:00-05:00", "2021-03-16T00:00:00-05:00"],
        ),
        # A time the clocks skip fires once, shifted by the gap.
        (
            "daily 01:30",
            "Europe/London",
            datetime(2026, 3, 28, 2, tzinfo=UTC),
            ["2026-03-29T02:30:00+01:00", "2026-03-30T01:30:00+01:00"],
        ),
    ],
)
def test_no_day_is_skipped_across_a_clock_change(
    rule: str, zone: str, after: datetime, expected: list[str]
) -> None:
    """APScheduler 3 steps days by adding 24 hours: across a clock change it skipped
    a day (found by the property test above for ``mon 00:02`` in London)."""
    fires = fire_times(trigger_for(rule, zone), after, len(expected))
    assert [f.isoformat() for f in fires] == expected

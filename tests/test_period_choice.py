"""Which period a command uses, and why (issue 13 §2): one library function decides.

`send` and `schedule run` send the edition due now (the period before now); what an
editor looks at — `preview`, the /preview page, `compose`, `collect`, `send-test` — is
the edition the next scheduled run will send: on a Sunday, this week's articles for
Monday's send.  Every command prints the period and the reason.  Tested at chosen
instants (time-machine).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from time_machine import TimeMachineFixture

from digest.cli import cli
from digest.config import NewsletterConfig
from digest.errors import DigestError
from tests.support.web import client_for
from tests.support.world import AS_OF, World, make_world

#: Sunday 22 November 2026, noon: the last day of 2026-W47; the next run is Monday 08:00.
SUNDAY = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
W47 = "2026-W47 (Mon 16 Nov – Sun 22 Nov)"
NEXT_SEND = f"{W47}: the week before Monday 23 November 08:00, the next scheduled send"


def newsletter(**keys: Any) -> NewsletterConfig:
    values = {"name": "weekly", "title": "The Weekly", "list": "weekly", "sender": "n@example.org"}
    values.update(keys)
    return NewsletterConfig.model_validate(values)


def _choose(**kw: Any) -> Any:
    from digest.editions import Purpose, choose_period

    purpose = Purpose.PREVIEW if kw.pop("preview", False) else Purpose.SEND
    nl = kw.pop("nl", None) or newsletter()
    return choose_period(nl, purpose=purpose, **kw)


@pytest.mark.parametrize(
    ("now", "preview", "key", "reason"),
    [
        # Sunday: the editor sees this week (Monday's send); a send now sends last week
        (
            SUNDAY,
            True,
            "2026-W47",
            "the week before Monday 23 November 08:00, the next scheduled send",
        ),
        (SUNDAY, False, "2026-W46", "the week before now (--as-of not given), the edition due now"),
        # Monday before the run: both are the edition due at 08:00
        (
            AS_OF - timedelta(hours=1),
            True,
            "2026-W47",
            "the week before Monday 23 November 08:00, the next scheduled send",
        ),
        (
            AS_OF - timedelta(hours=1),
            False,
            "2026-W47",
            "the week before now (--as-of not given), the edition due now",
        ),
        # Monday after the run: the editor moves on to next week's
        (
            AS_OF + timedelta(hours=1),
            True,
            "2026-W48",
            "the week before Monday 30 November 08:00, the next scheduled send",
        ),
        (
            AS_OF + timedelta(hours=1),
            False,
            "2026-W47",
            "the week before now (--as-of not given), the edition due now",
        ),
    ],
)
def test_the_default_period_for_previews_and_for_sends(
    now: datetime, preview: bool, key: str, reason: str
) -> None:
    choice = _choose(now=now, preview=preview)
    assert choice.period.key == key
    assert choice.reason == reason


def test_a_daily_newsletter_previews_tomorrows_send() -> None:
    nl = newsletter(schedule="daily 07:30", window="1d", timezone="Europe/Paris")
    evening = datetime(2026, 11, 24, 20, 0, tzinfo=UTC)  # Tuesday 21:00 in Paris
    looked_at = _choose(nl=nl, now=evening, preview=True)
    assert looked_at.period.key == "2026-11-24..2026-11-24"
    assert str(looked_at) == (
        "2026-11-24..2026-11-24 (Tue 24 Nov): the day before Wednesday 25 November 07:30, "
        "the next scheduled send"
    )
    due = _choose(nl=nl, now=evening)
    assert due.period.key == "2026-11-23..2026-11-23"


def test_an_as_of_or_a_period_is_used_as_given() -> None:
    given = _choose(now=SUNDAY, as_of=datetime(2026, 12, 7, 8, 0, tzinfo=UTC))
    assert str(given) == (
        "2026-W49 (Mon 30 Nov – Sun 6 Dec): the week before Monday 7 December 08:00, "
        "given with --as-of"
    )
    midnight = _choose(now=SUNDAY, as_of=datetime(2026, 12, 7, tzinfo=UTC), preview=True)
    assert midnight.reason == "the week before Monday 7 December, given with --as-of"
    named = _choose(now=SUNDAY, period="2026-W53")
    assert str(named) == "2026-W53 (Mon 28 Dec 2026 – Sun 3 Jan 2027): asked for with --period"
    assert named.period.start == datetime(2026, 12, 28, tzinfo=UTC)
    assert named.period.end == datetime(2027, 1, 4, tzinfo=UTC)
    nl = newsletter(window="7d")
    days = _choose(nl=nl, now=SUNDAY, period="2026-11-16..2026-11-22")
    assert days.period.key == "2026-11-16..2026-11-22"
    assert days.period.end == datetime(2026, 11, 23, tzinfo=UTC)


@pytest.mark.parametrize(
    ("window", "key", "message"),
    [
        ("week", "2026-W54", "2026 has no week 54"),
        ("week", "2026-11-16..2026-11-22", "weekly's periods are ISO weeks"),
        ("week", "W47", "weekly's periods are ISO weeks"),
        ("7d", "2026-W47", "weekly's periods are 7 days"),
        ("7d", "2026-11-16..2026-11-20", "spans 5 days"),
        ("7d", "2026-11-22..2026-11-16", "spans"),
    ],
)
def test_a_bad_period_key_says_what_one_looks_like(window: str, key: str, message: str) -> None:
    with pytest.raises(DigestError) as caught:
        _choose(nl=newsletter(window=window), now=SUNDAY, period=key)
    assert message in str(caught.value)
    assert caught.value.exit_code == 2


def _cli(db_url: str, tmp_path: Path, monkeypatch: Any) -> World:
    world = make_world(db_url, tmp_path, readers=2)
    for key, value in world.env.items():
        monkeypatch.setenv(key, value)
    return world


def _run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _flat(result: Result) -> str:
    return " ".join(result.output.split())


def test_on_a_sunday_the_editors_commands_show_mondays_edition(
    sqlite_url: str, tmp_path: Path, monkeypatch: Any, time_machine: TimeMachineFixture
) -> None:
    world = _cli(sqlite_url, tmp_path, monkeypatch)
    time_machine.move_to(SUNDAY, tick=False)

    composed = _run("compose", "weekly")
    assert composed.exit_code == 0, composed.output
    assert f"period: {NEXT_SEND}" in _flat(composed)
    assert (tmp_path / "out" / "weekly-2026-W47" / "all.html").exists()

    collected = _run("collect", "weekly")
    assert collected.exit_code == 0, collected.output
    assert f"period: {NEXT_SEND}" in _flat(collected) and "Policy story 1" in collected.output

    tested = _run("send-test", "weekly", "--to", "ed@example.org")
    assert tested.exit_code == 0, tested.output
    assert f"period: {NEXT_SEND}" in _flat(tested)
    (copy,) = world.outbox.rglob("*.eml")
    assert "weekly-2026-W47" in str(copy)

    # a send on Sunday sends the edition due now: last week's, which has no articles
    sent = _run("send", "weekly")
    assert sent.exit_code == 0, sent.output
    assert (
        "period: 2026-W46 (Mon 9 Nov – Sun 15 Nov): the week before now (--as-of not given), "
        "the edition due now"
    ) in _flat(sent)
    assert "no new articles" in sent.output


def test_the_preview_page_shows_the_next_scheduled_edition_and_why(
    sqlite_url: str, tmp_path: Path, time_machine: TimeMachineFixture
) -> None:
    world = make_world(sqlite_url, tmp_path)
    time_machine.move_to(SUNDAY, tick=False)
    with client_for(world, open_preview=True) as client:
        page = client.get("/preview", params={"newsletter": "weekly"})
        picked = client.get("/preview", params={"newsletter": "weekly", "as_of": "2026-11-30"})
    assert page.status_code == 200
    assert "2026-W47, 2026-11-16 to 2026-11-22" in page.text
    assert NEXT_SEND in page.text
    assert 'name="as_of" value="2026-11-23"' in page.text
    assert "as_of=2026-11-23" in page.text  # the frames and the test send use the same one
    assert picked.status_code == 200
    assert (
        "2026-W48 (Mon 23 Nov – Sun 29 Nov): the week before Monday 30 November, "
        "the send date picked"
    ) in picked.text

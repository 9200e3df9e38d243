"""What digest does with each kind of inbound mail, on both databases: matching by VERP,
by the returned copy, by the report's recipient; soft bounces counted over a window
(time-machine, no sleeps); complaints; delay warnings; edition statistics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from sqlalchemy import select

from digest.delivery.verp import verp_for
from digest.inbound.process import handle
from digest.models import Delivery, Edition, Event
from digest.stats import edition_stats
from subscribers import privacy
from subscribers.models import Status, Suppression, SuppressionReason
from subscribers.service import find_subscriber
from tests.support import web as support
from tests.support.inbound import BOUNCE_ADDRESS, SAMPLE_VERP, sample
from tests.support.world import World, make_world, send

sqlite_template = support.sqlite_template
fast_db_url = support.fast_db_url

SECRET = "test-secret-key-of-some-length"


def _world(db_url: str, root: Path, readers: int = 7, **env: str) -> World:
    values = {"DIGEST_BOUNCE_ADDRESS": BOUNCE_ADDRESS, **env}
    world = make_world(db_url, root, readers=readers, env=values)
    assert send(world.app).counts.sent == readers  # the outbox: deliveries in the ledger
    return world


def _delivery(world: World, address: str) -> Delivery:
    with world.app.transaction() as s:
        row = s.scalars(select(Delivery).where(Delivery.email == address)).one()
        s.expunge(row)
        return row


def _verp(world: World, address: str) -> str:
    return verp_for(BOUNCE_ADDRESS, SECRET).sender(_delivery(world, address).id)


def _status(world: World, address: str) -> Status:
    with world.app.transaction() as s:
        reader = find_subscriber(s, address)
        assert reader is not None
        return reader.status


def _suppression(world: World, address: str) -> Suppression | None:
    with world.app.transaction() as s:
        entry = s.scalars(select(Suppression).where(Suppression.email == address)).first()
        if entry is not None:
            s.expunge(entry)
        return entry


def _soft(world: World, address: str, n: int) -> bytes:
    """The soft-bounce sample for ``address`` as the ``n``-th distinct notice."""
    return sample(
        "postfix_soft_bounce.eml",
        {
            SAMPLE_VERP: _verp(world, address),
            "4Z9Rb41qKcz7tPm@mail": f"4Z9Rb41qKcz{n:04d}@mail",
        },
    )


def test_dsn_without_verp_falls_back_to_its_recipient(fast_db_url: str, tmp_path: Path) -> None:
    """Sendmail's DSN, sent to the newsletter's sender (VERP was not on): the reader is
    found by the DSN's recipient, the edition by the returned Message-ID."""
    world = _world(fast_db_url, tmp_path)
    delivery = _delivery(world, "reader6@example.net")
    mid = f"<weekly.{delivery.edition_id}.{delivery.subscriber_id}@example.org>"
    raw = sample("sendmail_dsn_without_verp.eml", {"<weekly.1.7@example.org>": mid})
    (done,) = handle(world.app, raw, ["news@example.org"], via="lmtp")
    assert done.action == "suppressed" and "matched by the report's recipient" in done.summary
    assert _status(world, "reader6@example.net") is Status.BOUNCED
    with world.app.transaction() as s:
        (event,) = s.scalars(select(Event)).all()
        assert (event.edition_id, event.delivery_id) == (delivery.edition_id, delivery.id)


def test_a_mangled_verp_token_falls_back_to_the_dsn(fast_db_url: str, tmp_path: Path) -> None:
    world = _world(fast_db_url, tmp_path)
    (done,) = handle(world.app, sample("postfix_hard_bounce.eml"), [SAMPLE_VERP], via="lmtp")
    assert done.action == "suppressed" and "matched by the report's recipient" in done.summary
    assert _status(world, "reader0@example.net") is Status.BOUNCED


def test_a_bounce_for_an_address_never_mailed_changes_nothing(
    fast_db_url: str, tmp_path: Path
) -> None:
    """A forged or stray notice naming a reader digest never sent to suppresses no one."""
    world = make_world(
        fast_db_url, tmp_path, readers=1, env={"DIGEST_BOUNCE_ADDRESS": BOUNCE_ADDRESS}
    )
    (done,) = handle(world.app, sample("postfix_hard_bounce.eml"), [BOUNCE_ADDRESS], via="lmtp")
    assert done.action == "ignored"
    assert _status(world, "reader0@example.net") is Status.ACTIVE
    assert _suppression(world, "reader0@example.net") is None


def test_verp_wins_over_the_address_the_report_names(fast_db_url: str, tmp_path: Path) -> None:
    """reader1's mail is forwarded somewhere that bounces: the notice names another
    address, but the signed envelope says whose message it was."""
    world = _world(fast_db_url, tmp_path)
    raw = sample("postfix_hard_bounce.eml", {SAMPLE_VERP: _verp(world, "reader1@example.net")})
    (done,) = handle(world.app, raw, [], via="imap")  # recipient from Delivered-To
    assert done.action == "suppressed" and "matched by VERP" in done.summary
    assert _status(world, "reader1@example.net") is Status.BOUNCED
    assert _status(world, "reader0@example.net") is Status.ACTIVE


def test_soft_bounces_suppress_at_the_limit_within_the_window(
    fast_db_url: str, tmp_path: Path
) -> None:
    world = _world(
        fast_db_url, tmp_path, DIGEST_SOFT_BOUNCE_LIMIT="3", DIGEST_SOFT_BOUNCE_DAYS="30"
    )
    start = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    actions = []
    for n, day in enumerate((0, 10, 20)):
        with time_machine.travel(start + timedelta(days=day), tick=False):
            (done,) = handle(world.app, _soft(world, "reader4@example.net", n), [], via="lmtp")
        actions.append(done.action)
        if n < 2:
            assert f"soft bounce {n + 1} of 3 in 30 days" in done.summary
    assert actions == ["recorded", "recorded", "suppressed"]
    assert _status(world, "reader4@example.net") is Status.BOUNCED
    entry = _suppression(world, "reader4@example.net")
    assert entry is not None and entry.reason is SuppressionReason.SOFT_BOUNCE
    assert entry.detail.startswith(
        "3 soft bounces in 30 days (limit 3); the last: soft bounce 4.2.2"
    )
    with world.app.transaction() as s:
        reader = find_subscriber(s, "reader4@example.net")
        assert reader is not None
        line = privacy.describe(s, reader)["consent_log"][-1]
        assert (line["source"], line["to"]) == ("inbound", "bounced")
        assert "Mailbox full" in line["detail"]


@pytest.mark.parametrize(
    "days",
    [
        (0, 20, 40, 60),  # as many, spread wider than the window
        (0, 1),  # fewer than the limit
    ],
)
def test_soft_bounces_spread_wider_or_fewer_do_not_suppress(
    fast_db_url: str, tmp_path: Path, days: tuple[int, ...]
) -> None:
    world = _world(
        fast_db_url, tmp_path, DIGEST_SOFT_BOUNCE_LIMIT="3", DIGEST_SOFT_BOUNCE_DAYS="30"
    )
    start = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    for n, day in enumerate(days):
        with time_machine.travel(start + timedelta(days=day), tick=False):
            (done,) = handle(world.app, _soft(world, "reader4@example.net", n), [], via="lmtp")
        assert done.action == "recorded"
    assert _status(world, "reader4@example.net") is Status.ACTIVE
    assert _suppression(world, "reader4@example.net") is None


def test_the_same_soft_bounce_twice_counts_once(fast_db_url: str, tmp_path: Path) -> None:
    world = _world(fast_db_url, tmp_path, DIGEST_SOFT_BOUNCE_LIMIT="2")
    raw = _soft(world, "reader4@example.net", 0)
    assert handle(world.app, raw, [], via="lmtp")[0].action == "recorded"
    assert handle(world.app, raw, [], via="imap")[0].action == "duplicate"
    assert _status(world, "reader4@example.net") is Status.ACTIVE


def test_a_delay_warning_is_only_recorded(fast_db_url: str, tmp_path: Path) -> None:
    world = _world(fast_db_url, tmp_path, DIGEST_SOFT_BOUNCE_LIMIT="1")
    raw = sample(
        "postfix_soft_bounce.eml",
        {
            SAMPLE_VERP: _verp(world, "reader4@example.net"),
            "Action: failed\nStatus: 4.2.2": "Action: delayed\nStatus: 4.2.2",
        },
    )
    (done,) = handle(world.app, raw, [], via="lmtp")
    assert done.action == "recorded" and "delivery delayed" in done.summary
    assert _status(world, "reader4@example.net") is Status.ACTIVE
    with world.app.transaction() as s:
        assert [e.type for e in s.scalars(select(Event))] == ["deferred"]


def test_arf_complaint_by_its_original_envelope_sender(fast_db_url: str, tmp_path: Path) -> None:
    """Yahoo's report goes to the plain bounce address with the reader's address redacted;
    ``Original-Mail-From`` still carries our VERP address."""
    world = _world(fast_db_url, tmp_path)
    raw = sample("arf_complaint_yahoo.eml", {SAMPLE_VERP: _verp(world, "reader5@example.net")})
    (done,) = handle(world.app, raw, [BOUNCE_ADDRESS], via="lmtp")
    assert done.action == "suppressed" and "matched by VERP of the returned copy" in done.summary
    assert _status(world, "reader5@example.net") is Status.COMPLAINED
    entry = _suppression(world, "reader5@example.net")
    assert entry is not None and entry.reason is SuppressionReason.SPAM_REPORT
    assert "spam complaint (feedback type abuse), edition weekly 2026-W47" in entry.detail


def test_arf_complaint_by_the_signed_unsubscribe_token(fast_db_url: str, tmp_path: Path) -> None:
    """Without VERP (no bounce address when it was sent) the copy's List-Unsubscribe
    token, signed by us, says whose message it was."""
    from tests.support.web import outbox_messages

    world = _world(fast_db_url, tmp_path, DIGEST_BOUNCE_ADDRESS="")
    (ours,) = [m for m in outbox_messages(world) if m["To"].endswith("<reader5@example.net>")]
    token = ours["List-Unsubscribe"].split("/u/", 1)[1].split(">", 1)[0]
    fake = "u6-weekly.aUbX4A.0000000000000000000000000000000000000000000"
    raw = sample("arf_complaint_yahoo.eml", {fake: token})
    (done,) = handle(world.app, raw, [BOUNCE_ADDRESS], via="lmtp")
    assert done.action == "suppressed" and "List-Unsubscribe token" in done.summary
    assert _status(world, "reader5@example.net") is Status.COMPLAINED


def test_smtp_bounces_and_complaints_count_in_the_edition_stats(
    fast_db_url: str, tmp_path: Path
) -> None:
    world = _world(fast_db_url, tmp_path)
    for name, address in [
        ("postfix_hard_bounce.eml", "reader0@example.net"),
        ("gmail_hard_bounce.eml", "reader2@example.net"),
        ("postfix_soft_bounce.eml", "reader4@example.net"),
        ("arf_complaint_yahoo.eml", "reader5@example.net"),
    ]:
        raw = sample(name, {SAMPLE_VERP: _verp(world, address)})
        (done,) = handle(world.app, raw, [], via="lmtp")
        assert done.ok, done
    with world.app.transaction() as s:
        (stats,) = edition_stats(s, s.scalars(select(Edition)).all())
    assert (stats.count("bounced"), stats.count("blocked"), stats.count("complained")) == (2, 1, 1)


def test_unsubscribe_mail_with_a_bad_token_changes_nothing(
    fast_db_url: str, tmp_path: Path
) -> None:
    world = _world(fast_db_url, tmp_path, readers=1)
    (done,) = handle(
        world.app, sample("mailto_unsubscribe.eml"), ["unsubscribe@example.org"], via="lmtp"
    )
    assert done.action == "ignored" and "damaged or was not issued by us" in done.summary
    assert _status(world, "reader0@example.net") is Status.ACTIVE

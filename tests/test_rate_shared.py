"""One rate per provider account, shared through the database (digest.delivery.throttle).

Two real processes take shares of one account's budget on SQLite and on PostgreSQL:
their shares never overlap, so together they never go faster than the rate.  The
checks are on the budget's own clock (the shares' start times), never on how long
anything took: a busy machine makes the processes slower, never the schedule denser.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from digest import db
from digest.config import Settings
from digest.delivery.base import AccountLimit, RecipientResult, RetryableError
from digest.delivery.loop import SendOptions
from digest.delivery.memory import MemoryBackend, MemoryMailbox
from digest.delivery.message import Post
from digest.delivery.sendgrid import SendGridBackend
from digest.delivery.smtp import SMTPBackend
from digest.delivery.throttle import HEADROOM, POST_SECONDS, SharedRate, post_size
from digest.models import RateBudget
from tests.support.world import bulk_readers, make_world, send

ROOT = Path(__file__).resolve().parent.parent

#: A process that takes SHARES shares of COUNT messages each, waiting for each one's turn
#: as a sender would, and prints them (start on the budget's clock, count) as JSON.
TAKER = """
import json, sys, time
from digest import db
from digest.delivery.base import AccountLimit, RecipientResult, RetryableError
from digest.delivery.loop import SendOptions
from digest.delivery.memory import MemoryBackend, MemoryMailbox
from digest.delivery.message import Post
from digest.delivery.throttle import SharedRate
url, key = sys.argv[1], sys.argv[2]
rate, shares, count = float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
engine = db.make_engine(url)
budget = SharedRate(db.session_factory(engine), AccountLimit(key, rate, "TEST_RATE"))
print("ready", flush=True)
sys.stdin.readline()  # both start together
taken = []
for _ in range(shares):
    share = budget.reserve(count)
    taken.append([share.begins, share.count])
    time.sleep(max(0.0, share.start - time.monotonic()))
print(json.dumps(taken), flush=True)
engine.dispose()
"""


def _takers(url: str, key: str, rate: float, shares: int, count: int, n: int = 2) -> list[list]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", TAKER, url, key, str(rate), str(shares), str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        for _ in range(n)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def _migrated(url: str) -> None:
    engine = db.make_engine(url)
    db.upgrade(engine)
    engine.dispose()


def test_two_processes_share_one_rate(db_url: str) -> None:
    _migrated(db_url)
    rate, count = 200.0, 10  # each share is 50 ms of the rate
    first, second = _takers(db_url, "smtp:relay.example.org:587", rate, 12, count)
    shares = sorted([*first, *second])
    assert len(shares) == 24
    # one schedule: each share starts when the one before it has run out, whoever took it
    for (start, n), (following, _) in itertools.pairwise(shares):
        assert following >= start + n / (rate * HEADROOM) - 1e-6
    # however the two processes' turns fell, both asked from the start and each got its 12
    assert len(first) == len(second) == 12
    engine = db.make_engine(db_url)
    with db.session_factory(engine)() as s:
        budget = s.scalars(select(RateBudget)).one()
        assert (budget.key, budget.rate, budget.taken) == ("smtp:relay.example.org:587", 200, 240)
    engine.dispose()


def test_each_account_has_its_own_budget_and_an_idle_one_saves_nothing(db_url: str) -> None:
    _migrated(db_url)
    engine = db.make_engine(db_url)
    sessions = db.session_factory(engine)
    one = SharedRate(sessions, AccountLimit("sendgrid:a", 10, "DIGEST_SENDGRID_RATE"))
    other = SharedRate(sessions, AccountLimit("sendgrid:b", 10, "DIGEST_SENDGRID_RATE"))
    first = one.reserve(50)  # five seconds of account a (a little more: the headroom)
    second = one.reserve(10)
    assert second.begins == pytest.approx(first.begins + 5 / HEADROOM, abs=1e-6)
    # account b's budget is untouched by a's: its share starts before a's second one
    elsewhere = other.reserve(10)
    assert elsewhere.begins < second.begins
    # a budget that ran idle banks nothing: a share starts no earlier than it is taken
    with sessions.begin() as s:
        s.get(RateBudget, "sendgrid:b").next_at = 0.0  # type: ignore[union-attr]
    later = other.reserve(10)
    assert later.begins >= elsewhere.begins
    engine.dispose()


def test_posts_are_at_most_a_quarter_second_of_the_shared_rate() -> None:
    limit = AccountLimit("sendgrid:x", 400, "DIGEST_SENDGRID_RATE")
    assert POST_SECONDS == 0.25
    assert post_size(limit, 1000) == 100
    assert post_size(None, 1000) == 1000  # no shared rate: the provider's most
    assert post_size(AccountLimit("smtp:x", 2, "DIGEST_SMTP_RATE"), 1) == 1
    assert post_size(AccountLimit("sendgrid:x", 10_000, "DIGEST_SENDGRID_RATE"), 1000) == 1000


def test_the_account_is_named_without_its_secret() -> None:
    settings = Settings(
        sendgrid_api_key="SG.secret-key",
        sendgrid_rate=400,
        smtp_url="smtp://mailer:hunter2@relay.example.org:2525",
        smtp_rate="50",
    )
    sendgrid = SendGridBackend.account_limit(settings)
    smtp = SMTPBackend.account_limit(settings)
    assert sendgrid is not None and smtp is not None
    assert sendgrid.key.startswith("sendgrid:api.sendgrid.com:") and "secret" not in sendgrid.key
    assert (sendgrid.rate, sendgrid.setting) == (400, "DIGEST_SENDGRID_RATE")
    assert smtp == AccountLimit("smtp:mailer@relay.example.org:2525", 50, "DIGEST_SMTP_RATE")
    assert SMTPBackend.account_limit(Settings(smtp_rate="")) is None  # empty: no shared limit


class _BusyOnce(MemoryBackend):
    """Answers the first post with a 429 (try again at once), then takes everything."""

    refused = 0

    def send(self, post: Post) -> list[RecipientResult]:
        if not _BusyOnce.refused:
            _BusyOnce.refused = len(post.recipients)
            raise RetryableError("429 too many requests", retry_after=0)
        return super().send(post)


def test_a_send_keeps_to_the_account_rate_and_a_retry_counts_again(
    db_url: str, tmp_path: Path
) -> None:
    world = make_world(db_url, tmp_path)
    bulk_readers(world.app, 30)
    box = MemoryMailbox()
    account = AccountLimit("sendgrid:test", 1000, "DIGEST_SENDGRID_RATE")
    _BusyOnce.refused = 0
    report = send(
        world.app,
        backend_factory=lambda: _BusyOnce(box, 1000),
        options=SendOptions(account=account),
        batch_size=10,
    )
    assert report.sent_now == 30 and len(box.sent) == 30
    assert _BusyOnce.refused == 10  # a post of 10: a quarter second at 1,000/s is 250
    with world.app.sessions() as s:
        budget = s.get(RateBudget, "sendgrid:test")
        assert budget is not None
        assert budget.taken == 30 + 10  # every reader once, and the refused post again

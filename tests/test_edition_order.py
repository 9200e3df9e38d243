"""A newsletter's editions go out in period order (issue 13 §2), on both databases.

The reproduction: during week N (2026-W48, 23–29 November), week N's edition is sent
early (`digest send weekly --as-of 2026-11-30`); then, still during week N, `digest
schedule run weekly` would send the week before now, 2026-W47, to every reader after
the newer one.  It is refused, naming both periods, and nothing is written; only
`--period 2026-W47 --force` sends it.  Resuming an edition already going out is never
refused; an edition queued for workers that had not started when a newer one went out
is paused rather than sent after it.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result
from sqlalchemy import func, select
from time_machine import TimeMachineFixture

from digest.app import App
from digest.cli import cli
from digest.delivery.memory import MemoryBackend, MemoryMailbox
from digest.delivery.message import Post
from digest.models import (
    Delivery,
    Edition,
    EditionAudience,
    EditionStatus,
    RunOutcome,
    SchedulerRun,
)
from digest.scheduling.service import DigestScheduler
from digest.sender import Sender, SendOutcome
from digest.worker import run_worker
from tests.support.world import AS_OF, FEED, World, make_world, send
from tests.test_send import FAST

#: Friday of 2026-W48 (23–29 November), 10:00 GMT (= UTC in November).
FRIDAY_W48 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
#: The Monday after 2026-W48: sending "as of" it sends 2026-W48.
MONDAY_AFTER_W48 = AS_OF + timedelta(days=7)
REFUSED = (
    "weekly: 2026-W47 (16–22 Nov) is older than 2026-W48 (23–29 Nov), which went out on "
    "Fri 27 Nov 10:00; digest sends a newsletter's editions in order. To send 2026-W47 "
    "anyway: digest send weekly --period 2026-W47 --force"
)


def add_week_48(app: App) -> None:
    """Two articles published during 2026-W48."""
    from digest.models import Article, Source

    with app.transaction() as s:
        feed = s.scalars(select(Source).where(Source.url == FEED)).one()
        for i in range(2):
            s.add(
                Article(
                    canonical_url=f"https://news.example.org/w48/{i}",
                    title=f"Week 48 story {i}",
                    summary_text="What happened in week 48.",
                    summary_html="",
                    author="Ann Writer",
                    categories=["Policy"],
                    published_at=datetime(2026, 11, 24 + i, 9, 0, tzinfo=UTC),
                    content_hash=f"w48-{i}",
                    source=feed,
                    sources=[feed],
                )
            )


def _cli_world(db_url: str, tmp_path: Path, monkeypatch: Any, readers: int = 3) -> World:
    world = make_world(db_url, tmp_path, readers=readers)
    add_week_48(world.app)
    for key, value in world.env.items():
        monkeypatch.setenv(key, value)
    return world


def _run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _flat(result: Result) -> str:
    return " ".join(result.output.split())


def editions(app: App) -> list[tuple[str, str]]:
    with app.sessions() as s:
        rows = s.execute(select(Edition.period, Edition.status).order_by(Edition.id)).all()
    return [(period, str(status)) for period, status in rows]


def deliveries(app: App) -> int:
    with app.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(Delivery)) or 0)


def test_week_n_sent_early_then_schedule_run_does_not_send_week_n_minus_1(
    db_url: str, tmp_path: Path, monkeypatch: Any, time_machine: TimeMachineFixture
) -> None:
    world = _cli_world(db_url, tmp_path, monkeypatch)
    time_machine.move_to(FRIDAY_W48, tick=False)
    early = _run("send", "weekly", "--as-of", "2026-11-30")
    assert early.exit_code == 0, early.output
    assert len(list(world.outbox.rglob("*.eml"))) == 3

    # still during week 48: the scheduled job's period is the week before now, 2026-W47
    late = _run("schedule", "run", "weekly")
    assert len(list(world.outbox.rglob("*.eml"))) == 3, late.output  # nobody got the older one
    assert editions(world.app) == [("2026-W48", "sent")]  # no 2026-W47 row was written
    assert late.exit_code == 1, late.output
    assert "period: 2026-W48 (Mon 23 Nov – Sun 29 Nov): the week before Monday 30 November" in (
        _flat(early)
    )
    text = _flat(late)
    assert (
        "period: 2026-W47 (Mon 16 Nov – Sun 22 Nov): the week before now (--as-of not given), "
        "the edition due now"
    ) in text
    assert f"skipped: {REFUSED}" in text
    assert deliveries(world.app) == 3
    with world.app.sessions() as s:
        run = s.scalars(select(SchedulerRun)).one()
    assert run.outcome == RunOutcome.SKIPPED and run.detail == REFUSED

    # `digest send` refuses it the same way, and so does a dry run
    for args in (["send", "weekly", "--as-of", "2026-11-23"], ["send", "weekly", "--dry-run"]):
        refused = _run(*args)
        assert refused.exit_code == 1, refused.output
        assert REFUSED in _flat(refused)
    assert editions(world.app) == [("2026-W48", "sent")] and deliveries(world.app) == 3

    # asked for by name and confirmed, it goes out
    forced = _run("send", "weekly", "--period", "2026-W47", "--force")
    assert forced.exit_code == 0, forced.output
    assert "period: 2026-W47 (Mon 16 Nov – Sun 22 Nov): asked for with --period" in _flat(forced)
    assert len(list(world.outbox.rglob("*.eml"))) == 6
    assert sorted(editions(world.app)) == [("2026-W47", "sent"), ("2026-W48", "sent")]


def test_force_needs_the_period_and_the_period_is_not_an_as_of(
    sqlite_url: str, tmp_path: Path, monkeypatch: Any
) -> None:
    world = _cli_world(sqlite_url, tmp_path, monkeypatch)
    for args, message in (
        (["--force"], "--force needs --period"),
        (["--as-of", "2026-11-30", "--force"], "--force needs --period"),
        (["--period", "2026-W47", "--as-of", "2026-11-23"], "give --period or --as-of, not both"),
        (["--period", "2026-W61"], "2026-W61"),
        (["--period", "last week"], "weekly's periods are ISO weeks, written like"),
    ):
        result = CliRunner().invoke(cli, ["send", "weekly", *args])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output
    assert editions(world.app) == [] and not world.outbox.exists()


def test_the_library_refuses_and_writes_nothing(db_url: str, tmp_path: Path) -> None:
    world = make_world(db_url, tmp_path, readers=3)
    add_week_48(world.app)
    box = MemoryMailbox()
    newer = send(world.app, as_of=MONDAY_AFTER_W48, backend_factory=lambda: MemoryBackend(box))
    assert newer.outcome is SendOutcome.SENT and newer.period == "2026-W48"

    older = send(world.app, as_of=AS_OF, backend_factory=lambda: MemoryBackend(box))
    assert older.outcome is SendOutcome.OUT_OF_ORDER and older.edition_id is None
    assert older.period == "2026-W47"
    assert older.refusal is not None and older.refusal.startswith(
        "weekly: 2026-W47 (16–22 Nov) is older than 2026-W48 (23–29 Nov), which went out on "
    )
    assert older.refusal.endswith(
        "To send 2026-W47 anyway: digest send weekly --period 2026-W47 --force"
    )
    assert len(box.sent) == 3 and deliveries(world.app) == 3
    with world.app.sessions() as s:
        assert s.scalar(select(func.count()).select_from(EditionAudience)) == 1
    assert editions(world.app) == [("2026-W48", "sent")]
    assert older.to_dict()["outcome"] == "out_of_order"

    forced = Sender(world.app, backend_factory=lambda: MemoryBackend(box)).send(
        "weekly", period="2026-W47", force=True
    )
    assert forced.outcome is SendOutcome.SENT and forced.period == "2026-W47"
    assert len(box.sent) == 6


def test_resuming_an_edition_already_going_out_is_never_refused(
    db_url: str, tmp_path: Path
) -> None:
    world = make_world(db_url, tmp_path, readers=3)
    add_week_48(world.app)
    box = MemoryMailbox()
    stop = threading.Event()

    def first_then_stop(post: Post) -> list[Any]:
        stop.set()  # SIGTERM after the first post
        return MemoryBackend(box).deliver(post)

    box.script.append(first_then_stop)
    halted = send(
        world.app,
        as_of=AS_OF,
        backend_factory=lambda: MemoryBackend(box, 1),
        batch_size=1,
        cancel=stop,
        options=FAST,
    )
    assert halted.outcome is SendOutcome.STOPPED and len(box.sent) == 1

    newer = send(world.app, as_of=MONDAY_AFTER_W48, backend_factory=lambda: MemoryBackend(box))
    assert newer.outcome is SendOutcome.SENT and len(box.sent) == 4

    # 2026-W47 had started going out: it is resumed, not refused
    resumed = send(world.app, as_of=AS_OF, backend_factory=lambda: MemoryBackend(box), options=FAST)
    assert resumed.outcome is SendOutcome.SENT and resumed.sent_now == 2
    assert len(box.sent) == 6


def test_the_scheduler_records_an_out_of_order_run_as_skipped(
    db_url: str, tmp_path: Path, time_machine: TimeMachineFixture
) -> None:
    world = make_world(db_url, tmp_path, readers=2)
    add_week_48(world.app)
    box = MemoryMailbox()
    sunday = AS_OF - timedelta(hours=20)
    time_machine.move_to(sunday)
    scheduler = DigestScheduler(
        world.app, backend_factory=lambda: MemoryBackend(box), grace=3600, workers=1
    )
    scheduler.start()
    try:
        scheduler.tick()
        # an editor sends next week's edition early, before Monday's run
        early = send(world.app, as_of=MONDAY_AFTER_W48, backend_factory=lambda: MemoryBackend(box))
        assert early.outcome is SendOutcome.SENT and len(box.sent) == 2

        time_machine.move_to(AS_OF + timedelta(seconds=5))
        scheduler.tick()  # the run due now: 2026-W47, older than what went out
        time_machine.move_to(AS_OF + timedelta(minutes=30))
        scheduler.tick()  # not retried
    finally:
        scheduler.shutdown()
    assert len(box.sent) == 2
    with world.app.sessions() as s:
        run = s.scalars(select(SchedulerRun)).one()
    assert run.outcome == RunOutcome.SKIPPED
    assert run.detail.startswith(
        "weekly: 2026-W47 (16–22 Nov) is older than 2026-W48 (23–29 Nov), which went out on "
        "Sun 22 Nov 12:"
    )
    assert editions(world.app) == [("2026-W48", "sent")]


def test_a_queued_edition_overtaken_by_a_newer_one_is_paused_not_sent_after_it(
    db_url: str, tmp_path: Path
) -> None:
    world = make_world(db_url, tmp_path, readers=2)
    add_week_48(world.app)
    box = MemoryMailbox()
    queued = send(world.app, as_of=AS_OF, enqueue=True)  # for `digest worker`, which is not running
    assert queued.outcome is SendOutcome.ENQUEUED

    newer = send(world.app, as_of=MONDAY_AFTER_W48, backend_factory=lambda: MemoryBackend(box))
    assert newer.outcome is SendOutcome.SENT and len(box.sent) == 2
    assert newer.superseded == ["2026-W47"]
    assert dict(editions(world.app)) == {"2026-W47": "paused", "2026-W48": "sent"}

    # a worker started now does not send the older edition after the newer one
    stats = run_worker(world.app, backend_factory=lambda: MemoryBackend(box), once=True)
    assert stats.sent == 0 and len(box.sent) == 2
    # nor does resuming it without --force
    again = send(world.app, as_of=AS_OF, backend_factory=lambda: MemoryBackend(box))
    assert again.outcome is SendOutcome.OUT_OF_ORDER and len(box.sent) == 2

    forced = Sender(world.app, backend_factory=lambda: MemoryBackend(box)).send(
        "weekly", period="2026-W47", force=True
    )
    assert forced.outcome is SendOutcome.SENT and len(box.sent) == 4
    with world.app.sessions() as s:
        assert s.get(Edition, queued.edition_id).status == EditionStatus.SENT  # type: ignore[union-attr]


def test_schedule_run_dry_run_says_what_would_be_sent_and_writes_nothing(
    db_url: str, tmp_path: Path, monkeypatch: Any, time_machine: TimeMachineFixture
) -> None:
    world = _cli_world(db_url, tmp_path, monkeypatch, readers=2)
    time_machine.move_to(AS_OF + timedelta(days=1), tick=False)  # Tuesday of 2026-W48
    result = _run("schedule", "run", "weekly", "--dry-run")
    assert result.exit_code == 0, result.output
    text = _flat(result)
    assert "dry run: nothing written or sent" in text
    assert (
        "period: 2026-W47 (Mon 16 Nov – Sun 22 Nov): the week before now (--as-of not given), "
        "the edition due now"
    ) in text
    assert "recipients 2" in text and "would send 2" in text
    assert editions(world.app) == [] and deliveries(world.app) == 0
    with world.app.sessions() as s:
        assert s.scalar(select(func.count()).select_from(SchedulerRun)) == 0
    assert not world.outbox.exists()

    # after a newer edition went out, the dry run says the run would be refused
    assert _run("send", "weekly", "--as-of", "2026-11-30").exit_code == 0
    refused = _run("schedule", "run", "weekly", "--dry-run")
    assert refused.exit_code == 1, refused.output
    assert "2026-W47 (16–22 Nov) is older than 2026-W48 (23–29 Nov)" in _flat(refused)
    with world.app.sessions() as s:
        assert s.scalar(select(func.count()).select_from(SchedulerRun)) == 0

"""digest.scheduling: the scheduler driven through weeks by a controllable clock.

The clock: time-machine moves ``datetime.now`` for the whole process (APScheduler's
``_process_jobs``, the run's grace check, the ledger's leases and due batches), and
``DigestScheduler.tick()`` runs what is due at that instant and waits for it.  Nothing
sleeps: each test jumps from one instant to the next.  Messages land in an in-memory
mailbox, so every copy is counted; both databases.
"""

from __future__ import annotations

import json
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from time_machine import TimeMachineFixture

from digest.app import App
from digest.delivery.memory import MemoryBackend, MemoryMailbox
from digest.delivery.message import Post
from digest.models import (
    Delivery,
    DeliveryBatch,
    DeliveryStatus,
    Edition,
    EditionStatus,
    RunOutcome,
    SchedulerRun,
)
from digest.scheduling import runs
from digest.scheduling.service import JOB_TABLE, DigestScheduler, edition_job_id
from tests.support.world import AS_OF, CATEGORIES, CONFIG, FEED, OPEN_APPS, World, make_world

GRACE = 3600
#: The Sunday before AS_OF (Monday 2026-11-23 08:00 UTC = 08:00 GMT, a fire time).
SUNDAY = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
DEAD_OWNER = f"{socket.gethostname()}:{2**22 + 4242}"  # a pid that runs nothing


def configure(world: World, **keys: Any) -> None:
    """Rewrite the world's digest.toml with extra [newsletters.weekly] keys (and reload it);
    ``sources`` are added to the world's own feed."""
    base = CONFIG
    if "sources" in keys:
        keys["sources"] = [FEED, *keys["sources"]]
        base = CONFIG.replace(f"sources = {json.dumps([FEED])}\n", "")
    extra = "".join(f"{key} = {json.dumps(value)}\n" for key, value in keys.items())
    cats = "".join(f'[[newsletters.weekly.categories]]\nname = "{c}"\n' for c in CATEGORIES)
    (world.root / "digest.toml").write_text(base.format(categories=extra + cats))
    world.app.__dict__.pop("config", None)


def second_app(world: World) -> App:
    """Another process's view of the same world: its own engine and settings."""
    app = App(**{k.removeprefix("DIGEST_").lower(): v for k, v in world.env.items()})
    OPEN_APPS.append(app)
    return app


def scheduler_pool() -> Iterator[Callable[..., DigestScheduler]]:
    """Start schedulers (memory backend, 1 h grace); all are shut down afterwards."""
    started: list[DigestScheduler] = []

    def start(app: App, box: MemoryMailbox, max_recipients: int = 1000) -> DigestScheduler:
        scheduler = DigestScheduler(
            app,
            backend_factory=lambda: MemoryBackend(box, max_recipients),
            grace=GRACE,
            workers=2,
        )
        scheduler.start()
        started.append(scheduler)
        return scheduler

    yield start
    for scheduler in started:
        if scheduler.running:
            scheduler.shutdown()


schedulers = pytest.fixture(scheduler_pool, name="schedulers")


def run_rows(app: App) -> list[tuple[datetime, str]]:
    with app.sessions() as s:
        rows = s.execute(
            select(SchedulerRun.scheduled_for, SchedulerRun.outcome).order_by(
                SchedulerRun.scheduled_for, SchedulerRun.id
            )
        ).all()
    return [(r[0], r[1]) for r in rows]


def next_run(scheduler: DigestScheduler) -> datetime:
    job = scheduler.get_job(edition_job_id("weekly"))
    assert job is not None
    return job.next_run_time.astimezone(UTC)  # type: ignore[no-any-return]


def addresses(box: MemoryMailbox) -> Counter[str]:
    return Counter(m["to"] for m in box.sent)


def test_a_normal_week(
    db_url: str, tmp_path: Path, time_machine: TimeMachineFixture, schedulers: Any
) -> None:
    world = make_world(db_url, tmp_path, readers=12)
    feed = tmp_path / "feed.xml"
    feed.write_text(
        '<?xml version="1.0"?><rss version="2.0"><channel><title>News</title>'
        "<link>https://news.example.org/</link><description>News</description><item>"
        "<title>Fresh policy paper published</title><link>https://news.example.org/fresh</link>"
        "<guid>https://news.example.org/fresh</guid><category>Policy</category>"
        "<pubDate>Fri, 20 Nov 2026 10:00:00 +0000</pubDate><description>Out now.</description>"
        "</item></channel></rss>"
    )
    configure(world, schedule="mon 08:00", sources=[str(feed)])
    box = MemoryMailbox()
    time_machine.move_to(SUNDAY)
    scheduler = schedulers(world.app, box)
    scheduler.tick()
    assert next_run(scheduler) == AS_OF and box.sent == []

    time_machine.move_to(AS_OF + timedelta(seconds=5))
    scheduler.tick()
    # ingested on the day: the new article is in every copy
    assert addresses(box) == Counter({f"reader{i}@example.net": 1 for i in range(12)})
    assert all("Fresh policy paper published" in m["text"] for m in box.sent)
    assert run_rows(world.app) == [(AS_OF, RunOutcome.SENT)]
    assert next_run(scheduler) == AS_OF + timedelta(days=7)

    time_machine.move_to(AS_OF + timedelta(minutes=30))
    scheduler.tick()
    assert len(box.sent) == 12

    # the next Monday: week 48 has no articles, so it is skipped (and logged)
    time_machine.move_to(AS_OF + timedelta(days=7, seconds=5))
    scheduler.tick()
    assert len(box.sent) == 12
    assert run_rows(world.app) == [
        (AS_OF, RunOutcome.SENT),
        (AS_OF + timedelta(days=7), RunOutcome.SKIPPED),
    ]
    with world.app.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Edition)) == 1
        detail = s.scalars(select(SchedulerRun.detail).order_by(SchedulerRun.id)).all()
    assert detail[0].startswith("edition 1 (2026-W47): 12 sent now")
    assert detail[1] == "no new articles for 2026-W48; nothing to send"


def test_a_run_missed_beyond_grace_is_recorded_not_sent(
    db_url: str, tmp_path: Path, time_machine: TimeMachineFixture, schedulers: Any
) -> None:
    world = make_world(db_url, tmp_path, readers=5)
    box = MemoryMailbox()
    time_machine.move_to(SUNDAY)
    schedulers(world.app, box).shutdown()  # registered, then the machine was off

    time_machine.move_to(AS_OF + timedelta(hours=2, minutes=30))
    scheduler = schedulers(world.app, box)
    scheduler.tick()
    assert box.sent == []
    assert run_rows(world.app) == [(AS_OF, RunOutcome.MISSED)]
    with world.app.sessions() as s:
        detail = s.scalar(select(SchedulerRun.detail))
        assert s.scalar(select(func.count()).select_from(Edition)) == 0
    assert detail is not None and "missed by 2h 30m" in detail
    assert "digest schedule run weekly --as-of 2026-11-23T08:00:00+00:00" in detail
    assert next_run(scheduler) == AS_OF + timedelta(days=7)

    # a person sends it late on purpose: the same slot, now sent
    result = runs.run_edition(
        runs.RunContext(world.app, backend_factory=lambda: MemoryBackend(box)),
        "weekly",
        AS_OF,
        manual=True,
    )
    assert result.outcome == RunOutcome.SENT and len(box.sent) == 5
    assert run_rows(world.app) == [(AS_OF, RunOutcome.SENT)]


def test_a_run_late_within_grace_is_sent_once(
    db_url: str, tmp_path: Path, time_machine: TimeMachineFixture, schedulers: Any
) -> None:
    world = make_world(db_url, tmp_path, readers=5)
    box = MemoryMailbox()
    time_machine.move_to(SUNDAY)
    schedulers(world.app, box).shutdown()

    time_machine.move_to(AS_OF + timedelta(minutes=40))
    scheduler = schedulers(world.app, box)
    scheduler.tick()
    time_machine.move_to(AS_OF + timedelta(minutes=50))
    scheduler.tick()
    assert addresses(box) == Counter({f"reader{i}@example.net": 1 for i in range(5)})
    assert run_rows(world.app) == [(AS_OF, RunOutcome.SENT)]


def test_weeks_without_a_scheduler_are_each_recorded_missed(
    db_url: str, tmp_path: Path, time_machine: TimeMachineFixture, schedulers: Any
) -> None:
    world = make_world(db_url, tmp_path, readers=2)
    box = MemoryMailbox()
    time_machine.move_to(SUNDAY - timedelta(days=14))
    schedulers(world.app, box).shutdown()

    time_machine.move_to(AS_OF + timedelta(days=1))  # Tuesday, three Mondays later
    schedulers(world.app, box).tick()
    mondays = [AS_OF - timedelta(days=14), AS_OF - timedelta(days=7), AS_OF]
    assert run_rows(world.app) == [(m, RunOutcome.MISSED) for m in mondays]
    assert box.sent == []


def _stop_after_first_post(scheduler: DigestScheduler, box: MemoryMailbox) -> None:
    def first(post: Post) -> list[Any]:
        results = MemoryBackend(box).deliver(post)
        scheduler.stop_event.set()  # SIGTERM arrives while this post is in hand
        return results

    box.script.append(first)


def test_restart_mid_send_resumes_without_duplicates(
    db_url: str, tmp_path: Path, time_machine: TimeMachineFixture, schedulers: Any
) -> None:
    world = make_world(db_url, tmp_path, readers=30)
    box = MemoryMailbox()
    time_machine.move_to(SUNDAY)
    first = schedulers(world.app, box, max_recipients=5)
    time_machine.move_to(AS_OF + timedelta(seconds=5))
    _stop_after_first_post(first, box)
    first.tick()
    first.shutdown()
    assert len(box.sent) == 5  # the post in hand finished, nothing after it
    assert run_rows(world.app) == [(AS_OF, RunOutcome.STOPPED)]

    time_machine.move_to(AS_OF + timedelta(minutes=10))
    second = schedulers(world.app, box, max_recipients=5)
    second.tick()
    assert addresses(box) == Counter({f"reader{i}@example.net": 1 for i in range(30)})
    assert run_rows(world.app) == [(AS_OF, RunOutcome.SENT)]
    with world.app.sessions() as s:
        assert s.scalar(select(Edition.status)) == EditionStatus.SENT


class Killed(BaseException):
    """The process dies: nothing of ours catches this."""


def test_scheduler_killed_mid_post_resumes_rest_and_reports_uncertain(
    db_url: str, tmp_path: Path, time_machine: TimeMachineFixture, schedulers: Any
) -> None:
    world = make_world(db_url, tmp_path, readers=20)
    box = MemoryMailbox()
    time_machine.move_to(SUNDAY)
    first = schedulers(world.app, box, max_recipients=5)

    def killed_mid_post(post: Post) -> list[Any]:
        MemoryBackend(box).deliver(post)  # the provider took it, then the process died
        raise Killed

    box.script.extend([lambda post: MemoryBackend(box).deliver(post), killed_mid_post])
    time_machine.move_to(AS_OF + timedelta(seconds=5))
    first.tick()
    first.shutdown()
    assert len(box.sent) == 10
    # what a dead process leaves: its claims name a process that no longer runs
    with world.app.transaction() as s:
        s.execute(update(SchedulerRun).values(owner=DEAD_OWNER))
        s.execute(update(DeliveryBatch).values(claimed_by=DEAD_OWNER))
    assert run_rows(world.app) == [(AS_OF, RunOutcome.RUNNING)]

    time_machine.move_to(AS_OF + timedelta(minutes=10))
    second = schedulers(world.app, box, max_recipients=5)
    second.tick()
    sent = addresses(box)
    assert len(sent) == 20 and set(sent.values()) == {1}  # nobody twice
    with world.app.sessions() as s:
        statuses = Counter(s.scalars(select(Delivery.status)).all())
    # the post in flight at the kill is reported, not resent
    assert statuses == {DeliveryStatus.SENT: 15, DeliveryStatus.UNCERTAIN: 5}
    assert run_rows(world.app) == [(AS_OF, RunOutcome.SENT)]


def test_two_schedulers_at_once_send_one_edition_once(
    db_url: str, tmp_path: Path, time_machine: TimeMachineFixture, schedulers: Any
) -> None:
    world = make_world(db_url, tmp_path, readers=40)
    box = MemoryMailbox()
    time_machine.move_to(SUNDAY)
    one = schedulers(world.app, box, max_recipients=3)
    two = schedulers(second_app(world), box, max_recipients=3)

    time_machine.move_to(AS_OF + timedelta(seconds=5))
    threads = [threading.Thread(target=s.tick) for s in (one, two)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert addresses(box) == Counter({f"reader{i}@example.net": 1 for i in range(40)})
    assert run_rows(world.app) == [(AS_OF, RunOutcome.SENT)]
    with world.app.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Edition)) == 1
        jobs = s.execute(select(func.count()).select_from(_jobs_table())).scalar()
    assert jobs == 2  # digest:weekly and the waves sweep, once each


def _jobs_table() -> Any:
    from sqlalchemy import column, table

    return table(JOB_TABLE, column("id"))


@pytest.mark.parametrize(
    ("start", "fires"),
    [
        # clocks go forward on Sunday 2026-03-29: 08:00 GMT, then 08:00 BST
        (
            datetime(2026, 3, 21, tzinfo=UTC),
            [datetime(2026, 3, 23, 8, tzinfo=UTC), datetime(2026, 3, 30, 7, tzinfo=UTC)],
        ),
        # clocks go back on Sunday 2026-10-25: 08:00 BST, then 08:00 GMT
        (
            datetime(2026, 10, 17, tzinfo=UTC),
            [datetime(2026, 10, 19, 7, tzinfo=UTC), datetime(2026, 10, 26, 8, tzinfo=UTC)],
        ),
    ],
    ids=["march", "october"],
)
def test_dst_weeks_fire_once_at_eight_local(
    db_url: str,
    tmp_path: Path,
    time_machine: TimeMachineFixture,
    schedulers: Any,
    start: datetime,
    fires: list[datetime],
) -> None:
    world = make_world(db_url, tmp_path, readers=1)
    configure(world, schedule="mon 08:00")  # the world is in Europe/London
    box = MemoryMailbox()
    time_machine.move_to(start)
    scheduler = schedulers(world.app, box)
    # look every half hour of both Mondays, and an hour either side
    for fire in fires:
        for step in range(-2, 4):
            time_machine.move_to(fire + timedelta(minutes=30 * step, seconds=5))
            scheduler.tick()
    assert [slot for slot, _ in run_rows(world.app)] == fires  # (each at 08:00 London time)


def test_removed_newsletters_lose_their_jobs_and_changed_rules_move(
    db_url: str, tmp_path: Path, time_machine: TimeMachineFixture, schedulers: Any
) -> None:
    world = make_world(db_url, tmp_path)
    daily = (
        '\n[newsletters.daily]\ntitle = "Daily"\nlist = "weekly"\n'
        'sender = "news@example.org"\nschedule = "daily 07:30"\n'
    )
    configure(world)
    path = world.root / "digest.toml"
    path.write_text(path.read_text() + daily)
    world.app.__dict__.pop("config", None)
    box = MemoryMailbox()
    time_machine.move_to(SUNDAY)
    first = schedulers(world.app, box)
    assert first.get_job(edition_job_id("daily")) is not None
    first.shutdown()

    configure(world, schedule="tue 09:30")  # daily gone, weekly moved
    second = schedulers(world.app, box)
    assert second.get_job(edition_job_id("daily")) is None
    assert next_run(second) == datetime(2026, 11, 24, 9, 30, tzinfo=UTC)


def test_schedule_overview_lists_next_runs_and_last_outcome(
    db_url: str, tmp_path: Path, time_machine: TimeMachineFixture
) -> None:
    from digest.scheduling.service import overview

    world = make_world(db_url, tmp_path)
    configure(world, schedule="mon,thu 08:00")
    runs.record_missed(world.app, "weekly", AS_OF, "missed by a lot")
    time_machine.move_to(AS_OF + timedelta(hours=1))
    [row] = overview(world.app)
    assert row["schedule"] == "mon,thu 08:00" and row["timezone"] == "Europe/London"
    assert [t["utc"] for t in row["next"]] == [
        "2026-11-26T08:00:00+00:00",
        "2026-11-30T08:00:00+00:00",
        "2026-12-03T08:00:00+00:00",
    ]
    assert row["last_run"]["outcome"] == RunOutcome.MISSED


def test_a_run_due_while_the_last_is_still_sending_is_recorded_missed(
    db_url: str, tmp_path: Path, time_machine: TimeMachineFixture, schedulers: Any
) -> None:
    """APScheduler refuses a second instance of the newsletter's job; the run that fell
    due is recorded as missed (the job is known by its arguments, not its id)."""
    world = make_world(db_url, tmp_path, readers=2)
    box = MemoryMailbox()
    in_post, release = threading.Event(), threading.Event()

    def slow(post: Post) -> list[Any]:
        in_post.set()
        release.wait(120)
        return MemoryBackend(box).deliver(post)

    box.script.append(slow)
    time_machine.move_to(SUNDAY)
    scheduler = schedulers(world.app, box)
    time_machine.move_to(AS_OF + timedelta(seconds=5))
    first = threading.Thread(target=scheduler.tick)
    first.start()
    try:
        assert in_post.wait(120), "the first run never posted"
        time_machine.move_to(AS_OF + timedelta(days=7, seconds=5))
        scheduler._process_due_jobs()  # the next Monday falls due mid-send
    finally:
        release.set()
        first.join(120)
    scheduler.tick()
    assert run_rows(world.app) == [
        (AS_OF, RunOutcome.SENT),
        (AS_OF + timedelta(days=7), RunOutcome.MISSED),
    ]
    with world.app.sessions() as s:
        detail = s.scalars(select(SchedulerRun.detail).order_by(SchedulerRun.id)).all()[-1]
    assert detail.startswith("skipped: the previous run was still in progress; not sent late")
    assert len(box.sent) == 2


def test_a_run_in_progress_names_its_owner_and_is_not_taken_twice(
    db_url: str, tmp_path: Path
) -> None:
    from digest.delivery import ledger
    from digest.errors import ScheduleError

    world = make_world(db_url, tmp_path, readers=1)
    owner = ledger.owner_id()  # this process: alive
    run_id = runs.claim_run(world.app, "weekly", AS_OF, owner)
    assert run_id is not None
    with world.app.sessions() as s:
        run = s.get(SchedulerRun, run_id)
        assert run is not None
        assert (run.outcome, run.owner) == (RunOutcome.RUNNING, owner)
    assert runs.claim_run(world.app, "weekly", AS_OF, "another:1:x") is None
    box = MemoryMailbox()
    ctx = runs.RunContext(world.app, backend_factory=lambda: MemoryBackend(box))
    with pytest.raises(ScheduleError, match=f"is in progress \\(running on {owner}\\)"):
        runs.run_edition(ctx, "weekly", AS_OF, manual=True)
    assert not box.sent


def test_every_send_outcome_is_recorded_as_a_run_outcome() -> None:
    from digest.config import NewsletterConfig
    from digest.delivery.registry import BackendChoice
    from digest.sender import SendOutcome, SendResult

    nl = NewsletterConfig(name="weekly", title="W", list="weekly", sender="news@example.org")
    expected = {
        SendOutcome.SENT: RunOutcome.SENT,
        SendOutcome.ENQUEUED: RunOutcome.SENT,
        SendOutcome.PAUSED: RunOutcome.PAUSED,
        SendOutcome.STOPPED: RunOutcome.STOPPED,
        SendOutcome.NO_ARTICLES: RunOutcome.SKIPPED,
        SendOutcome.OUT_OF_ORDER: RunOutcome.SKIPPED,
        SendOutcome.NO_READERS: RunOutcome.SKIPPED,
        SendOutcome.ALL_SKIPPED: RunOutcome.SKIPPED,
        SendOutcome.ALREADY_DELIVERED: RunOutcome.SKIPPED,
        SendOutcome.DRY_RUN: RunOutcome.SKIPPED,
        SendOutcome.HELD: RunOutcome.HELD,
    }
    assert dict(runs.RUN_OUTCOMES) == expected
    for outcome in SendOutcome:
        report = SendResult("weekly", "2026-W47", outcome, BackendChoice("outbox", "test"), 1)
        recorded, detail = runs.describe(nl, report)
        assert recorded is expected[outcome] and detail

"""The scheduler and ``approval = "required"`` (issue 16 §1), driven by a fixed clock.

The draft is prepared ``prepare_before`` (18 h) ahead of Monday's 08:00 run and the
editors get a test copy headed by its desk link; at 08:00 an unapproved draft is held
(the run is recorded ``held``, nobody is mailed); approved afterwards, it goes out at
the next sweep and the held run says so.  Approved before its time, the run sends it.
Both databases; messages land in the outbox.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from time_machine import TimeMachineFixture

from digest import desk
from digest.app import App
from digest.models import Edition, EditionStatus, RunOutcome, SchedulerRun
from digest.scheduling.service import DigestScheduler
from tests.support.world import AS_OF, OPEN_APPS, World, make_world
from tests.test_schedule import configure

#: 20 hours before AS_OF (Monday 2026-11-23 08:00 UTC): before the draft is due.
SUNDAY_NOON = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
#: Just after 18 hours before AS_OF: the draft is due.
SUNDAY_AFTERNOON = datetime(2026, 11, 22, 14, 6, tzinfo=UTC)


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> World:
    world = make_world(db_url, tmp_path, readers=3)
    configure(world, schedule="mon 08:00", approval="required", prepare_before="18h")
    return world


@pytest.fixture
def app(world: World) -> App:
    app = App(
        **{k.removeprefix("DIGEST_").lower(): v for k, v in world.env.items()},
        editors="ed@example.org, chief@example.org",
    )
    OPEN_APPS.append(app)
    return app


@pytest.fixture
def scheduler(app: App) -> Iterator[DigestScheduler]:
    made = DigestScheduler(app, backend="outbox", grace=3600, workers=1)
    yield made
    if made.running:
        made.shutdown()


def mail(world: World) -> list[email.message.EmailMessage]:
    out = []
    for path in sorted(world.outbox.rglob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(msg, email.message.EmailMessage)
        out.append(msg)
    return out


def runs_of(app: App) -> list[tuple[RunOutcome, str]]:
    with app.sessions() as s:
        rows = s.execute(
            select(SchedulerRun.outcome, SchedulerRun.detail).order_by(SchedulerRun.id)
        )
        return [(RunOutcome(r[0]), r[1]) for r in rows]


def status(app: App) -> EditionStatus:
    with app.sessions() as s:
        return s.scalars(select(Edition.status)).one()


def test_an_unapproved_draft_is_held_then_sent_once_approved(
    world: World, app: App, scheduler: DigestScheduler, time_machine: TimeMachineFixture
) -> None:
    time_machine.move_to(SUNDAY_NOON, tick=False)
    scheduler.start()
    scheduler.tick()
    assert mail(world) == []  # 20 h ahead: too early for the draft
    with app.sessions() as s:
        assert s.scalars(select(Edition)).all() == []

    time_machine.move_to(SUNDAY_AFTERNOON, tick=False)
    scheduler.tick()
    assert status(app) == EditionStatus.DRAFT
    told = mail(world)
    assert sorted(str(m["To"]) for m in told) == ["chief@example.org", "ed@example.org"]
    for msg in told:
        text = msg.get_body(("plain",))
        assert text is not None
        body = " ".join(str(text.get_content()).split())
        assert "This draft waits for your approval" in body
        assert "https://news.example.org/admin/editions/1" in body
    view = desk.view(app, 1)
    assert [(e.actor, e.action) for e in view.log] == [
        ("scheduler", "prepare"),
        ("scheduler", "test"),
    ]

    # Monday 08:00: not approved, so held; nobody on the list is mailed
    time_machine.move_to(AS_OF + timedelta(seconds=5), tick=False)
    scheduler.tick()
    assert len(mail(world)) == 2
    ((outcome, detail),) = runs_of(app)
    assert outcome is RunOutcome.HELD
    assert "edition 1 is a draft waiting for an editor's approval" in detail
    assert desk.view(app, 1).held is not None

    # approved late: it goes out at once (the next sweep), and the held run says so
    approval = desk.approve(app, 1, actor="ann@example.org")
    assert approval.due
    time_machine.move_to(AS_OF + timedelta(minutes=10), tick=False)
    scheduler.tick()
    readers = [str(m["To"]) for m in mail(world) if "reader" in str(m["To"])]
    assert sorted(readers) == [f"Reader {i} <reader{i}@example.net>" for i in range(3)]
    assert status(app) == EditionStatus.SENT
    ((outcome, detail),) = runs_of(app)
    assert outcome is RunOutcome.SENT
    assert detail.startswith("held for approval; sent after ann@example.org approved it: sent: 3")

    # and only once
    time_machine.move_to(AS_OF + timedelta(minutes=20), tick=False)
    scheduler.tick()
    assert len([m for m in mail(world) if "reader" in str(m["To"])]) == 3


def test_an_approved_draft_goes_out_at_the_scheduled_run(
    world: World, app: App, scheduler: DigestScheduler, time_machine: TimeMachineFixture
) -> None:
    time_machine.move_to(SUNDAY_AFTERNOON, tick=False)
    scheduler.start()
    scheduler.tick()
    assert status(app) == EditionStatus.DRAFT
    desk.note(app, 1, "A word from the editor.", actor="ann")
    desk.approve(app, 1, actor="ann")
    assert status(app) == EditionStatus.APPROVED

    time_machine.move_to(AS_OF + timedelta(seconds=5), tick=False)
    scheduler.tick()
    readers = [m for m in mail(world) if "reader" in str(m["To"])]
    assert len(readers) == 3
    for msg in readers:
        text = msg.get_body(("plain",))
        assert text is not None and "A word from the editor." in str(text.get_content())
    ((outcome, detail),) = runs_of(app)
    assert outcome is RunOutcome.SENT, detail
    assert status(app) == EditionStatus.SENT


def test_with_late_approval_next_an_approval_after_the_hold_waits_for_the_next_run(
    world: World, app: App, scheduler: DigestScheduler, time_machine: TimeMachineFixture
) -> None:
    configure(
        world,
        schedule="mon 08:00",
        approval="required",
        prepare_before="18h",
        late_approval="next",
    )
    app.__dict__.pop("config", None)
    time_machine.move_to(SUNDAY_AFTERNOON, tick=False)
    scheduler.start()
    scheduler.tick()
    time_machine.move_to(AS_OF + timedelta(seconds=5), tick=False)
    scheduler.tick()
    assert [o for o, _ in runs_of(app)] == [RunOutcome.HELD]

    approval = desk.approve(app, 1, actor="ann")
    assert not approval.due
    time_machine.move_to(AS_OF + timedelta(hours=1), tick=False)
    scheduler.tick()  # the sweep leaves it for the next run
    assert status(app) == EditionStatus.APPROVED
    assert not [m for m in mail(world) if "reader" in str(m["To"])]

    time_machine.move_to(AS_OF + timedelta(days=7, seconds=5), tick=False)
    scheduler.tick()
    assert len([m for m in mail(world) if "reader" in str(m["To"])]) == 3
    assert status(app) == EditionStatus.SENT
    held, nothing = runs_of(app)
    assert held[0] is RunOutcome.SENT and "sent after ann approved it" in held[1]
    assert nothing == (RunOutcome.SKIPPED, "no new articles for 2026-W48; nothing to send")


def test_an_edition_approved_for_a_later_time_waits_for_it_past_the_run(
    world: World, app: App, scheduler: DigestScheduler, time_machine: TimeMachineFixture
) -> None:
    """Approved "to go out at 10:00", the edition is not sent by the 08:00 run (it used
    to be: the run turned any approved edition into a send), and the sweep sends it at
    10:00, once."""
    time_machine.move_to(SUNDAY_AFTERNOON, tick=False)
    scheduler.start()
    scheduler.tick()
    later = AS_OF + timedelta(hours=2)
    desk.approve(app, 1, actor="ann", send_at=later)

    time_machine.move_to(AS_OF + timedelta(seconds=5), tick=False)
    scheduler.tick()
    assert not [m for m in mail(world) if "reader" in str(m["To"])]
    assert status(app) == EditionStatus.APPROVED
    ((outcome, detail),) = runs_of(app)
    assert outcome is RunOutcome.SKIPPED and "approved to go out at" in detail, detail

    time_machine.move_to(later + timedelta(minutes=6), tick=False)
    scheduler.tick()
    assert len([m for m in mail(world) if "reader" in str(m["To"])]) == 3
    assert status(app) == EditionStatus.SENT

"""The public Python API (issue 12 §1): one ``Digest`` whose methods do what the CLI,
the web app and the scheduler do, returning typed data, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import io
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest import (
    SAMPLE_DIR,
    Digest,
    EditionDetail,
    ListInfo,
    Person,
    RuleCount,
    SendOutcome,
    SubscriberRow,
    make_digest,
)
from digest.errors import DigestError
from digest.models import RunOutcome, SchedulerRun
from subscribers.errors import NotFound
from subscribers.segments import create_segment
from tests.support.world import AS_OF, World, add_readers, make_world


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> World:
    return make_world(db_url, tmp_path)


@pytest.fixture
def d(world: World) -> Digest:
    return Digest(world.app)


def test_compose_send_resume_and_editions(d: Digest, world: World) -> None:
    add_readers(world.app, 3)
    add_readers(world.app, 1, start=3, categories=["Data"])
    composed = d.compose("weekly", AS_OF)
    assert composed.choice.period.key == "2026-W47"
    assert next(iter(composed.variants)) == "all" and len(composed.variants) == 2
    assert sum(composed.readers.values()) == 4
    written = d.write_previews(composed, world.root / "out")
    assert {w.html_path.name for w in written} == {f"{k}.html" for k in composed.variants}

    stop = threading.Event()
    stop.set()  # stopped before the first message: the edition is planned, not sent
    first = d.send("weekly", AS_OF, backend="outbox", cancel=stop)
    assert first.outcome is SendOutcome.STOPPED and first.counts.sent == 0
    again = d.resume("weekly/2026-W47", backend="outbox")
    assert again.outcome is SendOutcome.SENT and again.counts.sent == 4

    [stats] = d.editions("weekly")
    assert (stats.period, stats.sent) == ("2026-W47", 4)
    detail = d.edition(stats.id)
    assert isinstance(detail, EditionDetail)
    assert detail.counts["sent"] == 4 and detail.uncertain == []
    assert detail.to_dict()["created_at"] == detail.created_at.isoformat()
    assert d.edition_stats("weekly/2026-W47").id == stats.id
    with pytest.raises(DigestError):
        d.edition("weekly/2031-W01")


def test_lists_subscribers_segments(d: Digest, world: World) -> None:
    add_readers(world.app, 2)
    [weekly] = d.lists()
    assert isinstance(weekly, ListInfo)
    assert (weekly.name, weekly.counts["active"], weekly.recipients) == ("weekly", 2, 2)
    assert weekly.newsletters == ["weekly"] and weekly.total == 2
    made = d.create_list("monthly", description="Once a month", double_opt_in=True)
    assert made.double_opt_in and made.total == 0 and made.newsletters == []

    report = d.import_subscribers(
        io.BytesIO(b"email,name,sector\nada@example.org,Ada,health\n"), "weekly"
    )
    assert report.counts()["imported"] == 1
    page = d.subscribers("weekly", query="ada")
    assert page.total == 1
    assert page.rows[0] == SubscriberRow(
        id=page.rows[0].id,
        email="ada@example.org",
        name="Ada",
        status="active",
        categories=[],
        attributes={"sector": "health"},
        joined_at=page.rows[0].joined_at,
        created_at=page.rows[0].created_at,
    )
    assert d.subscribers(limit=None).total == 3  # everyone, on no list in particular

    person = d.describe("ada@example.org")
    assert isinstance(person, Person) and person.status == "active"
    assert person.suppression is None and person.to_dict()["suppressed"] is None

    with world.app.transaction() as s:
        create_segment(s, "weekly", "health", {"attr": "sector", "equals": "health"})
    [segment] = d.segments("weekly")
    assert (segment.name, segment.recipients, segment.members) == ("health", 1, 1)
    assert d.count_rule("weekly", {"attr": "sector", "equals": "none"}) == RuleCount(0, 0)

    out = io.StringIO()
    assert d.export_subscribers("weekly", out, segment="health") == 1
    assert "ada@example.org" in out.getvalue()

    personal = d.export_personal("ada@example.org")
    assert personal["subscriber"]["email"] == "ada@example.org"
    erased = d.forget("ada@example.org")
    assert erased.subscriber_id == person.id and erased.memberships == 1
    with pytest.raises(NotFound):
        d.describe("ada@example.org")


def test_schedule_shows_next_times_and_the_last_run(d: Digest, world: World) -> None:
    due = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    with world.app.transaction() as s:
        s.add(
            SchedulerRun(
                newsletter="weekly", scheduled_for=due, outcome=RunOutcome.SENT, detail="ok"
            )
        )
    [row] = d.schedule(count=2, now=datetime(2026, 11, 24, tzinfo=UTC))
    assert row.newsletter == "weekly" and len(row.next) == 2
    assert row.next[0] > datetime(2026, 11, 24, tzinfo=UTC)
    assert row.last_run is not None and row.last_run.outcome == "sent"
    assert row.to_dict()["last_run"]["scheduled_for"] == due.isoformat()


def test_ingest_the_bundled_sample(tmp_path: Path) -> None:
    with make_digest(database_url=f"sqlite:///{tmp_path / 'd.db'}") as d:
        report = d.ingest()
        assert report.ok and report.totals["new"] > 0
        again = d.ingest()
        assert again.totals["new"] == 0
        assert d.collect("weekly", datetime(2026, 11, 23, 8, tzinfo=UTC)).total > 0
        assert [n.name for n in d.newsletters()] == ["weekly"]
    assert SAMPLE_DIR.joinpath("subscribers.csv").is_file()


def test_results_are_dataclasses_not_dicts() -> None:
    """Every public method says what it returns, and none returns a bare dict (the one
    exception is the personal-data export, a JSON document by definition)."""
    import inspect

    for name in dir(Digest):
        method = getattr(Digest, name)
        if name.startswith("_") or not callable(method) or name in {"export_personal"}:
            continue
        returns = inspect.signature(method).return_annotation
        assert returns is not inspect.Signature.empty, name
        assert not str(returns).startswith(("dict", "Any")), name
    assert dataclasses.is_dataclass(EditionDetail)


def readme_example() -> str:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Using digest from Python", 1)[1].split("\n## ", 1)[0]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_example_runs(tmp_path: Path) -> None:
    """The README's "Using digest from Python" example, as a reader would run it (in a
    folder with no digest.toml: the bundled sample)."""
    import os
    import subprocess
    import sys

    script = tmp_path / "example.py"
    script.write_text(readme_example(), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "12 sent; edition 1" in lines
    assert lines[-1] == "12 messages in the outbox"
    assert "sent {'pending': 0, 'sending': 0, 'sent': 12, 'failed': 0, 'skipped': 0, " in (
        "\n".join(lines)
    )


def test_one_not_found_to_catch(d: Digest) -> None:
    """digest's NotFound (an edition) and the subscribers package's (a list) are caught
    by one ``except subscribers.errors.NotFound``, and digest's is a DigestError."""
    from digest.errors import NotFound as DigestNotFound

    for missing in (lambda: d.edition("weekly/2031-W01"), lambda: d.mailing_list("nope")):
        with pytest.raises(NotFound):
            missing()
    assert issubclass(DigestNotFound, DigestError) and issubclass(DigestNotFound, NotFound)


def test_plan_then_send_test_copies(d: Digest, world: World) -> None:
    add_readers(world.app, 2)
    plan = d.plan("weekly", AS_OF)
    assert (plan.period, plan.created, plan.planned) == ("2026-W47", True, 2)
    assert d.plan("weekly", AS_OF).planned == 0  # planned once
    copies = d.send_test("weekly", ["editor@example.org"], AS_OF, backend="outbox")
    assert not copies.emailed and len(copies.lines()) == 1
    assert d.edition("weekly/2026-W47").counts["sent"] == 0  # the ledger is not touched
    assert d.newsletters_of("weekly") == ["weekly"]

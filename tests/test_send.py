"""digest.sender: editions created once, planned once, delivered once, on both databases."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import pytest
from sqlalchemy import func, select

from digest.delivery.base import PermanentError, RecipientResult, RetryableError
from digest.delivery.ledger import DeliveryCounts
from digest.delivery.loop import SendOptions
from digest.delivery.memory import MemoryBackend, MemoryMailbox
from digest.delivery.message import Post
from digest.models import Delivery, DeliveryStatus, Edition, EditionStatus, Variant
from digest.personalize import unfilled
from digest.plan import NO_SECTIONS
from digest.sender import SendOutcome
from subscribers.models import Subscriber, SuppressionReason
from subscribers.service import unsubscribe
from subscribers.suppression import suppress
from tests.support.world import AS_OF, add_readers, make_world, send

FAST = SendOptions(backoff_base=0.0, backoff_cap=0.0, pause_after=3)


def _send(world, mailbox=None, **kw):  # type: ignore[no-untyped-def]
    box = mailbox or MemoryMailbox()
    kw.setdefault("options", FAST)
    report = send(world.app, backend_factory=lambda: MemoryBackend(box), **kw)
    return report, box


def test_outbox_writes_one_rfc5322_message_per_reader(db_url: str, tmp_path: Path) -> None:
    world = make_world(db_url, tmp_path, readers=3)
    report = send(world.app, backend="outbox")
    assert report.created and report.counts.sent == 3 and report.recipients == 3
    files = sorted(world.outbox.rglob("*.eml"))
    assert len(files) == 3
    for path in files:
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert msg.get_content_type() == "multipart/alternative"
        parts = [p.get_content_type() for p in msg.iter_parts()]
        assert parts == ["text/plain", "text/html"]
        assert msg["From"] == "The Weekly <news@example.org>"
        assert msg["Reply-To"] == "editors@example.org"
        assert msg["Subject"].startswith("The Weekly")
        assert msg["Date"] and msg["Message-ID"].endswith("@example.org>")
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert msg["List-Id"] == '"The Weekly" <weekly.example.org>'
        unsub = msg["List-Unsubscribe"]
        assert unsub.startswith("<https://news.example.org/u/")
        assert "<mailto:unsubscribe@example.org?subject=unsubscribe%20" in unsub
        raw = path.read_text()
        assert "~~digest" not in raw
        text = msg.get_body(("plain",)).get_content()
        token_url = unsub.split(">")[0][1:]
        assert token_url in text  # the visible unsubscribe link is the reader's own


def test_running_again_sends_nothing_new(db_url: str, tmp_path: Path) -> None:
    world = make_world(db_url, tmp_path, readers=4)
    first, box = _send(world)
    assert first.sent_now == 4 and len(box.sent) == 4
    again, box2 = _send(world)
    assert again.outcome is SendOutcome.ALREADY_DELIVERED and again.sent_now == 0 and not box2.sent
    assert again.edition_id == first.edition_id
    with world.app.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Edition)) == 1
        assert s.scalar(select(Edition.status)) == EditionStatus.SENT


def test_no_articles_means_no_edition(db_url: str, tmp_path: Path) -> None:
    world = make_world(db_url, tmp_path, readers=2, articles_per_category=0)
    report, box = _send(world)
    assert report.outcome is SendOutcome.NO_ARTICLES and not box.sent
    assert _send(world, dry_run=True)[0].outcome is SendOutcome.NO_ARTICLES
    with world.app.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Edition)) == 0


def test_each_reader_gets_only_their_sections(db_url: str, tmp_path: Path) -> None:
    world = make_world(db_url, tmp_path)
    add_readers(world.app, 2, categories=["Data"], prefix="data")
    add_readers(world.app, 1, categories=["Data", "Care"], prefix="two")
    add_readers(world.app, 1, prefix="all")
    report, box = _send(world)
    assert report.counts.sent == 4
    by_to = {m["to"]: m for m in box.sent}
    data_only = by_to["data0@example.net"]["text"]
    assert "Data story 0" in data_only and "Policy story" not in data_only
    assert "Care story" not in data_only
    two = by_to["two0@example.net"]["text"]
    assert "Data story" in two and "Care story" in two and "Policy story" not in two
    everything = by_to["all0@example.net"]["text"]
    assert all(f"{c} story 0" in everything for c in ("Policy", "Data", "Care"))
    with world.app.transaction() as s:
        # three distinct section sets → three variants, each rendered once
        assert s.scalar(select(func.count()).select_from(Variant)) == 3


def test_skipped_when_chosen_category_is_empty(db_url: str, tmp_path: Path) -> None:
    world = make_world(db_url, tmp_path, categories=("Policy", "Data"))
    # A reader who chose a category that exists in config but has no articles this week.
    toml = world.root / "digest.toml"
    toml.write_text(toml.read_text() + '[[newsletters.weekly.categories]]\nname = "Care"\n')
    world.app.__dict__.pop("config", None)
    add_readers(world.app, 1, categories=["Care"], prefix="care")
    add_readers(world.app, 1, prefix="all")
    report, box = _send(world)
    assert [m["to"] for m in box.sent] == ["all0@example.net"]
    assert report.counts.skipped == 1
    assert report.skipped_reasons == {NO_SECTIONS: 1}


def test_suppressed_and_unsubscribed_readers_are_not_planned(db_url: str, tmp_path: Path) -> None:
    world = make_world(db_url, tmp_path, readers=3)
    with world.app.transaction() as s:
        suppress(s, "reader0@example.net", SuppressionReason.HARD_BOUNCE, "550 no such user")
        sub_id = s.scalar(select(Delivery.id).limit(1))  # none yet
        assert sub_id is None
    with world.app.transaction() as s:
        from subscribers.service import get_subscriber

        unsubscribe(s, get_subscriber(s, "reader1@example.net").id, "weekly")
    report, box = _send(world)
    assert [m["to"] for m in box.sent] == ["reader2@example.net"]
    assert report.recipients == 1


def test_unsubscribed_mid_send_gets_nothing_more(db_url: str, tmp_path: Path) -> None:
    world = make_world(db_url, tmp_path, readers=4)
    box = MemoryMailbox()

    def first_post_then_unsubscribe_last(post: Post) -> list[RecipientResult]:
        with world.app.transaction() as s:
            from subscribers.service import get_subscriber

            unsubscribe(s, get_subscriber(s, "reader3@example.net").id)
        return MemoryBackend(box).deliver(post)

    box.script.append(first_post_then_unsubscribe_last)
    report = send(
        world.app,
        backend_factory=lambda: MemoryBackend(box, max_recipients=2),
        batch_size=2,
        options=FAST,
    )
    assert sorted(m["to"] for m in box.sent) == [
        "reader0@example.net",
        "reader1@example.net",
        "reader2@example.net",
    ]
    assert report.counts.sent == 3 and report.counts.skipped == 1


def test_permanent_error_records_provider_message(db_url: str, tmp_path: Path) -> None:
    world = make_world(db_url, tmp_path, readers=2)
    box = MemoryMailbox()
    box.script.append(PermanentError("SendGrid answered 400: bad things (field: from)"))
    report, _ = _send(world, box)
    assert report.counts.failed == 2 and report.counts.sent == 0
    with world.app.transaction() as s:
        reasons = set(s.scalars(select(Delivery.reason)))
    assert reasons == {"SendGrid answered 400: bad things (field: from)"}


def test_retryable_errors_are_retried_then_succeed(db_url: str, tmp_path: Path) -> None:
    world = make_world(db_url, tmp_path, readers=2)
    box = MemoryMailbox()
    box.script.extend([RetryableError("429", retry_after=0), RetryableError("503")])
    report, _ = _send(world, box)
    assert report.counts.sent == 2 and box.posts == 3 and len(box.sent) == 2


def test_pauses_after_consecutive_failures_and_resumes(db_url: str, tmp_path: Path) -> None:
    """An outage never fails readers: the edition pauses, and resuming sends everyone once."""
    world = make_world(db_url, tmp_path, readers=6)
    box = MemoryMailbox()
    box.script.extend(RetryableError("503 down") for _ in range(100))
    options = SendOptions(backoff_base=0, backoff_cap=0, max_attempts=2, pause_after=2)
    report = send(
        world.app,
        backend_factory=lambda: MemoryBackend(box, 2),
        batch_size=2,
        options=options,
    )
    assert report.outcome is SendOutcome.PAUSED and "503 down" in (report.pause_reason or "")
    assert report.counts.sent == 0 and report.counts.pending == 6
    assert report.counts.failed == 0
    with world.app.transaction() as s:
        assert s.scalar(select(Edition.status)) == EditionStatus.PAUSED
    box.script.clear()
    resumed = send(
        world.app,
        backend_factory=lambda: MemoryBackend(box, 2),
        batch_size=2,
        options=options,
    )
    assert (
        resumed.outcome is not SendOutcome.PAUSED
        and resumed.counts.sent == 6
        and len(box.sent) == 6
    )
    assert len({m["to"] for m in box.sent}) == 6


def test_no_placeholder_reaches_a_reader(db_url: str, tmp_path: Path) -> None:
    world = make_world(db_url, tmp_path, readers=2)
    _, box = _send(world)
    for msg in box.sent:
        for part in ("subject", "text", "html", "list_unsubscribe"):
            assert not unfilled(msg[part]), (part, unfilled(msg[part]))


def test_dry_run_writes_nothing(db_url: str, tmp_path: Path) -> None:
    world = make_world(db_url, tmp_path, readers=3)
    report, box = _send(world, dry_run=True)
    assert report.outcome is SendOutcome.DRY_RUN and report.counts == DeliveryCounts(pending=3)
    assert not box.sent
    with world.app.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Edition)) == 0
        assert s.scalar(select(func.count()).select_from(Delivery)) == 0


def test_segment_then_rest_of_list(db_url: str, tmp_path: Path) -> None:
    from subscribers.segments import create_segment

    world = make_world(db_url, tmp_path)
    with world.app.transaction() as s:
        from subscribers.service import add_subscriber

        add_subscriber(s, "nhs@example.net", "weekly", attributes={"sector": "health"})
        add_subscriber(s, "council@example.net", "weekly", attributes={"sector": "local"})
        create_segment(s, "weekly", "health", {"attr": "sector", "equals": "health"})
    first, box = _send(world, segment="health")
    assert [m["to"] for m in box.sent] == ["nhs@example.net"]
    rest, box2 = _send(world)
    assert [m["to"] for m in box2.sent] == ["council@example.net"]
    assert rest.edition_id == first.edition_id


def test_uncertain_deliveries_only_resent_on_request(db_url: str, tmp_path: Path) -> None:
    world = make_world(db_url, tmp_path, readers=3)
    report, _box = _send(world)
    with world.app.transaction() as s:
        d = s.scalars(select(Delivery).order_by(Delivery.id)).first()
        assert d is not None
        d.status = DeliveryStatus.UNCERTAIN
        edition = s.get(Edition, report.edition_id)
        assert edition is not None
        edition.status = EditionStatus.SENDING
    again, box2 = _send(world)
    assert not box2.sent and again.counts.uncertain == 1
    resent, box3 = _send(world, resend_uncertain=True)
    assert [m["to"] for m in box3.sent] == ["reader0@example.net"]
    assert resent.counts.uncertain == 0 and resent.counts.sent == 3


@pytest.mark.parametrize("concurrency", [1, 3])
def test_concurrent_threads_send_each_reader_once(
    db_url: str, tmp_path: Path, concurrency: int
) -> None:
    world = make_world(db_url, tmp_path, readers=40)
    box = MemoryMailbox()
    report = send(
        world.app,
        backend_factory=lambda: MemoryBackend(box, 3),
        batch_size=5,
        options=SendOptions(concurrency=concurrency),
    )
    addresses = [m["to"] for m in box.sent]
    assert len(addresses) == 40 and len(set(addresses)) == 40
    assert report.counts.sent == 40


def test_send_test_copies_are_marked_and_outside_the_ledger(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from digest.cli import cli

    world = make_world(db_url, tmp_path, readers=2)
    for key, value in world.env.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()
    out = runner.invoke(
        cli,
        [
            "send-test",
            "weekly",
            "--to",
            "ed@example.org, chief@example.org",
            "--as-of",
            "2026-11-23",
        ],
    )
    assert out.exit_code == 0, out.output
    # the outbox writes files: the output says so, and why the outbox was used
    assert out.output.count("Test copy written for") == 2 and "Test copy sent" not in out.output
    assert out.output.startswith("backend: outbox (the default: DIGEST_BACKEND is unset")
    assert "Not emailed: the outbox keeps each message as a file." in out.output
    files = sorted(world.outbox.rglob("*.eml"))
    assert len(files) == 2
    msg = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert msg["Subject"].startswith("[TEST] ") and msg["To"] in {
        "ed@example.org",
        "chief@example.org",
    }
    with world.app.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Delivery)) == 0
    bad = runner.invoke(cli, ["send-test", "weekly", "--to", "not-an-address"])
    assert bad.exit_code == 1 and bad.output.startswith("error: --to: ")


def test_sqlite_without_json_functions_plans_the_same_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On an SQLite built without json_each the ledger is written row by row instead:
    the same rows (planned and skipped, with their reasons and batches)."""
    from digest.delivery import ledger

    def plan(folder: Path) -> list[tuple[object, ...]]:
        world = make_world(f"sqlite:///{folder / 'd.db'}", folder)
        add_readers(world.app, 5)
        with world.app.transaction() as s:
            s.execute(
                Subscriber.__table__.update()
                .where(Subscriber.email == "reader1@example.net")
                .values(categories=["Nothing we publish"])
            )
        send(world.app, enqueue=True, batch_size=2)
        with world.app.transaction() as s:
            return [
                tuple(r)
                for r in s.execute(
                    select(
                        Delivery.id,
                        Delivery.subscriber_id,
                        Delivery.email,
                        Delivery.status,
                        Delivery.reason,
                        Delivery.batch_id,
                        Delivery.variant_id,
                    ).order_by(Delivery.id)
                )
            ]

    assert ledger._SQLITE_JSON  # else both runs below would take the row-by-row path
    (tmp_path / "json").mkdir()
    (tmp_path / "rows").mkdir()
    with_json = plan(tmp_path / "json")
    monkeypatch.setattr(ledger, "_SQLITE_JSON", False)
    without = plan(tmp_path / "rows")
    assert with_json == without
    assert len(with_json) == 5
    assert [r[3] for r in with_json].count(DeliveryStatus.SKIPPED) == 1
    assert {r[4] for r in with_json if r[3] == DeliveryStatus.SKIPPED} == {NO_SECTIONS}


def test_cli_editions_list_and_show(db_url: str, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """`digest editions list` and `show` give the ledger's counts, reasons and variants."""
    import json

    from click.testing import CliRunner

    from digest.cli import cli

    world = make_world(db_url, tmp_path)
    add_readers(world.app, 4)
    with world.app.transaction() as s:
        s.execute(
            Subscriber.__table__.update()
            .where(Subscriber.email == "reader1@example.net")
            .values(categories=["Nothing we publish"])
        )
    box = MemoryMailbox()
    box.script.append(
        lambda post: [
            RecipientResult(r.delivery_id, ok=i > 0, error=None if i else "550 no such user")
            for i, r in enumerate(post.recipients)
        ]
    )
    report, _ = _send(world, box)
    for key, value in world.env.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()
    listed = runner.invoke(cli, ["editions", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    (row,) = json.loads(listed.output)
    assert row["id"] == report.edition_id and row["status"] == "sent"
    assert {k: v for k, v in row["counts"].items() if v} == {"sent": 2, "failed": 1, "skipped": 1}
    shown = runner.invoke(cli, ["editions", "show", "weekly/2026-W47", "--json"])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.output)
    assert data["counts"] == row["counts"]
    assert data["failed_reasons"] == {"550 no such user": 1}
    assert data["skipped_reasons"] == {NO_SECTIONS: 1}
    assert sum(data["variants"].values()) == 4 and data["uncertain"] == []
    text = runner.invoke(cli, ["editions", "show", str(report.edition_id)])
    assert "Failed: 1 × 550 no such user" in text.output
    table = runner.invoke(cli, ["editions", "list"])
    assert table.exit_code == 0 and "│ 1  │" in table.output


def test_an_edition_with_nobody_to_go_to(db_url: str, tmp_path: Path) -> None:
    world = make_world(db_url, tmp_path, readers=0)
    report, box = _send(world)
    assert report.outcome is SendOutcome.NO_READERS and report.created and not box.sent


def test_an_edition_whose_readers_are_all_skipped(db_url: str, tmp_path: Path) -> None:
    world = make_world(db_url, tmp_path)
    add_readers(world.app, 2, categories=["Nothing we publish"])
    report, box = _send(world)
    assert report.outcome is SendOutcome.ALL_SKIPPED and report.counts.skipped == 2
    assert not box.sent


def test_queued_stopped_sent_then_already_delivered(db_url: str, tmp_path: Path) -> None:
    """What a send did is one SendOutcome, and its JSON (``--json``) says it too."""
    import json
    import threading

    world = make_world(db_url, tmp_path, readers=3)
    queued = send(world.app, enqueue=True)
    assert queued.outcome is SendOutcome.ENQUEUED and queued.enqueued == 3
    stop = threading.Event()
    stop.set()  # SIGTERM before the first post
    halted, box = _send(world, cancel=stop)
    assert halted.outcome is SendOutcome.STOPPED and halted.sent_now == 0 and not box.sent
    done, box = _send(world)
    assert done.outcome is SendOutcome.SENT and done.sent_now == 3 and len(box.sent) == 3
    again, _ = _send(world)
    assert again.outcome is SendOutcome.ALREADY_DELIVERED
    data = json.loads(json.dumps(again.to_dict()))
    assert data["outcome"] == "already_delivered" and data["nothing_new"] is True
    assert data["paused"] is False and data["stopped"] is False
    assert data["counts"] == {
        "pending": 0,
        "sending": 0,
        "sent": 3,
        "failed": 0,
        "skipped": 0,
        "uncertain": 0,
    }
    assert data["recipients"] == 3 and data["edition_id"] == done.edition_id


def test_the_send_loop_is_built_in_one_place() -> None:
    """Only the Sender builds a SendLoop: `digest send`, the scheduler, workers and the
    benchmark all go through it."""
    import ast

    root = Path(__file__).resolve().parent.parent
    builders = []
    for path in [*root.joinpath("digest").rglob("*.py"), *root.joinpath("bench").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "SendLoop":
                builders.append(str(path.relative_to(root)))
    assert builders == ["digest/sender.py"]


def test_several_segments_in_one_pass_each_reader_once(db_url: str, tmp_path: Path) -> None:
    """``segments``: planned together (one pass over the list), a reader in two segments
    gets one copy, batches fill across segments, both audiences are recorded, and a
    second run sends nothing again."""
    from digest.models import DeliveryBatch, EditionAudience
    from digest.sender import Sender
    from subscribers.segments import create_segment
    from subscribers.service import add_subscriber

    world = make_world(db_url, tmp_path)
    with world.app.transaction() as s:
        for email, attrs in [
            ("both@example.net", {"sector": "health", "region": "north"}),
            ("health@example.net", {"sector": "health", "region": "south"}),
            ("north@example.net", {"sector": "local", "region": "north"}),
            ("neither@example.net", {"sector": "local", "region": "south"}),
        ]:
            add_subscriber(s, email, "weekly", attributes=attrs)
        create_segment(s, "weekly", "health", {"attr": "sector", "equals": "health"})
        create_segment(s, "weekly", "north", {"attr": "region", "equals": "north"})
    box = MemoryMailbox()
    sender = Sender(
        world.app, options=FAST, backend_factory=lambda: MemoryBackend(box), batch_size=2
    )
    report = sender.send("weekly", AS_OF, segments=["health", "north"])
    assert sorted(m["to"] for m in box.sent) == [
        "both@example.net",
        "health@example.net",
        "north@example.net",
    ]
    assert report.planned == 3 and report.counts.sent == 3
    with world.app.transaction() as s:
        audiences = s.scalars(select(EditionAudience.audience).order_by(EditionAudience.audience))
        assert list(audiences) == ["health", "north"]
        sizes = s.execute(
            select(func.count()).select_from(Delivery).group_by(Delivery.batch_id)
        ).scalars()
        assert sorted(sizes) == [1, 2]  # one variant: a full batch and the rest
        assert s.scalar(select(func.count()).select_from(DeliveryBatch)) == 2
    again = sender.send("weekly", AS_OF, segments=["health", "north"])
    assert again.planned == 0 and len(box.sent) == 3


def test_one_message_in_flight_per_thread_while_posts_go_out(db_url: str, tmp_path: Path) -> None:
    """A post's outcome is stored with the next post's start: whenever a post is being
    handed over, it is the only delivery "sending" (a crash then leaves one uncertain),
    and every earlier one is recorded sent."""
    world = make_world(db_url, tmp_path, readers=6)
    box = MemoryMailbox()
    seen: list[tuple[int, int]] = []

    def check(post: Post) -> list[RecipientResult]:
        with world.app.transaction() as s:
            statuses = dict(
                s.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all()
            )
        seen.append((statuses.get(DeliveryStatus.SENDING, 0), statuses.get(DeliveryStatus.SENT, 0)))
        return MemoryBackend(box).deliver(post)

    box.script.extend([check] * 6)
    report = send(world.app, backend_factory=lambda: MemoryBackend(box, 1), options=FAST)
    assert report.counts.sent == 6
    assert seen == [(1, n) for n in range(6)]

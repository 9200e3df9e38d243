"""The editor's desk (issue 16 §1): drafts edited, approved and sent, on both databases.

The flow an editor follows from the command line — prepare, exclude, move, note,
subject, approve, send — and what readers then get: in every variant, HTML and text,
the intro is there, the excluded article is not, and the article made top story comes
first.  Every action is in the edition's log.
"""

from __future__ import annotations

import email
import email.policy
import json
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from digest import desk, drafts
from digest.app import App
from digest.cli import cli
from digest.models import Article, Delivery, Edition, EditionAction, EditionStatus, Source
from digest.sender import SendOutcome
from tests.support.world import FEED, World, add_readers, make_world, send

INTRO = """**Budget week.** Three things you should not miss, and [the full report](https://example.org/report).

- what changed
- what did not
"""
EXCLUDED_URL = "https://news.example.org/policy/0"
EXCLUDED = "Policy story 0"
TOP_URL = "https://news.example.org/data/1"
TOP = "Data story 1"


def _world(db_url: str, tmp_path: Path, monkeypatch: Any, approval: str = "auto") -> World:
    world = make_world(db_url, tmp_path, readers=2)
    add_readers(world.app, 1, categories=["Policy"], prefix="policy")
    add_readers(world.app, 1, categories=["Data", "Care"], prefix="datacare")
    add_readers(world.app, 1, categories=["Care"], prefix="care")
    if approval != "auto":
        config = Path(world.env["DIGEST_CONFIG"])
        text = config.read_text().replace(
            'timezone = "Europe/London"',
            f'timezone = "Europe/London"\napproval = "{approval}"\nprepare_before = "18h"',
        )
        config.write_text(text)
    for key, value in world.env.items():
        monkeypatch.setenv(key, value)
    return world


def _run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _messages(outbox: Path) -> list[EmailMessage]:
    out = []
    for path in sorted(outbox.rglob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        out.append(msg)
    return out


def _bodies(msg: EmailMessage) -> tuple[str, str]:
    html = msg.get_body(("html",))
    text = msg.get_body(("plain",))
    assert html is not None and text is not None
    return str(html.get_content()), str(text.get_content()).replace("\r\n", "\n")


def _visible(html: str) -> str:
    """The HTML body without the hidden preheader (which lists titles too)."""
    start = html.index('class="dg-preheader"')
    return html[:start] + html[html.index("</div>", start) :]


def _titles_in_order(body: str) -> list[str]:
    titles = [f"{c} story {i}" for c in ("Policy", "Data", "Care") for i in range(2)]
    found = [(body.find(t), t) for t in titles if t in body]
    return [t for _, t in sorted(found)]


def test_draft_exclude_move_note_approve_send_from_the_command_line(
    db_url: str, tmp_path: Path, monkeypatch: Any
) -> None:
    world = _world(db_url, tmp_path, monkeypatch)
    prepared = _run("editions", "prepare", "weekly", "--as-of", "2026-11-23")
    assert prepared.exit_code == 0, prepared.output
    assert "Draft edition 1 prepared." in prepared.output
    assert "2026-W47" in prepared.output

    intro = tmp_path / "intro.md"
    intro.write_text(INTRO, encoding="utf-8")
    steps = [
        ("editions", "exclude", "1", EXCLUDED_URL),
        ("editions", "move", "1", TOP_URL, "--top"),
        ("editions", "move", "1", "https://news.example.org/care/0", "--to", "1"),
        ("editions", "note", "1", "--file", str(intro)),
        ("editions", "subject", "1", "Budget week: what changed"),
    ]
    for step in steps:
        done = _run(*step)
        assert done.exit_code == 0, (step, done.output)

    shown = _run("editions", "show", "1")
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.split())
    assert "weekly 2026-W47 · draft" in text
    assert f"Excluded - {EXCLUDED} (Policy)" in text
    assert f"{TOP} (top story)" in text
    assert "1. Care story 0" in text and "2. Care story 1" in text
    for action in ("prepare", "exclude", "top", "move", "note", "subject"):
        assert f": {action}" in text, action

    approved = _run("editions", "approve", "1")
    assert approved.exit_code == 0, approved.output
    assert "goes out at the newsletter's next scheduled run" in approved.output
    # frozen: a change after approval is refused, saying why, and changes nothing
    late = CliRunner().invoke(cli, ["editions", "exclude", "1", TOP_URL])
    assert late.exit_code == 1
    assert "is approved, not a draft: its contents are frozen once it is approved" in late.output
    assert "Traceback" not in late.output

    sent = _run("editions", "send", "1", "--backend", "outbox")
    assert sent.exit_code == 0, sent.output
    messages = _messages(world.outbox)
    assert len(messages) == 5
    variants = set()
    for msg in messages:
        assert msg["Subject"] == "Budget week: what changed"
        html, plain = _bodies(msg)
        html = _visible(html)
        variants.add(msg["To"])
        for body in (html, plain):
            assert EXCLUDED not in body
            assert "Three things you should not miss" in body
        assert "<strong>Budget week.</strong>" in html
        assert '<a href="https://example.org/report"' in html
        assert "the full report (https://example.org/report)" in " ".join(plain.split())
        assert "- what changed\n- what did not" in plain
        to = str(msg["To"])
        for body in (html, plain):
            order = _titles_in_order(body)
            if to.startswith(("reader", "datacare")):
                assert order[0] == TOP, (to, order)
            if "Care story 0" in order:
                assert order.index("Care story 0") < order.index("Care story 1"), (to, order)
        # the intro sits above the first article
        assert html.index("Three things") < html.index(_titles_in_order(html)[0])
        assert plain.index("Three things") < plain.index(_titles_in_order(plain)[0])
    assert len(variants) == 5

    with world.app.sessions() as s:
        edition = s.get(Edition, 1)
        assert edition is not None and edition.status == EditionStatus.SENT
        assert edition.approved_by and edition.approved_by.startswith("cli")
        log = [a.action for a in s.scalars(select(EditionAction).order_by(EditionAction.id))]
    assert log == [
        "prepare",
        "exclude",
        "top",
        "move",
        "note",
        "subject",
        "approve",
        "send",
        "sent",
    ]


def test_library_refuses_bad_edits_and_offers_new_articles(db_url: str, tmp_path: Path) -> None:
    world = make_world(db_url, tmp_path, readers=1)
    app = world.app
    done = desk.prepare(
        app, "weekly", as_of=datetime(2026, 11, 23, 8, tzinfo=UTC), actor="ann@example.org"
    )
    ref = done.edition_id
    with pytest.raises(drafts.BadEdit, match=r"position 9 is out of range: Data has 2"):
        desk.move(app, ref, TOP_URL, actor="ann", to=9)
    with pytest.raises(desk.NotFound, match="is not an article of edition 1"):
        desk.exclude(app, ref, "https://elsewhere.example/x", actor="ann")
    with pytest.raises(drafts.BadEdit, match="keep it under"):
        desk.note(app, ref, "x" * 20_000, actor="ann")
    with pytest.raises(desk.DeskError, match="is a draft; approve it first"):
        desk.send(app, ref, actor="ann", backend="outbox")
    desk.exclude(app, ref, EXCLUDED_URL, actor="ann")
    with pytest.raises(drafts.BadEdit, match=r"excluded from edition 1 .* already"):
        desk.exclude(app, ref, EXCLUDED_URL, actor="ann")
    assert desk.include(app, ref, EXCLUDED_URL, actor="ann") == EXCLUDED
    shown = desk.view(app, ref)
    assert [a.title for a in shown.sections[0][1]] == ["Policy story 1", "Policy story 0"]

    # an article arriving after the draft was made is offered, not added
    with app.transaction() as s:
        feed = s.scalars(select(Source).where(Source.url == FEED)).one()
        s.add(
            Article(
                canonical_url="https://news.example.org/late",
                title="Late story",
                summary_text="Arrived late.",
                summary_html="",
                categories=["Care"],
                published_at=datetime(2026, 11, 21, 9, tzinfo=UTC),
                first_seen_at=datetime.now(UTC) + timedelta(seconds=1),
                content_hash="late",
                source=feed,
                sources=[feed],
            )
        )
    shown = desk.view(app, ref)
    assert [a.title for a in shown.offered] == ["Late story"]
    assert "Late story" not in [a.title for _, lines in shown.sections for a in lines]
    assert desk.add_new(app, ref, actor="ann") == 1
    shown = desk.view(app, ref)
    assert shown.offered == []
    assert shown.sections[-1][1][-1].title == "Late story"
    assert [e.action for e in shown.log] == ["prepare", "exclude", "include", "add"]
    assert {e.actor for e in shown.log} == {"ann@example.org", "ann"}


def test_pause_resume_and_cancel(db_url: str, tmp_path: Path) -> None:
    world = make_world(db_url, tmp_path, readers=3)
    app = world.app
    desk.prepare(app, "weekly", as_of=datetime(2026, 11, 23, 8, tzinfo=UTC), actor="ann")
    with pytest.raises(desk.DeskError, match="only an edition going out can be paused"):
        desk.pause(app, 1, actor="ann")
    desk.approve(app, 1, actor="ann")
    # planned for workers, then paused before any went out; resumed, it all goes out
    result = send(app, backend="outbox", enqueue=True)
    assert result.outcome is SendOutcome.ENQUEUED
    desk.pause(app, 1, actor="ann")
    assert desk.progress(app, 1).status == "paused"
    assert desk.resume(app, 1, actor="bo", backend="outbox") == 3
    assert desk.progress(app, 1).to_dict()["sent"] == 3
    with pytest.raises(desk.DeskError, match="is sent; it cannot be cancelled"):
        desk.cancel(app, 1, actor="ann")


def test_cancel_skips_what_has_not_gone_out(db_url: str, tmp_path: Path) -> None:
    world = make_world(db_url, tmp_path, readers=3)
    app = world.app
    send(app, backend="outbox", enqueue=True)
    assert desk.cancel(app, 1, actor="ann") == 3
    with app.sessions() as s:
        reasons = set(s.scalars(select(Delivery.reason)))
    assert reasons == {"edition cancelled by ann"}
    # a cancelled edition is not sent again by a later send
    again = CliRunner().invoke(cli, ["editions", "send", "1"], env=world.env)
    assert again.exit_code == 1 and "is cancelled; not sent" in again.output
    assert not list(world.outbox.rglob("*.eml"))


def test_digest_send_holds_a_draft_of_an_approval_required_newsletter(
    db_url: str, tmp_path: Path, monkeypatch: Any
) -> None:
    world = _world(db_url, tmp_path, monkeypatch, approval="required")
    held = CliRunner().invoke(cli, ["send", "weekly", "--as-of", "2026-11-23"])
    assert held.exit_code == 1, held.output
    assert "held: weekly 2026-W47: edition 1 is a draft waiting for an editor's approval" in (
        " ".join(held.output.split())
    )
    assert not list(world.outbox.rglob("*.eml"))
    app = App(**{k.removeprefix("DIGEST_").lower(): v for k, v in world.env.items()})
    try:
        assert desk.view(app, 1).status == "draft"
    finally:
        app.close()


def test_a_draft_of_an_auto_newsletter_is_approved_by_the_send(db_url: str, tmp_path: Path) -> None:
    world = make_world(db_url, tmp_path, readers=2)
    app = world.app
    desk.prepare(app, "weekly", as_of=datetime(2026, 11, 23, 8, tzinfo=UTC), actor="ann")
    desk.note(app, 1, "Hello.", actor="ann")
    result = send(app, backend="outbox")
    assert result.outcome is SendOutcome.SENT and result.counts.sent == 2
    view = desk.view(app, 1)
    assert view.status == "sent" and view.approved_by == "approval = auto"
    assert [(e.actor, e.action) for e in view.log][-1] == ("approval = auto", "approve")


def test_approval_and_prepare_before_are_checked_in_digest_toml(tmp_path: Path) -> None:
    from digest.config import NewsletterConfig

    base = {"name": "weekly", "title": "W", "list": "weekly", "sender": "news@example.org"}
    assert NewsletterConfig(**base, prepare_before="90m").prepare_ahead == timedelta(minutes=90)
    with pytest.raises(ValueError, match="prepare_before = '18 hours' is not a duration"):
        NewsletterConfig(**base, prepare_before="18 hours")
    with pytest.raises(ValueError, match="'auto' or 'required'"):
        NewsletterConfig(**base, approval="maybe")


def test_the_other_editions_commands(db_url: str, tmp_path: Path, monkeypatch: Any) -> None:
    """include, add-new, test, pause, resume, cancel and JSON from the command line, and
    their mistakes as one line with an exit code."""
    world = _world(db_url, tmp_path, monkeypatch)
    assert _run("editions", "prepare", "weekly", "--as-of", "2026-11-23").exit_code == 0
    assert _run("editions", "exclude", "1", EXCLUDED_URL).exit_code == 0
    included = _run("editions", "include", "1", EXCLUDED_URL)
    assert included.exit_code == 0 and f"Included: {EXCLUDED}" in included.output
    assert "No new articles to add." in _run("editions", "add-new", "1").output
    tested = _run("editions", "test", "1", "--to", "me@example.org", "--backend", "outbox")
    assert tested.exit_code == 0 and "me@example.org" in tested.output
    shown = _run("editions", "show", "1", "--json")
    data = json.loads(shown.output)
    assert data["status"] == "draft" and [e["action"] for e in data["log"]] == [
        "prepare",
        "exclude",
        "include",
        "test",
    ]

    latin = tmp_path / "latin.md"
    latin.write_bytes("Caf\xe9".encode("latin-1"))
    mistakes = [
        (["editions", "move", "1", TOP_URL], 2, "say where to"),
        (["editions", "move", "1", TOP_URL, "--to", "7"], 2, "position 7 is out of range"),
        (["editions", "note", "1", "--file", str(tmp_path / "none.md")], 2, "No such file"),
        (["editions", "note", "1", "--file", str(latin)], 2, "not UTF-8 text; save it as UTF-8"),
        (["editions", "pause", "1"], 1, "only an edition going out can be paused"),
        (["editions", "resume", "1"], 1, "only a paused edition can be resumed"),
        (["editions", "send", "1"], 1, "is a draft; approve it first"),
        (["editions", "approve", "1", "--send-at", "soon"], 2, "is not a time"),
        # a mistyped year must not send the edition at once
        (["editions", "approve", "1", "--send-at", "2020-01-01T08:00"], 1, "has passed"),
        (["editions", "show", "42"], 1, "no edition '42'"),
    ]
    for args, code, message in mistakes:
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == code, (args, result.output)
        assert message in " ".join(result.output.split()), (args, result.output)
        assert "Traceback" not in result.output

    assert _run("editions", "approve", "1", "--send-at", "2099-01-04T08:00").exit_code == 0
    assert desk.view(world.app, 1).send_at == datetime(2099, 1, 4, 8, tzinfo=UTC)
    send(world.app, backend="outbox", enqueue=True)
    assert "Paused." in _run("editions", "pause", "1").output
    resumed = _run("editions", "resume", "1", "--backend", "outbox")
    assert resumed.exit_code == 0 and "Resumed; 5 sent now." in resumed.output
    cancelled = CliRunner().invoke(cli, ["editions", "cancel", "1"])
    assert cancelled.exit_code == 1 and "is sent; it cannot be cancelled" in cancelled.output


def test_send_at_without_an_offset_is_the_newsletters_time(
    db_url: str, tmp_path: Path, monkeypatch: Any
) -> None:
    """As in the browser and for --as-of: 08:00 in July is 08:00 in London (07:00 UTC)."""
    world = _world(db_url, tmp_path, monkeypatch)
    assert _run("editions", "prepare", "weekly", "--as-of", "2026-11-23").exit_code == 0
    approved = _run("editions", "approve", "1", "--send-at", "2099-07-04T08:00")
    assert approved.exit_code == 0
    assert desk.view(world.app, 1).send_at == datetime(2099, 7, 4, 7, tzinfo=UTC)
    said = " ".join(approved.output.split())
    assert "It goes out at 2099-07-04 08:00 (Europe/London; 07:00 UTC)" in said


def test_an_article_is_found_by_the_url_as_the_email_or_the_site_spells_it(
    db_url: str, tmp_path: Path
) -> None:
    """An editor copies an article's link from the email (with the newsletter's UTM
    parameters), from the browser's address bar (no trailing slash, ``www.``, http) or
    from the feed (``?utm_source=rss``): each names the article its canonical URL does."""
    world = make_world(db_url, tmp_path, readers=1)
    app = world.app
    ref = desk.prepare(
        app, "weekly", as_of=datetime(2026, 11, 23, 8, tzinfo=UTC), actor="ann"
    ).edition_id
    assert desk.exclude(app, ref, EXCLUDED_URL + "?utm_source=digest&utm_medium=email", actor="ann")
    assert desk.include(
        app, ref, "http://www." + EXCLUDED_URL.removeprefix("https://") + "/", actor="ann"
    )
    assert desk.move(
        app,
        ref,
        "  " + TOP_URL.upper().replace("/DATA/1", "/data/1") + "#top ",
        actor="ann",
        top=True,
    )
    with pytest.raises(desk.NotFound, match="is not an article of edition 1"):
        desk.exclude(app, ref, "https://news.example.org/policy/0/other", actor="ann")

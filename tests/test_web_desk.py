"""The editor's desk over HTTP (issue 16 §2–§3): a draft edited in the browser, tested,
approved and sent after a confirmation step; progress as server-sent events; pause,
resume, cancel; CSRF on every form; bad input a 4xx with a clear message, never a 500.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient
from time_machine import TimeMachineFixture

from digest import desk
from digest.models import EditionStatus, RunOutcome, SchedulerRun
from digest.web.desk import wait_for_sends
from tests.support import web as support
from tests.support.web import client_for, csrf_of, page_csrf, sign_in, web_world
from tests.support.world import World, add_readers, send

sqlite_template = support.sqlite_template
fast_db_url = support.fast_db_url
fast_sqlite_url = support.fast_sqlite_url

AS_OF = datetime(2026, 11, 23, 8, tzinfo=UTC)
TOP_URL = "https://news.example.org/data/1"


@pytest.fixture
def world(fast_db_url: str, tmp_path: Path) -> World:
    world = web_world(fast_db_url, tmp_path, readers=3)
    desk.prepare(world.app, "weekly", as_of=AS_OF, actor="cli:ann")
    return world


@pytest.fixture
def lite(fast_sqlite_url: str, tmp_path: Path) -> World:
    world = web_world(fast_sqlite_url, tmp_path, readers=2)
    desk.prepare(world.app, "weekly", as_of=AS_OF, actor="cli:ann")
    return world


def article_id(world: World, url: str) -> str:
    view = desk.view(world.app, 1)
    for _, lines in view.sections:
        for a in lines:
            if a.url == url:
                return str(a.id)
    for a in view.excluded:
        if a.url == url:
            return str(a.id)
    raise AssertionError(url)


def post(client: TestClient, path: str, data: dict[str, str]) -> object:
    token = page_csrf(client, "/admin/editions/1")
    return client.post(path, data={"csrf": token, **data})


def test_the_draft_page_edits_and_shows_the_edits_at_once(world: World) -> None:
    with client_for(world) as client:
        sign_in(client)
        page = client.get("/admin/editions/1")
        assert page.status_code == 200
        assert "Articles (6)" in page.text and 'name="intro"' in page.text
        assert 'src="/admin/editions/1/frame?variant=all&amp;mode=dark"' in page.text

        top = article_id(world, TOP_URL)
        steps = [
            (
                "/admin/editions/1/intro",
                {"intro": "**Hello** readers, see [this](https://example.org/x)."},
            ),
            ("/admin/editions/1/article", {"article": top, "do": "top"}),
            (
                "/admin/editions/1/article",
                {
                    "article": article_id(world, "https://news.example.org/policy/0"),
                    "do": "exclude",
                },
            ),
            (
                "/admin/editions/1/article",
                {"article": article_id(world, "https://news.example.org/care/0"), "do": "up"},
            ),
            ("/admin/editions/1/subject", {"subject": "Hello from the desk"}),
        ]
        for path, data in steps:
            done = post(client, path, data)
            assert done.status_code == 303, (path, done.text)  # type: ignore[attr-defined]
            assert done.headers["location"] == "/admin/editions/1"  # type: ignore[attr-defined]

        page = client.get("/admin/editions/1")
        assert "Hello from the desk" in page.text
        assert "Excluded" in page.text and "Include again" in page.text
        frame = client.get("/admin/editions/1/frame?variant=all&mode=light")
        assert frame.status_code == 200
        assert "<strong>Hello</strong> readers" in frame.text
        assert "Policy story 0" not in frame.text
        assert frame.text.index("Data story 1") < frame.text.index("Care story 0")
        assert frame.headers["content-security-policy"].startswith("default-src 'none'")
        # the log, on the page: who did what
        for action in ("prepare", "note", "top", "exclude", "move", "subject"):
            assert f"<td>{action}</td>" in page.text
        assert "<td>admin</td>" in page.text and "<td>cli:ann</td>" in page.text


def test_every_desk_form_needs_the_csrf_token_and_a_sign_in(lite: World) -> None:
    paths = [
        "intro",
        "subject",
        "article",
        "new",
        "test",
        "approve",
        "send",
        "schedule",
        "pause",
        "resume",
        "cancel",
    ]
    with client_for(lite) as client:
        for path in paths:
            assert client.post(f"/admin/editions/1/{path}").status_code == 401, path
        for path in ("/admin/editions/1", "/admin/editions/1/frame", "/admin/editions/1/send"):
            assert client.get(path).status_code == 401, path
        sign_in(client)
        for path in paths:
            response = client.post(f"/admin/editions/1/{path}", data={"intro": "x"})
            assert response.status_code == 403, path
    assert desk.view(lite.app, 1).log[-1].action == "prepare"  # nothing happened


def test_bad_input_is_a_clear_4xx(lite: World) -> None:
    with client_for(lite) as client:
        sign_in(client)
        cases = [
            (
                "/admin/editions/1/article",
                {"article": "abc", "do": "top"},
                400,
                "Say which article",
            ),
            ("/admin/editions/1/article", {"article": "1", "do": "fly"}, 400, "Say which article"),
            (
                "/admin/editions/1/article",
                {"article": "99999", "do": "top"},
                404,
                "is not an article of edition 1",
            ),
            ("/admin/editions/1/intro", {"intro": "x" * 12_000}, 400, "keep it under 10000"),
            ("/admin/editions/1/test", {"to": ""}, 400, "at least one address"),
            ("/admin/editions/1/test", {"to": "not-an-address"}, 400, "not-an-address"),
            ("/admin/editions/1/schedule", {"send_at": "tomorrow"}, 400, "YYYY-MM-DDTHH:MM"),
            ("/admin/editions/1/schedule", {"send_at": "2020-01-01T08:00"}, 400, "has passed"),
            ("/admin/editions/1/pause", {}, 400, "only an edition going out can be paused"),
            ("/admin/editions/1/send", {}, 400, "Tick the box to confirm"),
            ("/admin/editions/1/new", {"do": "eat"}, 400, "Say add or decline"),
            ("/admin/editions/1/cancel", {}, 400, "Tick the box to confirm the cancellation"),
        ]
        for path, data, status, message in cases:
            response = post(client, path, data)
            assert response.status_code == status, (path, data, response.text[:300])  # type: ignore[attr-defined]
            assert message in response.text, (path, data)  # type: ignore[attr-defined]
        assert client.get("/admin/editions/999").status_code == 404
        assert client.get("/admin/editions/1/send?segment=nope").status_code == 404
        assert client.get("/admin/editions/99999999999999999999").status_code == 404


def test_test_copy_approve_then_confirm_and_send(world: World) -> None:
    with client_for(world) as client:
        sign_in(client)
        sent = post(client, "/admin/editions/1/test", {"to": "me@example.org"})
        assert sent.status_code == 303  # type: ignore[attr-defined]
        copies = [m for m in support.outbox_messages(world) if m["To"] == "me@example.org"]
        assert len(copies) == 1 and copies[0]["Subject"].startswith("[TEST]")
        # another variant, by its key (no variant is stored yet: a draft has no ledger)
        page = client.get("/admin/editions/1")
        key = re.search(r'<option value="(s-[0-9a-f]+)">Only Data', page.text)
        assert key is not None
        two = post(client, "/admin/editions/1/test", {"to": "two@example.org", "variant": key[1]})
        assert two.status_code == 303  # type: ignore[attr-defined]
        (copy,) = [m for m in support.outbox_messages(world) if m["To"] == "two@example.org"]
        assert "Data story 1" in support.text_of(copy)
        assert "Policy story 1" not in support.text_of(copy)

        approved = post(client, "/admin/editions/1/approve", {})
        assert approved.status_code == 303  # type: ignore[attr-defined]
        assert desk.view(world.app, 1).status == "approved"
        # edits after approval are refused with the reason
        late = post(client, "/admin/editions/1/subject", {"subject": "Too late"})
        assert late.status_code == 400  # type: ignore[attr-defined]
        assert "is approved, not a draft" in late.text  # type: ignore[attr-defined]

        confirm = client.get("/admin/editions/1/send")
        assert confirm.status_code == 200
        text = " ".join(confirm.text.split())
        assert (
            "to <strong>3 readers</strong> of the list <strong>weekly</strong>, the whole list"
            in text
        )
        go = client.post(
            "/admin/editions/1/send",
            data={"csrf": csrf_of(confirm.text), "confirm": "yes", "segment": ""},
        )
        assert go.status_code == 303
        wait_for_sends(client.app)
        readers = [m for m in support.outbox_messages(world) if "reader" in str(m["To"])]
        assert len(readers) == 3
        assert desk.view(world.app, 1).status == "sent"
        page = client.get("/admin/editions/1")  # a sent edition: the statistics and the log
        assert "Delivery and engagement" in page.text and "<td>sent</td>" in page.text


def test_the_older_edition_rule_applies_on_the_confirmation_page(world: World) -> None:
    from tests.test_edition_order import add_week_48

    add_week_48(world.app)
    send(world.app, as_of=datetime(2026, 11, 30, 8, tzinfo=UTC), backend="outbox")  # W48 out
    with client_for(world) as client:
        sign_in(client)
        confirm = client.get("/admin/editions/1/send")
        assert "is older than 2026-W48" in confirm.text
        assert 'name="confirm"' not in confirm.text
        refused = post(client, "/admin/editions/1/send", {"confirm": "yes"})
        assert refused.status_code == 409  # type: ignore[attr-defined]
        assert "editions in order" in refused.text  # type: ignore[attr-defined]
    assert desk.view(world.app, 1).status == "draft"


def test_pause_resume_and_live_progress(world: World) -> None:
    add_readers(world.app, 2, start=10)
    desk.approve(world.app, 1, actor="ann")
    send(world.app, backend="outbox", enqueue=True)  # queued for workers, none running
    with client_for(world) as client:
        sign_in(client)
        page = client.get("/admin/editions/1")
        assert 'id="progress-total">5<' in page.text and ">Pause<" in page.text
        assert post(client, "/admin/editions/1/pause", {}).status_code == 303  # type: ignore[attr-defined]
        assert desk.progress(world.app, 1).status == "paused"
        page = client.get("/admin/editions/1")
        assert ">Resume<" in page.text
        assert post(client, "/admin/editions/1/resume", {}).status_code == 303  # type: ignore[attr-defined]
        wait_for_sends(client.app)
        assert desk.progress(world.app, 1).to_dict()["sent"] == 5
        numbers = client.get("/admin/editions/1/progress").json()
        assert numbers["sent"] == 5 and numbers["total"] == 5 and numbers["status"] == "sent"
        # the event stream: the numbers, then (the edition changed since) "change"
        with client.stream("GET", "/admin/editions/1/events?since=sending") as stream:
            events = []
            for line in stream.iter_lines():
                events.append(line)
                if line.startswith("event: change"):
                    break
        data = [json.loads(x[6:]) for x in events if x.startswith("data: {")]
        assert data[0]["sent"] == 5 and data[0]["failed"] == 0 and data[0]["uncertain"] == 0
    log = [(e.actor, e.action) for e in desk.view(world.app, 1).log]
    assert log[-2:] == [("admin", "pause"), ("admin", "resume")]


def test_schedule_for_a_time_and_the_dashboard_says_held(world: World) -> None:
    with world.app.transaction() as s:
        s.add(
            SchedulerRun(
                newsletter="weekly",
                scheduled_for=AS_OF,
                outcome=RunOutcome.HELD,
                detail="held",
            )
        )
    with client_for(world) as client:
        sign_in(client)
        board = client.get("/admin")
        assert "was held: the edition 2026-W47 waits for an editor's approval" in board.text
        assert 'href="/admin/editions/1"' in board.text
        done = post(client, "/admin/editions/1/schedule", {"send_at": "2099-12-24T09:30"})
        assert done.status_code == 303  # type: ignore[attr-defined]
    view = desk.view(world.app, 1)
    assert view.status == EditionStatus.APPROVED.value
    assert view.send_at == datetime(2099, 12, 24, 9, 30, tzinfo=UTC)  # London is on GMT
    with world.app.sessions() as s:
        assert s.scalars(select(SchedulerRun.outcome)).one() == RunOutcome.HELD


def test_approving_after_the_run_was_held_sends_at_once(world: World) -> None:
    with world.app.transaction() as s:
        s.add(
            SchedulerRun(
                newsletter="weekly", scheduled_for=AS_OF, outcome=RunOutcome.HELD, detail="held"
            )
        )
    with client_for(world) as client:
        sign_in(client)
        done = post(client, "/admin/editions/1/approve", {})
        assert done.status_code == 303  # type: ignore[attr-defined]
        wait_for_sends(client.app)
        page = client.get("/admin/editions/1")
        assert "Delivery and engagement" in page.text  # sent: the statistics page
    assert len([m for m in support.outbox_messages(world) if "reader" in str(m["To"])]) == 3
    with world.app.sessions() as s:
        run = s.scalars(select(SchedulerRun)).one()
    assert run.outcome == RunOutcome.SENT
    assert run.detail.startswith("held for approval; sent after admin approved it: sent: 3 sent")


def test_the_event_stream_stays_quiet_while_nothing_changes(lite: World) -> None:
    """The page's own stamp matches the stream's: no reload unless something changed
    (a mismatch would reload the page for ever); an edit is a change."""
    from digest.web import WebOptions

    desk.note(lite.app, 1, "Hello.", actor="ann")
    with client_for(lite, options=WebOptions(live_reload_max=1.5)) as client:
        sign_in(client)
        page = client.get("/admin/editions/1")
        url = re.search(r'data-desk-events="([^"]+)"', page.text)
        assert url is not None
        events_url = url[1].replace("&amp;", "&")
        with client.stream("GET", events_url) as stream:
            quiet = [line for line in stream.iter_lines() if line.startswith("event:")]
        assert quiet and set(quiet) == {"event: progress"}  # then it ends (live_reload_max)
        desk.subject(lite.app, 1, "Changed elsewhere", actor="bo")
        with client.stream("GET", events_url) as stream:
            changed = [line for line in stream.iter_lines() if line.startswith("event:")]
        assert changed[0] == "event: progress" and changed[-1] == "event: change"


def test_prepare_a_draft_from_the_editions_page(
    fast_sqlite_url: str, tmp_path: Path, time_machine: TimeMachineFixture
) -> None:
    world = web_world(fast_sqlite_url, tmp_path, readers=1)
    time_machine.move_to(datetime(2026, 11, 22, 12, tzinfo=UTC), tick=False)  # a Sunday
    with client_for(world) as client:
        sign_in(client)
        token = page_csrf(client, "/admin/editions")
        missing = client.post("/admin/editions/prepare", data={"csrf": token, "newsletter": "nope"})
        assert missing.status_code == 400 and "no newsletter called &#39;nope&#39;" in missing.text
        made = client.post("/admin/editions/prepare", data={"csrf": token, "newsletter": "weekly"})
        # the edition Monday's run sends: 2026-W47
        assert made.status_code == 303 and made.headers["location"] == "/admin/editions/1"
        page = client.get("/admin/editions/1")
        assert "Draft prepared. Period 2026-W47" in page.text
        time_machine.move_to(datetime(2027, 3, 6, 12, tzinfo=UTC), tick=False)
        sign_in(client)  # the sign-in of last year has expired
        token = page_csrf(client, "/admin/editions")
        empty = client.post("/admin/editions/prepare", data={"csrf": token, "newsletter": "weekly"})
        assert empty.status_code == 404
        assert "has no articles yet; nothing to prepare" in empty.text
        assert (
            client.post("/admin/editions/prepare", data={"newsletter": "weekly"}).status_code == 403
        )

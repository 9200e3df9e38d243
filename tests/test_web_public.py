"""Public pages over HTTP on both databases: subscribe with double opt-in, confirm,
one-click unsubscribe (RFC 8058), preferences, and the stand-in links of web copies."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from httpx import ASGITransport, AsyncClient, Response
from sqlalchemy import select
from starlette.responses import PlainTextResponse
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send

from digest.web import WebOptions, create_app
from digest.web.public import FastOneClick
from subscribers.lists import create_list
from subscribers.models import (
    ConsentMethod,
    MailingList,
    Membership,
    Status,
    Subscriber,
    SuppressionReason,
)
from subscribers.service import add_subscriber, find_subscriber, suppress
from subscribers.tokens import make_token
from tests.support import web as support
from tests.support.web import (
    client_for,
    csrf_of,
    link_path,
    outbox_messages,
    page_csrf,
    text_of,
    web_world,
)
from tests.support.world import World, send

# The support module's fixtures, used by name below.
sqlite_template = support.sqlite_template
fast_db_url = support.fast_db_url
fast_sqlite_url = support.fast_sqlite_url

SECRET = "test-secret-key-of-some-length"


@pytest.fixture
def world(fast_db_url: str, tmp_path: Path) -> World:
    """A world on both databases (the flows that touch the database in earnest)."""
    return web_world(fast_db_url, tmp_path)


@pytest.fixture
def lite(fast_sqlite_url: str, tmp_path: Path) -> World:
    """A world on SQLite only (checks that do not depend on the database)."""
    return web_world(fast_sqlite_url, tmp_path)


def subscriber(world: World, address: str) -> Subscriber | None:
    with world.app.transaction() as s:
        found = find_subscriber(s, address)
        if found is not None:
            s.expunge(found)
        return found


def membership_status(world: World, address: str, list_name: str = "weekly") -> str | None:
    with world.app.transaction() as s:
        row = s.execute(
            select(Membership.status)
            .join(Subscriber, Subscriber.id == Membership.subscriber_id)
            .join(MailingList, MailingList.id == Membership.list_id)
            .where(Subscriber.email_key == address.lower(), MailingList.name == list_name)
        ).scalar()
        return Status(row).value if row else None


def subscribe(client: TestClient, address: str, **extra: object) -> Response:
    token = page_csrf(client, "/subscribe/weekly")
    return client.post("/subscribe/weekly", data={"csrf": token, "email": address, **extra})


def test_home_lists_the_newsletters(lite: World) -> None:
    with client_for(lite) as client:
        response = client.get("/")
    assert response.status_code == 200
    assert "The Weekly" in response.text and 'href="/subscribe/weekly"' in response.text


def test_subscribe_confirm_and_become_active(world: World) -> None:
    with client_for(world) as client:
        form = client.get("/subscribe/weekly")
        assert form.status_code == 200
        for label in ('for="email"', 'for="name"', "<legend>Sections you want</legend>"):
            assert label in form.text
        response = subscribe(client, "Ann@Example.net", name="Ann Reader", categories=["Data"])
        assert response.status_code == 200 and "Check your inbox" in response.text

        who = subscriber(world, "ann@example.net")
        assert who is not None and who.status is Status.PENDING
        assert who.name == "Ann Reader" and who.categories == ["Data"]
        assert who.consent_method is ConsentMethod.FORM and who.consent_ip == "testclient"
        assert membership_status(world, "ann@example.net") == "pending"

        (message,) = outbox_messages(world)
        assert message["To"].addresses[0].addr_spec == "Ann@example.net"
        assert message["Subject"] == "Please confirm your subscription to The Weekly"
        assert "List-Unsubscribe" in message
        confirm = link_path(text_of(message), "c")

        page = client.get(confirm)  # a GET changes nothing (link scanners)
        assert page.status_code == 200 and "Yes, subscribe me" in page.text
        assert membership_status(world, "ann@example.net") == "pending"

        done = client.post(confirm, data={"csrf": csrf_of(page.text)})
        assert done.status_code == 200 and "You are subscribed" in done.text
    who = subscriber(world, "ann@example.net")
    assert who is not None and who.status is Status.ACTIVE and who.confirmed_at is not None
    assert membership_status(world, "ann@example.net") == "active"


def test_the_same_answer_for_known_and_unknown_addresses(world: World) -> None:
    with world.app.transaction() as s:
        add_subscriber(s, "member@example.net", "weekly", name="Member")
        add_subscriber(s, "gone@example.net", "weekly")
        suppress(s, "gone@example.net", SuppressionReason.HARD_BOUNCE)
    with client_for(world) as client:
        answers = [
            subscribe(client, address, name="Mallory").text
            for address in ("new@example.net", "member@example.net", "gone@example.net")
        ]
    assert answers[0] == answers[1] == answers[2]
    # the form never changes an existing person's data
    member = subscriber(world, "member@example.net")
    assert member is not None and member.name == "Member" and member.status is Status.ACTIVE
    # only the new address got an email
    assert [m["To"].addresses[0].addr_spec for m in outbox_messages(world)] == ["new@example.net"]


def test_a_bad_address_is_explained_on_the_form(lite: World) -> None:
    with client_for(lite) as client:
        response = subscribe(client, "not-an-address", name="X")
    assert response.status_code == 400
    assert 'aria-invalid="true"' in response.text and "name@example.org" in response.text
    assert subscriber(lite, "not-an-address") is None


def test_signups_are_rate_limited_per_ip(fast_sqlite_url: str, tmp_path: Path) -> None:
    world = web_world(fast_sqlite_url, tmp_path, env={"DIGEST_SUBSCRIBE_RATE": "2"})
    with client_for(world) as client:
        codes = [subscribe(client, f"r{i}@example.net").status_code for i in range(3)]
        limited = subscribe(client, "r9@example.net")
    assert codes == [200, 200, 429]
    assert limited.headers["Retry-After"].isdigit()
    assert subscriber(world, "r9@example.net") is None


def test_confirmation_emails_per_address_are_limited(
    lite: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="digest.web.optin")
    options = WebOptions(confirmations_per_hour=2)
    with client_for(lite, options=options) as client:
        answers = [subscribe(client, "again@example.net").status_code for _ in range(4)]
    assert answers == [200, 200, 200, 200]
    sent = [r for r in caplog.records if "confirmation email for subscriber" in r.getMessage()]
    assert len(sent) == 2


def test_without_csrf_a_signup_is_refused(lite: World) -> None:
    with client_for(lite) as client:
        response = client.post("/subscribe/weekly", data={"email": "x@example.net"})
    assert response.status_code == 403 and "expired" in response.text
    assert subscriber(lite, "x@example.net") is None


def test_a_single_opt_in_list_subscribes_at_once(lite: World) -> None:
    with lite.app.transaction() as s:
        s.scalars(select(MailingList)).one().double_opt_in = False
    with client_for(lite) as client:
        response = subscribe(client, "now@example.net")
    assert response.status_code == 200 and "Thank you" in response.text
    who = subscriber(lite, "now@example.net")
    assert who is not None and who.status is Status.ACTIVE
    assert outbox_messages(lite) == []


def test_an_unknown_newsletter_or_missing_list_is_404(fast_sqlite_url: str, tmp_path: Path) -> None:
    world = web_world(fast_sqlite_url, tmp_path)
    with world.app.transaction() as s:
        s.delete(s.scalars(select(MailingList)).one())
    with client_for(world) as client:
        assert client.get("/subscribe/nosuch").status_code == 404
        missing = client.get("/subscribe/weekly")
    assert missing.status_code == 404 and "not open yet" in missing.text


# ---------------------------------------------------------------------------
# Unsubscribing


def reader(world: World, address: str = "reader@example.net", **kwargs: object) -> int:
    with world.app.transaction() as s:
        return add_subscriber(s, address, "weekly", **kwargs).subscriber.id  # type: ignore[arg-type]


def test_one_click_post_unsubscribes_at_once_with_200(world: World) -> None:
    sid = reader(world)
    token = make_token(SECRET, sid, "unsubscribe")
    with client_for(world) as client:
        response = client.post(
            f"/u/{token}",
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert response.status_code == 200  # never a redirect
    assert "You are unsubscribed" in response.text
    who = subscriber(world, "reader@example.net")
    assert who is not None and who.status is Status.UNSUBSCRIBED
    assert membership_status(world, "reader@example.net") == "unsubscribed"


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data; boundary=xyz", None),
        ("text/plain", b"List-Unsubscribe=One-Click"),
    ],
)
def test_one_click_accepts_other_encodings(
    lite: World, content_type: str, body: bytes | None
) -> None:
    sid = reader(lite)
    token = make_token(SECRET, sid, "unsubscribe")
    with client_for(lite) as client:
        if body is None:
            response = client.post(f"/u/{token}", files={"List-Unsubscribe": (None, "One-Click")})
        else:
            response = client.post(
                f"/u/{token}", content=body, headers={"Content-Type": content_type}
            )
    assert response.status_code == 200
    assert membership_status(lite, "reader@example.net") == "unsubscribed"


def test_oversized_or_unsized_bodies_are_refused_before_anything_is_read(lite: World) -> None:
    sid = reader(lite)
    token = make_token(SECRET, sid, "unsubscribe")

    def chunks():  # type: ignore[no-untyped-def]
        yield b"List-Unsubscribe=One-Click"

    with client_for(lite) as client:
        huge = client.post(
            f"/u/{token}", content=b"x" * 20_000, headers={"Content-Type": "text/plain"}
        )
        streamed = client.post(
            f"/u/{token}",
            content=chunks(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert huge.status_code == 413 and streamed.status_code == 411
    assert membership_status(lite, "reader@example.net") == "active"


def test_get_shows_a_button_and_changes_nothing(lite: World) -> None:
    sid = reader(lite)
    token = make_token(SECRET, sid, "unsubscribe")
    with client_for(lite) as client:
        page = client.get(f"/u/{token}")
        assert page.status_code == 200
        assert '<button type="submit">Unsubscribe me</button>' in page.text
        assert "r•••@example.net" in page.text
        assert membership_status(lite, "reader@example.net") == "active"
        # a post from the page needs its CSRF token...
        assert client.post(f"/u/{token}", data={}).status_code == 403
        assert membership_status(lite, "reader@example.net") == "active"
        # ...and with it, unsubscribes
        done = client.post(f"/u/{token}", data={"csrf": csrf_of(page.text)})
    assert done.status_code == 200
    assert membership_status(lite, "reader@example.net") == "unsubscribed"


def test_bad_and_stand_in_tokens(lite: World) -> None:
    sid = reader(lite)
    with client_for(lite) as client:
        tampered = make_token(SECRET, sid, "unsubscribe")[:-2] + "xx"
        bad = client.get(f"/u/{tampered}")
        wrong = client.get(f"/u/{make_token(SECRET, sid, 'preferences')}")
        stand_in = client.get("/u/preview")
        prefs_stand_in = client.get("/p/preview")
        one_click = client.post("/u/preview", content=b"List-Unsubscribe=One-Click")
    assert bad.status_code == 400 and "bad signature" in bad.text
    assert wrong.status_code == 400 and "preferences link" in wrong.text
    assert stand_in.status_code == 200 and "email you received" in stand_in.text
    assert prefs_stand_in.status_code == 200
    assert one_click.status_code == 200  # the explanation, not an unsubscribe
    assert membership_status(lite, "reader@example.net") == "active"


# ---------------------------------------------------------------------------
# Preferences


def test_preferences_change_name_sections_pause_and_lists(world: World) -> None:
    with world.app.transaction() as s:
        create_list(s, "other")
    sid = reader(world, name="Old Name")
    with world.app.transaction() as s:
        add_subscriber(s, "reader@example.net", "other")
    token = make_token(SECRET, sid, "preferences")
    with client_for(world) as client:
        page = client.get(f"/p/{token}")
        assert page.status_code == 200
        assert 'value="Old Name"' in page.text and "Pause for 1 month" in page.text
        response = client.post(
            f"/p/{token}",
            data={
                "csrf": csrf_of(page.text),
                "name": "New Name",
                "categories": ["Policy", "Care"],
                "lists": ["weekly"],
                "pause": "30",
            },
        )
        assert response.status_code == 303 and response.headers["location"] == f"/p/{token}"
        again = client.get(f"/p/{token}")
    assert "Your preferences are saved." in again.text and "we will write again from" in again.text
    who = subscriber(world, "reader@example.net")
    assert who is not None and who.name == "New Name"
    assert who.categories == ["Policy", "Care"]
    assert who.paused_until is not None and who.paused_until > datetime.now(UTC)
    assert membership_status(world, "reader@example.net", "weekly") == "active"
    assert membership_status(world, "reader@example.net", "other") == "unsubscribed"


def test_ticking_every_section_means_all(lite: World) -> None:
    sid = reader(lite, categories=["Data"])
    token = make_token(SECRET, sid, "preferences")
    with client_for(lite) as client:
        csrf = page_csrf(client, f"/p/{token}")
        client.post(
            f"/p/{token}",
            data={"csrf": csrf, "categories": ["Policy", "Data", "Care"], "lists": ["weekly"]},
        )
    who = subscriber(lite, "reader@example.net")
    assert who is not None and who.categories == []


def test_unsubscribe_from_everything_on_the_preferences_page(world: World) -> None:
    sid = reader(world)
    token = make_token(SECRET, sid, "preferences")
    with client_for(world) as client:
        csrf = page_csrf(client, f"/p/{token}")
        response = client.post(f"/p/{token}/unsubscribe", data={"csrf": csrf})
        after = client.get(f"/p/{token}")
    assert response.status_code == 200 and "You are unsubscribed" in response.text
    assert "not subscribed to anything" in after.text
    who = subscriber(world, "reader@example.net")
    assert who is not None and who.status is Status.UNSUBSCRIBED


def test_an_unsubscribed_reader_can_come_back_through_a_confirmation(world: World) -> None:
    sid = reader(world)
    with client_for(world) as client:
        token = make_token(SECRET, sid, "unsubscribe")
        client.post(f"/u/{token}", content=b"List-Unsubscribe=One-Click")
        subscribe(client, "reader@example.net", name="Ignored")
        (message,) = outbox_messages(world)
        confirm = link_path(text_of(message), "c")
        client.post(confirm, data={"csrf": page_csrf(client, confirm)})
    who = subscriber(world, "reader@example.net")
    assert who is not None and who.status is Status.ACTIVE and who.name == ""
    assert membership_status(world, "reader@example.net") == "active"


# ---------------------------------------------------------------------------
# Unsubscribing from the list the email came from (issue 13 §3)


def test_one_click_leaves_only_the_list_the_email_came_from(world: World) -> None:
    with world.app.transaction() as s:
        create_list(s, "monthly")
    sid = reader(world)
    with world.app.transaction() as s:
        add_subscriber(s, "reader@example.net", "monthly")
    token = make_token(SECRET, sid, "unsubscribe", list_name="weekly")
    with client_for(world) as client:
        response = client.post(
            f"/u/{token}",
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert response.status_code == 200
    assert "You will no longer receive The Weekly." in response.text
    assert membership_status(world, "reader@example.net", "weekly") == "unsubscribed"
    assert membership_status(world, "reader@example.net", "monthly") == "active"
    who = subscriber(world, "reader@example.net")
    assert who is not None and who.status is Status.ACTIVE


def test_an_editions_own_unsubscribe_link_leaves_only_its_list(world: World) -> None:
    """The List-Unsubscribe of a sent edition names the newsletter's list: one click
    leaves that list, and the reader stays on the others."""
    with world.app.transaction() as s:
        create_list(s, "monthly")
    reader(world)
    with world.app.transaction() as s:
        add_subscriber(s, "reader@example.net", "monthly")
    assert send(world.app).counts.sent == 1
    (message,) = outbox_messages(world)
    header = str(message["List-Unsubscribe"])
    with client_for(world) as client:
        response = client.post(
            link_path(header, "u"),
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert response.status_code == 200
    assert membership_status(world, "reader@example.net", "weekly") == "unsubscribed"
    assert membership_status(world, "reader@example.net", "monthly") == "active"


def test_the_unsubscribe_page_offers_this_list_then_all_lists(world: World) -> None:
    with world.app.transaction() as s:
        create_list(s, "monthly")
    sid = reader(world)
    with world.app.transaction() as s:
        add_subscriber(s, "reader@example.net", "monthly")
    token = make_token(SECRET, sid, "unsubscribe", list_name="weekly")
    with client_for(world) as client:
        page = client.get(f"/u/{token}")
        assert page.status_code == 200
        assert '<button type="submit">Unsubscribe from The Weekly</button>' in page.text
        assert "Leave all lists" in page.text and "monthly, The Weekly" in page.text
        csrf = csrf_of(page.text)
        one = client.post(f"/u/{token}", data={"csrf": csrf})
        assert "You will no longer receive The Weekly." in one.text
        assert membership_status(world, "reader@example.net", "monthly") == "active"
        again = client.get(f"/u/{token}")
        assert "no longer receives The Weekly" in again.text and "Leave all lists" in again.text
        everything = client.post(f"/u/{token}", data={"csrf": csrf, "scope": "all"})
    assert "You will no longer receive any of our newsletters." in everything.text
    assert membership_status(world, "reader@example.net", "monthly") == "unsubscribed"
    who = subscriber(world, "reader@example.net")
    assert who is not None and who.status is Status.UNSUBSCRIBED


def test_an_old_link_without_a_list_leaves_every_list_and_says_so(world: World) -> None:
    with world.app.transaction() as s:
        create_list(s, "monthly")
    sid = reader(world)
    with world.app.transaction() as s:
        add_subscriber(s, "reader@example.net", "monthly")
    token = make_token(SECRET, sid, "unsubscribe")  # as sent before links named their list
    with client_for(world) as client:
        page = client.get(f"/u/{token}")
        assert "Stop sending monthly, The Weekly to" in page.text
        response = client.post(f"/u/{token}", content=b"List-Unsubscribe=One-Click")
    assert "You will no longer receive any of our newsletters." in response.text
    assert membership_status(world, "reader@example.net", "monthly") == "unsubscribed"


def test_the_form_asks_a_reader_who_left_to_confirm_and_changes_nothing(world: World) -> None:
    """Anyone may type an address into the form: for someone who unsubscribed it sends
    a confirmation email and nothing else; their own confirmation brings them back, an
    older confirm link does not."""
    with world.app.transaction() as s:
        s.scalars(select(MailingList)).one().double_opt_in = False  # even single opt-in
    with client_for(world) as client:
        subscribe(client, "back@example.net")  # single opt-in: active at once, no email
        assert membership_status(world, "back@example.net") == "active"
        who = subscriber(world, "back@example.net")
        assert who is not None
        token = make_token(SECRET, who.id, "unsubscribe", list_name="weekly")
        client.post(f"/u/{token}", content=b"List-Unsubscribe=One-Click")
        subscribe(client, "back@example.net")
        assert membership_status(world, "back@example.net") == "unsubscribed"
        (message,) = outbox_messages(world)
        confirm = link_path(text_of(message), "c")
        page = client.get(confirm)
        assert "Yes, subscribe me" in page.text and "The Weekly" in page.text
        done = client.post(confirm, data={"csrf": csrf_of(page.text)})
        assert done.status_code == 200 and "You are subscribed" in done.text
        assert membership_status(world, "back@example.net") == "active"
        # they leave again: the link they already used no longer brings them back
        client.post(f"/u/{token}", content=b"List-Unsubscribe=One-Click")
        assert "nothing to confirm" in client.get(confirm).text
        stale = client.post(confirm, data={"csrf": page_csrf(client, "/subscribe/weekly")})
    assert stale.status_code == 400 and "was not subscribed" in stale.text
    assert membership_status(world, "back@example.net") == "unsubscribed"


def test_a_confirm_link_from_before_links_named_their_list_still_confirms(lite: World) -> None:
    with lite.app.transaction() as s:
        sid = add_subscriber(
            s, "early@example.net", "weekly", method=ConsentMethod.FORM
        ).subscriber.id
    token = make_token(SECRET, sid, "confirm")  # no list in it
    with client_for(lite) as client:
        page = client.get(f"/c/{token}")
        assert "The Weekly" in page.text
        done = client.post(f"/c/{token}", data={"csrf": csrf_of(page.text)})
    assert done.status_code == 200 and "you will receive The Weekly" in done.text
    assert membership_status(lite, "early@example.net") == "active"


def test_one_click_posts_are_answered_before_the_session_and_the_routes(lite: World) -> None:
    """FastOneClick answers an RFC 8058 post with a good token itself (no cookie, no
    routing); anything else reaches the routes with its whole body."""
    sid = reader(lite)
    web = create_app(lite.app)
    passed: list[tuple[str, bytes]] = []

    async def routes(scope: Scope, receive: Receive, send: Send) -> None:
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        passed.append((scope["path"], body))
        await PlainTextResponse("routes")(scope, receive, send)

    fast = FastOneClick(routes, web=web.state.web)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = web  # as the application does before its middleware
        await fast(scope, receive, send)

    async def post(path: str, body: bytes, kind: str) -> Response:
        transport = ASGITransport(app=app)
        async with AsyncClient(transport=transport, base_url="https://testserver") as client:
            return await client.post(path, content=body, headers={"Content-Type": kind})

    form = "application/x-www-form-urlencoded"
    token = make_token(SECRET, sid, "unsubscribe", list_name="weekly")
    answer = asyncio.run(post(f"/u/{token}", b"List-Unsubscribe=One-Click", form))
    assert answer.status_code == 200 and "You will no longer receive The Weekly." in answer.text
    assert "set-cookie" not in answer.headers and passed == []
    assert membership_status(lite, "reader@example.net") == "unsubscribed"

    others = [
        (f"/u/{token}", b"csrf=x&scope=all", form),  # the page's own form
        (f"/u/{token}", b"List-Unsubscribe=One-Click", "text/plain"),
        ("/u/not-a-token", b"List-Unsubscribe=One-Click", form),
        ("/u/preview", b"List-Unsubscribe=One-Click", form),
        (f"/p/{token}", b"List-Unsubscribe=One-Click", form),
    ]
    for path, body, kind in others:
        assert asyncio.run(post(path, body, kind)).text == "routes"
    assert passed == [(path, body) for path, body, _ in others]

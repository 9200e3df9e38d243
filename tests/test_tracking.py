"""Engagement digest records itself, for every backend (issue 15 §1): clicks through
signed redirects, open pixels, readers who opt out, and unsubscribes and preference
changes through an edition's links counted on that edition.

Real parts: an SMTP relay (aiosmtpd) or the outbox, the web app through Starlette's
TestClient, SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from itsdangerous import Signer
from sqlalchemy import func, select

from digest import tracking
from digest.events import EventType
from digest.models import Edition, EditionLink, Event, Hit
from digest.stats import edition_stats
from subscribers.models import Subscriber
from subscribers.service import find_subscriber, set_tracking
from subscribers.tokens import make_token, read_link
from tests.support import web as support
from tests.support.sendgrid_server import SendGridServer
from tests.support.smtp_server import SMTPServer
from tests.support.web import (
    BASE,
    client_for,
    html_of,
    link_path,
    outbox_messages,
    page_csrf,
    sign_in,
    text_of,
    web_world,
)
from tests.support.world import World, send

sqlite_template = support.sqlite_template
fast_db_url = support.fast_db_url
fast_sqlite_url = support.fast_sqlite_url

SECRET = "test-secret-key-of-some-length"
#: An article of the world's sample, as the email prints it (with its UTM parameters).
ARTICLE = re.compile(r"https://news\.example\.org/(policy|data|care)/\d\?utm_[^\s\"<]+")
TRACKED = re.compile(rf"{re.escape(BASE)}/r/[A-Za-z0-9._-]+/[A-Za-z0-9._-]+")
PIXEL = re.compile(rf'<img src="{re.escape(BASE)}/o/([A-Za-z0-9._-]+)"')


def tracking_world(
    db_url: str,
    root: Path,
    *,
    readers: int = 3,
    clicks: bool = True,
    opens: bool = False,
    **env: str,
) -> World:
    world = web_world(db_url, root, readers=readers, env=env or None)
    config = root / "digest.toml"
    lines = [f"track_clicks = {str(clicks).lower()}", f"track_opens = {str(opens).lower()}"]
    text = config.read_text().replace(
        'sources = ["https://news.example.org/feed.xml"]\n',
        'sources = ["https://news.example.org/feed.xml"]\n' + "\n".join(lines) + "\n",
    )
    config.write_text(text)
    return world


def opt_out(world: World, address: str) -> None:
    with world.app.transaction() as s:
        who = find_subscriber(s, address)
        assert who is not None
        set_tracking(s, who.id, False)


def edition_id(world: World) -> int:
    with world.app.sessions() as s:
        found = s.scalar(select(Edition.id))
    assert found is not None
    return found


def by_reader(messages: list[EmailMessage]) -> dict[str, EmailMessage]:
    return {m["To"].addresses[0].addr_spec: m for m in messages}


def hits(world: World, kind: str) -> int:
    with world.app.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(Hit).where(Hit.kind == kind)) or 0)


def path_of(url: str) -> str:
    return urlsplit(url).path


# ---------------------------------------------------------------------------
# The goal: clicks through tracked links of an SMTP send show on the edition page


def test_an_smtp_send_with_click_tracking_records_clicks_shown_on_the_edition_page(
    fast_db_url: str, tmp_path: Path, smtp_server: SMTPServer
) -> None:
    world = tracking_world(fast_db_url, tmp_path, DIGEST_SMTP_URL=smtp_server.url)
    opt_out(world, "reader2@example.net")
    assert send(world.app, backend="smtp").counts.sent == 3
    mail = by_reader([r.message for r in smtp_server.sink.received])
    assert sorted(mail) == [f"reader{i}@example.net" for i in range(3)]

    html, text = html_of(mail["reader0@example.net"]), text_of(mail["reader0@example.net"])
    # every article link goes through the redirect, in both parts, and no pixel
    assert not re.search(r'href="https://news\.example\.org/(policy|data|care)/', html)
    assert not ARTICLE.search(text)
    html_links = TRACKED.findall(html)
    text_links = TRACKED.findall(text)
    assert html_links and text_links
    assert set(text_links) <= set(html_links)
    assert "/o/" not in html and "~~digest." not in html + text
    # the other reader's links carry their own token; the opted-out reader's go straight
    # to the article
    assert not set(TRACKED.findall(html_of(mail["reader1@example.net"]))) & set(html_links)
    direct = mail["reader2@example.net"]
    assert not TRACKED.search(html_of(direct)) and not TRACKED.search(text_of(direct))
    assert ARTICLE.search(text_of(direct))

    with client_for(world) as client:
        first = client.get(path_of(html_links[0]))
        assert first.status_code == 302
        assert ARTICLE.fullmatch(first.headers["location"])
        again = client.get(path_of(text_links[-1]))
        assert again.status_code == 302 and ARTICLE.fullmatch(again.headers["location"])
        assert hits(world, "click") == 2
        checked = client.head(path_of(html_links[1]))  # a link checker's HEAD counts nothing
        assert checked.status_code == 302 and hits(world, "click") == 2

        sign_in(client)
        page = client.get(f"/admin/editions/{edition_id(world)}")
        api = client.get("/api/editions")
    assert api.status_code == 200
    assert api.json()[0]["tracked"] == {"click": {"readers": 1, "hits": 2}}
    assert page.status_code == 200
    # the link clicked is in the top links with its count, by one reader
    with world.app.sessions() as s:
        clicked = s.scalars(
            select(EditionLink).where(EditionLink.url == first.headers["location"])
        ).one()
    assert clicked.title in page.text
    assert "2 clicks by 1 reader" in page.text
    assert "Clicks per section" in page.text and clicked.section in page.text
    with world.app.sessions() as s:
        (stats,) = edition_stats(s, [s.get(Edition, edition_id(world))])
    assert stats.clickers == 1 and stats.tracked["click"] == (1, 2)
    # every table on the page tells the same story: the "In numbers" table counts the
    # tracked clicks as the chart does, not only the provider's click events (none here)
    numbers = page.text[page.text.index('id="numbers-title"') :]
    numbers = numbers[: numbers.index("</table>")]
    clicked_row = re.search(r"<th scope=\"row\">Clicked</th>(.*?)</tr>", numbers, re.S)
    assert clicked_row is not None
    cells = re.findall(r'<td class="num">([^<]*)</td>', clicked_row.group(1))
    assert cells == ["1", "33.3 %", "2"]


def test_a_tampered_or_foreign_token_gets_a_404_never_a_redirect(
    fast_db_url: str, tmp_path: Path
) -> None:
    world = tracking_world(fast_db_url, tmp_path, readers=1)
    assert send(world.app).counts.sent == 1
    (message,) = outbox_messages(world)
    good = path_of(TRACKED.findall(html_of(message))[0])
    _, _, reader, link = good.split("/")
    link_id = tracking.read_link(SECRET, link)
    edition, subscriber = tracking.read_reader(SECRET, reader)
    forged_link = Signer("another-secret", salt="digest.tracking.link").sign(str(link_id))
    # the last base64 character's spare bits changed: the same signature bytes
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    same_bytes = good[:-1] + alphabet[alphabet.index(good[-1]) ^ 1]
    bad = [
        same_bytes,
        good[:-1] + ("A" if good[-1] != "A" else "B"),  # the link's signature changed
        f"/r/{reader[:-2]}xx/{link}",  # the reader's signature changed
        f"/r/{reader}/{link_id + 1000}.{link.partition('.')[2]}",  # another id, same signature
        f"/r/{reader}/{forged_link.decode()}",  # signed with another secret
        f"/r/{link}/{reader}",  # the parts swapped
        # a genuine link of an edition the reader's token does not name
        f"/r/{tracking.reader_token(SECRET, edition + 1, subscriber)}/{link}",
        "/r/nonsense/more-nonsense",
        f"/o/{reader[:-2]}xx",
    ]
    with client_for(world) as client:
        for path in bad:
            response = client.get(path)
            assert response.status_code == 404, path
            assert "location" not in response.headers
            assert "This link does not work" in response.text
        assert client.get(good).status_code == 302
    assert hits(world, "click") == 1


def test_the_open_pixel_only_when_track_opens_is_on(fast_db_url: str, tmp_path: Path) -> None:
    world = tracking_world(fast_db_url, tmp_path, readers=2, clicks=False, opens=True)
    opt_out(world, "reader1@example.net")
    assert send(world.app).counts.sent == 2
    mail = by_reader(outbox_messages(world))
    html = html_of(mail["reader0@example.net"])
    (token,) = PIXEL.findall(html)
    assert not TRACKED.search(html)  # clicks are not tracked: direct links
    assert not PIXEL.search(html_of(mail["reader1@example.net"]))  # opted out: no pixel
    with client_for(world) as client:
        response = client.get(f"/o/{token}")
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/gif"
        assert response.headers["cache-control"].startswith("no-store")
        client.get(f"/o/{token}")
        sign_in(client)
        page = client.get(f"/admin/editions/{edition_id(world)}")
    assert hits(world, "open") == 2
    assert "2 opens by 1 reader" in page.text


def test_no_pixel_and_no_redirects_when_tracking_is_off(
    fast_sqlite_url: str, tmp_path: Path
) -> None:
    world = tracking_world(fast_sqlite_url, tmp_path, readers=1, clicks=False, opens=False)
    assert send(world.app).counts.sent == 1
    (message,) = outbox_messages(world)
    assert not PIXEL.search(html_of(message)) and not TRACKED.search(html_of(message))
    assert ARTICLE.search(text_of(message))


def test_a_reader_who_opted_out_after_the_send_is_not_counted(
    fast_sqlite_url: str, tmp_path: Path
) -> None:
    """Old tracked links keep leading to the article; nothing is recorded for them."""
    world = tracking_world(fast_sqlite_url, tmp_path, readers=1)
    send(world.app)
    (message,) = outbox_messages(world)
    opt_out(world, "reader0@example.net")
    with client_for(world) as client:
        response = client.get(path_of(TRACKED.findall(html_of(message))[0]))
    assert response.status_code == 302
    assert hits(world, "click") == 0


# ---------------------------------------------------------------------------
# The preferences page: opting out of tracking


def test_a_reader_opts_out_of_tracking_on_the_preferences_page(
    fast_db_url: str, tmp_path: Path
) -> None:
    world = tracking_world(fast_db_url, tmp_path, readers=1)
    send(world.app)
    (message,) = outbox_messages(world)
    preferences = link_path(text_of(message), "p")
    with client_for(world) as client:
        page = client.get(preferences)
        assert 'id="tracking" name="tracking" value="yes"' in page.text and " checked>" in page.text
        token = page_csrf(client, preferences)
        response = client.post(
            preferences, data={"csrf": token, "name": "Reader 0", "lists": ["weekly"]}
        )
        assert response.status_code == 303
    edition = edition_id(world)
    with world.app.sessions() as s:
        who = find_subscriber(s, "reader0@example.net")
        assert who is not None and who.no_tracking
        kinds = s.scalars(select(Event.type).where(Event.edition_id == edition)).all()
    assert kinds == [EventType.PREFERENCES.value]


# ---------------------------------------------------------------------------
# Unsubscribing through an edition's link counts on that edition


@pytest.mark.parametrize("backend", ["outbox", "smtp"])
def test_an_unsubscribe_through_an_editions_link_counts_on_that_edition(
    fast_db_url: str, tmp_path: Path, smtp_server: SMTPServer, backend: str
) -> None:
    world = tracking_world(fast_db_url, tmp_path, readers=2, DIGEST_SMTP_URL=smtp_server.url)
    assert send(world.app, backend=backend).counts.sent == 2
    if backend == "smtp":
        messages = [r.message for r in smtp_server.sink.received]
    else:
        messages = outbox_messages(world)
    mail = by_reader(messages)
    page_path = link_path(text_of(mail["reader0@example.net"]), "u")
    header_path = link_path(str(mail["reader1@example.net"]["List-Unsubscribe"]), "u")
    with client_for(world) as client:
        token = page_csrf(client, page_path)  # the unsubscribe page's button
        assert client.post(page_path, data={"csrf": token}).status_code == 200
        one_click = client.post(  # RFC 8058 one-click, from the header
            header_path,
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert one_click.status_code == 200
        # a second press changes nothing, and counts nothing more
        assert client.post(page_path, data={"csrf": token}).status_code == 200
        sign_in(client)
        page = client.get(f"/admin/editions/{edition_id(world)}")
    with world.app.sessions() as s:
        (stats,) = edition_stats(s, [s.get(Edition, edition_id(world))])
    assert stats.count(EventType.UNSUBSCRIBED) == 2
    assert stats.events[EventType.UNSUBSCRIBED.value] == 2
    assert page.status_code == 200
    assert re.search(
        r"<td class=\"num\">2</td><td class=\"num\">0</td><td class=\"num\">2</td>", page.text
    )


# ---------------------------------------------------------------------------
# The subscriber's timeline


def test_the_subscriber_page_shows_their_activity_newest_first(
    fast_db_url: str, tmp_path: Path
) -> None:
    world = tracking_world(fast_db_url, tmp_path, readers=1)
    send(world.app)
    (message,) = outbox_messages(world)
    with client_for(world) as client:
        client.get(path_of(TRACKED.findall(html_of(message))[0]))
        unsubscribe = link_path(text_of(message), "u")
        client.post(unsubscribe, data={"csrf": page_csrf(client, unsubscribe)})
        sign_in(client)
        with world.app.sessions() as s:
            who = find_subscriber(s, "reader0@example.net")
            assert who is not None
        page = client.get(f"/admin/subscribers/{who.id}")
    assert page.status_code == 200
    table = page.text[page.text.index('id="activity"') :]
    rows = re.findall(r'<tr class="activity-(\w+)">', table)
    # newest first: the unsubscribe (consent log and its edition event), the click, the
    # delivery, then joining the list
    assert rows[-1] == "consent" and "delivery" in rows and "click" in rows
    assert rows.index("click") < rows.index("delivery")
    assert rows.index("consent") < rows.index("click")
    assert "unsubscribed (digest)" in table and "delivery sent" in table
    assert "weekly: active → unsubscribed (unsubscribe-page)" in table


# ---------------------------------------------------------------------------
# Tokens


def test_tokens_read_back_and_sign_as_itsdangerous_does() -> None:
    token = tracking.reader_token(SECRET, 17, 42)
    assert tracking.read_reader(SECRET, token) == (17, 42)
    assert tracking.read_link(SECRET, tracking.link_token(SECRET, 5)) == 5
    signer = tracking._signer(SECRET, "digest.tracking.reader")
    assert token == signer.sign("17-42").decode()
    with pytest.raises(tracking.BadTrackingToken):
        tracking.read_link(SECRET, token)  # a reader token is not a link token
    with pytest.raises(tracking.BadTrackingToken):
        tracking.read_reader("another-secret", token)


def test_unsubscribe_tokens_carry_the_edition_and_old_ones_still_read() -> None:
    new = make_token(SECRET, 42, "unsubscribe", list_name="weekly", edition_id=17)
    link = read_link(SECRET, new, "unsubscribe")
    assert (link.subscriber_id, link.list_name, link.edition_id) == (42, "weekly", 17)
    old = make_token(SECRET, 42, "unsubscribe", list_name="we.ek-ly")
    assert read_link(SECRET, old, "unsubscribe").edition_id is None
    assert (
        read_link(
            SECRET, make_token(SECRET, 42, "preferences", edition_id=3), "preferences"
        ).edition_id
        == 3
    )


def test_the_subscriber_flag_defaults_to_tracking_allowed(
    fast_sqlite_url: str, tmp_path: Path
) -> None:
    world = tracking_world(fast_sqlite_url, tmp_path, readers=1)
    with world.app.sessions() as s:
        assert s.scalar(select(Subscriber.no_tracking)) is False


def test_clicks_are_personal_data_exported_and_erased(fast_db_url: str, tmp_path: Path) -> None:
    from digest.privacy import forget_person, personal_data

    world = tracking_world(fast_db_url, tmp_path, readers=1)
    send(world.app)
    (message,) = outbox_messages(world)
    with client_for(world) as client:
        assert client.get(path_of(TRACKED.findall(html_of(message))[0])).status_code == 302
    with world.app.transaction() as s:
        (click,) = personal_data(s, "reader0@example.net")["clicks_and_opens"]
    assert click["kind"] == "click" and ARTICLE.fullmatch(click["url"])
    with world.app.transaction() as s:
        forget_person(s, "reader0@example.net")
    assert hits(world, "click") == 0


def test_a_burst_of_clicks_on_a_live_server_records_every_one(
    fast_db_url: str, tmp_path: Path
) -> None:
    """Forty readers' clicks at once, through uvicorn: each one a 302 to the article and
    one row, none lost to a locked database."""
    import http.client
    from concurrent.futures import ThreadPoolExecutor

    from tests.test_web_browser import serving

    world = tracking_world(fast_db_url, tmp_path, readers=8)
    send(world.app)
    paths = [
        path_of(url)
        for message in outbox_messages(world)
        for url in TRACKED.findall(html_of(message))[:5]
    ]
    assert len(paths) == 40

    with serving(world) as base:
        port = int(base.rpartition(":")[2])

        def click(path: str) -> tuple[int, str | None]:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                conn.request("GET", path)
                answer = conn.getresponse()
                answer.read()
                return answer.status, answer.getheader("Location")
            finally:
                conn.close()

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(click, paths))
    assert all(status == 302 and ARTICLE.fullmatch(where or "") for status, where in answers)
    assert hits(world, "click") == 40


def test_a_sendgrid_send_with_click_tracking_fills_each_readers_links(
    fast_db_url: str, tmp_path: Path, sendgrid_server: SendGridServer
) -> None:
    """The same tracked variant through SendGrid: one substitution per reader fills their
    part of every link; the contract server's expanded messages are clean."""
    world = tracking_world(
        fast_db_url,
        tmp_path,
        readers=2,
        opens=True,
        SENDGRID_API_KEY=sendgrid_server.api_key,
        DIGEST_SENDGRID_API_HOST=sendgrid_server.url,
    )
    opt_out(world, "reader1@example.net")
    assert send(world.app, backend="sendgrid").counts.sent == 2
    assert all(r.status == 202 and not r.errors for r in sendgrid_server.requests)
    mail = {m.recipient: m for m in sendgrid_server.messages()}
    tracked, direct = mail["reader0@example.net"], mail["reader1@example.net"]
    assert not tracked.unfilled and tracked.html and tracked.text
    links = TRACKED.findall(tracked.html)
    assert links and TRACKED.findall(tracked.text) and PIXEL.search(tracked.html)
    assert direct.html and not TRACKED.search(direct.html) and not PIXEL.search(direct.html)
    with client_for(world) as client:
        response = client.get(path_of(links[0]))
    assert response.status_code == 302 and hits(world, "click") == 1


def test_a_mailto_unsubscribe_counts_on_the_edition(
    fast_db_url: str, tmp_path: Path, smtp_server: SMTPServer
) -> None:
    """The List-Unsubscribe mailto, sent to `digest inbound`, carries the edition too."""
    from tests.support.inbound import inbound_server, lmtp_deliver, sample

    world = tracking_world(fast_db_url, tmp_path, readers=1, DIGEST_SMTP_URL=smtp_server.url)
    assert send(world.app, backend="smtp").counts.sent == 1
    (got,) = smtp_server.sink.received
    mailto = re.search(r"<mailto:([^?]+)\?subject=([^>]+)>", got.message["List-Unsubscribe"])
    assert mailto is not None
    raw = sample(
        "mailto_unsubscribe.eml",
        {"unsubscribe UNSUBSCRIBE-TOKEN": mailto.group(2).replace("%20", " ")},
    )
    raw = raw.replace(b"reader5@example.net", b"reader0@example.net")
    with inbound_server(world.app) as port:
        replies = lmtp_deliver(port, raw, ["unsubscribe@example.org"], "reader0@example.net")
    assert replies == ["250 2.0.0 <unsubscribe@example.org> unsubscribed"]
    edition = edition_id(world)
    with world.app.sessions() as s:
        (stats,) = edition_stats(s, [s.get(Edition, edition)])
    assert stats.count(EventType.UNSUBSCRIBED) == 1


def test_tracked_links_are_written_once_per_variant_not_per_reader(
    fast_sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Personalisation stays a substitution: the variant's links are stored and written
    into the body once, and each reader costs one signed token."""
    world = tracking_world(fast_sqlite_url, tmp_path, readers=12, opens=True)
    calls: list[int] = []
    real = tracking.links_for

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(tracking, "links_for", counted)
    assert send(world.app).counts.sent == 12
    assert len(calls) == 1
    tokens = {PIXEL.findall(html_of(m))[0] for m in outbox_messages(world)}
    assert len(tokens) == 12

"""The SMTP backend against a real aiosmtpd server on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword

from digest.delivery.loop import SendOptions
from digest.delivery.smtp import parse_smtp_url
from digest.errors import ConfigError
from digest.personalize import unfilled
from digest.sender import SendOutcome
from tests.support.smtp_server import SMTPServer, free_port
from tests.support.world import make_world, send

FAST = SendOptions(backoff_base=0.01, backoff_cap=0.05, max_attempts=3, pause_after=3)


def _world(db_url: str, tmp_path: Path, url: str, readers: int = 3):  # type: ignore[no-untyped-def]
    return make_world(db_url, tmp_path, readers=readers, env={"DIGEST_SMTP_URL": url})


def test_delivers_the_outbox_mime_over_one_connection(
    db_url: str, tmp_path: Path, smtp_server: SMTPServer
) -> None:
    world = _world(db_url, tmp_path, smtp_server.url, readers=5)
    report = send(world.app, backend="smtp", options=FAST)
    assert report.counts.sent == 5
    got = smtp_server.sink.received
    assert sorted(r.rcpt_tos[0] for r in got) == [f"reader{i}@example.net" for i in range(5)]
    assert smtp_server.sink.connections == 1
    for r in got:
        msg = r.message
        assert r.mail_from == "news@example.org"
        assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert msg["List-Unsubscribe"].startswith("<https://news.example.org/u/")
        assert not unfilled(r.raw.decode())


def test_temporary_failure_is_retried_once_delivered(
    db_url: str, tmp_path: Path, smtp_server: SMTPServer
) -> None:
    smtp_server.sink.faults.extend(["451 4.3.0 Try again later"])
    world = _world(db_url, tmp_path, smtp_server.url, readers=2)
    report = send(world.app, backend="smtp", options=FAST)
    assert report.counts.sent == 2
    assert sorted(smtp_server.sink.per_recipient().values()) == [1, 1]


def test_rejected_recipient_fails_with_server_reply(
    db_url: str, tmp_path: Path, smtp_server: SMTPServer
) -> None:
    smtp_server.sink.reject["reader1@example.net"] = "550 5.1.1 No such user"
    world = _world(db_url, tmp_path, smtp_server.url, readers=3)
    report = send(world.app, backend="smtp", options=FAST)
    assert report.counts.sent == 2 and report.counts.failed == 1
    from sqlalchemy import select

    from digest.models import Delivery, DeliveryStatus

    with world.app.transaction() as s:
        reason = s.scalar(select(Delivery.reason).where(Delivery.status == DeliveryStatus.FAILED))
    assert reason == "550 5.1.1 No such user"


def test_dead_server_pauses_then_resume_delivers(db_url: str, tmp_path: Path) -> None:
    port = free_port()
    url = f"smtp://127.0.0.1:{port}?starttls=never&timeout=2"
    world = _world(db_url, tmp_path, url, readers=3)
    options = SendOptions(backoff_base=0.01, backoff_cap=0.02, max_attempts=2, pause_after=1)
    report = send(world.app, backend="smtp", options=options)
    assert report.outcome is SendOutcome.PAUSED and "cannot connect to SMTP server 127.0.0.1" in (
        report.pause_reason or ""
    )
    assert report.counts.pending == 3
    with SMTPServer(port) as server:
        resumed = send(world.app, backend="smtp", options=options)
    assert resumed.counts.sent == 3 and resumed.outcome is not SendOutcome.PAUSED
    assert sorted(server.sink.per_recipient().values()) == [1, 1, 1]


def _authenticator(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == b"digest"
        and (auth_data.password == b"s3cret")
    )
    return AuthResult(success=ok, handled=False)


def test_wrong_password_pauses_then_right_one_delivers(db_url: str, tmp_path: Path) -> None:
    with SMTPServer(authenticator=_authenticator, auth_require_tls=False) as server:
        good = f"smtp://digest:s3cret@127.0.0.1:{server.port}?starttls=never&timeout=5"
        bad = good.replace("s3cret", "wrong")
        world = _world(db_url, tmp_path, bad, readers=2)
        report = send(world.app, backend="smtp", options=FAST)
        assert report.outcome is SendOutcome.PAUSED and report.counts.pending == 2
        assert "refused the login" in (report.pause_reason or "")
        assert "DIGEST_SMTP_URL" in (report.pause_reason or "")
        world.app.settings.smtp_url = good
        resumed = send(world.app, backend="smtp", options=FAST)
        assert resumed.counts.sent == 2 and resumed.outcome is not SendOutcome.PAUSED
        assert sorted(server.sink.per_recipient().values()) == [1, 1]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (None, "DIGEST_SMTP_URL is not set"),
        ("http://mail.example.org", "is not an SMTP URL"),
        ("smtp://mail.example.org?starttls=maybe", "starttls='maybe'"),
        ("smtp://user:pw@mail.example.org:notaport", "DIGEST_SMTP_URL"),
        ("smtp://mail.example.org?connections=0", "connections='0'.*1 to 64"),
        ("smtp://mail.example.org?connections=many", "connections='many'"),
    ],
)
def test_bad_smtp_url_is_one_clear_error(url: str | None, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_smtp_url(url)
    assert "pw" not in str(info.value) or "***" in str(info.value)


def test_smtp_url_forms() -> None:
    s = parse_smtp_url("smtps://u%40x:p%3Aw@mail.example.org?timeout=9")
    assert (s.host, s.port, s.implicit_tls, s.username, s.password, s.timeout) == (
        "mail.example.org",
        465,
        True,
        "u@x",
        "p:w",
        9.0,
    )
    s = parse_smtp_url("smtp://mail.example.org?starttls=required")
    assert (s.port, s.implicit_tls, s.starttls) == (587, False, "required")
    assert s.connections is None
    assert parse_smtp_url("smtp://mail.example.org?connections=4").connections == 4


def test_connections_in_the_url_send_over_that_many_connections_at_once(
    db_url: str, tmp_path: Path, smtp_server: SMTPServer
) -> None:
    """``?connections=3``: three sending threads, one connection each (never more, even
    when more threads are asked for), and every reader gets one message."""
    from digest.cli._common import send_options
    from digest.sender import Sender

    url = smtp_server.url + ("&" if "?" in smtp_server.url else "?") + "connections=3"
    world = _world(db_url, tmp_path, url, readers=12)
    assert send_options("smtp", None, None, world.app.settings).concurrency == 3
    assert send_options("smtp", 2, None, world.app.settings).concurrency == 2
    asked = SendOptions(**{**FAST.__dict__, "concurrency": 8})
    assert Sender(world.app, "smtp", options=asked).options.concurrency == 3
    report = send(world.app, backend="smtp", options=asked, batch_size=2)
    assert report.counts.sent == 12
    assert sorted(smtp_server.sink.per_recipient().values()) == [1] * 12
    assert 1 <= smtp_server.sink.connections <= 3


def test_verp_envelope_sender_names_each_delivery(
    db_url: str, tmp_path: Path, smtp_server: SMTPServer
) -> None:
    """With DIGEST_BOUNCE_ADDRESS, MAIL FROM is bounces+TOKEN@domain, a token per
    delivery that reads back to that reader's ledger row; From: stays the newsletter's."""
    from sqlalchemy import select

    from digest.delivery.verp import VerpRef, verp_for
    from digest.models import Delivery

    world = make_world(
        db_url,
        tmp_path,
        readers=3,
        env={
            "DIGEST_SMTP_URL": smtp_server.url,
            "DIGEST_BOUNCE_ADDRESS": "bounces@news.example.org",
        },
    )
    report = send(world.app, backend="smtp", options=FAST)
    assert report.counts.sent == 3
    verp = verp_for("bounces@news.example.org", world.env["DIGEST_SECRET_KEY"])
    with world.app.transaction() as s:
        rows = {d.email: d.id for d in s.scalars(select(Delivery))}
    senders = {r.rcpt_tos[0]: r.mail_from for r in smtp_server.sink.received}
    assert len(set(senders.values())) == 3
    for address, mail_from in senders.items():
        assert mail_from.startswith("bounces+") and mail_from.endswith("@news.example.org")
        assert verp.read(mail_from) == VerpRef("d", rows[address])
    for r in smtp_server.sink.received:
        assert r.message["From"] == "The Weekly <news@example.org>"


def test_edition_unsubscribe_links_name_their_list(
    db_url: str, tmp_path: Path, smtp_server: SMTPServer
) -> None:
    """The List-Unsubscribe URL and mailto carry a token for the edition's list, so
    they leave that list only."""
    from subscribers.tokens import read_link

    world = _world(db_url, tmp_path, smtp_server.url, readers=1)
    send(world.app, backend="smtp", options=FAST)
    (received,) = smtp_server.sink.received
    header = received.message["List-Unsubscribe"]
    token = header.split("/u/", 1)[1].split(">", 1)[0]
    assert f"subject=unsubscribe%20{token}>" in header
    link = read_link(world.env["DIGEST_SECRET_KEY"], token, "unsubscribe")
    assert link.list_name == "weekly"

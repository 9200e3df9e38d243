"""`digest inbound --imap` against a real Dovecot: every message processed and moved to the
processed folder (created when missing), none deleted, nothing done twice."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from digest.app import App
from digest.cli import cli
from digest.delivery.verp import verp_for
from digest.errors import ConfigError
from digest.inbound.imap import ImapError, parse_imap_url, poll
from digest.models import Delivery, Event
from subscribers.models import Status
from subscribers.service import find_subscriber
from tests.support import dovecot as dovecot_support
from tests.support.dovecot import Dovecot
from tests.support.inbound import BOUNCE_ADDRESS, SAMPLE_VERP, sample
from tests.support.world import World, make_world, send

dovecot = dovecot_support.dovecot
dovecot_without_move = dovecot_support.dovecot_without_move

FOLDER = "digest-processed"


def _world(db_url: str, root: Path, server: Dovecot) -> World:
    env = {"DIGEST_BOUNCE_ADDRESS": BOUNCE_ADDRESS, "DIGEST_BOUNCE_IMAP_URL": server.url}
    world = make_world(db_url, root, readers=6, env=env)
    assert send(world.app).counts.sent == 6
    return world


def _verp(world: World, address: str) -> str:
    with world.app.transaction() as s:
        delivery = s.scalars(select(Delivery).where(Delivery.email == address)).one()
        return verp_for(BOUNCE_ADDRESS, world.env["DIGEST_SECRET_KEY"]).sender(delivery.id)


def _mailbox(world: World, server: Dovecot) -> None:
    server.deliver(
        sample("postfix_hard_bounce.eml", {SAMPLE_VERP: _verp(world, "reader0@example.net")})
    )
    server.deliver(
        sample("arf_complaint_yahoo.eml", {SAMPLE_VERP: _verp(world, "reader5@example.net")})
    )
    server.deliver(sample("human_reply.eml"))


def _status(world: World, address: str) -> Status:
    with world.app.transaction() as s:
        reader = find_subscriber(s, address)
        assert reader is not None
        return reader.status


def _events(world: World) -> int:
    with world.app.transaction() as s:
        return int(s.scalar(select(func.count()).select_from(Event)) or 0)


def test_poll_processes_and_moves_every_message_once(
    sqlite_url: str, tmp_path: Path, dovecot: Dovecot
) -> None:
    world = _world(sqlite_url, tmp_path, dovecot)
    _mailbox(world, dovecot)
    settings = parse_imap_url(dovecot.url)

    first = poll(world.app, settings, FOLDER)
    assert (first.messages, first.moved, first.failed) == (3, 3, 0)
    assert first.actions == {"suppressed": 2, "ignored": 1}
    assert _status(world, "reader0@example.net") is Status.BOUNCED
    assert _status(world, "reader5@example.net") is Status.COMPLAINED
    assert dovecot.messages("INBOX") == []
    moved = dovecot.messages(FOLDER)
    assert len(moved) == 3  # moved, none deleted
    assert any(b"Undelivered Mail Returned to Sender" in m for m in moved)
    assert _events(world) == 2

    second = poll(world.app, settings, FOLDER)
    assert (second.messages, second.moved) == (0, 0)

    # the same notice lands again (a mail system's retry): moved, counted once
    dovecot.deliver(moved[0] if b"Undelivered" in moved[0] else moved[1])
    third = poll(world.app, settings, FOLDER)
    assert (third.messages, third.moved, dict(third.actions)) == (1, 1, {"duplicate": 1})
    assert _events(world) == 2
    assert len(dovecot.messages(FOLDER)) == 4


def test_without_move_it_copies_then_removes_only_that_message(
    sqlite_url: str, tmp_path: Path, dovecot_without_move: Dovecot
) -> None:
    server = dovecot_without_move
    world = _world(sqlite_url, tmp_path, server)
    _mailbox(world, server)
    summary = poll(world.app, parse_imap_url(server.url), FOLDER)
    assert (summary.messages, summary.moved) == (3, 3)
    assert len(server.messages(FOLDER)) == 3
    # left flagged \\Deleted in INBOX (no UIDPLUS to expunge it alone), skipped from now on
    again = poll(world.app, parse_imap_url(server.url), FOLDER)
    assert again.messages == 0 and _events(world) == 2


def test_a_failure_leaves_the_message_for_the_next_poll(tmp_path: Path, dovecot: Dovecot) -> None:
    dovecot.deliver(sample("postfix_hard_bounce.eml"))
    broken = App(database_url="postgresql+psycopg://nobody@127.0.0.1:1/none")
    summary = poll(broken, parse_imap_url(dovecot.url), FOLDER)
    assert (summary.messages, summary.moved, summary.failed) == (1, 0, 1)
    assert len(dovecot.messages("INBOX")) == 1
    assert "left in place after an error" in summary.line(FOLDER)


def test_digest_inbound_imap_polls_once(sqlite_url: str, tmp_path: Path, dovecot: Dovecot) -> None:
    world = _world(sqlite_url, tmp_path, dovecot)
    _mailbox(world, dovecot)
    result = CliRunner(env=world.env).invoke(cli, ["inbound", "--imap"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert (
        "imap: 3 messages (1 ignored, 2 suppressed); 3 moved to digest-processed" in result.output
    )


def test_a_wrong_password_is_one_clear_error(tmp_path: Path, dovecot: Dovecot) -> None:
    url = dovecot.url.replace("imap-test-password", "wrong")
    with pytest.raises(ImapError, match="refused the login of 'bounces'"):
        poll(App(database_url=f"sqlite:///{tmp_path / 'd.db'}"), parse_imap_url(url), FOLDER)
    env = {"DIGEST_BOUNCE_IMAP_URL": url, "DIGEST_DATABASE_URL": f"sqlite:///{tmp_path / 'd.db'}"}
    result = CliRunner(env=env).invoke(cli, ["inbound", "--imap"])
    assert result.exit_code == 1
    assert result.output.splitlines()[-1].startswith("error: IMAP server 127.0.0.1:")
    assert "[AUTHENTICATIONFAILED] Authentication failed." in result.output
    assert "wrong" not in result.output  # the password is not repeated


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (None, "DIGEST_BOUNCE_IMAP_URL is not set"),
        ("https://mail.example.org/INBOX", "is not an IMAP URL"),
        ("imaps://mail.example.org/INBOX", "names no user"),
        ("imap://u:p@mail.example.org/INBOX?starttls=maybe", "starttls='maybe'"),
        ("imaps://u:p@mail.example.org/Boîte", "plain ASCII"),
    ],
)
def test_bad_imap_urls(url: str | None, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_imap_url(url)


def test_imap_url_forms() -> None:
    s = parse_imap_url("imaps://bounce%40example.org:p%3Ass@mail.example.org/Bounces%20In")
    assert (s.host, s.port, s.implicit_tls) == ("mail.example.org", 993, True)
    assert (s.username, s.password, s.mailbox) == ("bounce@example.org", "p:ss", "Bounces In")
    plain = parse_imap_url("imap://u:p@127.0.0.1:1143?starttls=never")
    assert (plain.port, plain.starttls, plain.mailbox) == (1143, "never", "INBOX")

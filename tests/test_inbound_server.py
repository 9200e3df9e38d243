"""`digest inbound` over LMTP and SMTP, end to end: an edition sent over SMTP (aiosmtpd)
with VERP envelope senders, then the notices MTAs write handed to the real listener."""

from __future__ import annotations

import email
import email.policy
import re
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import func, select

from digest.app import App
from digest.cli import cli
from digest.models import Delivery, Edition, Event
from digest.stats import edition_stats
from subscribers import privacy
from subscribers.lists import create_list
from subscribers.models import MailingList, Membership, Status, Subscriber, Suppression
from subscribers.service import add_subscriber, find_subscriber
from tests.support import web as support
from tests.support.inbound import (
    BOUNCE_ADDRESS,
    SAMPLE_VERP,
    SAMPLES,
    inbound_server,
    lmtp_deliver,
    sample,
    smtp_deliver,
)
from tests.support.smtp_server import SMTPServer
from tests.support.web import client_for, sign_in, web_world
from tests.support.world import World, send

sqlite_template = support.sqlite_template
fast_db_url = support.fast_db_url
fast_sqlite_url = support.fast_sqlite_url


def _sent_world(db_url: str, root: Path, relay: SMTPServer, readers: int = 3) -> World:
    world = web_world(
        db_url,
        root,
        readers=readers,
        env={"DIGEST_SMTP_URL": relay.url, "DIGEST_BOUNCE_ADDRESS": BOUNCE_ADDRESS},
    )
    report = send(world.app, backend="smtp")
    assert report.counts.sent == readers
    return world


def _envelope_of(relay: SMTPServer, address: str) -> tuple[str, str]:
    """(MAIL FROM, Message-ID) of the message the relay took for ``address``."""
    (got,) = [r for r in relay.sink.received if r.rcpt_tos == [address]]
    return got.mail_from, got.message["Message-ID"]


def test_hard_bounce_over_lmtp_suppresses_the_reader_with_the_dsn_status(
    fast_db_url: str, tmp_path: Path, smtp_server: SMTPServer
) -> None:
    """The issue's "done when": an SMTP send, a Postfix hard-bounce DSN delivered over
    LMTP, and the reader is suppressed with 5.1.1 and the diagnostic on their admin page
    and in `digest subscribers show`; the edition counts the bounce; a redelivered DSN
    counts once."""
    world = _sent_world(fast_db_url, tmp_path, smtp_server)
    verp, message_id = _envelope_of(smtp_server, "reader0@example.net")
    assert verp.startswith("bounces+d") and verp.endswith("@news.example.org")
    dsn = sample(
        "postfix_hard_bounce.eml", {SAMPLE_VERP: verp, "<weekly.1.1@example.org>": message_id}
    )
    with inbound_server(world.app) as port:
        assert lmtp_deliver(port, dsn, [verp]) == [f"250 2.0.0 <{verp}> suppressed"]
        # the MTA hands it over again (a retry): counted and acted on once
        assert lmtp_deliver(port, dsn, [verp]) == [f"250 2.0.0 <{verp}> duplicate"]

    with world.app.transaction() as s:
        reader = find_subscriber(s, "reader0@example.net")
        assert reader is not None and reader.status is Status.BOUNCED
        entry = s.scalars(select(Suppression)).one()
        assert entry.email == "reader0@example.net" and entry.reason.value == "hard_bounce"
        assert "5.1.1" in entry.detail and "User unknown in virtual mailbox table" in entry.detail
        (line,) = [x for x in privacy.describe(s, reader)["consent_log"] if x["to"] == "bounced"]
        assert line["source"] == "inbound" and line["from"] == "active"
        assert "hard bounce 5.1.1 smtp; 550 5.1.1" in line["detail"]
        assert "edition weekly 2026-W47" in line["detail"] and "matched by VERP" in line["detail"]
        (event,) = s.scalars(select(Event)).all()
        delivery = s.scalars(select(Delivery).where(Delivery.subscriber_id == reader.id)).one()
        assert (event.provider, event.type) == ("inbound", "bounced")
        assert (event.edition_id, event.delivery_id) == (delivery.edition_id, delivery.id)
        assert event.payload["status"] == "5.1.1"
        (stats,) = edition_stats(s, s.scalars(select(Edition)).all())
        assert stats.count("bounced") == 1
        others = s.scalars(select(Subscriber).where(Subscriber.id != reader.id)).all()
        assert {o.status for o in others} == {Status.ACTIVE}
        reader_id = reader.id

    with client_for(world) as client:
        sign_in(client)
        page = client.get(f"/admin/subscribers/{reader_id}").text
        assert "bounced" in page and "5.1.1" in page
        assert "User unknown in virtual mailbox table" in page
        edition_page = client.get(f"/admin/editions/{stats.id}").text
        assert re.search(r"Bounced</th><td class=\"num\">1<", edition_page)

    shown = CliRunner(env=world.env).invoke(
        cli, ["subscribers", "show", "reader0@example.net"], catch_exceptions=False
    )
    assert shown.exit_code == 0, shown.output
    assert "suppressed: hard_bounce" in shown.output
    assert "5.1.1" in shown.output and "User unknown in virtual mailbox table" in shown.output


def test_mailto_unsubscribe_leaves_that_list_only(
    fast_db_url: str, tmp_path: Path, smtp_server: SMTPServer
) -> None:
    """The List-Unsubscribe mailto of an edition email, as Gmail sends it, sent to
    `digest inbound`: the reader leaves the edition's list and stays on the other."""
    world = _sent_world(fast_db_url, tmp_path, smtp_server, readers=1)
    with world.app.transaction() as s:
        create_list(s, "monthly", double_opt_in=False)
        add_subscriber(s, "reader0@example.net", "monthly")
    (got,) = smtp_server.sink.received
    mailto = re.search(r"<mailto:([^?]+)\?subject=([^>]+)>", got.message["List-Unsubscribe"])
    assert mailto is not None and mailto.group(1) == "unsubscribe@example.org"
    subject = mailto.group(2).replace("%20", " ")
    raw = sample("mailto_unsubscribe.eml", {"unsubscribe UNSUBSCRIBE-TOKEN": subject})
    raw = raw.replace(b"reader5@example.net", b"reader0@example.net")
    with inbound_server(world.app) as port:
        replies = lmtp_deliver(port, raw, ["unsubscribe@example.org"], "reader0@example.net")
    assert replies == ["250 2.0.0 <unsubscribe@example.org> unsubscribed"]
    with world.app.transaction() as s:
        reader = find_subscriber(s, "reader0@example.net")
        assert reader is not None and reader.status is Status.ACTIVE
        statuses = dict(
            s.execute(
                select(MailingList.name, Membership.status)
                .join(Membership, Membership.list_id == MailingList.id)
                .where(Membership.subscriber_id == reader.id)
            ).all()
        )
        assert statuses == {"weekly": Status.UNSUBSCRIBED, "monthly": Status.ACTIVE}
        line = privacy.describe(s, reader)["consent_log"][-1]
        assert (line["list"], line["to"], line["source"]) == ("weekly", "unsubscribed", "mailto")
        assert line["actor"] == "reader0@example.net"


def test_every_sample_is_answered_250_and_never_breaks_the_server(
    fast_sqlite_url: str, tmp_path: Path
) -> None:
    """Whatever arrives (bounces for nobody we know, replies, garbage), each recipient gets
    a 250 and one log line; nothing is suppressed for a reader digest did not mail."""
    env = {"DIGEST_BOUNCE_ADDRESS": BOUNCE_ADDRESS}
    world = web_world(fast_sqlite_url, tmp_path, readers=2, env=env)
    names = sorted(p.name for p in SAMPLES.glob("*.eml"))
    assert len(names) == 11
    with inbound_server(world.app) as port:
        for name in names:
            (reply,) = lmtp_deliver(port, sample(name), [SAMPLE_VERP])
            assert reply == f"250 2.0.0 <{SAMPLE_VERP}> ignored", name
    with world.app.transaction() as s:
        assert not s.scalars(select(Suppression)).all()
        assert {r.status for r in s.scalars(select(Subscriber))} == {Status.ACTIVE}


def test_lmtp_answers_each_recipient(
    fast_db_url: str, tmp_path: Path, smtp_server: SMTPServer
) -> None:
    """Two recipients in one transaction (two readers' bounces in one batch): one reply
    per recipient after the data (RFC 2033); a recipient that is not an address is
    refused at RCPT."""
    world = _sent_world(fast_db_url, tmp_path, smtp_server)
    first, _ = _envelope_of(smtp_server, "reader0@example.net")
    second, _ = _envelope_of(smtp_server, "reader1@example.net")
    dsn = sample("postfix_hard_bounce.eml", {SAMPLE_VERP: first})
    with inbound_server(world.app) as port:
        replies = lmtp_deliver(port, dsn, [first, "not-an-address", second])
    assert replies == [
        "550 5.1.3 Bad recipient address syntax",
        f"250 2.0.0 <{first}> suppressed",
        f"250 2.0.0 <{second}> suppressed",
    ]
    with world.app.transaction() as s:
        assert {e.email for e in s.scalars(select(Suppression))} == {
            "reader0@example.net",
            "reader1@example.net",
        }


def test_a_failure_answers_451_so_the_mta_tries_again(tmp_path: Path) -> None:
    """The database cannot be reached: nothing is lost, the MTA is told to retry."""
    broken = App(database_url="postgresql+psycopg://nobody@127.0.0.1:1/none")
    dsn = sample("postfix_hard_bounce.eml")
    with inbound_server(broken) as port:
        replies = lmtp_deliver(port, dsn, [SAMPLE_VERP, BOUNCE_ADDRESS])
    assert replies == [
        f"451 4.3.0 <{SAMPLE_VERP}> processing failed, try again later",
        f"451 4.3.0 <{BOUNCE_ADDRESS}> processing failed, try again later",
    ]
    with inbound_server(broken, lmtp=False) as port:
        assert smtp_deliver(port, dsn, [SAMPLE_VERP]).startswith("451 4.3.0")


def test_smtp_listener_for_relays_that_forward_by_smtp(
    fast_db_url: str, tmp_path: Path, smtp_server: SMTPServer
) -> None:
    world = _sent_world(fast_db_url, tmp_path, smtp_server)
    verp, _ = _envelope_of(smtp_server, "reader2@example.net")
    dsn = sample("gmail_hard_bounce.eml", {SAMPLE_VERP: verp})
    with inbound_server(world.app, lmtp=False) as port:
        assert smtp_deliver(port, dsn, [verp]) == "250 2.0.0 OK"
    with world.app.transaction() as s:
        reader = find_subscriber(s, "reader2@example.net")
        assert reader is not None and reader.status is Status.BOUNCED
        assert s.scalar(select(func.count()).select_from(Event)) == 1


def test_digest_inbound_file_processes_a_saved_notice(
    fast_db_url: str, tmp_path: Path, smtp_server: SMTPServer
) -> None:
    world = _sent_world(fast_db_url, tmp_path, smtp_server)
    verp, _ = _envelope_of(smtp_server, "reader1@example.net")
    path = tmp_path / "bounce.eml"
    path.write_bytes(sample("exim_hard_bounce.eml", {SAMPLE_VERP: verp}))
    runner = CliRunner(env=world.env)
    result = runner.invoke(cli, ["inbound", "--file", str(path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"{path}: suppressed: subscriber " in result.output
    assert "hard bounce 5.1.1 550 5.1.1 <reader1@example.net>" in result.output
    again = runner.invoke(cli, ["inbound", "--file", str(path)], catch_exceptions=False)
    assert ": duplicate: " in again.output


def test_digest_inbound_needs_something_to_do() -> None:
    result = CliRunner().invoke(cli, ["inbound"])
    assert result.exit_code == 2 and "say what to do" in result.output
    result = CliRunner().invoke(cli, ["inbound", "--lmtp", "localhost"])
    assert result.exit_code == 2 and "write HOST:PORT" in result.output


def test_message_as_received_is_what_the_relay_got() -> None:
    """The samples parse as the mail they claim to be (a guard on the fixtures)."""
    for path in SAMPLES.glob("*.eml"):
        if path.name == "malformed.eml":
            continue
        msg = email.message_from_bytes(sample(path.name), policy=email.policy.default)
        assert msg["From"], path.name


def test_digest_inbound_lmtp_runs_until_sigterm(
    fast_sqlite_url: str, tmp_path: Path, smtp_server: SMTPServer
) -> None:
    """The command as a service runs it: a real process, a DSN over LMTP, SIGTERM
    (the database does not matter here: SQLite only)."""
    import os
    import signal
    import socket
    import subprocess
    import sys

    from tests.support.smtp_server import free_port

    world = _sent_world(fast_sqlite_url, tmp_path, smtp_server, readers=1)
    verp, _ = _envelope_of(smtp_server, "reader0@example.net")
    port = free_port()
    env = {**os.environ, **world.env}
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from digest.cli import main; main()",
            "inbound",
            "--lmtp",
            f"127.0.0.1:{port}",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        seen = []
        while f"inbound: LMTP on 127.0.0.1:{port}" not in "".join(seen):
            line = process.stderr.readline()  # the listener is up once it says so
            assert line, f"digest inbound exited: {''.join(seen)}"
            seen.append(line)
        with socket.create_connection(("127.0.0.1", port), timeout=10):
            pass
        dsn = sample("postfix_hard_bounce.eml", {SAMPLE_VERP: verp})
        assert lmtp_deliver(port, dsn, [verp]) == [f"250 2.0.0 <{verp}> suppressed"]
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "inbound: stopped" in out
    assert "inbound lmtp: bounce: subscriber 1: suppressed (hard_bounce)" in err

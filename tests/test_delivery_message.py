"""The message every backend sends: headers, MIME layout, Message-IDs."""

from __future__ import annotations

import email
import email.policy
import io
import re
from email.generator import BytesGenerator
from pathlib import Path

import pytest
from sqlalchemy import update

from digest.delivery.message import (
    POLICY,
    Envelope,
    Recipient,
    build_mime,
    encoded_phrase,
    list_id_header,
    message_id,
)
from digest.models import Delivery, DeliveryStatus
from tests.support.world import AS_OF, make_world
from tests.support.world import send as send_edition

FIELDS = {
    "first_name": "Ada",
    "unsubscribe_url": "https://news.example.org/u/u7.AAAA.sig",
    "preferences_url": "https://news.example.org/p/p7.AAAA.sig",
    "web_url": "https://news.example.org/e/weekly/2026-W47/all",
}


def _envelope(**kw: object) -> Envelope:
    base: dict[str, object] = dict(
        newsletter="weekly",
        edition_id=12,
        period="2026-W47",
        variant_key="all",
        sender="news@example.org",
        sender_name="Café Weekly",
        reply_to="Eds <eds@example.org>",
        list_id='"Weekly" <weekly.example.org>',
        subject="Hello ~~digest.text.first_name~~",
        html='<p>Hi ~~digest.html.first_name~~ <a href="~~digest.html.unsubscribe_url~~">x</a></p>',
        text="Hi ~~digest.text.first_name~~\n~~digest.text.unsubscribe_url~~\n",
        unsubscribe_mailto="unsubscribe@example.org",
        message_nonce="5f1c0a9e3b7d2c4e6a8b0d1f",
    )
    base.update(kw)
    return Envelope(**base)  # type: ignore[arg-type]


def test_ledger_message_ids_are_the_editions_nonce_and_the_delivery() -> None:
    env = _envelope()
    rcpt = Recipient(5, 7, "ada@example.net", "Ada Lovelace", FIELDS)
    expected = "<5f1c0a9e3b7d2c4e6a8b0d1f.5@example.org>"
    assert message_id(env, rcpt) == message_id(env, rcpt) == expected


def test_a_ledger_delivery_without_a_nonce_is_a_programming_error() -> None:
    env = _envelope(message_nonce="")
    with pytest.raises(ValueError, match="no message_nonce"):
        message_id(env, Recipient(5, 7, "ada@example.net", "Ada", FIELDS))


def test_mail_outside_the_ledger_gets_a_fresh_message_id() -> None:
    env = _envelope(test=True)
    rcpt = Recipient(None, None, "editor@example.org", "", FIELDS)
    first, second = message_id(env, rcpt), message_id(env, rcpt)
    assert first != second and first.startswith("<test.weekly.") and first.endswith("@example.org>")


def test_mime_round_trip() -> None:
    msg = build_mime(_envelope(), Recipient(5, 7, "ada@example.net", "Ada Lovelace", FIELDS))
    parsed = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    assert parsed["From"] == "Café Weekly <news@example.org>"
    assert parsed["To"] == "Ada Lovelace <ada@example.net>"
    assert parsed["Subject"] == "Hello Ada"
    assert parsed["List-Unsubscribe"] == (
        "<https://news.example.org/u/u7.AAAA.sig>, "
        "<mailto:unsubscribe@example.org?subject=unsubscribe%20u7.AAAA.sig>"
    )
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]
    text = parsed.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Hi Ada" in text and FIELDS["unsubscribe_url"] in text
    assert (
        b"\r\n" in msg.as_bytes() and max(len(line) for line in msg.as_bytes().splitlines()) <= 998
    )


def _raw(msg: email.message.EmailMessage) -> bytes:
    return msg.as_bytes()


def _long_envelope() -> Envelope:
    """Bodies with lines far longer than 76 characters (as MJML's HTML has)."""
    long_html = ("<p>" + " ".join(f"word{i}" for i in range(400)) + " Café</p>\n") * 3
    long_text = "Hi ~~digest.text.first_name~~\n" + "x" * 300 + "\n-- \nfooter\n"
    return _envelope(html=long_html, text=long_text)


def test_bodies_are_quoted_printable_at_76_characters_and_headers_stay_unfolded() -> None:
    """RFC 2045: encoded lines of at most 76 characters (SpamAssassin's
    MIME_QP_LONG_LINE); the long List-Unsubscribe header stays on one line."""
    fields = {**FIELDS, "unsubscribe_url": "https://news.example.org/u/" + "T" * 150}
    msg = build_mime(_long_envelope(), Recipient(5, 7, "ada@example.net", "Ada", fields))
    raw = _raw(msg)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert max(len(line) for line in body.split(b"\r\n")) <= 76
    assert any(
        line.startswith(b"List-Unsubscribe: <https://") and len(line) > 150
        for line in head.split(b"\r\n")
    )
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    html = parsed.get_body(("html",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]
    text = parsed.get_body(("plain",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]
    assert html == _long_envelope().html  # nothing lost in the round trip
    assert text.startswith("Hi Ada\n") and "\n-- \nfooter\n" in text
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only, as SMTP wants


def test_the_date_is_in_rfc_5322s_form() -> None:
    """A numeric zone ("GMT" is obsolete syntax that receivers merely tolerate)."""
    msg = build_mime(_envelope(), Recipient(5, 7, "ada@example.net", "Ada", FIELDS))
    date = re.search(rb"\r\nDate: ([^\r]+)\r\n", _raw(msg))
    assert date is not None
    assert re.fullmatch(rb"[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d \+0000", date[1])


def test_only_the_message_carries_mime_version() -> None:
    msg = build_mime(_envelope(), Recipient(5, 7, "ada@example.net", "Ada", FIELDS))
    parsed = email.message_from_bytes(_raw(msg), policy=email.policy.default)
    assert parsed["MIME-Version"] == "1.0"
    assert [part["MIME-Version"] for part in parsed.iter_parts()] == [None, None]
    assert _raw(msg).count(b"MIME-Version") == 1


def test_the_message_writes_itself_as_the_email_package_would() -> None:
    """The fast writer gives the generator's bytes exactly; a message changed after
    it was built is written by the generator."""
    msg = build_mime(_long_envelope(), Recipient(5, 7, "ada@example.net", "Zoë Ó", FIELDS))
    buf = io.BytesIO()
    BytesGenerator(buf, policy=POLICY).flatten(msg)
    assert msg.as_bytes() == bytes(msg) == buf.getvalue()
    msg.preamble = "This is a multi-part message."
    assert msg.as_bytes().count(b"This is a multi-part message.") == 1


def test_a_name_with_control_characters_still_makes_a_valid_to_header() -> None:
    msg = build_mime(_envelope(), Recipient(5, 7, "ada@example.net", "Ada\r\nBcc: x", FIELDS))
    parsed = email.message_from_bytes(_raw(msg), policy=email.policy.default)
    assert parsed["To"].addresses[0].display_name == "Ada Bcc: x" and parsed["Bcc"] is None


@pytest.mark.parametrize(
    ("title", "decoded"),
    [
        ("Public Sector Digital — The Week", "Public Sector Digital — The Week"),
        ('The "Weekly" \\ Digest', 'The "Weekly" \\ Digest'),
        ("Café: the week, in brief; " + "long " * 20, "Café: the week, in brief; " + "long " * 20),
        ("Tab\there", "Tab here"),
    ],
)
def test_list_id_keeps_the_title_as_a_clean_phrase(title: str, decoded: str) -> None:
    """RFC 2919/2047: a non-ASCII title is encoded, not stripped (an em dash used to
    leave a double space); it reads back exactly."""
    value = list_id_header(title, "weekly", "example.org")
    assert value.isascii() and value.endswith(" <weekly.example.org>")
    assert all(len(word) <= 75 for word in re.findall(r"=\?utf-8\?q\?[^?]*\?=", value))
    msg = email.message.EmailMessage(policy=POLICY)
    msg["List-Id"] = value
    parsed = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    phrase = parsed["List-Id"].rpartition(" <")[0]
    if title.isascii():
        assert phrase == encoded_phrase(decoded)  # a quoted string
        assert email.utils.parseaddr(f"{phrase} <a@b>")[0] == decoded.strip()
    else:
        assert phrase == decoded.strip()


def test_list_id_of_an_internationalised_domain_is_ascii() -> None:
    assert list_id_header("W", "weekly", "bücher.example") == '"W" <weekly.xn--bcher-kva.example>'


def _message_ids(outbox: Path) -> dict[str, str]:
    out = {}
    for path in sorted(outbox.rglob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        out[str(msg["To"])] = str(msg["Message-ID"])
    return out


def test_message_ids_differ_after_a_database_reset_and_stay_on_a_resend(
    db_url: str, tmp_path: Path
) -> None:
    """The same edition and readers in a fresh database (a new install, a staging copy)
    get new Message-IDs; resending an uncertain delivery keeps its Message-ID."""
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    world = make_world(db_url, tmp_path / "one", readers=2)
    send_edition(world.app, "weekly", AS_OF, backend="outbox")
    first = _message_ids(world.outbox)
    fresh = make_world(f"sqlite:///{tmp_path / 'fresh.db'}", tmp_path / "two", readers=2)
    send_edition(fresh.app, "weekly", AS_OF, backend="outbox")
    second = _message_ids(fresh.outbox)
    assert first.keys() == second.keys() and len(first) == 2
    assert not set(first.values()) & set(second.values())
    assert len(set(first.values())) == 2
    for value in first.values():
        assert re.fullmatch(r"<[0-9a-f]{24}\.\d+@example\.org>", value)

    with world.app.transaction() as s:
        s.execute(update(Delivery).values(status=DeliveryStatus.UNCERTAIN))
    for path in world.outbox.rglob("*.eml"):
        path.unlink()
    report = send_edition(world.app, "weekly", AS_OF, backend="outbox", resend_uncertain=True)
    assert report.sent_now == 2
    assert _message_ids(world.outbox) == first

"""The message every backend sends: headers, MIME layout, Message-IDs."""

from __future__ import annotations

import email
import email.policy

from digest.delivery.message import Envelope, Recipient, build_mime, message_id

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
    )
    base.update(kw)
    return Envelope(**base)  # type: ignore[arg-type]


def test_ledger_message_ids_are_stable_per_edition_and_reader() -> None:
    env = _envelope()
    rcpt = Recipient(5, 7, "ada@example.net", "Ada Lovelace", FIELDS)
    assert message_id(env, rcpt) == message_id(env, rcpt) == "<weekly.12.7@example.org>"


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

"""A variant prepared once writes each reader's message byte for byte as build_mime does."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digest.compose import Composer
from digest.config import Settings
from digest.delivery.message import Envelope, Recipient, build_mime
from digest.delivery.prepared import PreparedVariant, wire_bytes
from digest.errors import TemplateError
from digest.personalize import fill_shared, recipient_fields
from tests.data.compose import factory as f

WHEN = datetime(2026, 11, 23, 8, 0, 7, tzinfo=UTC)
BOUNDARY = "=_digest_0123456789abcdef01234567"

NAMES = [
    "Ada Lovelace",
    "Zoë Ó'Brien",
    "José <script>alert(1)</script> & co",
    "李小龍",
    "  ",
    "",
    "Ada\r\nBcc: x",
    ".",
    "=?utf-8?q?x?=",
    "A" * 200,
    "Tab\tName ",
    "Jürgen " + "ß" * 90,
]
ADDRESSES = [
    "ada@example.net",
    "zoe@bücher.example",
    "o'brien+news@sub.example.co.uk",
    "x" * 60 + "@example.org",
]


def _envelope(subject: str, html: str, text: str, **kw: object) -> Envelope:
    values: dict[str, object] = dict(
        newsletter="weekly",
        edition_id=12,
        period="2026-W47",
        variant_key="all",
        sender="news@example.org",
        sender_name="Café Weekly",
        reply_to="Eds <eds@example.org>",
        list_id='"Weekly" <weekly.example.org>',
        subject=subject,
        html=html,
        text=text,
        unsubscribe_mailto="unsubscribe@example.org",
        message_nonce="5f1c0a9e3b7d2c4e6a8b0d1f",
    )
    values.update(kw)
    return Envelope(**values)  # type: ignore[arg-type]


def _same(env: Envelope, rcpt: Recipient) -> None:
    expected = build_mime(env, rcpt, boundary=BOUNDARY, date=WHEN)
    got, message_id = wire_bytes(env, rcpt, boundary=BOUNDARY, date=WHEN)
    assert got == expected.as_bytes()
    assert message_id == expected["Message-ID"]


@pytest.fixture(scope="module")
def composed() -> Envelope:
    """The 40-article digest as the composer renders it (MJML's long HTML lines)."""
    settings_ = Settings(base_url="https://news.example.org")
    nl = f.newsletter()
    variant = Composer(settings_, nl).render(f.collection(f.articles(40), nl))
    shared = {"web_url": "https://news.example.org/e/weekly/2026-W47/all"}
    return _envelope(
        variant.subject,
        fill_shared(variant.html, shared, html=True),
        fill_shared(variant.text, shared, html=False),
    )


def test_the_composed_digest_is_byte_identical_for_many_readers(composed: Envelope) -> None:
    settings_ = Settings(
        base_url="https://news.example.org", secret_key="a-test-secret-of-some-length-1234"
    )
    assert "~~digest.html.first_name~~" in composed.html  # per-reader fields are there
    n = 0
    for sid in range(1, 400):
        name = NAMES[sid % len(NAMES)] + (str(sid) if sid % 3 else "")
        fields = recipient_fields(
            settings_,
            subscriber_id=sid * 7919,
            name=name,
            newsletter="weekly",
            period="2026-W47",
            variant_key="all",
            list_name="weekly",
        )
        _same(composed, Recipient(sid, sid, ADDRESSES[sid % len(ADDRESSES)], name, fields))
        n += 1
    assert n == 399


def test_long_values_and_values_with_line_breaks_are_encoded_as_build_mime_does(
    composed: Envelope,
) -> None:
    for value in ["x" * 500, "é" * 300, "a\nb", "a\r\nb", "a\rb", "nul\x00", "end ", ".", "="]:
        fields = {
            "first_name": value,
            "unsubscribe_url": "https://news.example.org/u/" + "T" * 150,
            "preferences_url": "https://news.example.org/p/" + value,
            "web_url": "w",
        }
        _same(composed, Recipient(3, 3, "ada@example.net", value, fields))


_ALPHABET = st.sampled_from(
    [*"ab .=\t\r\n~-_<>&\"'é€", "\x00", "\x7f", " \n", ".\n", "=\n", "\r\n", "\r\r\n"]
)
_PLACEHOLDERS = st.sampled_from(
    [
        "~~digest.html.first_name~~",
        "~~digest.text.first_name~~",
        "~~digest.html.unsubscribe_url~~",
        "~~digest.text.click_1~~",
    ]
)
_TEXT = st.lists(st.one_of(_ALPHABET, _PLACEHOLDERS, st.text(max_size=90)), max_size=40).map(
    "".join
)
_LINK = st.text(alphabet="abcXYZ019-._~%/?=&", max_size=150)
_VALUE = st.one_of(st.text(max_size=120), st.sampled_from(["", " ", ".", "a" * 80, "é" * 40]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(html=_TEXT, text=_TEXT, name=_VALUE, link=_LINK, click=_VALUE)
def test_any_body_and_any_values_give_build_mimes_bytes(
    html: str, text: str, name: str, link: str, click: str
) -> None:
    """Placeholders anywhere (line starts and ends, next to each other, after a dot or a
    space), values of any length and character: the same bytes.  (Headers cannot carry
    line breaks, so the subject is fixed here and the link a URL.)"""
    env = _envelope("Hello", html, text)
    fields = {
        "first_name": name,
        "unsubscribe_url": "https://e.example/u/" + link,
        "click_1": click,
    }
    rcpt = Recipient(5, 7, "ada@example.net", name, fields)
    _same(env, rcpt)
    # the prepared variant is reused: a second reader after the first
    _same(env, Recipient(6, 8, "bob@example.net", link, {**fields, "first_name": link}))


def test_a_variant_is_encoded_once_and_only_placeholder_lines_per_reader(
    composed: Envelope,
) -> None:
    prepared = PreparedVariant(composed)
    pieces = [p for p in prepared.html.parts if isinstance(p, bytes)]
    assert sum(map(len, pieces)) > len(composed.html) * 0.5  # most of the body, encoded once


def test_a_missing_field_is_the_same_template_error() -> None:
    env = _envelope("Hi", "<p>~~digest.html.nickname~~</p>", "x")
    with pytest.raises(TemplateError, match="nickname"):
        wire_bytes(env, Recipient(5, 7, "ada@example.net", "Ada", {"unsubscribe_url": "u"}))

"""Per-recipient fields: values, filling, SendGrid substitutions, and no leftovers."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from digest.config import Settings
from digest.errors import TemplateError
from digest.personalize import (
    FIELDS,
    fields_used,
    fill_shared,
    first_name,
    personalize,
    placeholder,
    preview_fields,
    recipient_fields,
    substitutions,
    unfilled,
)
from subscribers.tokens import read_token

SETTINGS = Settings(base_url="https://news.example/", secret_key="s3cret-for-tests")


def fields(**overrides: object) -> dict[str, str]:
    args: dict[str, object] = {
        "subscriber_id": 42,
        "name": "Ada Lovelace",
        "newsletter": "weekly",
        "period": "2026-W47",
        "variant_key": "all",
    }
    args.update(overrides)
    return recipient_fields(SETTINGS, **args)  # type: ignore[arg-type]


def test_recipient_fields() -> None:
    got = fields()
    assert set(got) == set(FIELDS)
    assert got["first_name"] == "Ada"
    assert got["web_url"] == "https://news.example/e/weekly/2026-W47/all"
    unsub = urlsplit(got["unsubscribe_url"])
    prefs = urlsplit(got["preferences_url"])
    assert (unsub.scheme, unsub.netloc) == ("https", "news.example")
    assert unsub.path.startswith("/u/") and prefs.path.startswith("/p/")
    secret = SETTINGS.secret_key.get_secret_value()
    assert read_token(secret, unsub.path[3:], "unsubscribe") == 42
    assert read_token(secret, prefs.path[3:], "preferences") == 42
    assert "ada" not in got["unsubscribe_url"].lower()


def test_web_url_quotes_its_parts() -> None:
    got = fields(period="2026-11-20..2026-11-26", variant_key="s-0123456789")
    assert got["web_url"] == "https://news.example/e/weekly/2026-11-20..2026-11-26/s-0123456789"


@pytest.mark.parametrize(
    ("name", "locale", "expected"),
    [
        ("  Grace   Hopper ", "en_GB", "Grace"),
        ("", "en_GB", "there"),
        ("   ", "de_DE", "zusammen"),
        ("", "fr_FR", "à tous"),
        ("\u200bBob\x00 Smith", "en_GB", "Bob"),
        ("~~digest.html.unsubscribe_url~~", "en_GB", "~\u2060~digest.html.unsubscribe_url~\u2060~"),
        ("X" * 100, "en_GB", "X" * 40),
    ],
)
def test_first_name(name: str, locale: str, expected: str) -> None:
    assert first_name(name, locale) == expected


def test_fallback_follows_locale() -> None:
    assert fields(name="", locale="de_DE")["first_name"] == "zusammen"


BODY_HTML = (
    '<p>Hi ~~digest.html.first_name~~,</p><a href="~~digest.html.unsubscribe_url~~">x</a>'
    '<a href="~~digest.html.web_url~~">web</a>'
)
BODY_TEXT = "Hi ~~digest.text.first_name~~,\n~~digest.text.unsubscribe_url~~\n"


def test_personalize_escapes_in_html_only() -> None:
    values = {
        "first_name": '<b>Tom & "Jerry"</b>',
        "unsubscribe_url": "https://news.example/u/tok?a=1&b=2",
        "preferences_url": "https://news.example/p/tok",
        "web_url": "https://news.example/e/weekly/2026-W47/all",
    }
    html = personalize(BODY_HTML, values, html=True)
    assert "Hi &lt;b&gt;Tom &amp; &#34;Jerry&#34;&lt;/b&gt;," in html
    assert 'href="https://news.example/u/tok?a=1&amp;b=2"' in html
    text = personalize(BODY_TEXT, values, html=False)
    assert text == 'Hi <b>Tom & "Jerry"</b>,\nhttps://news.example/u/tok?a=1&b=2\n'
    assert unfilled(html) == [] and unfilled(text) == []


def test_values_are_not_expanded_again() -> None:
    values = {**fields(), "first_name": "~~digest.html.unsubscribe_url~~"}
    # recipient_fields neutralises this already; personalize alone still fills only once
    out = personalize("~~digest.html.first_name~~", values, html=True)
    assert out == "~~digest.html.unsubscribe_url~~"


def test_unknown_or_missing_field_is_an_error() -> None:
    with pytest.raises(TemplateError, match=r"~~digest\.html\.shoe_size~~ has no value"):
        personalize("~~digest.html.shoe_size~~", fields(), html=True)
    partial = {"first_name": "Ada"}
    with pytest.raises(TemplateError, match="unsubscribe_url"):
        personalize(BODY_TEXT, partial, html=False)


def test_unfilled_lists_each_placeholder_once_in_order() -> None:
    body = BODY_HTML + BODY_HTML + "~~digest.text.web_url~~ ~~not.one~~ ~~digest.HTML.x~~"
    assert unfilled(body) == [
        "~~digest.html.first_name~~",
        "~~digest.html.unsubscribe_url~~",
        "~~digest.html.web_url~~",
        "~~digest.text.web_url~~",
    ]


def test_substitutions_match_personalize_when_applied_like_sendgrid() -> None:
    values = {**fields(), "first_name": "Zoë & Co"}
    subs = substitutions(values)
    assert len(subs) == 2 * len(values)
    keys = list(subs)
    # no key contains another, so replacement order cannot matter
    assert not [(a, b) for a in keys for b in keys if a != b and a in b]

    def sendgrid(body: str) -> str:
        for key, value in subs.items():
            body = body.replace(key, value)
        return body

    assert sendgrid(BODY_HTML) == personalize(BODY_HTML, values, html=True)
    assert sendgrid(BODY_TEXT) == personalize(BODY_TEXT, values, html=False)
    assert subs[placeholder("first_name", html=True)] == "Zoë &amp; Co"
    assert subs[placeholder("first_name", html=False)] == "Zoë & Co"


def test_substitutions_for_only_the_fields_asked_for() -> None:
    values = fields()
    subs = substitutions(values, only={"first_name"})
    assert subs == {
        placeholder("first_name", html=True): "Ada",
        placeholder("first_name", html=False): "Ada",
    }


def test_fill_shared_fills_its_fields_and_leaves_the_rest() -> None:
    shared = {"web_url": "https://news.example/e/weekly/2026-W47/all?a=1&b=2"}
    html = fill_shared(BODY_HTML, shared, html=True)
    text = fill_shared(BODY_TEXT + "~~digest.text.web_url~~\n", shared, html=False)
    assert "https://news.example/e/weekly/2026-W47/all?a=1&amp;b=2" in html
    assert "https://news.example/e/weekly/2026-W47/all?a=1&b=2" in text
    assert "web_url" not in fields_used(html) and "web_url" not in fields_used(text)
    # what is left is filled per reader as before, to the same result
    values = fields()
    assert personalize(html, values, html=True) == personalize(
        BODY_HTML, {**values, **shared}, html=True
    )
    assert fields_used(BODY_HTML) == {"first_name", "unsubscribe_url", "web_url"}
    assert fill_shared("no placeholders", shared, html=True) == "no placeholders"


def test_preview_fields() -> None:
    got = preview_fields(SETTINGS, newsletter="weekly", period="2026-W47", variant_key="all")
    assert got == {
        "first_name": "Reader",
        "unsubscribe_url": "https://news.example/u/preview",
        "preferences_url": "https://news.example/p/preview",
        "web_url": "https://news.example/e/weekly/2026-W47/all",
    }

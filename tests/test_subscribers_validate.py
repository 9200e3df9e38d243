"""Addresses, timezones, categories and attributes: validated once, the same everywhere."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

from subscribers.errors import InvalidAddress, InvalidName, InvalidTimezone, UnknownCategory
from subscribers.validate import (
    check_timezone,
    clean_attributes,
    clean_categories,
    clean_name,
    email_hash,
    email_key,
    lookup_key,
    merge_attributes,
    normalise,
)

ROOT = Path(__file__).resolve().parent.parent


def _reference(address: str) -> str | None:
    try:
        return validate_email(
            address.strip(), check_deliverability=False, allow_smtputf8=False
        ).normalized
    except EmailNotValidError:
        return None


def _ours(address: str) -> str | None:
    try:
        return normalise(address)
    except InvalidAddress:
        return None


@pytest.mark.parametrize(
    ("given_", "expected"),
    [
        ("John.Doe@Example.COM", "John.Doe@example.com"),
        ("  ada@example.org \n", "ada@example.org"),
        ("+tag@example.org", "+tag@example.org"),
        ("Postmaster@Example.org", "postmaster@example.org"),  # RFC 2142 names fold
        ("a@xn--bcher-kva.de", "a@bücher.de"),
        ("Unicode@bücher.de", "Unicode@bücher.de"),
    ],
)
def test_normalise_matches_email_validator(given_: str, expected: str) -> None:
    assert normalise(given_) == expected == _reference(given_)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   ",
        "bad@",
        "@example.org",
        "a@@example.org",
        "x@localhost",
        "a@b.invalid",
        "a..b@example.org",
        "Ada <ada@example.org>",
        "a@example.org.",
        f"{'a' * 250}@example.org",
        "zoë@example.ie",  # needs SMTPUTF8, which no backend here sends
    ],
)
def test_invalid_addresses_are_refused_with_the_reason(bad: str) -> None:
    with pytest.raises(InvalidAddress) as exc:
        normalise(bad)
    assert str(exc.value)
    if bad.strip():
        assert _reference(bad) is None  # email-validator agrees
    if not bad.partition("@")[0].isascii():
        assert "needs SMTPUTF8, which is not sent yet" in str(exc.value)


_local = st.text(
    alphabet=st.sampled_from("abcXYZ019.+-_'!#$%&*/=?^`{|}~\"@ é"), min_size=0, max_size=70
)
_domain = st.sampled_from(
    [
        "example.org",
        "EXAMPLE.com",
        "sub.example.co.uk",
        "localhost",
        "x.invalid",
        "bücher.de",
        "xn--bcher-kva.de",
        "exa_mple.org",
        "-bad.org",
        "a.b",
        "example.org.",
        "1.2.3.4",
        "[127.0.0.1]",
        "",
    ]
)


@settings(max_examples=400, deadline=None)
@given(local=_local, domain=_domain, at=st.sampled_from(["@", "@@", ""]))
def test_fast_path_agrees_with_email_validator(local: str, domain: str, at: str) -> None:
    address = f"{local}{at}{domain}"
    assert _ours(address) == _reference(address)


def test_key_and_hash_ignore_case() -> None:
    assert email_key("Ada@Example.ORG") == email_key("ada@example.org") == "ada@example.org"
    assert email_hash(email_key("ADA@example.org")) == email_hash("ada@example.org")
    assert len(email_hash("ada@example.org")) == 64
    assert lookup_key("  Not An Address ") == "not an address"


def test_timezone() -> None:
    assert check_timezone("Europe/London") == "Europe/London"
    with pytest.raises(InvalidTimezone, match="IANA"):
        check_timezone("Mars/Base")


def test_categories_are_matched_to_the_configured_spelling() -> None:
    known = ["Data and security", "Change Management", "Other"]
    assert clean_categories(
        ["data AND security", " Change  management", "Data and security"], known
    ) == ["Data and security", "Change Management"]
    assert clean_categories(["Anything", ""], None) == ["Anything"]
    with pytest.raises(UnknownCategory, match=r"'Cooking'.*Data and security"):
        clean_categories(["Cooking"], known)


def test_choosing_every_offered_section_means_everything() -> None:
    """One rule for every entry point: the sections offered (the preferences page's
    named ones), all chosen, are stored as [] = every section, "Other" included."""
    known = ["Science", "Culture", "Local", "Other"]
    offered = ["Science", "Culture", "Local"]
    assert clean_categories(["Science", "Culture", "Local"], known, everything=offered) == []
    assert (
        clean_categories(["local", "Other", "science", "culture"], known, everything=offered) == []
    )
    assert clean_categories(["Science", "Other"], known, everything=offered) == ["Science", "Other"]
    # without a separate offer, all known categories chosen is everything too
    assert clean_categories(offered, offered) == []
    assert clean_categories(["Science", "Culture"], offered) == ["Science", "Culture"]


def test_attributes_are_text_and_empty_removes() -> None:
    updates = clean_attributes({"sector": " health ", "employees": 50, "region": "", "x": None})
    assert updates == {"sector": "health", "employees": "50", "region": None, "x": None}
    assert merge_attributes({"region": "north", "keep": "yes"}, updates) == {
        "keep": "yes",
        "sector": "health",
        "employees": "50",
    }
    with pytest.raises(InvalidName):
        clean_attributes({'bad"name': "x"})


def test_subscribers_never_imports_digest() -> None:
    code = (
        "import sys, subscribers, subscribers.io, subscribers.service, subscribers.segments, "
        "subscribers.tokens, subscribers.lists, subscribers.suppression, subscribers.validate\n"
        "bad = sorted(m for m in sys.modules if m == 'digest' or m.startswith('digest.'))\n"
        "print(','.join(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == ""
    for path in (ROOT / "subscribers").rglob("*.py"):
        text = path.read_text()
        assert "import digest" not in text and "from digest" not in text, path


# ---------------------------------------------------------------------------
# Names: one cleaner for every way in


@pytest.mark.parametrize(
    ("given_", "kept"),
    [
        ("  Ann Reader ", "Ann Reader"),
        ("Ann\tReader", "Ann Reader"),
        ("Ann \x1b[31mReader\x07", "Ann [31mReader"),
        ("Ann\u2028Reader\u0085", "Ann Reader"),
        ("Zoë 👩\u200d💻", "Zoë 👩\u200d💻"),  # a ZWJ emoji is kept whole
        ('=HYPERLINK("https://x")', '=HYPERLINK("https://x")'),  # text in an email
        ("", ""),
        (None, ""),
    ],
)
def test_names_lose_control_characters(given_: str | None, kept: str) -> None:
    assert clean_name(given_) == kept


@pytest.mark.parametrize(
    ("bad", "what"),
    [
        ("Ann\x00", "a NUL character"),
        ("Ann\r\nBcc: everyone@example.org", "a line break"),
        ("Ann\n", "a line break"),
        ("x" * 201, "201 characters long; at most 200"),
    ],
)
def test_names_that_would_break_a_header_are_refused_clearly(bad: str, what: str) -> None:
    with pytest.raises(InvalidName, match=what):
        clean_name(bad)


def test_every_way_in_cleans_names(session: object) -> None:
    from sqlalchemy.orm import Session

    from subscribers import io as subscribers_io
    from subscribers import lists, service

    assert isinstance(session, Session)
    lists.create_list(session, "weekly")
    with pytest.raises(InvalidName, match="NUL"):
        service.add_subscriber(session, "a@example.org", "weekly", name="A\x00")
    added = service.add_subscriber(session, "a@example.org", "weekly", name=" A\tB ")
    assert added.subscriber.name == "A B"
    with pytest.raises(InvalidName, match="line break"):
        service.update_subscriber(session, added.subscriber.id, name="A\r\nB")
    assert service.update_subscriber(session, added.subscriber.id, name="C\x1bD")
    assert added.subscriber.name == "C D"
    csv = b'email,name\nb@example.org,"B\x00"\nc@example.org,"C\r\nD"\nd@example.org,D\x07\n'
    report = subscribers_io.import_csv(session, csv, "weekly")
    assert [(r.line, r.outcome) for r in report.rows if r.outcome == "rejected"] == [
        (2, "rejected"),
        (3, "rejected"),
    ]
    assert all("bad name: " in r.reason for r in report.rejected)
    assert service.get_subscriber(session, "d@example.org").name == "D"

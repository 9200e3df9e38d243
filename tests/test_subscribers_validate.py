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
    email_hash,
    email_key,
    lookup_key,
    merge_attributes,
    normalise,
)

ROOT = Path(__file__).resolve().parent.parent


def _reference(address: str) -> str | None:
    try:
        return validate_email(address.strip(), check_deliverability=False).normalized
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
        ("Ünïcode@bücher.de", "Ünïcode@bücher.de"),
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
    ],
)
def test_invalid_addresses_are_refused_with_the_reason(bad: str) -> None:
    with pytest.raises(InvalidAddress) as exc:
        normalise(bad)
    assert str(exc.value)
    if bad.strip():
        assert _reference(bad) is None  # email-validator agrees


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

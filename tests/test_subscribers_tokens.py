"""Link tokens: bound to one subscriber and one purpose, signed, expiring."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from subscribers.errors import BadToken
from subscribers.tokens import DEFAULT_MAX_AGE, PURPOSES, Link, make_token, read_link, read_token

SECRET = "s3cret-for-tests"
T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize("purpose", list(PURPOSES))
def test_round_trip(purpose: str) -> None:
    token = make_token(SECRET, 42, purpose)
    assert read_token(SECRET, token, purpose) == 42


def test_fast_signing_gives_itsdangerous_bytes() -> None:
    """make_token's fast path (a copied keyed HMAC) signs exactly as itsdangerous does."""
    import time_machine

    with time_machine.travel(T0, tick=False):
        for sid in (1, 42, 1_234_567):
            for purpose in PURPOSES:
                assert make_token(SECRET, sid, purpose) == make_token(SECRET, sid, purpose, now=T0)
    with time_machine.travel(T0 + timedelta(seconds=1), tick=False):
        later = make_token(SECRET, 42, "unsubscribe")  # a new second, a new stamp
    assert later == make_token(SECRET, 42, "unsubscribe", now=T0 + timedelta(seconds=1))
    assert later != make_token(SECRET, 42, "unsubscribe", now=T0)


def test_tokens_are_url_safe_and_compact() -> None:
    token = make_token(SECRET, 1_234_567, "unsubscribe")
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", token)
    assert len(token) < 80


def test_tampered_token_is_rejected() -> None:
    token = make_token(SECRET, 42, "unsubscribe")
    forged = token.replace("u42.", "u43.", 1)
    assert forged != token
    with pytest.raises(BadToken, match="damaged"):
        read_token(SECRET, forged, "unsubscribe")
    # Change a character in the middle of the signature: the last base64 character
    # may carry only padding bits, so changing it can decode to the same bytes.
    head, _, signature = token.rpartition(".")
    middle = len(signature) // 2
    swapped = "A" if signature[middle] != "A" else "B"
    flipped = f"{head}.{signature[:middle]}{swapped}{signature[middle + 1 :]}"
    with pytest.raises(BadToken, match="damaged"):
        read_token(SECRET, flipped, "unsubscribe")
    with pytest.raises(BadToken, match="damaged"):
        read_token(SECRET, "not-a-token", "unsubscribe")


def test_other_secret_is_rejected() -> None:
    token = make_token(SECRET, 42, "confirm")
    with pytest.raises(BadToken, match="bad signature"):
        read_token("another-secret", token, "confirm")


def test_wrong_purpose_is_rejected_and_named() -> None:
    token = make_token(SECRET, 42, "confirm")
    with pytest.raises(BadToken, match="this is a confirm link, not a unsubscribe link"):
        read_token(SECRET, token, "unsubscribe")
    with pytest.raises(BadToken, match="confirm link, not a preferences link"):
        read_token(SECRET, token, "preferences")


def test_expiry_with_a_controlled_clock() -> None:
    token = make_token(SECRET, 7, "confirm", now=T0)
    week = DEFAULT_MAX_AGE["confirm"]
    assert read_token(SECRET, token, "confirm", now=T0 + timedelta(seconds=week)) == 7
    with pytest.raises(BadToken, match=r"expired \(issued 2026-11-23\).*7 days"):
        read_token(SECRET, token, "confirm", now=T0 + timedelta(seconds=week + 1))
    # An explicit max_age overrides the default.
    with pytest.raises(BadToken, match="expired"):
        read_token(SECRET, token, "confirm", max_age=60, now=T0 + timedelta(minutes=2))
    assert read_token(SECRET, token, "confirm", max_age=0, now=T0) == 7


def test_unsubscribe_links_last_for_years() -> None:
    token = make_token(SECRET, 9, "unsubscribe", now=T0)
    assert read_token(SECRET, token, "unsubscribe", now=T0 + timedelta(days=700)) == 9
    assert DEFAULT_MAX_AGE["unsubscribe"] >= 365 * 24 * 3600
    assert DEFAULT_MAX_AGE["confirm"] == 7 * 24 * 3600


def test_token_from_the_future_is_rejected() -> None:
    token = make_token(SECRET, 9, "preferences", now=T0 + timedelta(days=1))
    with pytest.raises(BadToken, match="future"):
        read_token(SECRET, token, "preferences", now=T0)


@pytest.mark.parametrize("bad_id", [0, -1, True, "42"])
def test_bad_ids_and_purposes_are_programming_errors(bad_id: object) -> None:
    with pytest.raises(ValueError):
        make_token(SECRET, bad_id, "confirm")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown token purpose"):
        make_token(SECRET, 1, "login")
    with pytest.raises(ValueError, match="DIGEST_SECRET_KEY"):
        make_token("", 1, "confirm")


def test_a_token_can_name_the_list_its_email_came_from() -> None:
    token = make_token(SECRET, 42, "unsubscribe", list_name="the-weekly.v2")
    assert read_link(SECRET, token, "unsubscribe") == Link(42, "the-weekly.v2")
    assert read_token(SECRET, token, "unsubscribe") == 42
    assert token.startswith("u42-the-weekly.v2.") and len(token) < 80
    # the fast path signs the same bytes as itsdangerous
    import time_machine

    with time_machine.travel(T0, tick=False):
        fast = make_token(SECRET, 42, "confirm", list_name="weekly")
    assert fast == make_token(SECRET, 42, "confirm", list_name="weekly", now=T0)
    with pytest.raises(ValueError, match="not a list name"):
        make_token(SECRET, 42, "unsubscribe", list_name="two words")


def test_old_tokens_without_a_list_still_work() -> None:
    """Links in emails sent before tokens carried the list read as "no list"."""
    old = make_token(SECRET, 42, "unsubscribe", now=T0)
    assert read_link(SECRET, old, "unsubscribe", now=T0) == Link(42, None)

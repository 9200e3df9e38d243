"""VERP addresses: one per message, signed, read back whatever the case."""

from __future__ import annotations

import pytest

from digest.delivery.verp import Verp, VerpRef, verp_for

SECRET = "test-secret-key-of-some-length"


def test_a_delivery_token_reads_back_to_its_delivery() -> None:
    verp = Verp("bounces@news.example.org", SECRET)
    address = verp.sender(12345)
    local, _, domain = address.partition("@")
    assert domain == "news.example.org" and local.startswith("bounces+d")
    assert verp.read(address) == VerpRef("d", 12345)
    # mail systems may fold the case, or hand the address over in angle brackets
    assert verp.read(address.upper()) == VerpRef("d", 12345)
    assert verp.read(f"<{address}>") == VerpRef("d", 12345)


def test_a_reader_token_without_a_delivery_and_the_plain_address_without_either() -> None:
    verp = verp_for("bounces@news.example.org", SECRET)
    assert verp.read(verp.sender(None, 7)) == VerpRef("s", 7)
    assert verp.sender(None, None) == "bounces@news.example.org"
    assert verp.read("bounces@news.example.org") is None


@pytest.mark.parametrize(
    "mangle",
    [
        lambda a: a.replace("bounces+d", "bounces+s"),  # another kind
        lambda a: a.replace("+d", "+d1"),  # another id
        lambda a: a[: a.index("@") - 1] + "0" + a[a.index("@") :],  # the signature changed
        lambda a: a.replace("news.example.org", "example.com"),  # not our domain
        lambda a: a.replace("bounces+", "replies+"),  # not our local part
        lambda a: a.split("-")[0] + "@news.example.org",  # the signature cut off
    ],
)
def test_a_changed_or_made_up_token_is_not_read(mangle) -> None:  # type: ignore[no-untyped-def]
    verp = Verp("bounces@news.example.org", SECRET)
    address = verp.sender(4242)
    assert mangle(address) != address
    assert verp.read(mangle(address)) is None


def test_another_secret_does_not_read_our_tokens() -> None:
    ours = Verp("bounces@news.example.org", SECRET)
    theirs = Verp("bounces@news.example.org", "another-secret")
    assert theirs.read(ours.sender(99)) is None


def test_the_largest_ids_fit_a_local_part() -> None:
    verp = Verp("bounces@news.example.org", SECRET)
    address = verp.sender(2**63 - 1)
    assert len(address.partition("@")[0]) <= 64  # RFC 5321's limit
    assert verp.read(address) == VerpRef("d", 2**63 - 1)
    assert address == address.lower() and address.isascii()

"""Signed, expiring link tokens for confirm, unsubscribe and preferences links.

A token is ``<purpose letter><subscriber id>[e<edition>][-<list>].<timestamp>.<signature>``
signed with itsdangerous (HMAC-SHA256 over the whole, keyed by the app secret), e.g.
``u42-weekly.ZyX1aQ.3vQ…``: URL-safe and about 60 characters, short enough for a
``List-Unsubscribe`` header.  The purpose is part of the signed value, so a
confirm token can never be used as an unsubscribe token, and :func:`read_token`
can say which of the three things went wrong: tampered, expired, wrong purpose.

The list (a list name: letters, digits, ``.``, ``-``, ``_``) is the one the email
came from: an unsubscribe link leaves that list only, a confirm link joins it.
Tokens made before lists were carried (``u42.…``) still work and read as "no list"
(:func:`read_link` gives ``list_name=None``; the web app then acts on every list).

The edition (an id, ``u42e17-weekly``) is that of the email the link came in: what the
reader does through it (unsubscribing, changing preferences) counts as an event of that
edition.  Links outside editions (confirmation emails, the web pages) carry none.

Default lifetimes (``DEFAULT_MAX_AGE``):

* ``confirm``: 7 days: a double opt-in link is used soon or not at all;
* ``unsubscribe``: 2 years: links in old emails must keep working (RFC 8058
  one-click, and the law, expect unsubscribing to stay possible long after sending);
* ``preferences``: 1 year.

Rotating the secret invalidates every outstanding token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Final

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner

from subscribers.errors import BadToken

DAY: Final = 24 * 60 * 60

PURPOSES: Final = {"confirm": "c", "unsubscribe": "u", "preferences": "p"}
_BY_LETTER: Final = {letter: purpose for purpose, letter in PURPOSES.items()}

DEFAULT_MAX_AGE: Final = {
    "confirm": 7 * DAY,
    "unsubscribe": 730 * DAY,
    "preferences": 365 * DAY,
}

_SALT: Final = "subscribers.tokens"
#: The list part: a list name (see subscribers.lists.check_list_name).
_LIST = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


@dataclass(frozen=True)
class Link:
    """What a token says: whose link it is, and for which list (None: not said)."""

    subscriber_id: int
    list_name: str | None
    #: The edition whose email carried the link (None: not from an edition).
    edition_id: int | None = None


class _Signer(TimestampSigner):
    """A TimestampSigner whose clock can be fixed (tests, and reproducible links)."""

    def __init__(self, secret: str, now: datetime | None) -> None:
        super().__init__(secret, salt=_SALT, digest_method=hashlib.sha256)
        self._now = now
        self._key = super().derive_key()

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        # itsdangerous derives the key again for every signature; it never changes here
        return self._key if secret_key is None else super().derive_key(secret_key)

    def get_timestamp(self) -> int:
        if self._now is None:
            return super().get_timestamp()
        return int(self._now.timestamp())


def _letter(purpose: str) -> str:
    try:
        return PURPOSES[purpose]
    except KeyError:
        raise ValueError(
            f"unknown token purpose {purpose!r}; use one of {', '.join(PURPOSES)}"
        ) from None


def _check_secret(secret: str) -> None:
    if not secret:
        raise ValueError("an empty secret cannot sign tokens; set DIGEST_SECRET_KEY")


def make_token(
    secret: str,
    subscriber_id: int,
    purpose: str,
    *,
    list_name: str | None = None,
    edition_id: int | None = None,
    now: datetime | None = None,
) -> str:
    """A URL-safe token for ``purpose`` (confirm, unsubscribe, preferences), one
    subscriber and, if given, the list and the edition the email came from."""
    _check_secret(secret)
    letter = _letter(purpose)
    if isinstance(subscriber_id, bool) or not isinstance(subscriber_id, int) or subscriber_id < 1:
        raise ValueError(f"subscriber id must be a positive integer, not {subscriber_id!r}")
    value = f"{letter}{subscriber_id}"
    if edition_id is not None:
        if isinstance(edition_id, bool) or not isinstance(edition_id, int) or edition_id < 1:
            raise ValueError(f"edition id must be a positive integer, not {edition_id!r}")
        value += f"e{edition_id}"
    if list_name is not None:
        if not _LIST.fullmatch(list_name):
            raise ValueError(f"{list_name!r} is not a list name")
        value += f"-{list_name}"
    if now is not None:
        return _Signer(secret, now).sign(value).decode("ascii")
    return _minter(secret).sign(value)


@lru_cache(maxsize=8)
def _signer(secret: str) -> _Signer:
    """One signer (and derived key) per secret: a send makes two tokens per reader."""
    return _Signer(secret, None)


class _Minter:
    """Signs exactly as :class:`_Signer` does (the same bytes), in half the time.

    A send makes two tokens per reader, so this is on the hot path: the keyed
    HMAC state is built once and copied per token (instead of re-keying), and
    the encoded timestamp is kept for the second it stands for.
    """

    def __init__(self, secret: str) -> None:
        self._mac = hmac.new(_signer(secret).derive_key(), digestmod=hashlib.sha256)
        self._stamp: tuple[int, str] = (-1, "")

    def sign(self, value: str) -> str:
        now = int(time.time())
        stamp = self._stamp
        if stamp[0] != now:
            stamp = self._stamp = (now, _b64(now.to_bytes(8, "big").lstrip(b"\x00")))
        signed = f"{value}.{stamp[1]}"
        mac = self._mac.copy()
        mac.update(signed.encode("ascii"))
        return f"{signed}.{_b64(mac.digest())}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@lru_cache(maxsize=8)
def _minter(secret: str) -> _Minter:
    return _Minter(secret)


def read_token(
    secret: str,
    token: str,
    purpose: str,
    max_age: int | None = None,
    *,
    now: datetime | None = None,
) -> int:
    """The subscriber id in ``token``; :class:`BadToken` when it is tampered with, older
    than ``max_age`` seconds (default: ``DEFAULT_MAX_AGE[purpose]``) or for another purpose."""
    return read_link(secret, token, purpose, max_age, now=now).subscriber_id


def read_link(
    secret: str,
    token: str,
    purpose: str,
    max_age: int | None = None,
    *,
    now: datetime | None = None,
) -> Link:
    """The subscriber id and the list (None when the token names none) in ``token``;
    :class:`BadToken` as for :func:`read_token`."""
    _check_secret(secret)
    letter = _letter(purpose)
    limit = DEFAULT_MAX_AGE[purpose] if max_age is None else max_age
    signer = _signer(secret) if now is None else _Signer(secret, now)
    try:
        value = signer.unsign(token.strip(), max_age=limit)
    except SignatureExpired as exc:
        when = exc.date_signed.astimezone(UTC) if exc.date_signed else None
        if when is not None and when > (now or datetime.now(UTC)):
            raise BadToken(
                f"this {purpose} link is dated in the future ({when:%Y-%m-%d %H:%M} UTC); "
                "check the server clock"
            ) from None
        issued = f" (issued {when:%Y-%m-%d})" if when else ""
        raise BadToken(
            f"this {purpose} link has expired{issued}; links of this kind last "
            f"{_describe_age(limit)}, so ask for a new one"
        ) from None
    except (BadSignature, UnicodeError):
        raise BadToken(
            f"this {purpose} link is damaged or was not issued by us (bad signature); "
            "copy the whole link from the email"
        ) from None
    text = value.decode("ascii", "replace")
    got_letter, rest = text[:1], text[1:]
    if got_letter != letter:
        other = _BY_LETTER.get(got_letter, "another purpose")
        raise BadToken(f"this is a {other} link, not a {purpose} link")
    ids, dash, list_name = rest.partition("-")
    digits, has_edition, edition = ids.partition("e")
    if (
        not digits.isdigit()
        or (has_edition and not edition.isdigit())
        or (dash and not _LIST.fullmatch(list_name))
    ):
        # only possible with a leaked secret or a bug: say so
        raise BadToken(f"this {purpose} link carries no subscriber id")
    return Link(int(digits), list_name if dash else None, int(edition) if has_edition else None)


def _describe_age(seconds: int) -> str:
    if seconds >= DAY and seconds % DAY == 0:
        days = seconds // DAY
        return f"{days} day{'s' if days != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


__all__ = ["DEFAULT_MAX_AGE", "PURPOSES", "Link", "make_token", "read_link", "read_token"]

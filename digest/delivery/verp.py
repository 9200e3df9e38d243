"""VERP: an envelope sender per message, so a bounce says whose message it was.

With ``DIGEST_BOUNCE_ADDRESS=bounces@news.example.org`` every SMTP message goes out
with ``MAIL FROM:<bounces+TOKEN@news.example.org>``.  The receiving side keeps that
address as the message's ``Return-Path`` and sends any bounce to it, so the bounce
arrives (through the MTA, at ``digest inbound``) addressed to the token: the reader
and the edition are known without reading the bounce at all.

A token is ``<kind><id>-<signature>``, lower case, e.g. ``d9ix-5c0e2f6a91b3``:

* ``kind`` is ``d`` for a delivery (a ledger row: its edition and reader) or ``s``
  for a reader outside any edition (a confirmation email);
* ``id`` is the row id in base 36;
* the signature is the first 12 hex digits (48 bits) of an HMAC-SHA256 keyed by
  ``DIGEST_SECRET_KEY``, so nobody can make up a token to suppress someone else.

Everything is lower case and in ``[0-9a-z-]``: mail systems that fold the local part's
case, or quote it, do not break it.  An address of the length digest uses is far
below RFC 5321's 64-character limit for local parts.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

#: ``d``: a delivery (ledger row id); ``s``: a subscriber (no ledger row).
Kind = Literal["d", "s"]
SIGNATURE_CHARS = 12
_TOKEN = re.compile(rf"([ds])([0-9a-z]{{1,13}})-([0-9a-f]{{{SIGNATURE_CHARS}}})")
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class VerpRef:
    """What a token names: a delivery or a subscriber, by id."""

    kind: Kind
    id: int


def _base36(number: int) -> str:
    out = ""
    while True:
        number, digit = divmod(number, 36)
        out = _DIGITS[digit] + out
        if not number:
            return out


class Verp:
    """Builds and reads VERP addresses for one bounce address and one secret."""

    def __init__(self, bounce_address: str, secret: str) -> None:
        if not secret:
            raise ValueError("an empty secret cannot sign VERP tokens; set DIGEST_SECRET_KEY")
        local, _, domain = bounce_address.strip().rpartition("@")
        if not local or not domain:
            raise ValueError(f"{bounce_address!r} is not an address")
        self.address = f"{local}@{domain}"
        self.local = local
        self.domain = domain
        self._prefix = f"{local}+"
        self._suffix = f"@{domain}"
        key = hmac.new(secret.encode("utf-8"), b"digest.verp", hashlib.sha256).digest()
        self._mac = hmac.new(key, digestmod=hashlib.sha256)

    # -- building ---------------------------------------------------------
    def _sign(self, payload: str) -> str:
        mac = self._mac.copy()
        mac.update(payload.encode("ascii"))
        return mac.hexdigest()[:SIGNATURE_CHARS]

    def token(self, kind: Kind, ident: int) -> str:
        payload = f"{kind}{_base36(ident)}"
        return f"{payload}-{self._sign(payload)}"

    def sender(self, delivery_id: int | None, subscriber_id: int | None = None) -> str:
        """The envelope sender for a message: the delivery's token, else the reader's,
        else the plain bounce address (a test copy to an editor)."""
        if delivery_id is not None and delivery_id > 0:
            return f"{self._prefix}{self.token('d', delivery_id)}{self._suffix}"
        if subscriber_id is not None and subscriber_id > 0:
            return f"{self._prefix}{self.token('s', subscriber_id)}{self._suffix}"
        return self.address

    # -- reading ----------------------------------------------------------
    def is_ours(self, address: str) -> bool:
        """Whether ``address`` is the bounce address, with or without a token."""
        local, _, domain = address.strip().strip("<>").rpartition("@")
        base = local.partition("+")[0]
        return base.lower() == self.local.lower() and domain.lower() == self.domain.lower()

    def read(self, address: str) -> VerpRef | None:
        """What the token in ``address`` names; None when the address is not ours, carries
        no token, or the token is damaged or was not signed with our secret."""
        if not self.is_ours(address):
            return None
        local = address.strip().strip("<>").rpartition("@")[0]
        _, plus, token = local.partition("+")
        found = _TOKEN.fullmatch(token.lower()) if plus else None
        if found is None:
            return None
        kind, digits, signature = found.groups()
        if not hmac.compare_digest(self._sign(f"{kind}{digits}"), signature):
            return None
        return VerpRef("d" if kind == "d" else "s", int(digits, 36))


@lru_cache(maxsize=8)
def verp_for(bounce_address: str, secret: str) -> Verp:
    """One :class:`Verp` per (address, secret): the keyed HMAC is built once."""
    return Verp(bounce_address, secret)


__all__ = ["SIGNATURE_CHARS", "Kind", "Verp", "VerpRef", "verp_for"]

"""Email addresses: validated and normalised once, compared by a case-insensitive key.

* :func:`normalise` runs email-validator (syntax only, never DNS) and returns the
  normalised address: domain lower-cased and IDNA-decoded, local part kept as typed.
* :func:`email_key` is the lower-cased normalised form: the uniqueness key of
  ``Subscriber.email_key`` and the form kept in ``Suppression.email``.
* :func:`email_hash` is the SHA-256 of the key: how suppressions are matched,
  including erased addresses whose plain form is no longer stored.
* :func:`clean_name` is a reader's name as stored, wherever it comes from (the form,
  the preferences page, an import, the admin console, the command line).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Collection, Iterable, Mapping
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES

from subscribers.errors import InvalidAddress, InvalidName, InvalidTimezone, UnknownCategory

#: Attribute names: ASCII letters, digits, spaces, ``_ . -``.  They become JSON keys that
#: segments query by path; SQLite matches escaped non-ASCII keys unreliably, so ASCII only.
ATTR_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_ .-]{0,99}")


#: The longest name kept (the column's size).
MAX_NAME_LENGTH = 200
#: Characters a name may never hold: they end a mail header line (CR, LF) or a C string.
_REFUSED = {"\x00": "a NUL character", "\r": "a line break", "\n": "a line break"}


def clean_name(name: str | None) -> str:
    """``name`` as stored: trimmed, runs of spaces made one, other control characters
    (tabs, escapes, Unicode line separators) removed.  NUL, CR and LF are refused with
    :class:`InvalidName` rather than removed: they are never typed into a name field, and
    a name holding them must not reach a ``To:`` header.  A name that starts like a
    spreadsheet formula (``=``, ``+``, ``@``) is kept as typed: it is text in an email,
    and CSV exports neutralise it (see :mod:`subscribers.io`)."""
    if not name:
        return ""
    for char, what in _REFUSED.items():
        if char in name:
            raise InvalidName(
                f"the name {name[:40]!r} holds {what}; write the name on one line, "
                "without control characters"
            )
    kept = "".join(" " if unicodedata.category(c) in {"Cc", "Zl", "Zp"} else c for c in name)
    text = " ".join(kept.split())
    if len(text) > MAX_NAME_LENGTH:
        raise InvalidName(
            f"the name {text[:40]!r}… is {len(text)} characters long; "
            f"at most {MAX_NAME_LENGTH} are kept"
        )
    return text


#: An unquoted ASCII local part (RFC 5322 dot-atom), the overwhelmingly common case.
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")


@lru_cache(maxsize=8192)
def _domain(domain: str) -> str | None:
    """The normalised domain, or None when email-validator refuses it (cached: lists
    share a few thousand domains at most)."""
    try:
        return validate_email(f"x@{domain}", check_deliverability=False).domain
    except EmailNotValidError:
        return None


def normalise(email: str) -> str:
    """The normalised form of ``email``; :class:`InvalidAddress` says why it is not valid.

    Same result as email-validator (``validate_email(..., check_deliverability=False,
    allow_smtputf8=False).normalized``: internationalised domains are taken, non-ASCII
    characters before the @ are not, since such mail needs SMTPUTF8), with a fast path
    for plain ASCII local parts: the domain is validated once per distinct domain, which
    makes 100,000-row imports quick.
    """
    text = (email or "").strip()
    if not text:
        raise InvalidAddress("empty email address")
    local, at, domain = text.rpartition("@")
    if (
        at
        and text.isascii()
        and len(local) <= 64
        and len(text) <= 254
        and _DOT_ATOM.fullmatch(local)
        and local.lower() not in CASE_INSENSITIVE_MAILBOX_NAMES
    ):
        normal_domain = _domain(domain)
        if normal_domain is not None and normal_domain.isascii():
            return f"{local}@{normal_domain}"
    try:
        # allow_smtputf8=False: an address with non-ASCII characters before the @ can only
        # be mailed with SMTPUTF8, which SendGrid and most relays do not carry; taking it
        # in would leave a reader waiting for mail (a confirmation first) that never comes.
        result = validate_email(text, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        hint = (
            " (mail to such an address needs SMTPUTF8, which is not sent yet: use an address "
            "with only ASCII letters before the @)"
            if not local.isascii()
            else ""
        )
        raise InvalidAddress(f"{text!r} is not a valid email address: {exc}{hint}") from None
    return result.normalized


def email_key(email: str) -> str:
    """The case-insensitive key of a valid address (validates it first)."""
    return normalise(email).lower()


def lookup_key(email: str) -> str:
    """Like :func:`email_key`, but never fails: addresses that do not validate (from a
    bounce report, say) are keyed by their trimmed lower-cased text."""
    try:
        return email_key(email)
    except InvalidAddress:
        return (email or "").strip().lower()


def email_hash(key: str) -> str:
    """SHA-256 (hex) of an email key: the suppression list's match value."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def check_timezone(name: str) -> str:
    """``name`` if it is an IANA timezone (``Europe/London``), else :class:`InvalidTimezone`."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidTimezone(
            f"unknown timezone {name!r}; use an IANA name such as 'Europe/London'"
        ) from None
    return name


def check_attr_name(name: str) -> str:
    if not isinstance(name, str) or not ATTR_NAME.fullmatch(name):
        raise InvalidName(
            f"{name!r} is not an attribute name; use ASCII letters, digits, spaces, '_', "
            "'.' and '-' (up to 100, starting with a letter or digit)"
        )
    return name


def clean_attributes(attributes: Mapping[str, Any]) -> dict[str, str | None]:
    """Attribute updates as text; ``None`` or empty text means "remove this attribute"."""
    out: dict[str, str | None] = {}
    for name, value in attributes.items():
        check_attr_name(name)
        text = None if value is None else str(value).strip()
        out[name] = text or None
    return out


def merge_attributes(
    current: Mapping[str, Any], updates: Mapping[str, str | None]
) -> dict[str, Any]:
    merged = dict(current)
    for name, value in updates.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    return merged


def clean_categories(
    names: Iterable[str],
    known: Collection[str] | None,
    *,
    everything: Collection[str] | None = None,
) -> list[str]:
    """Category names trimmed and de-duplicated; with ``known`` (None = accept any) each is
    matched case-insensitively and spelt as configured, and an unknown one is refused.

    The one rule for "everything", wherever a choice comes from (the sign-up form, the
    preferences page, the admin console, an import, the API): a choice that covers every
    one of ``everything`` (the sections readers are offered; default ``known``) is stored
    as ``[]``, which means every section, the newsletter's "Other" and sections added
    later included."""
    by_fold = {k.casefold(): k for k in known} if known is not None else None
    out: list[str] = []
    for raw in names:
        name = " ".join(raw.split())
        if not name:
            continue
        if by_fold is not None:
            canonical = by_fold.get(name.casefold())
            if canonical is None:
                listed = ", ".join(known or ()) or "none configured"
                raise UnknownCategory(f"unknown category {name!r} (categories: {listed})")
            name = canonical
        if name not in out:
            out.append(name)
    offered = everything if everything is not None else known
    if offered and set(out) >= set(offered):
        return []
    return out

"""What goes out: the envelope shared by a variant's messages, the recipients, the MIME.

Outbox and SMTP write exactly the same RFC 5322 message (``build_mime``);
SendGrid builds its JSON from the same :class:`Post`.

The message is built for the hot path (one per reader): header values that are
already plain printable ASCII are stored as they are, not parsed into header
objects, and each body is quoted-printable encoded once, by ``binascii`` (C), at
RFC 2045's 76 characters a line.
"""

from __future__ import annotations

import binascii
import re
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage, MIMEPart
from email.policy import EmailPolicy
from email.utils import format_datetime, formataddr
from functools import cached_property
from typing import Any
from urllib.parse import quote

from digest.errors import DeliveryError
from digest.personalize import fields_used, personalize


class _Policy(EmailPolicy):
    """The SMTP policy, storing a header value that is printable ASCII already as is.

    Nearly every header digest writes is such a value already (addresses and the
    List-Id are encoded before they get here); the others, a non-ASCII subject say,
    still go through the email package's parser and encoder.  Parsing each header of
    every message into an object, to print it back unchanged, was most of the cost of
    building a message.
    """

    def header_store_parse(self, name: str, value: Any) -> tuple[str, Any]:
        if isinstance(value, str) and value.isascii() and value.isprintable():
            return (name, value)
        return super().header_store_parse(name, value)


#: CRLF line ends, as SMTP wants them.  Headers may run to RFC 5322's hard limit of
#: 998 characters rather than being folded at 78: folding a long List-Unsubscribe
#: URL would force it into an RFC 2047 encoded-word, which mail clients do not decode.
#: Bodies are not folded by the policy: :func:`quoted_printable` encodes them at 76.
POLICY = _Policy(linesep="\r\n", max_line_length=998)


@dataclass(frozen=True)
class Envelope:
    """Headers and bodies shared by every message of one variant of one edition."""

    newsletter: str
    edition_id: int
    period: str
    variant_key: str
    sender: str
    sender_name: str
    reply_to: str | None
    list_id: str
    subject: str
    html: str
    text: str
    unsubscribe_mailto: str | None = None
    test: bool = False
    #: The edition's random Message-ID part (``Edition.message_nonce``); required for
    #: deliveries in the ledger.
    message_nonce: str = ""

    @property
    def sender_domain(self) -> str:
        return self.sender.rpartition("@")[2]

    @cached_property
    def used_fields(self) -> frozenset[str]:
        """Fields whose placeholders are still in the subject or bodies (found once)."""
        return fields_used(self.subject, self.html, self.text)


@dataclass(frozen=True)
class Recipient:
    """One reader in one post, with the per-recipient fields already worked out."""

    delivery_id: int | None
    subscriber_id: int | None
    email: str
    name: str
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Post:
    """What one call to a backend sends: one variant to one or more recipients."""

    envelope: Envelope
    recipients: list[Recipient]


class UnsendableAddress(DeliveryError, ValueError):
    """An address no backend here can carry (non-ASCII before the @ needs SMTPUTF8)."""


def ascii_address(address: str) -> str:
    """``address`` as plain ASCII for headers and SMTP: an internationalised domain
    becomes its IDNA (punycode) form; a non-ASCII local part cannot be carried."""
    if address.isascii():
        return address
    local, _, domain = address.rpartition("@")
    if not local.isascii():
        raise UnsendableAddress(
            f"{address}: non-ASCII characters before the @ need SMTPUTF8, which digest "
            "does not send yet"
        )
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError as exc:
        raise UnsendableAddress(f"{address}: the domain cannot be encoded ({exc})") from None


def message_id(envelope: Envelope, recipient: Recipient) -> str:
    """A Message-ID on the sender's domain, unique across databases.

    A delivery in the ledger gets ``<{nonce}.{delivery_id}@{domain}>``: the nonce is
    random per edition row (``Edition.message_nonce``, set when the row is made), so a
    fresh install, a staging copy or a restored backup never reuses an id Gmail has
    seen, while a retry or a resend of an uncertain delivery carries the same id,
    so receiving systems can drop the duplicate.  Mail outside the ledger (test
    copies, confirmation emails) gets a fresh id each time, so a second one is never
    hidden as a duplicate of the first.
    """
    if recipient.delivery_id is None:
        tag = "test." if envelope.test else ""
        return f"<{tag}{envelope.newsletter}.{uuid.uuid4().hex}@{envelope.sender_domain}>"
    if not envelope.message_nonce:
        raise ValueError(
            f"the envelope of edition {envelope.edition_id} has no message_nonce; "
            "build it with digest.send.envelope()"
        )
    return f"<{envelope.message_nonce}.{recipient.delivery_id}@{envelope.sender_domain}>"


#: Characters an RFC 2047 "Q" encoded-word may carry as they are in a phrase (5.3).
_Q_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!*+-/")
_ENCODED_WORD_MAX = 75
_QUOTE_NEEDED = re.compile(r'["\\]')


def encoded_phrase(text: str) -> str:
    """``text`` as an RFC 5322 phrase in plain ASCII, for a header's display name.

    Printable ASCII becomes a quoted string; anything else becomes RFC 2047 "Q"
    encoded-words in UTF-8 (each at most 75 characters, never splitting a
    character), which mail programs decode and show as written.  Control
    characters are left out and whitespace runs collapse to one space.
    """
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    if text.isascii():
        return '"' + _QUOTE_NEEDED.sub(lambda m: "\\" + m.group(0), text) + '"'
    words: list[str] = []
    current = ""
    for char in text:
        encoded = _q_encode(char)
        if len("=?utf-8?q?" + current + encoded + "?=") > _ENCODED_WORD_MAX:
            words.append(f"=?utf-8?q?{current}?=")
            current = ""
        current += encoded
    words.append(f"=?utf-8?q?{current}?=")
    return " ".join(words)


def _q_encode(char: str) -> str:
    if char == " ":
        return "_"
    return "".join(chr(b) if b in _Q_SAFE else f"={b:02X}" for b in char.encode("utf-8"))


def list_id_header(title: str, list_name: str, domain: str) -> str:
    """RFC 2919 ``List-Id``: the newsletter's title as the phrase (encoded when it is
    not ASCII, see :func:`encoded_phrase`) and ``<list_name.domain>`` (an
    internationalised domain in its ASCII form)."""
    host = ascii_address(f"list@{domain}").rpartition("@")[2] if domain else "localhost"
    return f"{encoded_phrase(title)} <{list_name}.{host}>"


_URL_SAFE = re.compile(r"[A-Za-z0-9_.~-]*")


def list_unsubscribe(envelope: Envelope, recipient: Recipient) -> str:
    """RFC 2369/8058 ``List-Unsubscribe``: the one-click HTTPS URL, then mailto if configured."""
    parts = [f"<{recipient.fields['unsubscribe_url']}>"]
    if envelope.unsubscribe_mailto:
        token = recipient.fields["unsubscribe_url"].rstrip("/").rpartition("/")[2]
        # a token is URL-safe already (quote() would only turn the space into %20)
        subject = (
            "unsubscribe%20" + token
            if _URL_SAFE.fullmatch(token)
            else quote(f"unsubscribe {token}")
        )
        parts.append(f"<mailto:{envelope.unsubscribe_mailto}?subject={subject}>")
    return ", ".join(parts)


def list_headers(envelope: Envelope, recipient: Recipient) -> dict[str, str]:
    """Headers every message carries besides From/To/Subject/Date."""
    headers = {
        "Message-ID": message_id(envelope, recipient),
        "List-Unsubscribe": list_unsubscribe(envelope, recipient),
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "List-Id": envelope.list_id,
        "X-Digest-Edition": f"{envelope.newsletter}/{envelope.period}/{envelope.variant_key}",
    }
    return headers


def subject_for(envelope: Envelope, recipient: Recipient) -> str:
    subject = personalize(envelope.subject, recipient.fields, html=False)
    return f"[TEST] {subject}" if envelope.test else subject


def quoted_printable(body: str) -> str:
    """``body`` (UTF-8) quoted-printable encoded, lines at most 76 characters (RFC 2045)."""
    if "\r" in body:
        body = body.replace("\r\n", "\n")
    return binascii.b2a_qp(body.encode("utf-8"), istext=True).decode("ascii")


def _text_part(subtype: str, body: str) -> MIMEPart:
    part = MIMEPart(policy=POLICY)
    part["Content-Type"] = f'text/{subtype}; charset="utf-8"'
    part["Content-Transfer-Encoding"] = "quoted-printable"
    part.set_payload(quoted_printable(body))
    return part


def _display_name(name: str) -> str:
    """``name`` without control characters (a CR or LF could not go into a header)."""
    if name.isprintable():
        return name
    return " ".join("".join(c if c.isprintable() else " " for c in name).split())


class DigestMessage(EmailMessage):
    """The message :func:`build_mime` makes, which writes itself out directly.

    ``as_bytes()`` gives exactly what the email package's generator would (a test
    checks byte for byte), without re-parsing every header and re-splitting every
    body line: two thirds of the cost of a message.  A message changed into another
    shape after it was built is written by the generator as usual.
    """

    _content_type = ""

    def as_bytes(self, unixfrom: bool = False, policy: Any = None) -> bytes:
        policy = self.policy if policy is None else policy
        wire = None if unixfrom or policy is not POLICY else self._wire()
        return wire if wire is not None else super().as_bytes(unixfrom, policy)

    __bytes__ = as_bytes

    def _wire(self) -> bytes | None:
        """The message as the generator writes it, or None when it is not in the shape
        :func:`build_mime` gave it (a multipart of text parts, one Content-Type)."""
        parts: Any = self._payload  # type: ignore[attr-defined]
        types = [v for h, v in self.raw_items() if h.lower() == "content-type"]
        if (
            types != [self._content_type]
            or self.preamble is not None
            or self.epilogue is not None
            or not isinstance(parts, list)
            or not all(
                type(p) is MIMEPart and _ascii_text(p.__dict__.get("_payload")) for p in parts
            )
        ):
            return None
        boundary = self._content_type.partition('boundary="')[2].rstrip('"').encode("ascii")
        out = [POLICY.fold_binary(h, v) for h, v in self.raw_items()]
        for part in parts:  # the blank line after the headers, or the line break ending a body
            out.append(b"\r\n--" + boundary + b"\r\n")
            out.extend(POLICY.fold_binary(h, v) for h, v in part.raw_items())
            out.append(b"\r\n")
            out.append(part._payload.replace("\n", "\r\n").encode("ascii"))
        out.append(b"\r\n--" + boundary + b"--\r\n")
        return b"".join(out)


def _ascii_text(payload: object) -> bool:
    return isinstance(payload, str) and payload.isascii()


def new_boundary() -> str:
    """A multipart boundary: ``=_`` first, which quoted-printable text can never contain."""
    return f"=_digest_{secrets.token_hex(12)}"


def build_mime(
    envelope: Envelope,
    recipient: Recipient,
    *,
    boundary: str | None = None,
    date: datetime | None = None,
) -> EmailMessage:
    """The complete message for one reader: multipart/alternative, text then HTML.

    Only the message itself carries ``MIME-Version``; each part is quoted-printable
    at 76 characters a line; the boundary starts with ``=_``, which quoted-printable
    text can never contain.  ``boundary`` and ``date`` are fresh unless given (tests).
    :func:`wire_bytes` writes the same bytes from a variant prepared once.
    """
    msg = DigestMessage(policy=POLICY)
    msg["From"] = formataddr((envelope.sender_name, envelope.sender))
    msg["To"] = formataddr((_display_name(recipient.name), ascii_address(recipient.email)))
    if envelope.reply_to:
        msg["Reply-To"] = envelope.reply_to
    msg["Subject"] = subject_for(envelope, recipient)
    msg["Date"] = format_datetime(date or datetime.now(UTC))  # "+0000": RFC 5322's form of UTC
    for name, value in list_headers(envelope, recipient).items():
        msg[name] = value
    msg["MIME-Version"] = "1.0"
    msg._content_type = f'multipart/alternative; boundary="{boundary or new_boundary()}"'
    msg["Content-Type"] = msg._content_type
    msg.set_payload(
        [
            _text_part("plain", personalize(envelope.text, recipient.fields, html=False)),
            _text_part("html", personalize(envelope.html, recipient.fields, html=True)),
        ]
    )
    return msg

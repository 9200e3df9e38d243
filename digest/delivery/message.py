"""What goes out: the envelope shared by a variant's messages, the recipients, the MIME.

Outbox and SMTP write exactly the same RFC 5322 message (``build_mime``);
SendGrid builds its JSON from the same :class:`Post`.
"""

from __future__ import annotations

import email.policy
import re
import uuid
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from functools import cached_property
from urllib.parse import quote

from digest.errors import DeliveryError
from digest.personalize import fields_used, personalize

#: CRLF line ends, as SMTP wants them.  Headers may run to RFC 5322's hard limit of
#: 998 characters rather than being folded at 78: folding a long List-Unsubscribe
#: URL would force it into an RFC 2047 encoded-word, which mail clients do not decode.
POLICY = email.policy.SMTP.clone(max_line_length=998)


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
    """A Message-ID on the sender's domain.

    For a delivery in the ledger it is stable per (edition, reader): a resend of an
    uncertain message carries the same id, so receiving systems can drop the
    duplicate.  Mail outside the ledger (test copies, confirmation emails) gets a
    fresh id each time, so a second one is never hidden as a duplicate of the first.
    """
    if recipient.delivery_id is None or recipient.subscriber_id is None:
        tag = "test." if envelope.test else ""
        return f"<{tag}{envelope.newsletter}.{uuid.uuid4().hex}@{envelope.sender_domain}>"
    return (
        f"<{envelope.newsletter}.{envelope.edition_id}.{recipient.subscriber_id}"
        f"@{envelope.sender_domain}>"
    )


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


def build_mime(envelope: Envelope, recipient: Recipient) -> EmailMessage:
    """The complete message for one reader: multipart/alternative, text then HTML."""
    msg = EmailMessage(policy=POLICY)
    msg["From"] = formataddr((envelope.sender_name, envelope.sender))
    msg["To"] = formataddr((recipient.name, ascii_address(recipient.email)))
    if envelope.reply_to:
        msg["Reply-To"] = envelope.reply_to
    msg["Subject"] = subject_for(envelope, recipient)
    msg["Date"] = formatdate(usegmt=True)
    for name, value in list_headers(envelope, recipient).items():
        msg[name] = value
    msg.set_content(
        personalize(envelope.text, recipient.fields, html=False), cte="quoted-printable"
    )
    msg.add_alternative(
        personalize(envelope.html, recipient.fields, html=True),
        subtype="html",
        cte="quoted-printable",
    )
    return msg

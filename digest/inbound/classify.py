"""Read one inbound message into a :class:`~digest.inbound.report.Report`.

In this order: a feedback report (ARF) is a complaint; a bounce (a DSN, or any MTA
notice ``flufl.bounce`` recognises) is a bounce; a message whose subject is
``unsubscribe TOKEN`` (what the ``List-Unsubscribe`` mailto of every email asks the
reader's mail client to send) is an unsubscribe request; anything else (a reply, an
out-of-office notice) is "other".  Nothing here touches the database or checks a
signature: that is :mod:`digest.inbound.policy`'s job.  Never raises on bad input: a
malformed message is read as far as it goes and is, at worst, "other".
"""

from __future__ import annotations

import email
import hashlib
import re
from dataclasses import replace
from email.header import decode_header, make_header
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses, parseaddr

from digest.inbound.bounces import COPY_MARKERS, find_failures
from digest.inbound.feedback import (
    feedback_fields,
    feedback_type,
    is_complaint,
    is_feedback_report,
)
from digest.inbound.report import Kind, Original, Report, one_line

#: Headers that tell where a message read from a mailbox was delivered to.
ADDRESSED_HEADERS = (
    "Delivered-To",
    "X-Original-To",
    "Envelope-To",
    "X-Envelope-To",
    "X-Delivered-To",
    "To",
    "Cc",
)
#: ``unsubscribe TOKEN``: the subject of digest's ``List-Unsubscribe`` mailto.
_UNSUBSCRIBE_SUBJECT = re.compile(r"\s*unsubscribe\s+([A-Za-z0-9_.~-]{6,300})\s*", re.I)
#: Tokens in a ``List-Unsubscribe`` header: ``…/u/TOKEN`` and ``subject=unsubscribe%20TOKEN``.
_HEADER_TOKENS = re.compile(
    r"/u/([A-Za-z0-9_.~-]{6,300})|subject=unsubscribe(?:%20|\+|\s)([A-Za-z0-9_.~-]{6,300})",
    re.I,
)


def parse_bytes(raw: bytes) -> Message:
    """The message as the standard library reads it (never raises)."""
    return email.message_from_bytes(raw)


def header_text(msg: Message, name: str) -> str:
    """A header's value with RFC 2047 encoded-words decoded ("" when absent)."""
    value = msg.get(name)
    if value is None:
        return ""
    try:
        return one_line(str(make_header(decode_header(str(value)))), 500)
    except (ValueError, LookupError, UnicodeError):
        return one_line(str(value), 500)


def message_key(msg: Message, raw: bytes) -> str:
    """``mid:<Message-ID>``, else ``sha256:<hash of the body>`` (trace headers, added
    anew by each hop, left out): the same for every delivery of one message."""
    mid = " ".join(str(msg.get("Message-ID", "")).split())
    if mid:
        return f"mid:{mid[:300]}"
    body = re.split(rb"\r?\n\r?\n", raw, maxsplit=1)
    content = body[1] if len(body) > 1 else raw
    return "sha256:" + hashlib.sha256(content).hexdigest()


def addressed_to(msg: Message) -> tuple[str, ...]:
    values = [str(v) for name in ADDRESSED_HEADERS for v in (msg.get_all(name) or [])]
    found = [addr for _name, addr in getaddresses(values) if "@" in addr]
    return tuple(dict.fromkeys(found))


def original_message(msg: Message) -> Message | None:
    """The copy of the returned (or reported) message, or of its headers."""
    for part in msg.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
        elif kind == "text/rfc822-headers":
            payload = part.get_payload(decode=True)
            text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
            return HeaderParser().parsestr(text)
    for part in msg.walk():
        if part.get_content_type() != "text/plain":
            continue
        payload = part.get_payload(decode=True)
        text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
        for marker in COPY_MARKERS:
            if marker in text:
                return email.message_from_string(text.partition(marker)[2].lstrip("\r\n"))
    return None


def _tokens(value: str) -> tuple[str, ...]:
    found = [a or b for a, b in _HEADER_TOKENS.findall(value)]
    return tuple(dict.fromkeys(t for t in found if t))


def read_original(copy: Message | None, fields: Message | None = None) -> Original:
    """What the copy of our message (and an ARF report's fields) say about it."""
    paths: list[str] = []
    recipients: list[str] = []
    if fields is not None:
        paths.append(parseaddr(str(fields.get("Original-Mail-From", "")))[1])
        recipients.append(parseaddr(str(fields.get("Original-Rcpt-To", "")))[1])
    if copy is None:
        return Original(
            return_paths=tuple(p for p in paths if p),
            recipients=tuple(r for r in recipients if r),
        )
    paths.append(parseaddr(str(copy.get("Return-Path", "")))[1])
    recipients.extend(addr for _n, addr in getaddresses([str(v) for v in copy.get_all("To", [])]))
    unsubscribe = " ".join(str(v) for v in copy.get_all("List-Unsubscribe", []))
    mid = " ".join(str(copy.get("Message-ID", "")).split()) or None
    edition = " ".join(str(copy.get("X-Digest-Edition", "")).split()) or None
    return Original(
        message_id=mid,
        return_paths=tuple(dict.fromkeys(p for p in paths if p)),
        unsubscribe_tokens=_tokens(unsubscribe),
        edition=edition,
        recipients=tuple(dict.fromkeys(r for r in recipients if "@" in r)),
    )


def read(raw: bytes) -> Report:
    """What ``raw`` (a whole RFC 5322 message) is."""
    msg = parse_bytes(raw)
    other = Report(
        Kind.OTHER,
        key=message_key(msg, raw),
        sender=parseaddr(str(msg.get("From", "")))[1],
        subject=header_text(msg, "Subject"),
        addressed_to=addressed_to(msg),
    )
    if is_feedback_report(msg):
        fields = feedback_fields(msg)
        kind = feedback_type(fields)
        if not is_complaint(kind):
            return replace(other, feedback_type=kind, detected_by=f"feedback report ({kind})")
        return replace(
            other,
            kind=Kind.COMPLAINT,
            feedback_type=kind,
            original=read_original(original_message(msg), fields),
            detected_by="RFC 5965 feedback report",
        )
    failures, how = find_failures(msg)
    if failures:
        return replace(
            other,
            kind=Kind.BOUNCE,
            failures=tuple(failures),
            original=read_original(original_message(msg)),
            detected_by=how,
        )
    wanted = _UNSUBSCRIBE_SUBJECT.fullmatch(other.subject)
    if wanted:
        return replace(
            other,
            kind=Kind.UNSUBSCRIBE,
            unsubscribe_token=wanted.group(1),
            detected_by="List-Unsubscribe mailto",
        )
    return other


__all__ = [
    "ADDRESSED_HEADERS",
    "addressed_to",
    "header_text",
    "message_key",
    "original_message",
    "parse_bytes",
    "read",
    "read_original",
]

"""Feedback reports (RFC 5965, ARF): a mailbox provider telling us a reader pressed
"this is spam".

A report is ``multipart/report; report-type=feedback-report`` with a human-readable
part, a ``message/feedback-report`` part (``Feedback-Type``, ``Original-Mail-From``,
``Original-Rcpt-To``, …) and our message or its headers.  Providers usually redact the
reader's address (Yahoo, AOL, Microsoft JMRP blank out ``To``), so the reader is found
from what we put in the message ourselves: its envelope sender (VERP, in
``Original-Mail-From`` or the copy's ``Return-Path``) or the signed token of its
``List-Unsubscribe`` header (see :mod:`digest.inbound.classify`).
"""

from __future__ import annotations

from email.message import Message
from email.parser import HeaderParser

#: Feedback types that are not a complaint about us: a report that mail is *not* spam,
#: or about an authentication failure (RFC 6591).
NOT_COMPLAINTS = frozenset({"not-spam", "auth-failure"})


def is_feedback_report(msg: Message) -> bool:
    """Whether ``msg`` is an ARF report (by its report type, or by its report part)."""
    report_type = str(msg.get_param("report-type") or "").lower()
    if msg.get_content_type() == "multipart/report" and report_type == "feedback-report":
        return True
    return any(p.get_content_type() == "message/feedback-report" for p in msg.walk())


def feedback_fields(msg: Message) -> Message:
    """The ``message/feedback-report`` part's fields (empty when it has none)."""
    for part in msg.walk():
        if part.get_content_type() != "message/feedback-report":
            continue
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            return payload[0]
        if isinstance(payload, str):
            return HeaderParser().parsestr(payload)
    return Message()


def feedback_type(fields: Message) -> str:
    return " ".join(str(fields.get("Feedback-Type", "")).split()).lower() or "abuse"


def is_complaint(kind: str) -> bool:
    return kind not in NOT_COMPLAINTS


__all__ = [
    "NOT_COMPLAINTS",
    "feedback_fields",
    "feedback_type",
    "is_complaint",
    "is_feedback_report",
]

"""Bounces: who failed, how badly, and in the remote server's words.

Standard delivery status notifications (RFC 3464: ``multipart/report`` with a
``message/delivery-status`` part, as Postfix, Gmail, Exchange Online and most others
send) are read field by field: ``Original-Recipient`` (else ``Final-Recipient``),
``Action``, ``Status`` and ``Diagnostic-Code`` of each recipient.  Anything else (Exim's
classic "Mail delivery failed", qmail, old Exchange, Yahoo, …) goes to ``flufl.bounce``,
Mailman's bounce detectors, for the failed addresses; the status and the server's words
are then looked for in the notice's text, next to each address.
"""

from __future__ import annotations

import logging
import re
from email.message import Message
from email.parser import HeaderParser

from flufl.bounce import all_failures

from digest.inbound.report import STATUS, Failure, Severity, one_line, severity_of

log = logging.getLogger(__name__)

#: Where an MTA's notice ends and the copy of the returned message begins.
COPY_MARKERS = (
    "------ This is a copy of the message, including all the headers. ------",  # Exim
    "------ This is a copy of the message's headers. ------",  # Exim, headers only
    "------ The body of the message is",  # Exim, size-limited
    "--- Below this line is a copy of the message.",  # qmail
    "----- Original message -----",
    "------ Original message ------",
)
#: A line with an SMTP reply: code, optional enhanced status, text.
_REPLY = re.compile(r"(?<![\d.])([45]\d\d)[ -]+(?:([45]\.\d{1,3}\.\d{1,3})\b)?\s*([^\n]*)")


def delivery_status_blocks(msg: Message) -> list[Message] | None:
    """The header blocks of the first ``message/delivery-status`` part (the first is
    about the message, the others about one recipient each); None without such a part."""
    for part in msg.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        payload = part.get_payload()
        if isinstance(payload, list):
            return [b for b in payload if isinstance(b, Message)]
        text = payload if isinstance(payload, str) else ""
        # A part the parser left as text (odd line endings, a transfer encoding):
        # its blocks are separated by blank lines.
        blocks = re.split(r"\r?\n[ \t]*\r?\n", text.strip())
        return [HeaderParser().parsestr(block) for block in blocks if block.strip()]
    return None


def _address(value: str | None) -> str:
    """``rfc822; <a@b>`` → ``a@b``."""
    if not value:
        return ""
    text = str(value).partition(";")[2] if ";" in str(value) else str(value)
    address = text.strip().strip("<>").strip()
    return address if "@" in address else ""


def dsn_failures(blocks: list[Message]) -> list[Failure]:
    """The failures (and delay warnings) of an RFC 3464 report; success blocks skipped."""
    failures = []
    for block in blocks:
        final = block.get("Final-Recipient")
        if final is None and block.get("Action") is None:
            continue  # the per-message block (Reporting-MTA, Arrival-Date, …)
        address = _address(block.get("Original-Recipient")) or _address(final)
        action = one_line(block.get("Action", "")).lower().split(" ")[0]
        found = STATUS.search(str(block.get("Status", "")))
        status = found.group(0) if found else None
        diagnostic = one_line(block.get("Diagnostic-Code", ""))
        severity = severity_of(status, action, diagnostic, permanent=True)
        if severity is None or not address:
            continue
        failures.append(Failure(address, severity, status, diagnostic, action))
    return failures


def notice_text(msg: Message) -> str:
    """The human-readable notice: its text parts, without the returned message."""
    chunks = []
    for part in msg.walk():
        if part.get_content_maintype() == "multipart":
            continue
        if part.get_content_type() in ("message/rfc822", "text/rfc822-headers"):
            break
        if part.get_content_type() != "text/plain":
            continue
        chunks.append(_text(part))
    text = "\n".join(chunks)
    for marker in COPY_MARKERS:
        text = text.partition(marker)[0]
    return text


def _text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return str(part.get_payload() or "")
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, "replace")
    except LookupError:
        return payload.decode("utf-8", "replace")


def reply_near(text: str, address: str) -> tuple[str | None, str]:
    """The status and the server's reply line for ``address`` in a notice's text: the
    first SMTP reply after the address's first mention (else anywhere in the text)."""
    start = text.lower().find(address.lower()) if address else -1
    for where in ((start,) if start >= 0 else ()) + (0,):
        found = _REPLY.search(text, where)
        if found:
            status = found.group(2)
            if status is None:
                inner = STATUS.search(found.group(3))
                status = inner.group(0) if inner else None
            return status, one_line(found.group(0))
    return None, ""


def detector_failures(msg: Message) -> list[Failure]:
    """Failures found by ``flufl.bounce`` (permanent ones as hard bounces unless the text
    says otherwise, temporary ones as delay warnings), with status and reply from the
    notice's text."""
    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # a detector tripped on a malformed message: not a bounce we can read
        log.warning("flufl.bounce could not read a message", exc_info=True)
        return []
    text = notice_text(msg)
    failures = []
    for raw, is_permanent in [(a, True) for a in sorted(permanent)] + [
        (a, False) for a in sorted(temporary - permanent)
    ]:
        address = raw.decode("ascii", "replace") if isinstance(raw, bytes) else str(raw)
        status, diagnostic = reply_near(text, address)
        severity = (
            severity_of(status, "", diagnostic, permanent=True)
            if is_permanent
            else Severity.DELAYED
        )
        if severity is None:
            continue
        action = "failed" if is_permanent else "delayed"
        failures.append(Failure(address, severity, status, diagnostic, action))
    return failures


def find_failures(msg: Message) -> tuple[list[Failure], str]:
    """Every failure a bounce reports, and how they were found (empty: not a bounce)."""
    blocks = delivery_status_blocks(msg)
    if blocks is not None:
        failures = dsn_failures(blocks)
        if failures:
            return failures, "RFC 3464 delivery status notification"
        if any(b.get("Final-Recipient") for b in blocks):
            return [], ""  # a report of successful delivery (or of nothing we can read)
    failures = detector_failures(msg)
    return failures, ("flufl.bounce" if failures else "")


__all__ = [
    "COPY_MARKERS",
    "delivery_status_blocks",
    "detector_failures",
    "dsn_failures",
    "find_failures",
    "notice_text",
    "reply_near",
]

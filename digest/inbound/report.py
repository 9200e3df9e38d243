"""What an inbound message is, once read: the words every part of ``digest.inbound`` shares.

A :class:`Report` is pure data made from the message alone (no database, no secret):
its kind (a bounce, a complaint, an unsubscribe request, or anything else), each
failed recipient with the status code and the remote server's words, and what the
returned copy of our own message still says about whom it was for.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

#: An RFC 3463 enhanced status code: class.subject.detail (``5.1.1``, ``4.2.2``, ``5.1.10``).
STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
#: Longest diagnostic kept (the consent log keeps 500 characters in all).
DIAGNOSTIC_MAX = 300


class Kind(enum.StrEnum):
    #: A delivery status notification, standard (RFC 3464) or in an MTA's own words.
    BOUNCE = "bounce"
    #: A feedback report (RFC 5965, ARF): the reader marked our mail as spam.
    COMPLAINT = "complaint"
    #: A mail to the ``List-Unsubscribe`` mailto address.
    UNSUBSCRIBE = "unsubscribe"
    #: Anything else: a reader's reply, an out-of-office notice, spam.
    OTHER = "other"


class Severity(enum.StrEnum):
    #: The address does not take mail (5.x.x): suppressed at once.
    HARD = "hard"
    #: A failure worth counting (4.x.x after retries, a full mailbox, a policy refusal).
    SOFT = "soft"
    #: A warning that delivery is still being tried (``Action: delayed``): recorded only.
    DELAYED = "delayed"


#: Enhanced status subjects and details that are not the address's fault, even with a 5:
#: x.2.2 mailbox full and x.3.4 message too big (RFC 3463 calls them persistent
#: transient failures), and x.7.x security or policy (the receiver refused *us*, e.g. our
#: IP on a block list: suppressing every reader it names would be a disaster).
SOFT_DETAILS = frozenset({("2", "2"), ("3", "4")})
SOFT_SUBJECTS = frozenset({"7"})


def severity_of(
    status: str | None, action: str = "", diagnostic: str = "", permanent: bool = True
) -> Severity | None:
    """How bad a failure is, from its ``Action``, its status code, else the SMTP reply
    code in the diagnostic, else what the detector said; None for a success report."""
    action = action.lower()
    if action.startswith("delayed"):
        return Severity.DELAYED
    if action.startswith(("delivered", "relayed", "expanded")):
        return None
    found = STATUS.search(status or "")
    if found:
        klass, subject, detail = found.groups()
        if klass == "2":
            return None
        if klass == "4" or (subject, detail) in SOFT_DETAILS or subject in SOFT_SUBJECTS:
            return Severity.SOFT
        return Severity.HARD
    code = re.search(r"\b([245])\d\d\b", diagnostic)
    if code:
        return {"2": None, "4": Severity.SOFT, "5": Severity.HARD}[code.group(1)]
    return Severity.HARD if permanent else Severity.DELAYED


def one_line(text: str, limit: int = DIAGNOSTIC_MAX) -> str:
    """``text`` with its whitespace (folded header lines) collapsed, cut to ``limit``."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@dataclass(frozen=True)
class Failure:
    """One recipient a bounce reports on."""

    #: The failed address as the report gives it (``Original-Recipient``, else
    #: ``Final-Recipient``, else what the detector found).
    address: str
    severity: Severity
    #: The RFC 3463 status (``5.1.1``), or None when the report gives none.
    status: str | None = None
    #: The remote server's words (``smtp; 550 5.1.1 … User unknown``), or "".
    diagnostic: str = ""
    action: str = ""

    def describe(self) -> str:
        """``5.1.1 smtp; 550 5.1.1 … User unknown`` (or whatever part is known)."""
        parts = [p for p in (self.status, self.diagnostic) if p]
        return " ".join(parts) if parts else f"{self.severity.value} bounce (no status given)"


@dataclass(frozen=True)
class Original:
    """What the copy of our message in a bounce or a complaint says about it."""

    message_id: str | None = None
    #: The envelope sender it had (``Return-Path``, or ARF ``Original-Mail-From``).
    return_paths: tuple[str, ...] = ()
    #: Signed tokens from its ``List-Unsubscribe`` header.
    unsubscribe_tokens: tuple[str, ...] = ()
    #: ``X-Digest-Edition``: ``newsletter/period/variant``.
    edition: str | None = None
    #: Addresses it was for (``To``, ARF ``Original-Rcpt-To``; often redacted).
    recipients: tuple[str, ...] = ()


@dataclass(frozen=True)
class Report:
    """One inbound message, read."""

    kind: Kind
    #: Stable for one message, however often it is delivered: its Message-ID, else a
    #: hash of its body (events are stored once per key and recipient).
    key: str
    #: The ``From`` address and the subject, for the log.
    sender: str = ""
    subject: str = ""
    failures: tuple[Failure, ...] = ()
    #: ARF ``Feedback-Type`` (``abuse``, ``fraud``, …).
    feedback_type: str = ""
    original: Original = field(default_factory=Original)
    #: The token of an unsubscribe request (not checked yet).
    unsubscribe_token: str | None = None
    #: Where the message was addressed, from its headers (``Delivered-To``,
    #: ``X-Original-To``, ``To`` …): the envelope recipient when it is not known
    #: otherwise (a message read from a mailbox).
    addressed_to: tuple[str, ...] = ()
    #: How it was recognised (``RFC 3464 DSN``, ``flufl.bounce``, …), for the log.
    detected_by: str = ""


__all__ = [
    "DIAGNOSTIC_MAX",
    "STATUS",
    "Failure",
    "Kind",
    "Original",
    "Report",
    "Severity",
    "one_line",
    "severity_of",
]

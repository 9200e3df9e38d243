"""One inbound message, end to end: read it once, act on it per recipient, log a line.

Used by the LMTP/SMTP server and the IMAP poller alike.  Each recipient is acted on
in its own transaction; a failure there (the database is down, a bug) is logged with
its traceback and reported as not handled, so the server answers 451 and the MTA
tries again later (acting again is safe: events are stored once).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from digest.app import App
from digest.inbound import classify, policy
from digest.inbound.report import Report

log = logging.getLogger("digest.inbound")

#: Largest message read (bounces quote the returned message; more is not a bounce).
MAX_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class Handled:
    """What became of a message for one of its recipients."""

    recipient: str | None
    ok: bool
    #: The policy's action (``suppressed``, ``ignored``, …), or ``failed``.
    action: str
    summary: str


def handle(app: App, raw: bytes, recipients: Sequence[str] = (), *, via: str) -> list[Handled]:
    """Act on ``raw`` for each of ``recipients`` (none: the recipient is not known, as
    for a message read from a mailbox); one :class:`Handled` per recipient."""
    try:
        report = classify.read(raw[:MAX_BYTES])
    except Exception:  # a parser bug: keep the message (the MTA retries), say so in the log
        log.exception("inbound %s: could not read a message of %d bytes", via, len(raw))
        failed = "could not read the message; try again later"
        return [Handled(r, False, "failed", failed) for r in _each(recipients)]
    results = []
    for recipient in _each(recipients):
        results.append(handle_report(app, report, recipient, via=via))
    return results


def _each(recipients: Sequence[str]) -> list[str | None]:
    return list(recipients) or [None]


def handle_report(app: App, report: Report, recipient: str | None, *, via: str) -> Handled:
    try:
        with app.transaction() as session:
            outcome = policy.act(session, app.settings, report, recipient, via=via)
    except Exception:
        log.exception(
            "inbound %s: could not process %s from %s to %s; it will be tried again",
            via,
            report.kind.value,
            report.sender or "nobody",
            recipient or "(unknown recipient)",
        )
        return Handled(recipient, False, "failed", "processing failed; try again later")
    log.info("inbound %s: %s: %s", via, report.kind.value, outcome.summary)
    return Handled(recipient, True, outcome.action, outcome.summary)


__all__ = ["MAX_BYTES", "Handled", "handle", "handle_report"]

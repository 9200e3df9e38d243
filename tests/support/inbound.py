"""`digest inbound` in the tests: the real LMTP/SMTP listener on a free port, a client
that reads LMTP's one reply per recipient, and the sample notices in tests/data/inbound."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from digest.app import App
from digest.inbound import server
from tests.support.smtp_server import free_port

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "inbound"
#: The VERP address written in the samples (a made-up token: tests put a real one in).
SAMPLE_VERP = "bounces+d1-000000000000@news.example.org"
BOUNCE_ADDRESS = "bounces@news.example.org"


def sample(name: str, replace: Mapping[str, str] | None = None) -> bytes:
    """A sample message with CRLF line ends (as an MTA sends it), with ``replace``d text."""
    text = (SAMPLES / name).read_bytes().replace(b"\r\n", b"\n")
    for old, new in (replace or {}).items():
        assert old.encode() in text, f"{old!r} is not in {name}"
        text = text.replace(old.encode(), new.encode())
    return text.replace(b"\n", b"\r\n")


@contextmanager
def inbound_server(app: App, *, lmtp: bool = True) -> Iterator[int]:
    """`digest inbound --lmtp` (or ``--smtp``) in this process; yields its port."""
    port = free_port()
    listener = server.start(app, "127.0.0.1", port, lmtp=lmtp)
    try:
        yield port
    finally:
        listener.stop()


def lmtp_deliver(port: int, raw: bytes, recipients: list[str], sender: str = "") -> list[str]:
    """Hand ``raw`` over by LMTP as an MTA does; the reply to each recipient after DATA
    (``"250 …"`` / ``"451 …"``), in order.  A refused RCPT is its own reply there."""
    replies: list[str] = []
    with smtplib.LMTP("127.0.0.1", port) as conn:
        conn.ehlo_or_helo_if_needed()
        code, _ = conn.mail(sender)
        assert code == 250
        accepted = []
        for rcpt in recipients:
            code, text = conn.rcpt(rcpt)
            if code == 250:
                accepted.append(rcpt)
            else:
                replies.append(f"{code} {text.decode()}")
        if not accepted:
            return replies
        code, text = conn.data(raw)
        replies.append(f"{code} {text.decode()}")
        for _ in accepted[1:]:
            code, text = conn.getreply()
            replies.append(f"{code} {text.decode()}")
    return replies


def smtp_deliver(port: int, raw: bytes, recipients: list[str], sender: str = "") -> str:
    """Hand ``raw`` over by SMTP; the one reply after DATA."""
    with smtplib.SMTP("127.0.0.1", port) as conn:
        conn.ehlo()
        conn.mail(sender)
        for rcpt in recipients:
            conn.rcpt(rcpt)
        code, text = conn.data(raw)
    return f"{code} {text.decode()}"

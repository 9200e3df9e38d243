"""A real SMTP server (aiosmtpd) on 127.0.0.1 that records what it receives and
misbehaves on cue."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes


@dataclass
class SMTPSink:
    """The handler: keeps every accepted message; ``faults`` is a queue of replies
    (e.g. ``"451 4.3.0 try later"``) used instead of accepting, one per message."""

    received: list[Received] = field(default_factory=list)
    faults: deque[str] = field(default_factory=deque)
    reject: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    connections: int = 0

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.reject:
            return self.reject[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.lock:
            if self.faults:
                return self.faults.popleft()
            raw = envelope.content if isinstance(envelope.content, bytes) else b""
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            self.received.append(
                Received(envelope.mail_from or "", list(envelope.rcpt_tos), msg, raw)  # type: ignore[arg-type]
            )
        return "250 Message accepted for delivery"

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        with self.lock:
            self.connections += 1
        session.host_name = hostname
        return responses

    def per_recipient(self) -> Counter[str]:
        with self.lock:
            return Counter(r for m in self.received for r in m.rcpt_tos)


class SMTPServer:
    def __init__(self, port: int | None = None, **kwargs: Any) -> None:
        self.sink = SMTPSink()
        self.port = port or free_port()
        self.controller = Controller(
            self.sink, hostname="127.0.0.1", port=self.port, decode_data=False, **kwargs
        )

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}?starttls=never&timeout=5"

    def __enter__(self) -> SMTPServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


@pytest.fixture
def smtp_server() -> Iterator[SMTPServer]:
    with SMTPServer() as server:
        yield server

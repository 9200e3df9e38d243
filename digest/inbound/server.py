"""``digest inbound``'s listeners: LMTP (as Mailman 3's LMTP runner) and SMTP, on aiosmtpd.

The MTA (Postfix, Exim) hands bounces, feedback reports and unsubscribe mails to it;
each message is processed by :func:`digest.inbound.process.handle` off the event
loop.  Replies:

* any syntactically valid recipient is taken (``250``): the MTA decided it is ours;
  a recipient that is not an address (no ``@``) gets ``550 5.1.3``;
* after the data, LMTP answers once per recipient (RFC 2033): ``250`` when it was
  handled (including "not a bounce, dropped", which is logged), ``451 4.3.0`` when
  processing failed, so the MTA keeps the message and tries again;
* SMTP has one answer for all recipients: ``451`` if any of them failed (repeating
  the others is harmless: events are stored once).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from digest.app import App
from digest.errors import ConfigError
from digest.inbound.process import MAX_BYTES, Handled, handle

log = logging.getLogger("digest.inbound")


def parse_listen(value: str, option: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8024`` for IPv6) → (host, port); a ConfigError otherwise."""
    host, sep, port = value.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{option} {value!r}: write HOST:PORT, e.g. 127.0.0.1:8024")
    return host, int(port)


def reply_line(result: Handled) -> str:
    who = f"<{result.recipient}> " if result.recipient else ""
    if result.ok:
        return f"250 2.0.0 {who}{result.action}"
    return f"451 4.3.0 {who}processing failed, try again later"


class InboundHandler:
    """The aiosmtpd handler: takes recipients, processes the data per recipient."""

    def __init__(self, app: App, *, lmtp: bool) -> None:
        self.app = app
        self.lmtp = lmtp
        self.via = "lmtp" if lmtp else "smtp"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        local, at, domain = address.rpartition("@")
        if not at or not local or not domain:
            return "550 5.1.3 Bad recipient address syntax"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if isinstance(raw, str):  # pragma: no cover - decode_data is off
            raw = raw.encode("utf-8", "surrogateescape")
        loop = asyncio.get_running_loop()
        results = await loop.run_in_executor(
            None, lambda: handle(self.app, raw, list(envelope.rcpt_tos), via=self.via)
        )
        if self.lmtp:
            return "\r\n".join(reply_line(r) for r in results)
        if all(r.ok for r in results):
            return "250 2.0.0 OK"
        return "451 4.3.0 Processing failed, try again later"


class _LMTPController(Controller):
    def factory(self) -> SMTP:
        return LMTP(self.handler, **self.SMTP_kwargs)


@dataclass
class Listener:
    """One running listener (stop it with :meth:`stop`)."""

    protocol: str
    host: str
    port: int
    controller: Controller

    def stop(self) -> None:
        self.controller.stop()


def start(app: App, host: str, port: int, *, lmtp: bool = True) -> Listener:
    """Start an LMTP (or SMTP) listener on ``host:port`` in a thread of its own."""
    handler = InboundHandler(app, lmtp=lmtp)
    kwargs: dict[str, Any] = {
        "hostname": host,
        "port": port,
        "server_hostname": socket.gethostname() or "digest",
        "decode_data": False,
        "data_size_limit": MAX_BYTES,
        "enable_SMTPUTF8": True,
    }
    controller = _LMTPController(handler, **kwargs) if lmtp else Controller(handler, **kwargs)
    try:
        controller.start()
    except (OSError, RuntimeError) as exc:
        raise ConfigError(
            f"cannot listen for {'LMTP' if lmtp else 'SMTP'} on {host}:{port}: {exc}"
        ) from None
    return Listener("lmtp" if lmtp else "smtp", host, port, controller)


def start_all(
    app: App, lmtp: Sequence[tuple[str, int]], smtp: Sequence[tuple[str, int]]
) -> list[Listener]:
    """Every listener asked for; if one cannot start, those started are stopped."""
    started: list[Listener] = []
    try:
        for host, port in lmtp:
            started.append(start(app, host, port, lmtp=True))
        for host, port in smtp:
            started.append(start(app, host, port, lmtp=False))
    except BaseException:
        for listener in started:
            listener.stop()
        raise
    return started


__all__ = ["InboundHandler", "Listener", "parse_listen", "reply_line", "start", "start_all"]

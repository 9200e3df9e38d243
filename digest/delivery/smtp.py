"""The SMTP backend: the outbox's exact MIME, over one reused connection.

``DIGEST_SMTP_URL`` forms:

- ``smtp://user:pass@host:587`` — STARTTLS when the server offers it
  (``?starttls=required`` insists on it, ``?starttls=never`` never tries);
- ``smtps://user:pass@host:465`` — TLS from the first byte;
- ``?timeout=30`` seconds per command; ``?cafile=/path/ca.pem`` to trust a private CA;
- ``?connections=4``: how many connections the relay allows at once; a send opens that
  many in parallel (one per sending thread; ``--concurrency`` may ask for fewer, never
  more).  Each connection has at most one message in flight, so a crash leaves at most
  one uncertain message per connection.

Each reader's message is written from its variant prepared once
(:func:`digest.delivery.prepared.wire_bytes`): the same bytes as the outbox's
``build_mime``, without encoding the bodies again for every reader.

With ``DIGEST_BOUNCE_ADDRESS`` set, each message's envelope sender (``MAIL FROM``, which
becomes its ``Return-Path``) is a VERP address naming the delivery
(:mod:`digest.delivery.verp`), so ``digest inbound`` matches bounces to readers and
editions; without it the envelope sender is the newsletter's sender, as before.
"""

from __future__ import annotations

import contextlib
import smtplib
import ssl
from dataclasses import dataclass
from typing import Self
from urllib.parse import parse_qs, unquote, urlsplit

from digest.config import Settings
from digest.delivery.base import (
    AccountLimit,
    AmbiguousError,
    Backend,
    FatalError,
    RecipientResult,
    RetryableError,
)
from digest.delivery.message import Post, Recipient, UnsendableAddress, ascii_address
from digest.delivery.prepared import wire_bytes
from digest.delivery.verp import Verp, verp_for
from digest.errors import ConfigError


@dataclass(frozen=True)
class SMTPSettings:
    host: str
    port: int
    implicit_tls: bool
    starttls: str  # auto | required | never
    username: str | None
    password: str | None
    timeout: float
    cafile: str | None
    #: Connections the relay allows at once (``?connections=N``); None: not said (one).
    connections: int | None = None


def parse_smtp_url(url: str | None) -> SMTPSettings:
    """Read ``DIGEST_SMTP_URL``; a malformed one is a ConfigError saying how to write it."""
    hint = "write it as smtp://user:pass@host:587 or smtps://user:pass@host:465"
    if not url:
        raise ConfigError(f"DIGEST_SMTP_URL is not set; {hint}")
    parts = urlsplit(url)
    if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
        raise ConfigError(f"DIGEST_SMTP_URL {_redact(url)!r} is not an SMTP URL; {hint}")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    starttls = query.get("starttls", "auto").lower()
    if starttls in {"1", "true", "yes"}:
        starttls = "required"
    if starttls in {"0", "false", "no"}:
        starttls = "never"
    if starttls not in {"auto", "required", "never"}:
        raise ConfigError(f"DIGEST_SMTP_URL: starttls={starttls!r}; use auto, required or never")
    try:
        port = parts.port or (465 if parts.scheme == "smtps" else 587)
        timeout = float(query.get("timeout", "30"))
    except ValueError as exc:
        raise ConfigError(f"DIGEST_SMTP_URL: {exc}; {hint}") from None
    connections = None
    if "connections" in query:
        text = query["connections"]
        if not text.isdigit() or not 1 <= int(text) <= 64:
            raise ConfigError(
                f"DIGEST_SMTP_URL: connections={text!r}; give the number of connections the "
                "relay allows at once, 1 to 64 (e.g. ?connections=4)"
            )
        connections = int(text)
    return SMTPSettings(
        host=parts.hostname,
        port=port,
        implicit_tls=parts.scheme == "smtps",
        starttls=starttls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        timeout=timeout,
        cafile=query.get("cafile"),
        connections=connections,
    )


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url


class SMTPBackend(Backend):
    name = "smtp"
    max_recipients = 1
    batch_size = 100

    def __init__(self, settings: SMTPSettings, verp: Verp | None = None) -> None:
        self.settings = settings
        #: Envelope senders per message (None: the newsletter's sender).
        self.verp = verp
        self._conn: smtplib.SMTP | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        """From ``DIGEST_SMTP_URL`` (and ``DIGEST_BOUNCE_ADDRESS`` for VERP)."""
        verp = None
        if settings.bounce_address:
            verp = verp_for(settings.bounce_address, settings.secret_key.get_secret_value())
        return cls(parse_smtp_url(settings.smtp_url), verp)

    @classmethod
    def configured_by(cls, settings: Settings) -> str | None:
        return "DIGEST_SMTP_URL" if settings.smtp_url else None

    @classmethod
    def account_limit(cls, settings: Settings) -> AccountLimit | None:
        """``DIGEST_SMTP_RATE`` for the relay account of ``DIGEST_SMTP_URL`` (user@host:port)."""
        if settings.smtp_rate is None:
            return None
        try:
            smtp = parse_smtp_url(settings.smtp_url)
        except ConfigError:
            return AccountLimit("smtp:unset", settings.smtp_rate, "DIGEST_SMTP_RATE")
        user = f"{smtp.username}@" if smtp.username else ""
        return AccountLimit(
            f"smtp:{user}{smtp.host}:{smtp.port}", settings.smtp_rate, "DIGEST_SMTP_RATE"
        )

    @classmethod
    def connection_limit(cls, settings: Settings) -> int | None:
        """``?connections=N`` on ``DIGEST_SMTP_URL``: the relay's limit (None: not said)."""
        if not settings.smtp_url:
            return None
        return parse_smtp_url(settings.smtp_url).connections

    # -- connection -------------------------------------------------------
    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.settings.cafile)

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        where = f"{s.host}:{s.port}"
        try:
            conn: smtplib.SMTP
            if s.implicit_tls:
                conn = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=self._context())
            else:
                conn = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        except ssl.SSLError as exc:
            raise FatalError(f"TLS with SMTP server {where} failed: {exc}") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise RetryableError(f"cannot connect to SMTP server {where}: {exc}") from None
        try:
            self._greet(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _greet(self, conn: smtplib.SMTP) -> None:
        """EHLO, STARTTLS when asked or offered, and login."""
        s = self.settings
        where = f"{s.host}:{s.port}"
        try:
            conn.ehlo()
            if not s.implicit_tls:
                if s.starttls != "never" and conn.has_extn("starttls"):
                    conn.starttls(context=self._context())
                    conn.ehlo()
                elif s.starttls == "required":
                    raise FatalError(
                        f"SMTP server {where} does not offer STARTTLS and "
                        "DIGEST_SMTP_URL says starttls=required"
                    )
            if s.username:
                conn.login(s.username, s.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            raise FatalError(
                f"SMTP server {where} refused the login: {_reply(exc)}; "
                "check the user and password in DIGEST_SMTP_URL"
            ) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise FatalError(f"SMTP server {where}: {exc}") from None
        except ssl.SSLError as exc:
            raise FatalError(f"TLS with SMTP server {where} failed: {exc}") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise RetryableError(f"SMTP server {where} failed the greeting: {exc}") from None

    def open(self) -> None:
        if self._conn is None:
            self._conn = self._connect()

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                self._conn.quit()
            self._conn = None

    # -- sending ----------------------------------------------------------
    def send(self, post: Post) -> list[RecipientResult]:
        results = []
        for rcpt in post.recipients:
            try:
                address = ascii_address(rcpt.email)
                data, message_id = wire_bytes(post.envelope, rcpt)
            except UnsendableAddress as exc:
                results.append(RecipientResult(rcpt.delivery_id, ok=False, error=str(exc)))
                continue
            if self._conn is None:
                self._conn = self._connect()
            conn = self._conn
            try:
                sender = self.envelope_sender(post, rcpt)
                refusal = self._envelope(conn, sender, address)
                if refusal is not None:
                    results.append(RecipientResult(rcpt.delivery_id, ok=False, error=refusal))
                    continue
            except (smtplib.SMTPServerDisconnected, OSError) as exc:
                # Nothing of the message was handed over yet: safe to try again.
                self.close()
                raise RetryableError(f"SMTP connection lost: {exc}") from None
            try:
                code, reply = conn.data(data)
                if code != 250:
                    raise smtplib.SMTPDataError(code, reply)
            except smtplib.SMTPDataError as exc:
                self._reset()
                if 400 <= exc.smtp_code < 500:
                    raise RetryableError(f"SMTP server deferred it: {_reply(exc)}") from None
                results.append(RecipientResult(rcpt.delivery_id, ok=False, error=_reply(exc)))
                continue
            except (smtplib.SMTPException, OSError) as exc:
                # The message may have been taken before the line dropped.
                self.close()
                raise AmbiguousError(
                    f"SMTP connection lost while handing over the message: {exc}"
                ) from None
            results.append(RecipientResult(rcpt.delivery_id, ok=True, message_id=message_id))
        return results

    def envelope_sender(self, post: Post, rcpt: Recipient) -> str:
        """``MAIL FROM`` for one message: its VERP address, or the newsletter's sender."""
        if self.verp is None:
            return post.envelope.sender
        return self.verp.sender(rcpt.delivery_id, rcpt.subscriber_id)

    def _envelope(self, conn: smtplib.SMTP, sender: str, address: str) -> str | None:
        """MAIL FROM and RCPT TO; the server's refusal of this recipient, or None."""
        code, reply = conn.mail(sender)
        if code != 250:
            self._reset()
            text = f"{code} {_decode(reply)}"
            if 400 <= code < 500:
                raise RetryableError(f"SMTP server deferred the sender: {text}")
            raise FatalError(f"SMTP server refused the sender {sender}: {text}")
        code, reply = conn.rcpt(address)
        if code in (250, 251):
            return None
        self._reset()
        text = f"{code} {_decode(reply)}"
        if 400 <= code < 500:
            raise RetryableError(f"SMTP server deferred {address}: {text}")
        return text

    def _reset(self) -> None:
        if self._conn is None:
            return
        try:
            self._conn.rset()
        except (smtplib.SMTPException, OSError):
            self.close()


def _decode(text: bytes | str) -> str:
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else text


def _reply(exc: smtplib.SMTPResponseException) -> str:
    return f"{exc.smtp_code} {_decode(exc.smtp_error)}"

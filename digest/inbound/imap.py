"""Polling a mailbox for bounces over IMAP, for publications whose bounces land in a
hosted mailbox rather than at an MTA of their own.

``DIGEST_BOUNCE_IMAP_URL`` says where: ``imaps://user:pass@host[:993]/INBOX`` (TLS from
the first byte), or ``imap://user:pass@host[:143]/INBOX`` (STARTTLS when the server
offers it; ``?starttls=required`` insists, ``?starttls=never`` never tries, for a
server on this machine).  ``?timeout=30`` seconds per command, ``?cafile=…`` for a
private CA.  Percent-encode ``@`` and ``:`` in the user and password.

Each poll reads every message in the mailbox (without marking it read), processes it
like ``digest inbound --lmtp`` does, and **moves** each processed message to
``DIGEST_BOUNCE_IMAP_FOLDER`` (default ``digest-processed``, created when missing):
with the MOVE extension where the server has it, else a copy followed by flagging the
original ``\\Deleted`` and expunging just that message (UIDPLUS) — or, on a server
without either, leaving it flagged and skipping it from then on.  Nothing is deleted
without a copy.  A message whose processing failed stays where it is and is tried
again at the next poll.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import ssl
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

from digest.app import App
from digest.errors import ConfigError, DigestError
from digest.inbound.process import handle

log = logging.getLogger("digest.inbound")


class ImapError(DigestError):
    """The mailbox cannot be reached, signed in to, or used."""


@dataclass(frozen=True)
class ImapSettings:
    host: str
    port: int
    implicit_tls: bool
    starttls: str  # auto | required | never
    username: str
    password: str
    mailbox: str
    timeout: float
    cafile: str | None

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


def _redact(url: str) -> str:
    parts = urlsplit(url)
    return url.replace(f":{parts.password}@", ":***@") if parts.password else url


def parse_imap_url(url: str | None) -> ImapSettings:
    """Read ``DIGEST_BOUNCE_IMAP_URL``; a malformed one is a ConfigError saying how."""
    hint = "write it as imaps://user:pass@host/INBOX (or imap://… for STARTTLS)"
    if not url:
        raise ConfigError(f"DIGEST_BOUNCE_IMAP_URL is not set; {hint}")
    parts = urlsplit(url)
    if parts.scheme not in {"imap", "imaps"} or not parts.hostname:
        raise ConfigError(f"DIGEST_BOUNCE_IMAP_URL {_redact(url)!r} is not an IMAP URL; {hint}")
    if not parts.username:
        raise ConfigError(f"DIGEST_BOUNCE_IMAP_URL {_redact(url)!r} names no user; {hint}")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    starttls = query.get("starttls", "auto").lower()
    starttls = {"1": "required", "true": "required", "0": "never", "false": "never"}.get(
        starttls, starttls
    )
    if starttls not in {"auto", "required", "never"}:
        raise ConfigError(
            f"DIGEST_BOUNCE_IMAP_URL: starttls={starttls!r}; use auto, required or never"
        )
    try:
        port = parts.port or (993 if parts.scheme == "imaps" else 143)
        timeout = float(query.get("timeout", "30"))
    except ValueError as exc:
        raise ConfigError(f"DIGEST_BOUNCE_IMAP_URL: {exc}; {hint}") from None
    mailbox = unquote(parts.path.lstrip("/")) or "INBOX"
    return ImapSettings(
        host=parts.hostname,
        port=port,
        implicit_tls=parts.scheme == "imaps",
        starttls=starttls,
        username=unquote(parts.username),
        password=unquote(parts.password or ""),
        mailbox=check_folder(mailbox, "the mailbox in DIGEST_BOUNCE_IMAP_URL"),
        timeout=timeout,
        cafile=query.get("cafile"),
    )


def check_folder(name: str, what: str = "DIGEST_BOUNCE_IMAP_FOLDER") -> str:
    """``name`` if it is a folder name digest can send as it is (printable ASCII)."""
    if not name or not name.isascii() or not name.isprintable():
        raise ConfigError(
            f"{what} {name!r}: use a folder name in plain ASCII letters, digits, '.', '-', "
            "'_', '/' and spaces"
        )
    return name


def quoted(name: str) -> str:
    """A mailbox name as an IMAP quoted string."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class PollSummary:
    """What one poll did."""

    messages: int = 0
    moved: int = 0
    #: Messages left in the mailbox because processing failed (tried again next time).
    failed: int = 0
    #: How many got each action (``suppressed``, ``ignored``, …).
    actions: Counter[str] = field(default_factory=Counter)

    def line(self, folder: str) -> str:
        done = ", ".join(f"{n} {a}" for a, n in sorted(self.actions.items())) or "nothing"
        text = f"imap: {self.messages} message{'s' if self.messages != 1 else ''} ({done})"
        text += f"; {self.moved} moved to {folder}"
        if self.failed:
            text += f"; {self.failed} left in place after an error (tried again next poll)"
        return text


def _words(exc: BaseException) -> str:
    """An imaplib error's text (its argument is often the server's bytes)."""
    first = exc.args[0] if exc.args else exc
    return first.decode("utf-8", "replace") if isinstance(first, bytes) else str(first)


def _ok(result: tuple[str, Sequence[object]], what: str, where: str) -> Sequence[object]:
    typ, data = result
    if typ != "OK":
        text = b" ".join(d for d in data if isinstance(d, bytes)).decode("utf-8", "replace")
        raise ImapError(f"IMAP server {where}: {what} failed: {text or typ}")
    return data


def connect(settings: ImapSettings) -> imaplib.IMAP4:
    """A signed-in connection (TLS as the URL says)."""
    context = ssl.create_default_context(cafile=settings.cafile)
    try:
        conn: imaplib.IMAP4
        if settings.implicit_tls:
            conn = imaplib.IMAP4_SSL(
                settings.host, settings.port, ssl_context=context, timeout=settings.timeout
            )
        else:
            conn = imaplib.IMAP4(settings.host, settings.port, timeout=settings.timeout)
            if settings.starttls != "never" and "STARTTLS" in conn.capabilities:
                conn.starttls(ssl_context=context)
            elif settings.starttls == "required":
                conn.shutdown()
                raise ImapError(
                    f"IMAP server {settings.where} does not offer STARTTLS and "
                    "DIGEST_BOUNCE_IMAP_URL says starttls=required"
                )
    except (OSError, imaplib.IMAP4.error, ssl.SSLError) as exc:
        raise ImapError(f"cannot connect to IMAP server {settings.where}: {_words(exc)}") from None
    try:
        conn.login(settings.username, settings.password)
    except imaplib.IMAP4.error as exc:
        conn.shutdown()
        raise ImapError(
            f"IMAP server {settings.where} refused the login of {settings.username!r}: "
            f"{_words(exc)}; check the user and password in DIGEST_BOUNCE_IMAP_URL"
        ) from None
    return conn


def _capabilities(conn: imaplib.IMAP4) -> set[str]:
    data = _ok(conn.capability(), "CAPABILITY", "")
    words = b" ".join(d for d in data if isinstance(d, bytes)).decode("ascii", "replace")
    return {w.upper() for w in words.split()}


def ensure_folder(conn: imaplib.IMAP4, folder: str, where: str) -> None:
    """Create ``folder`` unless it exists."""
    typ, data = conn.list('""', quoted(folder))
    if typ == "OK" and any(d for d in data if d):
        return
    typ, data = conn.create(quoted(folder))
    if typ != "OK":
        text = b" ".join(d for d in data if isinstance(d, bytes)).decode("utf-8", "replace")
        if "exist" not in text.lower():
            raise ImapError(f"IMAP server {where}: cannot create folder {folder!r}: {text}")


def _message(data: Sequence[object]) -> bytes | None:
    for item in data:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
            return item[1]
    return None


def move(conn: imaplib.IMAP4, uid: bytes, folder: str, caps: set[str], where: str) -> None:
    """Move one message (by UID) to ``folder``; never deletes without a copy."""
    if "MOVE" in caps:
        _ok(conn.uid("MOVE", uid.decode(), quoted(folder)), f"MOVE to {folder!r}", where)
        return
    _ok(conn.uid("COPY", uid.decode(), quoted(folder)), f"COPY to {folder!r}", where)
    _ok(conn.uid("STORE", uid.decode(), "+FLAGS.SILENT", r"(\Deleted)"), "STORE", where)
    if "UIDPLUS" in caps:
        _ok(conn.uid("EXPUNGE", uid.decode()), "UID EXPUNGE", where)


def poll(app: App, settings: ImapSettings, folder: str) -> PollSummary:
    """Process every message in the mailbox once, moving each processed one to ``folder``."""
    check_folder(folder)
    where = settings.where
    summary = PollSummary()
    conn = connect(settings)
    try:
        caps = _capabilities(conn)
        ensure_folder(conn, folder, where)
        _ok(conn.select(quoted(settings.mailbox)), f"SELECT {settings.mailbox!r}", where)
        data = _ok(conn.uid("SEARCH", "UNDELETED"), "SEARCH", where)
        uids = b" ".join(d for d in data if isinstance(d, bytes)).split()
        for uid in uids:
            fetched = _ok(conn.uid("FETCH", uid.decode(), "(BODY.PEEK[])"), "FETCH", where)
            raw = _message(fetched)
            if raw is None:
                continue  # expunged by someone else meanwhile
            summary.messages += 1
            results = handle(app, raw, (), via="imap")
            if not all(r.ok for r in results):
                summary.failed += 1
                continue
            summary.actions.update(r.action for r in results)
            move(conn, uid, folder, caps, where)
            summary.moved += 1
    except (OSError, imaplib.IMAP4.error) as exc:
        raise ImapError(f"IMAP server {where}: {_words(exc)}") from None
    finally:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            conn.logout()
    return summary


__all__ = [
    "ImapError",
    "ImapSettings",
    "PollSummary",
    "check_folder",
    "connect",
    "ensure_folder",
    "move",
    "parse_imap_url",
    "poll",
    "quoted",
]

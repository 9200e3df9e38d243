"""The web app's defences: the admin password, CSRF tokens, security headers, body limits.

* **Admin password.**  ``DIGEST_ADMIN_PASSWORD`` is hashed once at start-up with scrypt
  and a random salt; a sign-in attempt is hashed the same way and compared with
  :func:`hmac.compare_digest`, so the comparison takes the same time whatever the guess.
  Each sign-in (a row of ``web_session``, see :mod:`digest.signins`) records the
  password's *fingerprint* (an HMAC of it under the secret key), so changing the
  password signs every session out.
* **CSRF.**  Each browser session carries a random token (in the signed session
  cookie); every form posts it back in a hidden ``csrf`` field, JSON calls in the
  ``X-CSRF-Token`` header.  Only two POSTs are exempt: the RFC 8058 one-click
  unsubscribe (mail providers send it without cookies) and the signed SendGrid webhook.
* **Headers.**  Every response gets ``X-Content-Type-Options: nosniff``, a
  ``Referrer-Policy`` of ``no-referrer`` (links carry tokens), and a Content Security
  Policy: pages allow only this site's own scripts and styles (no inline code); email
  bodies (previews and web versions) allow their inline styles and remote images but
  no script at all, and may be framed by this site only.  With an https base URL,
  ``Strict-Transport-Security`` too.  Error pages and JSON errors get the same headers.
* **Bodies.**  :class:`BodyGuard` refuses a body larger than any route takes before it is
  read (413), and closes the connection after a response that was sent before the
  request's body was read, so that a client cannot keep pushing a body nobody wants.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import MutableMapping
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: scrypt cost: about 20 ms per attempt, enough to make guessing slow, cheap to sign in.
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}
#: Longest password attempt hashed (longer ones are refused unhashed).
MAX_PASSWORD_LENGTH = 1024

CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
_CSRF_KEY = "csrf"
#: HSTS for an https site: a year, this host only (other hosts of the domain are theirs).
HSTS = "max-age=31536000"

PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
#: For email bodies shown on their own or in the preview iframes: the email's inline
#: styles and remote images, no script, no forms, framed by this site only.
EMAIL_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: http: data:; "
    "font-src https: data:; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)


def derive_key(secret: str, purpose: str) -> str:
    """A key for one purpose derived from the app secret (cookies never share the link key)."""
    return hmac.new(secret.encode("utf-8"), purpose.encode("utf-8"), hashlib.sha256).hexdigest()


class AdminPassword:
    """The configured admin password, kept only as a salted scrypt hash."""

    def __init__(self, password: str, secret: str) -> None:
        if not password:
            raise ValueError("an empty admin password cannot be used")
        self._salt = os.urandom(16)
        self._hash = self._derive(password)
        #: Stored in the session on sign-in; changes when the password changes.
        self.fingerprint = derive_key(secret, "digest.web.admin:" + password)[:32]

    def _derive(self, attempt: str) -> bytes:
        return hashlib.scrypt(attempt.encode("utf-8"), salt=self._salt, **_SCRYPT)

    def check(self, attempt: str) -> bool:
        """Whether ``attempt`` is the password (constant-time over the hashes)."""
        if not attempt or len(attempt) > MAX_PASSWORD_LENGTH:
            return False
        return hmac.compare_digest(self._derive(attempt), self._hash)


def csrf_token(session: MutableMapping[str, Any]) -> str:
    """This session's CSRF token (created on first use)."""
    token = session.get(_CSRF_KEY)
    if not isinstance(token, str) or len(token) < 32:
        token = secrets.token_urlsafe(32)
        session[_CSRF_KEY] = token
    return token


def csrf_ok(session: MutableMapping[str, Any], sent: object) -> bool:
    """Whether ``sent`` is this session's CSRF token."""
    expected = session.get(_CSRF_KEY)
    if not isinstance(expected, str) or not isinstance(sent, str) or not sent:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), sent.encode("utf-8"))


def rotate_csrf(session: MutableMapping[str, Any]) -> str:
    """A fresh token (on sign-in, so a token seen before signing in is worthless after)."""
    session.pop(_CSRF_KEY, None)
    return csrf_token(session)


def security_headers(present: set[bytes], *, hsts: bool = False) -> list[tuple[bytes, bytes]]:
    """The headers to add to a response that has the headers named in ``present``
    (lower-case); a route may set its own ``Content-Security-Policy`` (email bodies do)."""
    defaults = {
        b"x-content-type-options": b"nosniff",
        b"referrer-policy": b"no-referrer",
        b"content-security-policy": PAGE_CSP.encode("ascii"),
        b"x-frame-options": b"DENY",
        b"cross-origin-opener-policy": b"same-origin",
    }
    if b"content-security-policy" in present:
        # An email body: framed by this site (its own CSP says so).
        defaults[b"x-frame-options"] = b"SAMEORIGIN"
    if hsts:
        defaults[b"strict-transport-security"] = HSTS.encode("ascii")
    return [(k, v) for k, v in defaults.items() if k not in present]


def add_security_headers(headers: MutableHeaders, *, hsts: bool = False) -> None:
    """:func:`security_headers` on a response's headers (for responses made outside the
    middleware, such as the 500 page)."""
    present = {name.lower().encode("latin-1") for name in headers}
    for name, value in security_headers(present, hsts=hsts):
        headers[name.decode("latin-1")] = value.decode("latin-1")


class SecurityHeaders:
    """ASGI middleware adding the headers above to every HTTP response."""

    def __init__(self, app: ASGIApp, *, hsts: bool = False) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(security_headers(present, hsts=self.hsts))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyTooLarge(Exception):
    """A request body went past :class:`BodyGuard`'s limit while it was being read."""


class BodyGuard:
    """ASGI middleware: no request body larger than ``max_bytes`` is read.

    * A declared ``Content-Length`` above it is answered 413 at once, unread.
    * A body without one (chunked) is counted as the app reads it: past the limit,
      reading raises :class:`BodyTooLarge` (the app answers 413).
    * A response that starts before the body was read to its end (a 401 to an anonymous
      upload, a 413, a 404) carries ``Connection: close``: the server then closes the
      connection rather than reading and discarding the rest of the body.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length", b"")
        has_body = bool(length and length != b"0") or b"transfer-encoding" in headers
        if length.isdigit() and int(length) > self.max_bytes:
            await _refuse_too_large(send, self.max_bytes)
            return
        seen = 0
        done = not has_body

        async def counted() -> Message:
            nonlocal seen, done
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if not message.get("more_body", False):
                    done = True
                if seen > self.max_bytes:
                    raise BodyTooLarge(f"the request body is larger than {self.max_bytes} bytes")
            elif message["type"] == "http.disconnect":
                done = True
            return message

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start" and not done:
                message["headers"] = [*message.get("headers", []), (b"connection", b"close")]
            await send(message)

        await self.app(scope, counted, closing)


async def _refuse_too_large(send: Send, limit: int) -> None:
    body = f"The request body is larger than {limit // (1024 * 1024)} MB.\n".encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode("ascii")),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "EMAIL_CSP",
    "HSTS",
    "PAGE_CSP",
    "AdminPassword",
    "BodyGuard",
    "BodyTooLarge",
    "SecurityHeaders",
    "add_security_headers",
    "csrf_ok",
    "csrf_token",
    "derive_key",
    "rotate_csrf",
    "security_headers",
]

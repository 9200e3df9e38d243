"""The web app's defences: the admin password, CSRF tokens, and security headers.

* **Admin password.**  ``DIGEST_ADMIN_PASSWORD`` is hashed once at start-up with scrypt
  and a random salt; a sign-in attempt is hashed the same way and compared with
  :func:`hmac.compare_digest`, so the comparison takes the same time whatever the guess.
  The signed session cookie holds a *fingerprint* (an HMAC of the password under the
  secret key), so changing the password signs every session out.
* **CSRF.**  Each browser session carries a random token (in the signed session
  cookie); every form posts it back in a hidden ``csrf`` field, JSON calls in the
  ``X-CSRF-Token`` header.  Only two POSTs are exempt: the RFC 8058 one-click
  unsubscribe (mail providers send it without cookies) and the signed SendGrid webhook.
* **Headers.**  Every response gets ``X-Content-Type-Options: nosniff``, a
  ``Referrer-Policy`` of ``no-referrer`` (links carry tokens), and a Content Security
  Policy: pages allow only this site's own scripts and styles (no inline code); email
  bodies (previews and web versions) allow their inline styles and remote images but
  no script at all, and may be framed by this site only.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import MutableMapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: scrypt cost: about 20 ms per attempt, enough to make guessing slow, cheap to sign in.
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}
#: Longest password attempt hashed (longer ones are refused unhashed).
MAX_PASSWORD_LENGTH = 1024

CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
_CSRF_KEY = "csrf"
ADMIN_KEY = "admin"
ADMIN_AT_KEY = "admin_at"

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


class SecurityHeaders:
    """ASGI middleware adding the headers above to every HTTP response.

    A route may set its own ``Content-Security-Policy`` (email bodies do); it is kept.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
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
                headers.extend((k, v) for k, v in defaults.items() if k not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


__all__ = [
    "ADMIN_AT_KEY",
    "ADMIN_KEY",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "EMAIL_CSP",
    "PAGE_CSP",
    "AdminPassword",
    "SecurityHeaders",
    "csrf_ok",
    "csrf_token",
    "derive_key",
    "rotate_csrf",
]

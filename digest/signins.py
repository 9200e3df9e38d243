"""Sign-ins to the web app, kept in the database so that they can be revoked.

A sign-in is a row of ``web_session`` (:class:`~digest.models.WebSession`).  The browser
holds a random token (in the app's signed session cookie); the table holds only the
token's SHA-256, so a copy of the database opens no session.  A token counts while its
row is not revoked, has not expired, and was made with the account's current credential
(a fingerprint of the password): changing the password signs every session out.

* :func:`start` on sign-in (returns the token, the only time it is seen);
* :func:`find` on each request (and notes when the session was last seen, at most once a
  minute);
* :func:`revoke` on sign-out, :func:`revoke_all` for "sign out everywhere", and
  :func:`revoke_stale` for sessions made with an old credential.

Accounts (:mod:`digest.accounts`): ``account`` holds the account's email address (or
``admin``, the bootstrap admin of ``DIGEST_ADMIN_PASSWORD``) and ``credential`` its
password's fingerprint; revoking one account's sessions is :func:`revoke_all`.

Nothing here commits: the caller owns the transaction.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from digest.models import WebSession
from subscribers.db import rowcount, utcnow

#: The bootstrap admin of ``DIGEST_ADMIN_PASSWORD`` (until an admin account exists).
ADMIN = "admin"
#: How often, at most, a session's ``last_seen_at`` is written.
TOUCH_EVERY = timedelta(minutes=1)
#: How long revoked and expired rows are kept (for the record) before they are deleted.
KEEP_FOR = timedelta(days=30)


@dataclass(frozen=True)
class SignIn:
    """A valid sign-in, as a request sees it."""

    id: int
    account: str
    created_at: datetime
    expires_at: datetime
    #: The account's role (``admin`` or ``editor``, see :mod:`digest.accounts`).
    role: str = "admin"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def start(
    session: Session,
    account: str,
    credential: str,
    *,
    lifetime: timedelta,
    ip: str | None = None,
    user_agent: str = "",
    now: datetime | None = None,
) -> str:
    """A new sign-in for ``account``; returns its token (keep it in the cookie)."""
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    session.add(
        WebSession(
            token_hash=token_hash(token),
            account=account,
            credential=credential,
            created_at=now,
            last_seen_at=now,
            expires_at=now + lifetime,
            ip=(ip or None) and ip[:64],
            user_agent=user_agent[:300],
        )
    )
    _forget_old(session, now)
    session.flush()
    return token


def find(
    session: Session, token: str, credential: str, *, now: datetime | None = None
) -> SignIn | None:
    """The sign-in ``token`` opens, or None (unknown, revoked, expired, or made with a
    credential that is no longer the account's)."""
    if not token:
        return None
    now = now or utcnow()
    row = session.scalars(
        select(WebSession).where(WebSession.token_hash == token_hash(token))
    ).first()
    if (
        row is None
        or row.revoked_at is not None
        or row.expires_at <= now
        or row.credential != credential
    ):
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
    return SignIn(row.id, row.account, row.created_at, row.expires_at)


def revoke(session: Session, token: str, *, now: datetime | None = None) -> bool:
    """Sign out the session ``token`` opens; whether there was one to sign out."""
    result = session.execute(
        update(WebSession)
        .where(WebSession.token_hash == token_hash(token), WebSession.revoked_at.is_(None))
        .values(revoked_at=now or utcnow())
    )
    return rowcount(result) > 0


def revoke_all(session: Session, account: str, *, now: datetime | None = None) -> int:
    """Sign out every session of ``account`` (everywhere); returns how many."""
    result = session.execute(
        update(WebSession)
        .where(WebSession.account == account, WebSession.revoked_at.is_(None))
        .values(revoked_at=now or utcnow())
    )
    return rowcount(result)


def revoke_stale(
    session: Session, account: str, credential: str, *, now: datetime | None = None
) -> int:
    """Sign out ``account``'s sessions made with another credential (the password was
    changed): they no longer count anyway, and this says so in the table."""
    result = session.execute(
        update(WebSession)
        .where(
            WebSession.account == account,
            WebSession.credential != credential,
            WebSession.revoked_at.is_(None),
        )
        .values(revoked_at=now or utcnow())
    )
    return rowcount(result)


def active(session: Session, account: str, *, now: datetime | None = None) -> int:
    """How many sessions of ``account`` are signed in now."""
    now = now or utcnow()
    return len(
        session.scalars(
            select(WebSession.id).where(
                WebSession.account == account,
                WebSession.revoked_at.is_(None),
                WebSession.expires_at > now,
            )
        ).all()
    )


def _forget_old(session: Session, now: datetime) -> None:
    cutoff = now - KEEP_FOR
    session.execute(
        delete(WebSession).where(
            or_(WebSession.expires_at < cutoff, WebSession.revoked_at < cutoff)
        )
    )


__all__ = [
    "ADMIN",
    "SignIn",
    "active",
    "find",
    "revoke",
    "revoke_all",
    "revoke_stale",
    "start",
    "token_hash",
]

"""People who sign in to the web app: accounts with a role and an argon2id password.

An account (:class:`~digest.models.Account`) is an email address, a role and the
argon2id hash of a password (argon2-cffi's defaults; the salt and the parameters live in
the hash).  Roles:

* ``editor``: the newsletters' editions (prepare, edit, test, approve, send) and the
  preview;
* ``admin``: everything, including lists, subscribers, imports, segments,
  suppressions and accounts.

Sign-ins are rows of ``web_session`` (:mod:`digest.signins`): ``account`` is the
account's email address and ``credential`` a fingerprint of its current password hash,
so a new password (a new hash, with a new salt) signs every session of the account out.

**The bootstrap admin.**  ``DIGEST_ADMIN_PASSWORD`` signs in as the account ``admin``
(:data:`digest.signins.ADMIN`) only while no *admin* account exists: it is how the first
admin gets in on a fresh install (or one upgraded from the shared password).  Adding the
first admin account signs the bootstrap admin's sessions out, and from then on the
password no longer signs in; remove every admin account and it works again.

Nothing here commits: the caller owns the transaction.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digest import signins
from digest.errors import DigestError, NotFound
from digest.models import Account, WebSession
from subscribers.db import utcnow

EDITOR = "editor"
ADMIN = "admin"
ROLES = (EDITOR, ADMIN)
#: Shortest password an account may have.
MIN_PASSWORD_LENGTH = 10
#: Longest password hashed (a longer attempt is refused unhashed).
MAX_PASSWORD_LENGTH = 1024

_hasher = PasswordHasher()
#: Hashed against when the address has no account, so that a wrong address takes as
#: long to refuse as a wrong password.
_DUMMY_HASH = _hasher.hash("digest: no such account")


class AccountError(DigestError):
    """An account cannot be added or changed as asked (the message says why)."""


@dataclass(frozen=True)
class AccountInfo:
    """An account as lists show it (never its hash)."""

    email: str
    role: str
    created_at: datetime
    password_changed_at: datetime
    signed_in: int


def normalise_email(email: str) -> str:
    """An account's key: the address trimmed and lower-cased (one account per address,
    whatever its case)."""
    value = (email or "").strip().lower()
    local, at, domain = value.partition("@")
    if not at or not local or "." not in domain or any(c.isspace() for c in value):
        raise AccountError(f"{email!r} is not an email address; write one like ada@example.org")
    if len(value) > 320:
        raise AccountError("the email address is longer than 320 characters")
    return value


def check_role(role: str) -> str:
    if role not in ROLES:
        raise AccountError(f"{role!r} is not a role; use one of: {', '.join(ROLES)}")
    return role


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(
            f"the password is too short: use at least {MIN_PASSWORD_LENGTH} characters "
            "(a few words make a good one)"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AccountError(f"the password is longer than {MAX_PASSWORD_LENGTH} characters")
    if password != password.strip():
        raise AccountError("the password starts or ends with a space; leave them out")
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(check_password(password))


def credential(account: Account) -> str:
    """The fingerprint a sign-in records: changes whenever the password does."""
    return hashlib.sha256(account.password_hash.encode("utf-8")).hexdigest()[:32]


def get(session: Session, email: str) -> Account | None:
    return session.scalars(select(Account).where(Account.email == email.strip().lower())).first()


def add(session: Session, email: str, role: str, password: str) -> Account:
    """A new account; AccountError when the address has one already."""
    key = normalise_email(email)
    check_role(role)
    if get(session, key) is not None:
        raise AccountError(
            f"{key} has an account already; change its password with `digest users passwd {key}`"
        )
    if role == ADMIN and not admin_exists(session):
        signins.revoke_all(session, signins.ADMIN)  # the bootstrap admin's sessions end
    now = utcnow()
    account = Account(
        email=key,
        role=role,
        password_hash=hash_password(password),
        created_at=now,
        password_changed_at=now,
    )
    session.add(account)
    try:
        session.flush()
    except IntegrityError:  # added at the same moment elsewhere (the caller rolls back)
        raise AccountError(f"{key} has an account already") from None
    return account


def existing(session: Session, email: str) -> Account:
    found = get(session, email)
    if found is None:
        raise NotFound(f"no account for {email.strip()!r}; `digest users list` shows them")
    return found


def set_password(session: Session, email: str, password: str) -> Account:
    """A new password for ``email``; signs every session of the account out."""
    account = existing(session, email)
    account.password_hash = hash_password(password)
    account.password_changed_at = utcnow()
    signins.revoke_all(session, account.email)
    session.flush()
    return account


def set_role(session: Session, email: str, role: str) -> Account:
    account = existing(session, email)
    if check_role(role) == ADMIN and not admin_exists(session):
        signins.revoke_all(session, signins.ADMIN)
    account.role = role
    session.flush()
    return account


def remove(session: Session, email: str) -> None:
    """Delete the account and sign all its sessions out."""
    account = existing(session, email)
    signins.revoke_all(session, account.email)
    session.delete(account)
    session.flush()


def list_accounts(session: Session) -> list[AccountInfo]:
    now = utcnow()
    live = dict(
        session.execute(
            select(WebSession.account, func.count())
            .where(WebSession.revoked_at.is_(None), WebSession.expires_at > now)
            .group_by(WebSession.account)
        ).all()
    )
    return [
        AccountInfo(a.email, a.role, a.created_at, a.password_changed_at, int(live.get(a.email, 0)))
        for a in session.scalars(select(Account).order_by(Account.email))
    ]


def admin_exists(session: Session) -> bool:
    found = session.scalars(select(Account.id).where(Account.role == ADMIN).limit(1)).first()
    return found is not None


def any_exists(session: Session) -> bool:
    return session.scalars(select(Account.id).limit(1)).first() is not None


def verify(session: Session, email: str, password: str) -> Account | None:
    """The account ``email`` and ``password`` open, or None.  Takes about as long for an
    unknown address as for a wrong password."""
    if not password or len(password) > MAX_PASSWORD_LENGTH:
        return None
    account = get(session, email) if email else None
    try:
        _hasher.verify(account.password_hash if account else _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if account is None:
        return None
    if _hasher.check_needs_rehash(account.password_hash):
        # Same password, stronger parameters: sessions keep counting only if the
        # fingerprint is kept, so they are signed out (rare: a parameter upgrade).
        account.password_hash = _hasher.hash(password)
    return account


def find_signin(
    session: Session, token: str, bootstrap_credential: str | None
) -> signins.SignIn | None:
    """The sign-in ``token`` opens, with its account's role, or None (unknown, revoked,
    expired, password changed, account removed; a bootstrap sign-in once an admin
    account exists or when ``DIGEST_ADMIN_PASSWORD`` is unset)."""
    if not token:
        return None
    key = session.scalars(
        select(WebSession.account).where(WebSession.token_hash == signins.token_hash(token))
    ).first()
    if key is None:
        return None
    if key == signins.ADMIN:
        if bootstrap_credential is None or admin_exists(session):
            return None
        found = signins.find(session, token, bootstrap_credential)
        return found and replace(found, role=ADMIN)
    account = get(session, key)
    if account is None:
        return None
    found = signins.find(session, token, credential(account))
    return found and replace(found, role=account.role)


__all__ = [
    "ADMIN",
    "EDITOR",
    "MIN_PASSWORD_LENGTH",
    "ROLES",
    "AccountError",
    "AccountInfo",
    "add",
    "admin_exists",
    "any_exists",
    "check_password",
    "check_role",
    "credential",
    "existing",
    "find_signin",
    "get",
    "list_accounts",
    "normalise_email",
    "remove",
    "set_password",
    "set_role",
    "verify",
]

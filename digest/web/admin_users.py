"""The admin console's Users page (``/admin/users``, admins only): the accounts that
sign in, with their role; add one, reset a password, remove one (as ``digest users``
does).  An admin cannot remove their own account here (another admin, or the command
line, can).  Every change is logged with the account that made it."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from digest import accounts, signins
from digest.errors import DigestError
from digest.web.pages import (
    actor,
    field,
    flash,
    in_session,
    read_form,
    render,
    require_admin,
    require_editor,
    secret,
    sign_in,
    signed_in,
)

log = logging.getLogger("digest.audit")
router = APIRouter(prefix="/admin", include_in_schema=False)


async def _view(
    request: Request,
    form: dict[str, Any] | None = None,
    *,
    error: str | None = None,
    status: int = 200,
) -> Response:
    rows = await in_session(request, accounts.list_accounts)
    values = {"email": "", "role": accounts.EDITOR, **(form or {})}
    return render(
        request,
        "admin/users.html.j2",
        {
            "rows": rows,
            "roles": accounts.ROLES,
            "form": values,
            "error": error,
            "min_length": accounts.MIN_PASSWORD_LENGTH,
        },
        status=status,
    )


@router.get("/users")
async def users_page(request: Request) -> Response:
    require_admin(request)
    return await _view(request)


@router.post("/users")
async def users_add(request: Request) -> Response:
    require_admin(request)
    form = await read_form(request)
    email, role = field(form, "email", 320), field(form, "role", 16)
    password = secret(form, "password")
    if password != secret(form, "password_again"):
        return await _view(
            request, {"email": email, "role": role}, error="The two passwords differ.", status=400
        )

    def work(session: Session) -> str:
        return accounts.add(session, email, role, password).email

    try:
        key = await in_session(request, work)
    except DigestError as exc:
        return await _view(request, {"email": email, "role": role}, error=str(exc), status=400)
    log.info("%s added the account %s (%s)", actor(request), key, role)
    flash(request, f"Added {key} ({role}).", "success")
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/users/password")
async def users_password(request: Request) -> Response:
    require_admin(request)
    form = await read_form(request)
    email = field(form, "email", 320)
    password = secret(form, "password")
    try:
        await in_session(request, lambda s: accounts.set_password(s, email, password))
    except DigestError as exc:
        flash(request, str(exc), "error")
    else:
        log.info("%s set a new password for %s", actor(request), email)
        flash(request, f"New password set for {email}; its sessions are signed out.", "success")
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/users/remove")
async def users_remove(request: Request) -> Response:
    require_admin(request)
    form = await read_form(request)
    email = field(form, "email", 320).lower()
    me = signed_in(request)
    if me is not None and me.account == email:
        flash(request, "You cannot remove your own account; ask another admin.", "error")
        return RedirectResponse("/admin/users", status_code=303)
    try:
        await in_session(request, lambda s: accounts.remove(s, email))
    except DigestError as exc:
        flash(request, str(exc), "error")
    else:
        log.info("%s removed the account %s", actor(request), email)
        flash(request, f"Removed {email}; its sessions are signed out.", "success")
    return RedirectResponse("/admin/users", status_code=303)


# ---------------------------------------------------------------------------
# One's own account (editors and admins)


async def _account_view(
    request: Request, *, error: str | None = None, status: int = 200
) -> Response:
    me = signed_in(request)
    bootstrap = me is not None and me.account == signins.ADMIN
    return render(
        request,
        "admin/account.html.j2",
        {"bootstrap": bootstrap, "error": error, "min_length": accounts.MIN_PASSWORD_LENGTH},
        status=status,
    )


@router.get("/account")
async def account_page(request: Request) -> Response:
    require_editor(request)
    return await _account_view(request)


@router.post("/account")
async def account_password(request: Request) -> Response:
    """Change one's own password: the current one, then the new one twice.  Every other
    session of the account is signed out; this browser is signed in again."""
    require_editor(request)
    form = await read_form(request)
    me = signed_in(request)
    if me is None or me.account == signins.ADMIN:
        return await _account_view(
            request, error="The bootstrap admin has no account to change.", status=400
        )

    current, new = secret(form, "current"), secret(form, "password")
    if new != secret(form, "password_again"):
        return await _account_view(request, error="The two new passwords differ.", status=400)

    def work(session: Session) -> str | None:
        if accounts.verify(session, me.account, current) is None:
            return None
        account = accounts.set_password(session, me.account, new)
        return accounts.credential(account)

    try:
        credential = await in_session(request, work)
    except DigestError as exc:
        return await _account_view(request, error=str(exc), status=400)
    if credential is None:
        return await _account_view(request, error="Your current password is not right.", status=400)
    await sign_in(request, me.account, credential)
    log.info("%s changed their password", actor(request))
    flash(request, "Password changed; your other sessions are signed out.", "success")
    return RedirectResponse("/admin/account", status_code=303)


__all__ = ["router"]

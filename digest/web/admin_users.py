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

from digest import accounts
from digest.errors import DigestError
from digest.web.pages import (
    actor,
    field,
    flash,
    in_session,
    read_form,
    render,
    require_admin,
    signed_in,
)

log = logging.getLogger("digest.audit")
router = APIRouter(prefix="/admin/users", include_in_schema=False)


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


@router.get("")
async def users_page(request: Request) -> Response:
    require_admin(request)
    return await _view(request)


@router.post("")
async def users_add(request: Request) -> Response:
    require_admin(request)
    form = await read_form(request)
    email, role = field(form, "email", 320), field(form, "role", 16)
    password = form.get("password")
    password = password if isinstance(password, str) else ""
    if password != form.get("password_again"):
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


@router.post("/password")
async def users_password(request: Request) -> Response:
    require_admin(request)
    form = await read_form(request)
    email = field(form, "email", 320)
    password = form.get("password")
    password = password if isinstance(password, str) else ""
    try:
        await in_session(request, lambda s: accounts.set_password(s, email, password))
    except DigestError as exc:
        flash(request, str(exc), "error")
    else:
        log.info("%s set a new password for %s", actor(request), email)
        flash(request, f"New password set for {email}; its sessions are signed out.", "success")
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/remove")
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


__all__ = ["router"]

"""The admin console's suppression list: ``/admin/suppressions``.

List and search suppressed addresses (reason, date, evidence), and lift one behind a
confirmation page (CSRF-protected like every admin form).  Lifting writes a line in the
reader's consent log and does not make them active again: they must confirm.  An erased
entry (only a hash is kept) is lifted only by typing the address it was made from.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from digest.web.admin import admin_actor
from digest.web.pages import (
    WebError,
    field,
    flash,
    in_session,
    read_form,
    render,
    require_admin,
)
from subscribers import suppression as suppression_lib
from subscribers.consent import By
from subscribers.errors import SubscribersError
from subscribers.models import ConsentSource, SuppressionReason

router = APIRouter(prefix="/admin/suppressions", include_in_schema=False)

PAGE_SIZE = 50
REASONS = [r.value for r in SuppressionReason]


@router.get("")
async def suppressions_page(request: Request) -> Response:
    require_admin(request)
    params = request.query_params
    query = (params.get("q") or "").strip()[:200]
    reason = params.get("reason") or None
    if reason not in {None, *REASONS}:
        raise WebError(f"{reason!r} is not a suppression reason.", status=400)
    page = int(params["page"]) if (params.get("page") or "").isdigit() else 1
    page = max(1, min(page, 100_000))
    total, rows = await in_session(
        request,
        lambda s: suppression_lib.list_suppressions(
            s, reason=reason, search=query, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
        ),
    )
    kept = {k: v for k, v in params.items() if k != "page" and v}
    return render(
        request,
        "admin/suppressions.html.j2",
        {
            "rows": rows,
            "total": total,
            "q": query,
            "reason": reason or "",
            "reasons": REASONS,
            "page": page,
            "pages": max(1, -(-total // PAGE_SIZE)),
            "query_for": lambda p: urlencode({**kept, "page": p}),
        },
    )


async def _lift_view(
    request: Request, entry_id: int, *, error: str | None = None, status: int = 200
) -> Response:
    try:
        entry = await in_session(request, suppression_lib.get_entry, entry_id)
    except SubscribersError as exc:
        raise WebError(str(exc), title="Not found", status=404) from None
    return render(
        request,
        "admin/suppression_lift.html.j2",
        {"entry": entry, "error": error},
        status=status,
    )


@router.get("/{entry_id}/lift")
async def lift_page(request: Request, entry_id: int) -> Response:
    require_admin(request)
    return await _lift_view(request, entry_id)


@router.post("/{entry_id}/lift")
async def lift_post(request: Request, entry_id: int) -> Response:
    require_admin(request)
    form = await read_form(request)
    why = field(form, "why", 300)
    typed = field(form, "email", 320)

    def work(session: Any) -> suppression_lib.Lifted:
        entry = suppression_lib.get_entry(session, entry_id)
        address = typed if entry.erased else (entry.email or "")
        by = By(ConsentSource.ADMIN, admin_actor(request), why)
        return suppression_lib.lift(session, address, by=by, why=why, entry_id=entry_id)

    if form.get("confirm") != "yes":
        return await _lift_view(
            request, entry_id, error="Tick the box to confirm the lift.", status=400
        )
    try:
        lifted = await in_session(request, work)
    except suppression_lib.LiftRefused as exc:
        return await _lift_view(request, entry_id, error=f"{exc}.", status=400)
    except SubscribersError as exc:
        raise WebError(str(exc), title="Not found", status=404) from None
    done = f"Suppression of {lifted.entry.label()} lifted: {lifted.next_step()}."
    flash(request, done, "success")
    if lifted.subscriber_id is not None:
        return RedirectResponse(f"/admin/subscribers/{lifted.subscriber_id}", status_code=303)
    return RedirectResponse("/admin/suppressions", status_code=303)


__all__ = ["router"]

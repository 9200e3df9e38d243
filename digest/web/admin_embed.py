"""The admin's page of embeddable sign-up forms (``/admin/embed``): for each newsletter,
the HTML to paste into the publication's own site.  The form posts to the public
subscribe endpoint without JavaScript and without a CSRF token (it has no session
here); the endpoint takes such a post only when it says it is one, behind a honeypot,
the per-IP sign-up limit and, on double opt-in lists, the confirmation email."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from digest.web.pages import in_session, render, require_admin, state
from digest.web.public import embed_snippet
from subscribers.lists import find_list

router = APIRouter(prefix="/admin/embed", include_in_schema=False)


@router.get("")
async def embed_page(request: Request) -> Response:
    require_admin(request)
    web = state(request)
    config = web.digest_config()

    def load(session: Session) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for nl in config.newsletters.values():
            mlist = find_list(session, nl.list_name)
            out[nl.name] = None if mlist is None else mlist.double_opt_in
        return out

    double = await in_session(request, load)
    forms = [
        {
            "newsletter": nl,
            "snippet": embed_snippet(web.base_url, nl),
            "open": double[nl.name] is not None,
            "double_opt_in": bool(double[nl.name]),
        }
        for nl in config.newsletters.values()
    ]
    return render(request, "admin/embed.html.j2", {"forms": forms})


__all__ = ["router"]

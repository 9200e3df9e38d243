"""The admin console's Workers page: ``/admin/workers``.

Every `digest worker` registered in the database: host, pid, state (running,
draining, stopped or lost), when it started, its last heartbeat, the batches it
holds and the messages it sent; each provider account's shared rate; and the
editions queued while no worker runs (also shown on the dashboard).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from digest.delivery.throttle import budgets
from digest.web.pages import in_session, render, require_admin
from digest.workers import LOST_AFTER, list_workers, waiting_for_workers

router = APIRouter(prefix="/admin/workers", include_in_schema=False)


@router.get("")
async def workers_page(request: Request) -> Response:
    require_admin(request)

    def load(s: Session) -> dict[str, Any]:
        return {
            "workers": list_workers(s),
            "rates": [(b.key, b.rate, b.taken) for b in budgets(s)],
            "waiting": waiting_for_workers(s),
            "lost_after": int(LOST_AFTER.total_seconds()),
        }

    return render(request, "admin/workers.html.j2", await in_session(request, load))

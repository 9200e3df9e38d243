"""Delivery workers: any number of processes, on any machines sharing the database.

``digest send --enqueue`` plans an edition and leaves it; each worker claims
pending batches (``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL, so no two
workers ever hold the same batch), sends them through the shared send loop and
settles editions when they are done.  A batch whose worker died before posting
is released when its lease runs out (at once when the dead process was on this
host) and another worker takes it over; what a dead worker had in flight is
reported uncertain.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select

from digest.app import App
from digest.delivery import ledger
from digest.delivery.backends import Backend
from digest.delivery.base import SendLoop, SendOptions
from digest.delivery.factory import backend_factory as make_factory
from digest.models import Edition, EditionStatus
from digest.send import Editions

log = logging.getLogger(__name__)


@dataclass
class WorkerStats:
    rounds: int = 0
    sent: int = 0
    failed: int = 0
    uncertain: int = 0
    recovered: int = 0


def settle_sending(app: App) -> None:
    """Mark every edition that has nothing outstanding as sent."""
    with app.sessions() as s:
        ids = list(s.scalars(select(Edition.id).where(Edition.status == EditionStatus.SENDING)))
    for edition_id in ids:
        ledger.settle_edition(app.sessions, edition_id)


def run_worker(
    app: App,
    backend: str | None = None,
    *,
    options: SendOptions | None = None,
    poll: float = 2.0,
    once: bool = False,
    stop: threading.Event | None = None,
    backend_factory: Callable[[], Backend] | None = None,
    owner: str | None = None,
) -> WorkerStats:
    """Claim and send batches until stopped (or, with ``once``, until none is left)."""
    name = backend or app.settings.backend
    factory = backend_factory or make_factory(name, app.settings)
    stop = stop or threading.Event()
    stats = WorkerStats()
    context = Editions(app)
    while not stop.is_set():
        stats.rounds += 1
        stats.recovered += ledger.recover_stale(app.sessions)
        # a stop request reaches the running loop too: it finishes the post in hand
        loop = SendLoop(app.sessions, factory, context, options, owner=owner, cancel=stop)
        result = loop.run(edition_id=None)
        stats.sent += result.progress.sent
        stats.failed += result.progress.failed
        stats.uncertain += result.progress.uncertain
        settle_sending(app)
        if result.paused:
            log.warning("an edition paused: %s", result.reason)
        if once:
            break
        stop.wait(poll)
    return stats

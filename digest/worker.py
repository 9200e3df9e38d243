"""Delivery workers: any number of processes, on any machines sharing the database.

``digest send --enqueue`` plans an edition and leaves it; each worker claims
pending batches (``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL, so no two
workers ever hold the same batch), sends them through the shared
:class:`~digest.sender.Sender` and settles editions when they are done.  A batch
whose worker died before posting is released when its lease runs out (at once
when the dead process was on this host) and another worker takes it over; what
a dead worker had in flight is reported uncertain.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from digest.app import App
from digest.delivery.base import Backend
from digest.delivery.loop import SendOptions
from digest.delivery.registry import BackendChoice
from digest.sender import Sender

log = logging.getLogger(__name__)


@dataclass
class WorkerStats:
    rounds: int = 0
    sent: int = 0
    failed: int = 0
    uncertain: int = 0
    recovered: int = 0


def run_worker(
    app: App,
    backend: str | BackendChoice | None = None,
    *,
    options: SendOptions | None = None,
    poll: float = 2.0,
    once: bool = False,
    stop: threading.Event | None = None,
    backend_factory: Callable[[], Backend] | None = None,
    owner: str | None = None,
) -> WorkerStats:
    """Claim and send batches until stopped (or, with ``once``, until none is left)."""
    stop = stop or threading.Event()
    # a stop request reaches the running loop too: it finishes the post in hand
    sender = Sender(
        app, backend, options=options, cancel=stop, backend_factory=backend_factory, owner=owner
    )
    stats = WorkerStats()
    while not stop.is_set():
        stats.rounds += 1
        done = sender.deliver()
        stats.recovered += done.recovered
        stats.sent += done.sent
        stats.failed += done.failed
        stats.uncertain += done.uncertain
        if done.paused:
            log.warning("an edition paused: %s", done.pause_reason)
        if once:
            break
        stop.wait(poll)
    return stats

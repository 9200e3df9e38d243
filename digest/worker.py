"""Delivery workers: any number of processes, on any machines sharing the database.

``digest send --enqueue`` plans an edition and leaves it; each worker claims
pending batches (``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL, so no two
workers ever hold the same batch), sends them through the shared
:class:`~digest.sender.Sender` and settles editions when they are done.  A batch
whose worker died before posting is released when its lease runs out (at once
when the dead process was on this host) and another worker takes it over; what
a dead worker had in flight is reported uncertain.

Each worker registers itself (:mod:`digest.workers`: `digest workers list`, the admin
console's Workers page) and beats while it runs.  SIGTERM drains it: the post in
hand finishes, its batches are released at once, and it is marked stopped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from digest import workers
from digest.app import App
from digest.delivery import ledger
from digest.delivery.base import Backend
from digest.delivery.loop import Progress, SendOptions
from digest.delivery.registry import BackendChoice
from digest.models import WorkerState
from digest.sender import Sender

log = logging.getLogger(__name__)


@dataclass
class WorkerStats:
    rounds: int = 0
    sent: int = 0
    failed: int = 0
    uncertain: int = 0
    recovered: int = 0
    #: Batches still held when it stopped, released at once for other workers.
    released: int = 0


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
    heartbeat: float = workers.HEARTBEAT,
) -> WorkerStats:
    """Claim and send batches until stopped (or, with ``once``, until none is left).

    The worker is registered (:mod:`digest.workers`) while it runs and beats every
    ``heartbeat`` seconds.  When ``stop`` is set it drains: the post in hand finishes,
    every batch it still holds is released at once (another worker takes it without
    waiting for the lease), and it is marked stopped.
    """
    stop = stop or threading.Event()
    owner = owner or ledger.owner_id()
    # a stop request reaches the running loop too: it finishes the post in hand
    stats = WorkerStats()
    in_round = [0]  # sent by the round under way (the heartbeat reports it too)

    def on_progress(progress: Progress, _total: int | None) -> None:
        in_round[0] = progress.sent

    sender = Sender(
        app,
        backend,
        options=options,
        cancel=stop,
        backend_factory=backend_factory,
        owner=owner,
        on_progress=on_progress,
    )
    worker_id = workers.register(app.sessions, owner, sender.backend.name)
    beating = workers.Heartbeat(
        app.sessions, worker_id, lambda: stats.sent + in_round[0], heartbeat
    ).start()
    finished = threading.Event()
    draining = threading.Thread(
        target=_mark_draining,
        args=(app, worker_id, stop, finished),
        name="digest-drain",
        daemon=True,
    )
    draining.start()
    try:
        while not stop.is_set():
            stats.rounds += 1
            done = sender.deliver()
            in_round[0] = 0
            stats.recovered += done.recovered
            stats.sent += done.sent
            stats.failed += done.failed
            stats.uncertain += done.uncertain
            if done.paused:
                log.warning("an edition paused: %s", done.pause_reason)
            if once:
                break
            stop.wait(poll)
    finally:
        beating.stop()
        finished.set()
        draining.join()
        # the threads have finished their posts: whatever this worker still holds goes
        # back to the queue now, not when its lease runs out
        stats.released = ledger.release_owner(app.sessions, owner)
        workers.set_state(app.sessions, worker_id, WorkerState.STOPPED, stats.sent)
    if stats.released:
        log.info("released %d batch(es) for other workers", stats.released)
    return stats


def _mark_draining(
    app: App, worker_id: int, stop: threading.Event, finished: threading.Event
) -> None:
    """Shown as draining from the moment a stop is asked for until it has stopped."""
    while not stop.wait(0.2):
        if finished.is_set():
            return  # ended without a stop (``once``)
    try:
        workers.set_state(app.sessions, worker_id, WorkerState.DRAINING)
    except Exception:
        log.warning("could not mark the worker draining", exc_info=True)

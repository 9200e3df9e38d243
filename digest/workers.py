"""The worker registry: which `digest worker` processes run, what each holds, which are lost.

Each worker registers itself (:func:`register`) under its claims' owner prefix
(``host:pid:token``; its sending threads claim batches as ``host:pid:token:thread``),
then beats every :data:`HEARTBEAT` seconds with the messages it has sent
(:class:`Heartbeat`).  On SIGTERM it is *draining* (finishing the post in hand);
when it stops it releases its batches at once (:func:`digest.delivery.ledger.release_owner`)
and is marked stopped.  One that neither beats nor stopped is *lost*: its heartbeat
is older than :data:`LOST_AFTER`, or (on this host) its process is gone.  A lost
worker's batches are taken over when their lease runs out (at once on this host),
as the ledger always did.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from digest.delivery.ledger import owner_is_dead
from digest.models import (
    BatchStatus,
    DeliveryBatch,
    Edition,
    EditionStatus,
    WorkerProcess,
    WorkerState,
)
from subscribers.db import utcnow

log = logging.getLogger(__name__)

#: Seconds between a worker's heartbeats.
HEARTBEAT = 5.0
#: A running worker whose last heartbeat is older than this is shown as lost.
LOST_AFTER = timedelta(seconds=30)
#: Stopped workers are kept this long for the record, then forgotten.
KEEP_STOPPED = timedelta(days=7)


def register(sessions: sessionmaker[Session], name: str, backend: str) -> int:
    """Record a starting worker (``name``: its owner prefix); returns its id."""
    now = utcnow()
    host, _, rest = name.partition(":")
    with sessions.begin() as s:
        s.execute(
            delete(WorkerProcess).where(
                (WorkerProcess.name == name)  # the same owner again: one row
                | (
                    (WorkerProcess.state == WorkerState.STOPPED)
                    & (WorkerProcess.stopped_at < now - KEEP_STOPPED)
                )
            )
        )
        worker = WorkerProcess(
            name=name,
            host=host or socket.gethostname(),
            pid=int(rest.partition(":")[0] or os.getpid()),
            backend=backend,
            state=WorkerState.RUNNING,
            started_at=now,
            heartbeat_at=now,
            sent=0,
        )
        s.add(worker)
        s.flush()
        return worker.id


def beat(sessions: sessionmaker[Session], worker_id: int, sent: int) -> None:
    """A sign of life, with the messages sent so far."""
    with sessions.begin() as s:
        s.execute(
            update(WorkerProcess)
            .where(WorkerProcess.id == worker_id)
            .values(heartbeat_at=utcnow(), sent=sent)
        )


def set_state(
    sessions: sessionmaker[Session], worker_id: int, state: WorkerState, sent: int | None = None
) -> None:
    values: dict[str, Any] = {"state": state, "heartbeat_at": utcnow()}
    if state == WorkerState.STOPPED:
        values["stopped_at"] = utcnow()
    if sent is not None:
        values["sent"] = sent
    with sessions.begin() as s:
        s.execute(update(WorkerProcess).where(WorkerProcess.id == worker_id).values(**values))


class Heartbeat:
    """A thread that calls :func:`beat` every :data:`HEARTBEAT` seconds until stopped;
    ``sent`` says how many messages the worker has sent so far."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        worker_id: int,
        sent: Callable[[], int],
        every: float = HEARTBEAT,
    ) -> None:
        self.sessions = sessions
        self.worker_id = worker_id
        self.sent = sent
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="digest-heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                beat(self.sessions, self.worker_id, self.sent())
            except Exception:  # a database hiccup: the next beat tries again
                log.warning("heartbeat failed", exc_info=True)


@dataclass(frozen=True)
class WorkerView:
    """One worker as `digest workers list` and the admin page show it."""

    id: int
    name: str
    host: str
    pid: int
    backend: str
    #: running, draining, stopped, or lost.
    state: str
    started_at: datetime
    heartbeat_at: datetime
    stopped_at: datetime | None
    #: Batches it holds now (claimed, lease running).
    batches: int
    sent: int

    @property
    def alive(self) -> bool:
        return self.state in (WorkerState.RUNNING, WorkerState.DRAINING)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "host": self.host,
            "pid": self.pid,
            "backend": self.backend,
            "state": self.state,
            "started_at": self.started_at.isoformat(),
            "heartbeat_at": self.heartbeat_at.isoformat(),
            "stopped_at": self.stopped_at.isoformat() if self.stopped_at else None,
            "batches": self.batches,
            "sent": self.sent,
        }


def is_lost(worker: WorkerProcess, now: datetime) -> bool:
    """A worker not stopped whose heartbeat is too old, or whose process (on this host)
    is gone."""
    if worker.state == WorkerState.STOPPED:
        return False
    return now - worker.heartbeat_at > LOST_AFTER or owner_is_dead(worker.name)


def list_workers(session: Session, *, include_stopped: bool = True) -> list[WorkerView]:
    """Every registered worker, newest first, with its state and the batches it holds."""
    now = utcnow()
    rows = list(
        session.scalars(
            select(WorkerProcess).order_by(WorkerProcess.started_at.desc(), WorkerProcess.id)
        )
    )
    held: dict[str, int] = {}
    claims = session.execute(
        select(DeliveryBatch.claimed_by, func.count())
        .where(DeliveryBatch.status == BatchStatus.SENDING)
        .group_by(DeliveryBatch.claimed_by)
    ).all()
    for owner, count in claims:
        prefix = (owner or "").rsplit(":", 1)[0]
        held[prefix] = held.get(prefix, 0) + int(count)
    views = []
    for w in rows:
        state = "lost" if is_lost(w, now) else w.state.value
        if state == WorkerState.STOPPED and not include_stopped:
            continue
        views.append(
            WorkerView(
                w.id,
                w.name,
                w.host,
                w.pid,
                w.backend,
                state,
                w.started_at,
                w.heartbeat_at,
                w.stopped_at,
                held.get(w.name, 0),
                w.sent,
            )
        )
    return views


def alive(session: Session) -> int:
    """How many workers are running (not stopped, draining or lost)."""
    now = utcnow()
    running = session.scalars(
        select(WorkerProcess).where(WorkerProcess.state == WorkerState.RUNNING)
    )
    return sum(1 for w in running if not is_lost(w, now))


@dataclass(frozen=True)
class Waiting:
    """An edition queued for workers while none is running."""

    edition_id: int
    newsletter: str
    period: str
    batches: int


def waiting_for_workers(session: Session) -> list[Waiting]:
    """Editions with batches due, none of them in hand, while no worker is alive (empty
    when one is): what the admin dashboard warns about."""
    if alive(session):
        return []
    now = utcnow()
    in_hand = select(DeliveryBatch.edition_id).where(DeliveryBatch.status == BatchStatus.SENDING)
    rows = session.execute(
        select(Edition.id, Edition.newsletter, Edition.period, func.count(DeliveryBatch.id))
        .join(DeliveryBatch, DeliveryBatch.edition_id == Edition.id)
        .where(
            Edition.status.in_([EditionStatus.PLANNED, EditionStatus.SENDING]),
            Edition.id.not_in(in_hand),  # a `digest send` is delivering it
            DeliveryBatch.status == BatchStatus.PENDING,
            (DeliveryBatch.not_before.is_(None)) | (DeliveryBatch.not_before <= now),
        )
        .group_by(Edition.id, Edition.newsletter, Edition.period)
        .order_by(Edition.id)
    ).all()
    return [Waiting(i, n, p, int(c)) for i, n, p, c in rows]


__all__ = [
    "HEARTBEAT",
    "LOST_AFTER",
    "Heartbeat",
    "Waiting",
    "WorkerView",
    "alive",
    "beat",
    "is_lost",
    "list_workers",
    "register",
    "set_state",
    "waiting_for_workers",
]

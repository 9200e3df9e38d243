"""Group commit: many requests' small writes in one transaction, each request answered
once that transaction has committed.

A burst of one-click unsubscribes (mail providers post them as readers press the
button, and readers press it right after a big send) would otherwise be one
transaction each: on SQLite those run one at a time, on PostgreSQL each waits for a
flush of its own.  :class:`GroupCommit` queues each request's item; a thread of its
own takes everything waiting (up to :attr:`GroupCommit.batch`), writes it in one
transaction, and answers every request in it.  While it writes, the next batch
gathers.  There is no timer: a lone request is written at once, a burst in batches
as large as the burst makes them.

Nothing is answered before it is stored: a request's ``await`` returns only after
the commit (or raises what its own item raised).  When a batch fails, each of its
items is written again in a transaction of its own, so one bad item fails only its
own request.  The thread ends after :attr:`GroupCommit.idle` seconds with nothing to
do and starts again with the next request.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager
from typing import Generic, TypeVar

from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

I = TypeVar("I")  # noqa: E741 - the item, as R is the result
R = TypeVar("R")


class GroupCommit(Generic[I, R]):
    """``await submit(item)``: ``write(session, items)`` for ``item`` and whatever else
    is waiting, in one ``transaction()``; returns ``item``'s result."""

    #: Most items in one transaction.
    batch = 500
    #: Seconds the thread waits for work before it ends.
    idle = 5.0

    def __init__(
        self,
        transaction: Callable[[], AbstractContextManager[Session]],
        write: Callable[[Session, Sequence[I]], Sequence[R]],
        *,
        name: str = "digest-group-commit",
    ) -> None:
        self._transaction = transaction
        self._write = write
        self._name = name
        self._pending: list[tuple[I, Future[R]]] = []
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None
        #: Transactions committed and items written so far (for tests and the bench).
        self.commits = 0
        self.written = 0

    @property
    def waiting(self) -> int:
        """Items queued and not yet taken into a transaction."""
        with self._ready:
            return len(self._pending)

    async def submit(self, item: I) -> R:
        """Queue ``item`` and wait until the transaction holding it has committed."""
        future: Future[R] = Future()
        with self._ready:
            self._pending.append((item, future))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._ready.notify()
        # shielded: a request that goes away leaves its item queued, and written
        return await asyncio.shield(asyncio.wrap_future(future))

    def _run(self) -> None:
        while True:
            with self._ready:
                if not self._pending:
                    self._ready.wait(self.idle)
                if not self._pending:
                    self._thread = None
                    return
                work = self._pending[: self.batch]
                del self._pending[: self.batch]
            self._commit(work)

    def _commit(self, work: list[tuple[I, Future[R]]]) -> None:
        try:
            with self._transaction() as session:
                results = list(self._write(session, [item for item, _ in work]))
            if len(results) != len(work):
                raise RuntimeError(f"{len(results)} results for {len(work)} items")
        except Exception as exc:
            if len(work) == 1:
                work[0][1].set_exception(exc)
                return
            log.warning("a batch of %d failed (%s); writing each on its own", len(work), exc)
            for one in work:
                self._commit_alone(one)
            return
        self.commits += 1
        self.written += len(work)
        for (_, future), result in zip(work, results, strict=True):
            future.set_result(result)

    def _commit_alone(self, one: tuple[I, Future[R]]) -> None:
        item, future = one
        try:
            with self._transaction() as session:
                (result,) = self._write(session, [item])
        except Exception as exc:
            future.set_exception(exc)
            return
        self.commits += 1
        self.written += 1
        future.set_result(result)


__all__ = ["GroupCommit"]

"""The one send loop every backend shares.

It claims batches from the ledger, re-checks each batch's readers (someone who
unsubscribed or was suppressed since planning gets nothing), builds posts of
up to ``backend.max_recipients`` readers, paces them (messages per second),
retries what is worth retrying (exponential backoff with full jitter, honouring
``Retry-After``), records every outcome in a committed step, and pauses the
edition after too many consecutive failures.  Several threads may run it at
once (``concurrency``); each has its own backend instance.  On SQLite, which
takes one writer at a time, the threads queue for the database on a lock of
their own (see :func:`queued_sessions`).

:class:`digest.sender.Sender` is the one place that builds and runs it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, Literal, Protocol

from sqlalchemy.orm import Session, sessionmaker

from digest.delivery import ledger
from digest.delivery.base import (
    AccountLimit,
    AmbiguousError,
    Backend,
    FatalError,
    PermanentError,
    RecipientResult,
    RetryableError,
)
from digest.delivery.message import Envelope, Post, Recipient
from digest.delivery.throttle import SharedRate, post_size
from digest.models import EditionStatus
from subscribers.service import sendable_names

log = logging.getLogger(__name__)

#: What became of one post (see :meth:`SendLoop._post`).
PostOutcome = Literal["sent", "again", "finished", "lost"]


@dataclass
class SendOptions:
    concurrency: int = 1
    #: Messages per second across all threads (None: as fast as the provider takes them).
    rate: float | None = None
    #: Tries per post before giving the post up for this run.
    max_attempts: int = 5
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    #: Longest Retry-After honoured (kept under the lease, so a claim never lapses while
    #: it waits); a longer one counts as a failure, and repeated failures pause.
    retry_after_cap: float = 240.0
    #: Consecutive failed posts after which the edition pauses.
    pause_after: int = 5
    #: How long a claim holds without a sign of life.
    lease: timedelta = timedelta(minutes=5)
    #: The provider account's rate, shared with every other sending process through the
    #: database (:mod:`digest.delivery.throttle`); None: only ``rate`` applies.
    account: AccountLimit | None = None


class RateLimiter:
    """A token bucket shared by the sending threads."""

    def __init__(
        self,
        rate: float | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self.clock = clock
        self.sleep = sleep
        self._lock = threading.Lock()
        self._next = clock()

    def acquire(self, n: int = 1) -> None:
        if not self.rate:
            return
        with self._lock:
            now = self.clock()
            start = max(now, self._next)
            self._next = start + n / self.rate
            wait = start - now
        if wait > 0:
            self.sleep(wait)


@dataclass
class Progress:
    """Running totals a progress bar can show."""

    sent: int = 0
    failed: int = 0
    skipped: int = 0
    retries: int = 0
    uncertain: int = 0


@dataclass
class LoopResult:
    """What one run of the loop did: its totals, and whether it paused an edition."""

    paused: bool = False
    reason: str | None = None
    progress: Progress = field(default_factory=Progress)


class _QueuedSession(Session):
    """A session that holds its sessionmaker's lock from ``with`` to the end of the block."""

    def __init__(self, *args: Any, queue: threading.RLock, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._queue = queue

    def __enter__(self) -> _QueuedSession:
        self._queue.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self.close()
        finally:
            self._queue.release()


def queued_sessions(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    """``sessions``, but on SQLite each ``with`` block waits for the one before it.

    SQLite lets one transaction write at a time (every transaction here begins
    IMMEDIATE) and makes the others poll for the lock with growing sleeps, up
    to 100 ms each, so sending threads sat idle while the database was free.
    Queued on a lock, the next thread starts the moment the last one commits.
    """
    bind = sessions.kw.get("bind")
    if bind is None or bind.dialect.name != "sqlite":
        return sessions
    return sessionmaker(class_=_QueuedSession, queue=threading.RLock(), **sessions.kw)


class EditionContext(Protocol):
    """What the loop needs to know about the editions it sends (any edition, for workers)."""

    def envelope(self, variant_id: int, tracked: bool = True) -> Envelope:
        """Headers and bodies shared by every message of one variant (``tracked=False``:
        for readers who opted out of tracking)."""

    def untracked(
        self, session: Session, edition_id: int, subscriber_ids: Sequence[int]
    ) -> set[int]:
        """Those of ``subscriber_ids`` who get the untracked envelope."""

    def fields(self, row: ledger.Row, envelope: Envelope) -> dict[str, str]:
        """One reader's placeholder values."""

    def list_name(self, edition_id: int) -> str:
        """The subscriber list an edition goes to (for the send-time re-check)."""


class SendLoop:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        backend_factory: Callable[[], Backend],
        context: EditionContext,
        options: SendOptions | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        sleep: Callable[[float], None] | None = None,
        owner: str | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        self.sessions = queued_sessions(sessions)
        self.backend_factory = backend_factory
        self.context = context
        self.options = options or SendOptions()
        self.on_progress = on_progress
        #: Set by the loop itself when it pauses an edition.
        self.stop = threading.Event()
        #: Set from outside (SIGTERM, a worker shutting down): finish the post in hand, stop.
        self.cancel = cancel or threading.Event()
        self._sleep = sleep
        self.owner = owner or ledger.owner_id()
        self.limiter = RateLimiter(self.options.rate, sleep=self.wait)
        account = self.options.account
        self.shared = SharedRate(self.sessions, account) if account is not None else None
        self._lock = threading.Lock()
        self._consecutive = 0
        self.result = LoopResult()

    @property
    def stopping(self) -> bool:
        return self.stop.is_set() or self.cancel.is_set()

    # -- waiting, interruptible by stop or cancel ---------------------------
    def wait(self, seconds: float) -> None:
        if self._sleep is not None:
            self._sleep(seconds)
            return
        deadline = time.monotonic() + seconds
        while not self.stopping:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.stop.wait(min(left, 0.2))

    def backoff(self, attempt: int, error: RetryableError) -> float:
        if error.retry_after is not None:
            return max(0.0, error.retry_after)
        ceiling = min(self.options.backoff_cap, self.options.backoff_base * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)

    # -- the loop ----------------------------------------------------------
    def run(self, edition_id: int | None = None) -> LoopResult:
        """Send every claimable batch (of one edition, or of any) until none is left."""
        threads = max(1, self.options.concurrency)
        if threads == 1:
            self._worker(edition_id)
        else:
            with ThreadPoolExecutor(threads, thread_name_prefix="digest-send") as pool:
                for future in [pool.submit(self._worker, edition_id) for _ in range(threads)]:
                    future.result()
        return self.result

    def _worker(self, edition_id: int | None) -> None:
        # Each thread claims as an owner of its own (see ledger.owner_id).
        owner = f"{self.owner}:{threading.get_ident() % 100000}"
        backend = self.backend_factory()
        try:
            try:
                backend.open()
            except RetryableError as exc:  # the first post retries the connection
                log.info("backend not ready yet: %s", exc)
            except FatalError as exc:
                self._pause(str(exc), edition_id)
                return
            while not self.stopping:
                claim = ledger.claim_batch(self.sessions, owner, self.options.lease, edition_id)
                if claim is None:
                    return
                try:
                    self._process(backend, claim)
                except FatalError as exc:
                    self._pause(str(exc), claim.edition_id)
                    return
        finally:
            backend.close()

    def _process(self, backend: Backend, claim: ledger.Claim) -> None:
        with self.sessions() as s:  # one read: the batch's rows, and who may still have them
            list_name = self.context.list_name(claim.edition_id)
            rows = ledger.load_rows(s, claim)
            ids = [r.subscriber_id for r in rows if r.subscriber_id is not None]
            keep = sendable_names(s, ids, list_name)
            untracked = self.context.untracked(s, claim.edition_id, list(keep))
        dropped = [r.delivery_id for r in rows if r.subscriber_id not in keep]
        if dropped:
            ledger.skip(
                self.sessions, dropped, "unsubscribed, suppressed, paused or erased before sending"
            )
            self._count(skipped=len(dropped))
        rows = [
            replace(r, name=keep[r.subscriber_id])
            for r in rows
            if r.subscriber_id is not None and r.subscriber_id in keep
        ]
        size = post_size(self.options.account, backend.max_recipients)
        posts: list[tuple[Envelope, Sequence[ledger.Row]]] = []
        for tracked in (True, False):
            group = [r for r in rows if (r.subscriber_id in untracked) != tracked]
            if group:
                envelope = self.context.envelope(claim.variant_id, tracked)
                posts.extend((envelope, group[i : i + size]) for i in range(0, len(group), size))
        # The batch's worth of the account's rate, in one statement; its posts are
        # spaced across that share.
        share = self.shared.reserve(len(rows)) if self.shared is not None and rows else None
        # The outcome of the post just made, stored with the next post's start (one
        # committed step a post, not two) or with the batch's end.  Until then its
        # deliveries stay "sending": a crash leaves at most the one post in hand
        # uncertain, as before.
        done: list[RecipientResult] = []
        start = 0
        try:
            for number, (envelope, chunk) in enumerate(posts, 1):
                if self.stopping:
                    self._store(done)
                    ledger.release(self.sessions, claim)
                    return
                if share is not None:
                    if share.at(start) > time.monotonic():
                        self._store(done)  # nothing waits on the rate unrecorded
                    if not self._wait_until(share.at(start), claim):
                        return  # another sender has the batch now
                    if self.stopping:
                        self._store(done)
                        ledger.release(self.sessions, claim)
                        return
                start += len(chunk)
                last = number == len(posts)
                outcome = self._post(backend, claim, envelope, chunk, last=last, done=done)
                if outcome == "again":
                    # Not delivered yet, and worth trying again: the batch goes back to
                    # the queue. Repeated failures pause the edition (see _failure);
                    # readers are never failed for a provider's passing trouble.
                    self._store(done)  # the previous post's outcome, before the batch goes
                    ledger.release(self.sessions, claim)
                    return
                if outcome in ("finished", "lost"):
                    return  # settled with the last post, or another sender has the batch now
            self._store(done)
            ledger.finish(self.sessions, claim)
        finally:
            self._store(done)  # whatever happened, what was sent is never left unrecorded

    def _store(self, done: list[RecipientResult]) -> None:
        if done:
            ledger.record_results(self.sessions, done)
            done.clear()

    def _post(
        self,
        backend: Backend,
        claim: ledger.Claim,
        envelope: Envelope,
        chunk: Sequence[ledger.Row],
        *,
        last: bool = False,
        done: list[RecipientResult] | None = None,
    ) -> PostOutcome:
        """Send one post.  Returns ``"again"`` when it must be tried again later (the
        caller releases the batch), ``"lost"`` when another sender took the batch
        over (nothing more of it is ours to post), ``"finished"`` when the outcome was
        recorded and, being the batch's ``last`` post, the batch settled in the same
        step, else ``"sent"``.

        ``done`` holds the previous post's results, not stored yet: they are stored in
        the step that marks this post in flight (and the list emptied); this post's
        own results are left in it when it is not the ``last`` (else stored at once)."""
        done = [] if done is None else done
        recipients = [
            Recipient(
                r.delivery_id, r.subscriber_id, r.email, r.name, self.context.fields(r, envelope)
            )
            for r in chunk
        ]
        self.limiter.acquire(len(chunk))
        if self.stopping:  # stopped while waiting for the rate: this post never starts
            return "again"
        try:
            moved = ledger.start_post(
                self.sessions,
                claim,
                [r.delivery_id for r in chunk],
                self.options.lease,
                record=done,
            )
            done.clear()
        except ledger.LostClaim:
            log.warning("batch %s was taken over by another sender", claim.batch_id)
            return "lost"
        # Only what this call moved to "sending" goes out: never a row another sender has.
        recipients = [r for r in recipients if r.delivery_id in moved]
        ids = [r.delivery_id for r in recipients if r.delivery_id is not None]
        if not ids:
            return "sent"
        finish = claim if last else None
        try:
            results = self._send_with_retries(backend, Post(envelope, recipients), claim)
        except PermanentError as exc:
            ledger.record_results(
                self.sessions,
                [RecipientResult(i, ok=False, error=str(exc)) for i in ids],
                finish=finish,
            )
            self._count(failed=len(ids))
            self._failure(str(exc), claim.edition_id)
            return "finished" if last else "sent"
        except RetryableError as exc:
            ledger.unsend(self.sessions, ids, f"not sent yet: {exc}")
            self._failure(str(exc), claim.edition_id)
            return "again"
        except AmbiguousError as exc:
            ledger.mark_uncertain(self.sessions, ids, f"{exc}; {ledger.UNCERTAIN_HINT}")
            self._count(uncertain=len(ids))
            self._failure(str(exc), claim.edition_id)
            return "sent"
        except FatalError:
            ledger.unsend(self.sessions, ids, "not sent: the backend stopped")
            ledger.release(self.sessions, claim)
            raise
        except BaseException as exc:
            # A bug or an interrupt mid-post: whether it went out is unknown, so it
            # is uncertain (never retried behind anyone's back), and the batch is freed.
            ledger.mark_uncertain(
                self.sessions, ids, f"sender failed: {type(exc).__name__}; {ledger.UNCERTAIN_HINT}"
            )
            ledger.release(self.sessions, claim)
            raise
        answered = {r.delivery_id for r in results}
        unanswered = [i for i in ids if i not in answered]
        if unanswered:  # a backend owes one result per recipient; without one, nobody knows
            log.error("backend gave no result for %d recipient(s)", len(unanswered))
            ledger.mark_uncertain(
                self.sessions,
                unanswered,
                f"the backend gave no result for it; {ledger.UNCERTAIN_HINT}",
            )
            self._count(uncertain=len(unanswered))
        if last:
            ledger.record_results(self.sessions, results, finish=finish)
        else:
            done.extend(results)  # stored with the next post's start
        sent = sum(1 for r in results if r.ok)
        self._count(sent=sent, failed=len(results) - sent)
        if sent:
            self._success()
        else:
            self._failure((results[0].error if results else None) or "failed", claim.edition_id)
        return "finished" if last else "sent"

    def _send_with_retries(
        self, backend: Backend, post: Post, claim: ledger.Claim
    ) -> list[RecipientResult]:
        attempt = 1
        while True:
            try:
                return backend.send(post)
            except RetryableError as exc:
                if attempt >= self.options.max_attempts or self.stopping:
                    raise
                delay = self.backoff(attempt, exc)
                if delay > self.options.retry_after_cap:
                    raise RetryableError(
                        f"{exc} (asked to wait {delay:.0f}s, more than the "
                        f"{self.options.retry_after_cap:.0f}s allowed)"
                    ) from None
                log.info("retrying in %.1fs after: %s", delay, exc)
                self._count(retries=1)
                self.wait(delay)
                if self.shared is not None and not self.stopping:
                    # a post tried again counts against the account's rate again
                    share = self.shared.reserve(len(post.recipients))
                    if not self._wait_until(share.at(0), claim):
                        raise
                if self.shared is not None and self.stopping:
                    raise  # stopped while waiting its turn: not sent, the batch goes back
                attempt += 1

    def _wait_until(self, moment: float, claim: ledger.Claim) -> bool:
        """Wait for ``moment`` (``time.monotonic()``) or a stop, renewing the claim's
        lease while the account's rate keeps this post waiting; False when the batch was
        taken over meanwhile."""
        renew_every = max(1.0, self.options.lease.total_seconds() / 3)
        renewed = time.monotonic()
        while not self.stopping:
            now = time.monotonic()
            if now >= moment:
                return True
            if now - renewed >= renew_every:
                if not ledger.renew(self.sessions, claim, self.options.lease):
                    log.warning("batch %s was taken over by another sender", claim.batch_id)
                    return False
                renewed = now
            self.stop.wait(min(moment - now, 0.2))
        return True

    # -- bookkeeping -------------------------------------------------------
    def _count(
        self, sent: int = 0, failed: int = 0, skipped: int = 0, retries: int = 0, uncertain: int = 0
    ) -> None:
        with self._lock:
            p = self.result.progress
            p.sent += sent
            p.failed += failed
            p.skipped += skipped
            p.retries += retries
            p.uncertain += uncertain
        if self.on_progress:
            self.on_progress(self.result.progress)

    def _success(self) -> None:
        with self._lock:
            self._consecutive = 0

    def _failure(self, reason: str, edition_id: int | None) -> None:
        with self._lock:
            self._consecutive += 1
            over = self._consecutive >= self.options.pause_after
        if over:
            self._pause(f"{self._consecutive} consecutive failures, the last: {reason}", edition_id)

    def _pause(self, reason: str, edition_id: int | None) -> None:
        with self._lock:
            if self.result.paused:
                return
            self.result.paused = True
            self.result.reason = reason
        self.stop.set()
        if edition_id is not None:
            ledger.set_edition_status(self.sessions, edition_id, EditionStatus.PAUSED)
        log.warning("paused: %s", reason)

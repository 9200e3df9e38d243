"""Limits per key (a client IP, an address hash), held in this process.

* :class:`RateLimiter`: token buckets.  Each key has a bucket of ``capacity`` tokens
  refilled at ``capacity / period`` tokens per second; a request takes one token or is
  refused with the seconds to wait (the subscribe form, confirmation emails).
* :class:`Backoff`: exponential backoff after failures (sign-in).  The first ``free``
  failures cost nothing; after them each attempt must wait 2, 4, 8, … seconds (at most
  ``longest``) after the last failure.  An attempt made while waiting is refused without
  being tried, so guessing slows to a crawl, while the owner who mistyped their password
  five times waits a few seconds and is let in by the right one; a success forgets the key.

Both live in memory: each web process counts on its own and a restart forgets them,
which is enough to blunt abuse from one machine.  Both keep at most :data:`MAX_KEYS`
keys, so a flood of addresses costs bounded memory.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

#: Forget full buckets once this many keys are tracked (bounded memory under a flood).
MAX_KEYS = 10_000


class RateLimiter:
    def __init__(
        self,
        capacity: int,
        period: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if capacity < 1 or period <= 0:
            raise ValueError("a rate limit needs a capacity of 1 or more and a positive period")
        self.capacity = float(capacity)
        self.rate = capacity / period
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Take a token for ``key``: 0.0 when allowed, else the seconds until one is free."""
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                if len(self._buckets) > MAX_KEYS:
                    self._prune(now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate

    def _prune(self, now: float) -> None:
        for key, (tokens, last) in list(self._buckets.items()):
            if tokens + (now - last) * self.rate >= self.capacity:
                del self._buckets[key]


class Backoff:
    """Exponential backoff per key after ``free`` failures (see the module doc).

    ``clock`` is wall-clock time (``time.time``), so that tests can move it.
    """

    def __init__(
        self,
        free: int = 5,
        longest: float = 15 * 60.0,
        *,
        forget_after: float = 24 * 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if free < 0 or longest <= 0:
            raise ValueError("a backoff needs free >= 0 and a positive longest wait")
        self.free = free
        self.longest = longest
        self.forget_after = max(forget_after, longest)
        self._clock = clock
        #: key → (failures, time of the last failure)
        self._failures: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def delay(self, failures: int) -> float:
        """Seconds an attempt must wait after ``failures`` failures in a row."""
        over = failures - self.free
        return 0.0 if over < 0 else min(self.longest, 2.0 ** min(over + 1, 64))

    def wait(self, key: str) -> float:
        """Seconds before ``key`` may try again (0.0: now)."""
        now = self._clock()
        with self._lock:
            found = self._failures.get(key)
            if found is None:
                return 0.0
            failures, last = found
            if now - last > self.forget_after:
                del self._failures[key]
                return 0.0
            return max(0.0, last + self.delay(failures) - now)

    def failed(self, key: str) -> float:
        """Record a failure; returns the seconds the next attempt must wait."""
        now = self._clock()
        with self._lock:
            failures, _ = self._failures.get(key, (0, now))
            self._failures[key] = (failures + 1, now)
            if len(self._failures) > MAX_KEYS:
                self._prune(now)
            return self.delay(failures + 1)

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def _prune(self, now: float) -> None:
        for key, (_, last) in list(self._failures.items()):
            if now - last > self.forget_after:
                del self._failures[key]
        while len(self._failures) > MAX_KEYS:  # still full: the oldest go first
            oldest = min(self._failures, key=lambda k: self._failures[k][1])
            del self._failures[oldest]


def retry_after(seconds: float) -> str:
    """A ``Retry-After`` header value: whole seconds, at least one."""
    return str(max(1, math.ceil(seconds)))


__all__ = ["Backoff", "RateLimiter", "retry_after"]

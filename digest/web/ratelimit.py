"""Token buckets per key (a client IP, an address hash), held in this process.

Each key has a bucket of ``capacity`` tokens refilled at ``capacity / period``
tokens per second; a request takes one token or is refused with the seconds to
wait.  The buckets live in memory: each web process counts on its own and a
restart forgets them, which is enough to blunt form abuse from one machine.  Run
several processes behind a proxy that rate-limits too if you need a global limit.
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


def retry_after(seconds: float) -> str:
    """A ``Retry-After`` header value: whole seconds, at least one."""
    return str(max(1, math.ceil(seconds)))


__all__ = ["RateLimiter", "retry_after"]

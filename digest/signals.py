"""Stopping cleanly on SIGTERM and SIGINT: finish the post in hand, then stop."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType


@contextmanager
def graceful_stop(
    event: threading.Event, on_signal: Callable[[int], None] | None = None
) -> Iterator[threading.Event]:
    """Set ``event`` on the first SIGTERM/SIGINT; a second SIGINT interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield event
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        if event.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        event.set()
        if on_signal is not None:
            on_signal(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield event
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)

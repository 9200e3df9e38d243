"""Serving the web app with uvicorn, with the limits a public server needs.

uvicorn alone never times out a client that is slow to send its request: a connection
that sends half a request line, or one header byte every few seconds, is held for ever
(so a few hundred of them hold the server).  :func:`server_config` sets

* a **header timeout** (:class:`HeaderTimeoutProtocol`): the request line and headers must
  arrive within ``header_timeout`` seconds of the connection's start (or of the first
  byte of its next request), else the connection is closed;
* a **keep-alive timeout**: an idle connection between requests is closed after
  ``keep_alive`` seconds (uvicorn's ``timeout_keep_alive``);
* a **header size limit**: a request line and headers larger than ``max_header_bytes``
  are refused with 400 (h11's incomplete-event limit);
* no proxy headers: the app itself believes ``X-Forwarded-For`` only from
  ``DIGEST_TRUSTED_PROXIES`` (uvicorn's own default would trust 127.0.0.1);
* the app's own log lines (``digest``, ``subscribers``) on uvicorn's console, at
  ``DIGEST_LOG_LEVEL``.

The body of a request has its own timeout in the app (``WebOptions.body_timeout``: the
time a body may pause between two pieces), and its own size limits (see
:mod:`digest.web.security` and :mod:`digest.web.pages`).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import socket
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

#: Seconds a request's line and headers may take to arrive.
HEADER_TIMEOUT = 10.0
#: Seconds an idle connection is kept open between requests.
KEEP_ALIVE = 5
#: Largest request line plus headers accepted.
MAX_HEADER_BYTES = 16 * 1024
#: Seconds uvicorn waits for open connections (live-reload streams) when stopping.
GRACEFUL_SECONDS = 3


@dataclass(frozen=True)
class ServeLimits:
    """The server's limits (see the module doc); the defaults suit production."""

    header_timeout: float = HEADER_TIMEOUT
    keep_alive: int = KEEP_ALIVE
    max_header_bytes: int = MAX_HEADER_BYTES


def no_delay(transport: asyncio.BaseTransport) -> None:
    """Turn Nagle's algorithm off on a TCP connection.

    asyncio does this itself only for sockets whose protocol number says TCP, and a
    listening socket made with ``socket.socket(family)`` says 0: the one ``digest
    serve`` binds (to report a busy port in one line), and the one uvicorn binds for
    several workers.  With Nagle on, the body of a response sent after its head on a
    kept-alive connection waited for the client's delayed ACK: 40 ms more for every
    such response (measured: 44 ms for a one-click unsubscribe that takes 2 ms).
    """
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):  # the connection is already gone
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, closing connections whose request headers do not
    arrive within the header timeout (read from the config's ``header_timeout``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = float(getattr(self.config, "header_timeout", HEADER_TIMEOUT))
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        no_delay(transport)
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._between_requests():
            self._arm()  # the clock starts at the first byte of a request, and keeps going
        super().data_received(data)
        if not self._between_requests():
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _between_requests(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._expire)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expire(self) -> None:
        self._header_timer = None
        if self._between_requests() and not self.transport.is_closing():
            client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
            log.info(
                "closed the connection of %s: no complete request headers within %gs",
                client,
                self.header_timeout,
            )
            self.transport.close()


def server_config(
    web: object, log_level: str, limits: ServeLimits | None = None, **kwargs: Any
) -> uvicorn.Config:
    """The uvicorn configuration ``digest serve`` and ``digest preview`` run with."""
    limits = limits or ServeLimits()
    config = uvicorn.Config(
        web,  # type: ignore[arg-type]
        log_level=log_level.lower(),
        log_config=_log_config(log_level),
        http=HeaderTimeoutProtocol,
        timeout_keep_alive=limits.keep_alive,
        h11_max_incomplete_event_size=limits.max_header_bytes,
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
        proxy_headers=False,
        forwarded_allow_ips="",
        **kwargs,
    )
    config.header_timeout = limits.header_timeout  # type: ignore[attr-defined]
    return config


def _log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging, with digest's own loggers on the same console."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    for name in ("digest", "subscribers"):
        config["loggers"][name] = {
            "handlers": ["default"],
            "level": level.upper(),
            "propagate": False,
        }
    return config


def serve(
    web: object, sock: socket.socket, log_level: str, limits: ServeLimits | None = None
) -> None:
    """Run ``web`` on the listening socket ``sock`` until stopped."""
    uvicorn.Server(server_config(web, log_level, limits)).run(sockets=[sock])


__all__ = [
    "GRACEFUL_SECONDS",
    "HEADER_TIMEOUT",
    "KEEP_ALIVE",
    "MAX_HEADER_BYTES",
    "HeaderTimeoutProtocol",
    "ServeLimits",
    "no_delay",
    "serve",
    "server_config",
]

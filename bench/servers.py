"""Local servers for the bench, each in a process of its own.

A server in the measured process would share its GIL (and, for the SendGrid
contract server, spend a core validating JSON), so the bench starts each one
with ``python -m bench.servers sendgrid|smtp`` and talks to it over a pipe:
the child prints one JSON line saying where it listens, then answers ``stats``
with one JSON line of counts until its stdin closes.

* ``sendgrid``: the test suite's :class:`~tests.support.sendgrid_server.SendGridServer`
  checking the first request and one in ``--validate-every`` against SendGrid's
  contract (the others are authenticated and parsed), keeping no bodies, counting
  recipients as they arrive;
* ``smtp``: aiosmtpd accepting every message, counting messages, bytes and
  recipients.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import threading
from collections import Counter
from typing import Any

from bench.synthetic import API_KEY


class ServerProcess:
    """A server child process: ``info`` says where it listens, :meth:`stats` what it got.

    It starts in the background: the caller can build its data meanwhile, and
    ``info`` waits for the server's first line when first asked.
    """

    def __init__(self, kind: str, *args: str) -> None:
        self.kind = kind
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.servers", kind, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._info: dict[str, Any] | None = None

    @property
    def info(self) -> dict[str, Any]:
        if self._info is None:
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline()
            if not line:
                self.proc.wait(10)
                raise RuntimeError(
                    f"the {self.kind} bench server did not start ({self.proc.returncode})"
                )
            self._info = dict(json.loads(line))
        return self._info

    @property
    def url(self) -> str:
        return str(self.info["url"])

    def _ask(self, command: str) -> dict[str, Any]:
        self.info  # noqa: B018  (started: its first line is read)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return dict(json.loads(self.proc.stdout.readline()))

    def stats(self) -> dict[str, Any]:
        return self._ask("stats")

    def reset(self) -> None:
        self._ask("reset")

    def close(self) -> None:
        """Close its stdin (it stops and exits), wait for it, release the pipes."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------
# Children


class _Tally:
    """Thread-safe counts of what a server received."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.posts = 0
        self.bytes = 0
        self.copies: Counter[str] = Counter()

    def add(self, recipients: list[str], size: int) -> None:
        with self.lock:
            self.posts += 1
            self.bytes += size
            self.copies.update(recipients)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            copies = sum(self.copies.values())
            return {
                "posts": self.posts,
                "bytes": self.bytes,
                "recipients": copies,
                "distinct": len(self.copies),
                "duplicates": copies - len(self.copies),
                "cpu_seconds": _cpu(),
            }


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return round(usage.ru_utime + usage.ru_stime, 3)


def _serve(info: dict[str, Any], tally: _Tally, extra: Any = None, on_reset: Any = None) -> None:
    print(json.dumps(info), flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "reset":
            tally.reset()
            if on_reset is not None:
                on_reset()
            print(json.dumps({"ok": True}), flush=True)
        else:
            out = tally.snapshot()
            if extra is not None:
                out.update(extra())
            print(json.dumps(out), flush=True)


def _sendgrid(validate_every: int) -> None:
    from tests.support.sendgrid_server import SendGridServer

    tally = _Tally()

    def count(body: dict[str, Any]) -> None:
        to = [a["email"] for p in body.get("personalizations", []) for a in p.get("to", [])]
        html = sum(len(c.get("value", "")) for c in body.get("content", []))
        tally.add(to, html)

    server = SendGridServer(
        API_KEY, validate_every=validate_every, keep_bodies=False, on_accept=count
    )
    with server:

        def extra() -> dict[str, Any]:
            rejected = [r for r in server.requests if not r.accepted]
            arrivals = [r.arrived for r in server.accepted]
            return {
                # the busiest 10 seconds, and the first to the last arrival (a rate's span)
                "busiest_10s": server.busiest(10)[0],
                "span_s": round(max(arrivals) - min(arrivals), 3) if arrivals else 0.0,
                "requests": len(server.requests),
                "rejected": len(rejected),
                "errors": [e for r in rejected[:3] for e in r.errors[:3]],
                "validated_every": validate_every,
            }

        _serve({"url": server.url, "api_key": API_KEY}, tally, extra, server.reset)


def _smtp() -> None:
    from aiosmtpd.controller import Controller

    from tests.support.smtp_server import free_port

    tally = _Tally()

    class Sink:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            content = envelope.content or b""
            tally.add(list(envelope.rcpt_tos), len(content))
            return "250 Message accepted for delivery"

    port = free_port()
    controller = Controller(Sink(), hostname="127.0.0.1", port=port, decode_data=False)
    controller.start()
    try:
        _serve({"url": f"smtp://127.0.0.1:{port}?starttls=never&timeout=10"}, tally)
    finally:
        controller.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.servers")
    parser.add_argument("kind", choices=["sendgrid", "smtp"])
    parser.add_argument("--validate-every", type=int, default=10)
    args = parser.parse_args(argv)
    if args.kind == "sendgrid":
        _sendgrid(args.validate_every)
    else:
        _smtp()


if __name__ == "__main__":
    main()

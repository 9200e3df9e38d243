"""Click and unsubscribe bursts: the web app under the load a big send creates.

:func:`measure` builds a world (an edition sent with ``track_clicks`` on to
``readers`` readers through the in-memory backend), takes the real tracked links
and ``List-Unsubscribe`` URLs out of the sent messages, starts the web app with
two uvicorn workers in a process of its own (``python -m bench.web serve``: the
app factory ``digest.web:main`` with ``digest serve``'s protocol and limits),
and drives it with a bounded load generator (``python -m bench.web load``, also
a process of its own): a fixed number of HTTP/1.1 keep-alive connections, each
sending its next request when the last answer is read (closed loop), for
``seconds`` per endpoint:

* **click**: ``GET /r/READER/LINK`` over every reader's links, expecting 302;
* **unsubscribe**: RFC 8058's one-click ``POST`` (``List-Unsubscribe=One-Click``)
  on a reader's ``List-Unsubscribe`` URL, each reader once, so that every request
  really unsubscribes someone: the sent messages' URLs, then, for more readers than
  the edition was sent to (added to the list after the send), the same URL made by
  the same function the messages' headers come from.

The load generator's own ceiling is measured in the same run against a trivial
endpoint (``python -m bench.web sink``: a bare asyncio server answering a fixed
302), at the same concurrency, and printed beside the app's figures: if the two
are close, the client, not the app, was the limit.

Afterwards the database is checked: one ``hit`` row per 302 the click run got
(no click lost), and every reader whose unsubscribe was answered 200 is off the
list.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

#: What each figure means (also written to results.json).
DEFINITIONS = {
    "rps": "answered requests per second over the run (closed loop: each connection sends "
    "its next request when the last answer is read)",
    "p50_ms/p99_ms": "latency of each request, from writing it to reading its whole answer",
    "ceiling_rps": "the same load generator against a bare asyncio server answering a fixed "
    "302 (the client's own limit on this machine, at the same moment)",
    "lost_clicks": "302 answers the click run got minus click rows stored (0: none lost)",
}

TARGET_RPS = 1000
TARGET_P99_MS = 100.0
_TRACKED = re.compile(r"https?://[^/\s\"<>]+(/r/[A-Za-z0-9._-]+/[A-Za-z0-9._-]+)")
_UNSUB = re.compile(r"<https?://[^/>]+(/u/[^>]+)>")

# ---------------------------------------------------------------------------
# The load generator (in a process of its own)


class _Conn:
    """One HTTP/1.1 keep-alive connection: send a request, read its whole answer."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        at = lower.find(b"\r\ncontent-length:")
        if at >= 0:
            end = lower.index(b"\r\n", at + 2)
            length = int(lower[at + 17 : end])
            if length:
                await self.reader.readexactly(length)
        elif b"transfer-encoding: chunked" in lower:
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        if b"\r\nconnection: close" in lower:
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def _raw(method: str, path: str, host: str) -> bytes:
    if method == "POST":
        body = b"List-Unsubscribe=One-Click"
        return (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode("ascii") + body
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode("ascii")


async def _drive(
    host: str, port: int, requests: list[bytes], concurrency: int, seconds: float, once: bool
) -> dict[str, Any]:
    """``concurrency`` connections taking ``requests`` in turn (round after round, or
    each once with ``once``) for ``seconds``; latencies in ms, statuses counted."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    answered: list[int] = []  # index of each request answered 2xx/3xx
    next_index = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal next_index
        conn = _Conn(host, port)
        try:
            while time.perf_counter() < deadline:
                if once and next_index >= len(requests):
                    return
                index = next_index % len(requests)
                next_index += 1
                start = time.perf_counter()
                try:
                    status = await conn.request(requests[index])
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    errors[type(exc).__name__] += 1
                    conn.close()
                    continue
                latencies.append((time.perf_counter() - start) * 1000)
                statuses[status] += 1
                if status < 400:
                    answered.append(index)
        finally:
            conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float | None:
        if not latencies:
            return None
        return round(latencies[min(len(latencies) - 1, int(len(latencies) * p))], 2)

    return {
        "seconds": round(elapsed, 2),
        "requests": len(latencies),
        "rps": round(len(latencies) / elapsed, 1) if elapsed else 0.0,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": round(latencies[-1], 2) if latencies else None,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "errors": dict(errors),
        "answered": answered,
    }


def _load_main(args: argparse.Namespace) -> None:
    paths = json.loads(Path(args.paths).read_text()) if args.paths else ["/"]
    host = f"{args.host}:{args.port}"
    requests = [_raw(args.method, p, host) for p in paths]
    result = _drive(args.host, args.port, requests, args.concurrency, args.seconds, args.once)
    print(json.dumps(asyncio.run(result)), flush=True)


def load(
    port: int,
    paths: list[str],
    work: Path,
    *,
    method: str = "GET",
    concurrency: int,
    seconds: float,
    once: bool = False,
) -> dict[str, Any]:
    """Run the load generator in a child process against 127.0.0.1:``port``."""
    file = work / f"paths-{method.lower()}-{port}.json"
    file.write_text(json.dumps(paths))
    out = subprocess.run(
        [sys.executable, "-m", "bench.web", "load", "--port", str(port), "--paths", str(file)]
        + ["--method", method, "--concurrency", str(concurrency), "--seconds", str(seconds)]
        + (["--once"] if once else []),
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 120,
    )
    return dict(json.loads(out.stdout))


# ---------------------------------------------------------------------------
# The trivial endpoint (the load generator's ceiling) and the app's server


class _Sink(asyncio.Protocol):
    ANSWER = b"HTTP/1.1 302 Found\r\nLocation: https://example.org/\r\nContent-Length: 0\r\n\r\n"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.buffer = self.buffer[: end + 4], self.buffer[end + 4 :]
            at = head.lower().find(b"content-length:")
            if at >= 0:
                length = int(head[at + 15 : head.index(b"\r\n", at)])
                self.buffer = self.buffer[length:]  # small bodies arrive with their head
            self.transport.write(self.ANSWER)


def _sink_main(args: argparse.Namespace) -> None:
    async def run() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Sink, "127.0.0.1", 0)
        print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
        await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes stdin

    asyncio.run(run())


def _serve_main(args: argparse.Namespace) -> None:
    """The app with ``workers`` uvicorn workers, as ``digest serve`` configures uvicorn
    (its protocol with the header timeout, keep-alive, header limits, logging)."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from digest.web.serving import server_config

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    sock.set_inheritable(True)
    config = server_config(
        "bench.web:app_factory", "WARNING", factory=True, workers=args.workers, access_log=False
    )
    config.backlog = 1024
    print(json.dumps({"port": sock.getsockname()[1]}), flush=True)
    if args.workers > 1:
        Multiprocess(config, sockets=[sock]).run()
    else:
        uvicorn.Server(config).run(sockets=[sock])


def app_factory() -> Any:
    """``digest.web:main``, noting in ``BENCH_READY_DIR`` that this worker built it (the
    bench starts its load only once every worker is up: connections made while one is
    still importing would all go to the other, for the whole run)."""
    from digest.web import main as web_app

    web = web_app()
    ready = os.environ.get("BENCH_READY_DIR")
    if ready:
        (Path(ready) / str(os.getpid())).touch()
    return web


class _Child:
    """A child process printing one JSON line ``{"port": …}`` when it listens."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.web", *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(30)
            raise RuntimeError(f"bench.web {argv[0]} did not start ({self.proc.returncode})")
        self.port = int(json.loads(line)["port"])

    def wait_ready(self, ready: Path | None = None, workers: int = 0, timeout: float = 120) -> None:
        """Until ``workers`` workers noted in ``ready`` that they built the app, and the
        app answers."""
        deadline = time.monotonic() + timeout
        while ready is not None and len(list(ready.iterdir())) < workers:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the bench's web workers did not start")
            time.sleep(0.2)
        path = "/api/health"
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
                    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                    if s.recv(12).startswith(b"HTTP/1.1 2"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the bench's web server did not answer")
            time.sleep(0.2)

    def stop(self) -> int:
        """SIGTERM (a graceful stop: what a deploy does), then wait for it."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()
        return code


@contextmanager
def _child(argv: list[str], env: dict[str, str] | None = None) -> Iterator[_Child]:
    child = _Child(argv, env)
    try:
        yield child
    finally:
        child.stop()


# ---------------------------------------------------------------------------
# The world and the measurement (in the bench's process)


def _world(database: str, work: Path, postgres_url: str | None) -> Any:
    from bench.synthetic import postgres_world, sqlite_world

    root = work / f"web-{database}"
    if database == "postgresql":
        assert postgres_url
        return postgres_world(root, postgres_url)
    return nullcontext(sqlite_world(root))


def _send(world: Any, readers: int, more: int = 0) -> tuple[int, list[str], list[str]]:
    """Populate, turn click tracking on, send; then ``more`` readers join the list.
    (edition id, click paths, unsubscribe paths: the sent ones, then the others')."""
    from sqlalchemy import select

    from bench.synthetic import AS_OF, add_readers, populate
    from digest.delivery.memory import MemoryBackend, MemoryMailbox
    from digest.models import Edition
    from digest.personalize import personal_links
    from digest.sender import Sender
    from subscribers.lists import get_list

    text = world.config.read_text()
    world.config.write_text(
        text.replace("max_per_category = 10\n", "max_per_category = 10\ntrack_clicks = true\n")
    )
    app = world.app()
    try:
        populate(app, readers)
        box = MemoryMailbox()
        result = Sender(app, backend_factory=lambda: MemoryBackend(box)).send("weekly", AS_OF)
        if result.counts.sent != readers:
            raise RuntimeError(f"the bench's send reached {result.counts.sent} of {readers}")
        with app.sessions() as s:
            edition = s.scalars(select(Edition.id)).one()
            list_id = get_list(s, "weekly").id
        others = add_readers(app, list_id, readers, readers + more)
        base = len(app.settings.base_url.rstrip("/"))
        minted = [
            personal_links(
                app.settings, sid, ("unsubscribe",), list_name="weekly", edition_id=edition
            )["unsubscribe_url"][base:]
            for sid in others
        ]
    finally:
        app.close()
    clicks: list[str] = []
    unsubscribes: list[str] = []
    for message in box.sent:
        clicks += _TRACKED.findall(message["html"])
        found = _UNSUB.search(message["list_unsubscribe"])
        if found is None:
            raise RuntimeError("a sent message has no https List-Unsubscribe URL")
        unsubscribes.append(found.group(1))
    if not clicks:
        raise RuntimeError("the sent messages carry no tracked links")
    return edition, clicks, unsubscribes + minted


def _env(world: Any) -> dict[str, str]:
    from bench.synthetic import BASE_URL, SECRET

    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env.update(
        DIGEST_DATABASE_URL=world.db_url,
        DIGEST_CONFIG=str(world.config),
        DIGEST_SECRET_KEY=SECRET,
        DIGEST_BASE_URL=BASE_URL,
        DIGEST_LOG_LEVEL="WARNING",
    )
    return env


def _counts(world: Any, edition: int, unsubscribe_paths: list[str]) -> dict[str, int]:
    """Clicks stored for the edition, and readers of the edition still on the list."""
    from sqlalchemy import func, select

    from digest.models import Hit
    from subscribers.models import Membership, Status

    app = world.app()
    try:
        with app.sessions() as s:
            clicks = s.scalar(
                select(func.count())
                .select_from(Hit)
                .where(Hit.edition_id == edition, Hit.kind == "click")
            )
            active = s.scalar(
                select(func.count())
                .select_from(Membership)
                .where(Membership.status == Status.ACTIVE)
            )
    finally:
        app.close()
    return {"clicks": int(clicks or 0), "active": int(active or 0)}


def _summary(run: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in run.items() if k != "answered"}


def measure(
    database: str,
    readers: int,
    seconds: float,
    work: Path,
    *,
    postgres_url: str | None = None,
    concurrency: int = 16,
    workers: int = 2,
    ceiling_seconds: float | None = None,
    unsubscribe_readers: int | None = None,
) -> dict[str, Any]:
    """Bursts of clicks then of one-click unsubscribes on ``database`` (see the module
    doc); ``unsubscribe_readers`` readers in all for the unsubscribes (default: enough
    for 3,000 a second, each once)."""
    work.mkdir(parents=True, exist_ok=True)
    ceiling_seconds = min(seconds, 10.0) if ceiling_seconds is None else ceiling_seconds
    with _world(database, work, postgres_url) as world:
        started = time.perf_counter()
        wanted = unsubscribe_readers or int(seconds * 3_000)
        edition, clicks, unsubscribes = _send(world, readers, max(0, wanted - readers))
        setup_s = time.perf_counter() - started
        random.Random(17).shuffle(clicks)
        out: dict[str, Any] = {
            "database": database,
            "readers": readers,
            "workers": workers,
            "concurrency": concurrency,
            "setup_s": round(setup_s, 1),
            "click_urls": len(clicks),
            "unsubscribe_urls": len(unsubscribes),
        }
        with _child(["sink"]) as sink:
            out["ceiling"] = _summary(
                load(sink.port, clicks, work, concurrency=concurrency, seconds=ceiling_seconds)
            )
        env = _env(world)
        before = _counts(world, edition, unsubscribes)
        ready = work / f"ready-{database}"
        ready.mkdir(exist_ok=True)
        for old in ready.iterdir():
            old.unlink()
        env["BENCH_READY_DIR"] = str(ready)
        with _child(["serve", "--workers", str(workers)], env) as server:
            server.wait_ready(ready, workers)
            click = load(server.port, clicks, work, concurrency=concurrency, seconds=seconds)
            unsub = load(
                server.port,
                unsubscribes,
                work,
                method="POST",
                concurrency=concurrency,
                seconds=seconds,
                once=True,  # every request unsubscribes someone
            )
            stop_code = server.stop()
        after = _counts(world, edition, unsubscribes)
    redirected = click["statuses"].get("302", 0)
    left = {unsubscribes[i] for i in unsub["answered"]}
    out["click"] = _summary(click)
    out["unsubscribe"] = _summary(unsub)
    out["unsubscribe"]["readers_unsubscribed"] = len(left)
    out["server_exit"] = stop_code
    out["clicks_stored"] = after["clicks"] - before["clicks"]
    out["lost_clicks"] = redirected - out["clicks_stored"]
    out["unsubscribes_missing"] = after["active"] - (before["active"] - len(left))
    for name in ("click", "unsubscribe"):
        run = out[name]
        run["met"] = (
            run["rps"] >= TARGET_RPS
            and run["p99_ms"] is not None
            and run["p99_ms"] < TARGET_P99_MS
            and not run["errors"]
            and set(run["statuses"]) <= {"200", "302"}
        )
    return out


# ---------------------------------------------------------------------------
# Entry point of the child processes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.web")
    sub = parser.add_subparsers(dest="command", required=True)
    ld = sub.add_parser("load", help="The bounded load generator; prints one JSON line.")
    ld.add_argument("--host", default="127.0.0.1")
    ld.add_argument("--port", type=int, required=True)
    ld.add_argument("--paths", help="A JSON file of request paths, taken in turn.")
    ld.add_argument("--method", choices=("GET", "POST"), default="GET")
    ld.add_argument("--concurrency", type=int, default=16)
    ld.add_argument("--seconds", type=float, default=10.0)
    ld.add_argument("--once", action="store_true", help="Each path once at most.")
    sub.add_parser("sink", help="A bare server answering every request with a fixed 302.")
    sv = sub.add_parser("serve", help="The app (settings from DIGEST_*) with N uvicorn workers.")
    sv.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    {"load": _load_main, "sink": _sink_main, "serve": _serve_main}[args.command](args)


if __name__ == "__main__":
    main()


# ---------------------------------------------------------------------------
# Verdicts and the table (called by bench/__main__.py)


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 17 target 3, per endpoint and database, and no click lost."""
    out: list[dict[str, Any]] = []
    for run in (results.get("web") or {}).get("runs", []):
        for name, label in (("click", "click redirect"), ("unsubscribe", "one-click unsubscribe")):
            r = run[name]
            out.append(
                {
                    "target": f"{label} ≥ {TARGET_RPS:,} requests/s, p99 < "
                    f"{TARGET_P99_MS:.0f} ms, {r['seconds']:.0f} s, {run['workers']} workers "
                    f"({run['database']})",
                    "measured": f"{r['rps']:,.0f}/s, p99 {r['p99_ms']} ms "
                    f"(load generator alone: {run['ceiling']['rps']:,.0f}/s)",
                    "met": r["met"],
                }
            )
        out.append(
            {
                "target": f"no click lost, every unsubscribe taken ({run['database']})",
                "measured": f"{run['click']['statuses'].get('302', 0):,} redirects, "
                f"{run['clicks_stored']:,} stored; "
                f"{run['unsubscribes_missing']} unsubscribes missing",
                "met": run["lost_clicks"] == 0 and run["unsubscribes_missing"] == 0,
            }
        )
    return out


def print_table(results: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    runs = (results.get("web") or {}).get("runs", [])
    if not runs:
        return
    t = Table(
        title="Web bursts: the app with uvicorn workers ← a bounded load generator "
        "(separate processes, keep-alive, fixed concurrency)"
    )
    for col in ("database", "endpoint", "conns", "s", "requests/s", "p50 ms", "p99 ms"):
        t.add_column(col, justify="right")
    t.add_column("statuses / errors")
    t.add_column("client alone /s", justify="right")
    for run in runs:
        for name in ("click", "unsubscribe"):
            r = run[name]
            t.add_row(
                run["database"],
                name,
                str(run["concurrency"]),
                f"{r['seconds']:.0f}",
                f"{r['rps']:,.0f}",
                str(r["p50_ms"]),
                str(r["p99_ms"]),
                " ".join(f"{k}×{v}" for k, v in r["statuses"].items())
                + "".join(f" {k}×{v}" for k, v in r["errors"].items()),
                f"{run['ceiling']['rps']:,.0f}",
            )
    console.print(t)
    console.print(
        "client alone: the same load generator against a bare asyncio server answering a "
        "fixed 302, just before (its ceiling on this machine at that moment)"
    )

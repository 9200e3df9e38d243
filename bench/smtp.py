"""SMTP against the wire's limit: ``digest send --backend smtp`` beside a bare smtplib loop.

Both send to the same aiosmtpd sink (a process of its own) over the same number of
connections, one after the other in the same run, so their ratio holds on a busy
machine where absolute rates do not:

* **(b) digest**: ``messages`` readers in a fresh SQLite database, one edition sent
  through :class:`digest.sender.Sender` with ``DIGEST_SMTP_URL=…?connections=N`` (N
  sending threads, one connection each), exactly as ``digest send --backend smtp``
  does: planning, the send-time check, each reader's fields and message, the ledger;
  the rate is over the send phase (:mod:`bench.delivery`);
* **(a) the wire**: in a child process, N threads each with one ``smtplib.SMTP``
  connection calling ``sendmail`` in a loop with one prebuilt message (a real message
  of the same edition, the largest variant's not above digest's mean size), byte-identical every
  time: the most the sink and the loopback take from Python at that connection count.

Each is run twice with half the messages, in the order (b), (a), (a), (b), so a load
that comes or goes during the run weighs on both alike; the rates are the means.

The target: (b)/(a) ≥ 0.7.
"""

from __future__ import annotations

import argparse
import json
import smtplib
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench import delivery

TARGET_RATIO = 0.7


def wire(url: str, message: bytes, count: int, connections: int) -> dict[str, Any]:
    """``count`` copies of ``message`` over ``connections`` parallel smtplib connections."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 25
    errors: list[str] = []

    def loop(first: int) -> None:
        try:
            conn = smtplib.SMTP(host, port, timeout=30)
            conn.ehlo()
            for i in range(first, count, connections):
                conn.sendmail("news@civic.example", [f"wire{i}@example.net"], message)
            conn.quit()
        except (OSError, smtplib.SMTPException) as exc:  # reported, never hidden
            errors.append(repr(exc))

    threads = [threading.Thread(target=loop, args=(k,)) for k in range(connections)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    return {
        "messages": count,
        "seconds": round(seconds, 2),
        "messages_per_s": round(count / seconds, 1),
        "errors": errors[:3],
    }


def sample_message(db_url: str, root: Path, size: float) -> bytes:
    """A real message of the edition just sent, as the SMTP backend writes it: of the
    variants' messages (each for its first reader), the largest of at most ``size`` bytes."""
    from sqlalchemy import func, select

    from bench.synthetic import World
    from digest.delivery import ledger
    from digest.delivery.envelopes import StoredEditions
    from digest.delivery.message import Recipient
    from digest.delivery.prepared import wire_bytes
    from digest.models import Delivery

    app = World(db_url, root, root / "digest.toml").app()
    editions = StoredEditions(app)
    messages = []
    with app.sessions() as s:
        firsts = s.execute(
            select(func.min(Delivery.id))
            .where(Delivery.variant_id.is_not(None))
            .group_by(Delivery.variant_id)
        ).scalars()
        rows = s.execute(
            select(Delivery.id, Delivery.subscriber_id, Delivery.email, Delivery.variant_id).where(
                Delivery.id.in_(list(firsts))
            )
        ).all()
    for delivery_id, subscriber_id, email, variant_id in rows:
        env = editions.envelope(variant_id)
        row = ledger.Row(delivery_id, subscriber_id, email, f"Reader {subscriber_id}")
        fields = editions.fields(row, env)
        data, _ = wire_bytes(env, Recipient(delivery_id, subscriber_id, email, row.name, fields))
        messages.append(data)
    app.close()
    # the largest not above digest's mean (the wire's task no lighter than digest's)
    smaller = [m for m in messages if len(m) <= size]
    return max(smaller, key=len) if smaller else min(messages, key=len)


def _wire_child(url: str, message: Path, count: int, connections: int) -> dict[str, Any]:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.smtp",
            "--url",
            url,
            "--message",
            str(message),
            "--count",
            str(count),
            "--connections",
            str(connections),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"bench.smtp wire failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def measure(root: Path, messages: int, server: Any, connections: int = 4) -> dict[str, Any]:
    """digest, the wire, the wire, digest (half the messages each), to the same sink:
    the ratio of digest's mean rate to the wire's, measured in a balanced order."""
    url = server.url + ("&" if "?" in server.url else "?") + f"connections={connections}"
    half = max(messages // 2, 1)

    class _Sink:  # the same server, with connections=N in the URL digest is given
        info = server.info

        def __init__(self) -> None:
            self.url = url

        def reset(self) -> None:
            server.reset()

        def stats(self) -> dict[str, Any]:
            return dict(server.stats())

    def digest_run(name: str) -> dict[str, Any]:
        return delivery.measure(
            "sqlite", half, root / name, _Sink(), backend="smtp", concurrency=connections
        )

    def wire_run(message_file: Path) -> dict[str, Any]:
        server.reset()
        run = _wire_child(server.url, message_file, half, connections)
        run["received"] = server.stats()["distinct"]
        return run

    digest_runs = [digest_run("digest-1")]
    first = digest_runs[0]
    folder = root / "digest-1" / f"smtp-sqlite-{half}"
    mean_bytes = (first["server"].get("bytes") or 0) / max(first["server"].get("posts") or 1, 1)
    message = sample_message(f"sqlite:///{folder / 'bench.db'}", folder, mean_bytes)
    message_file = folder / "wire-message.eml"
    message_file.write_bytes(message)
    wire_runs = [wire_run(message_file), wire_run(message_file)]
    digest_runs.append(digest_run("digest-2"))
    wire_rate = sum(r["messages_per_s"] for r in wire_runs) / len(wire_runs)
    digest_rate = sum(r["sent_per_send_s"] for r in digest_runs) / len(digest_runs)
    ratio = digest_rate / wire_rate if wire_rate else 0.0
    return {
        "connections": connections,
        "messages": half * 2,
        "digest_runs": digest_runs,
        "digest_messages_per_s": round(digest_rate, 1),
        "digest_mean_bytes": round(mean_bytes),
        "wire_runs": wire_runs,
        "wire_messages_per_s": round(wire_rate, 1),
        "wire_message_bytes": len(message),
        "ratio": round(ratio, 3),
        "met": ratio >= TARGET_RATIO,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.smtp")
    parser.add_argument("--url", required=True)
    parser.add_argument("--message", type=Path, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args(argv)
    print(json.dumps(wire(args.url, args.message.read_bytes(), args.count, args.connections)))


if __name__ == "__main__":
    main()

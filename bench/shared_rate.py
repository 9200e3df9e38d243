"""N `digest worker` processes sharing one account's rate, measured at the provider's end.

An edition of ``readers`` readers is planned (``digest send --enqueue``), then
``workers`` worker processes (two threads each) deliver it to the SendGrid contract
server (a process of its own) with ``DIGEST_SENDGRID_RATE`` set to ``limit``.  The
server stamps each request's arrival; from its log come the delivered rate (messages
between the first and the last arrival) and the busiest 10 seconds, both set against
the configured limit.  The check the tests make (tests/test_workers_scale_out.py) is
the same: no 10-second window above the limit plus 10%.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bench.synthetic import API_KEY, AS_OF, BASE_URL, SECRET, populate, postgres_world, sqlite_world

#: The most any 10-second window may carry, over the limit.
TOLERANCE = 0.10


def measure(
    root: Path,
    server: Any,
    *,
    postgres_url: str | None = None,
    readers: int = 8_000,
    workers: int = 3,
    limit: float = 400.0,
) -> dict[str, Any]:
    """Deliver one edition of ``readers`` through ``workers`` processes at ``limit``."""
    from digest.models import Edition, EditionStatus
    from digest.sender import Sender

    database = "postgresql" if postgres_url else "sqlite"
    folder = root / f"shared-rate-{database}-{readers}"
    context = (
        postgres_world(folder, postgres_url) if postgres_url else nullcontext(sqlite_world(folder))
    )
    with context as world:
        overrides = {
            "sendgrid_api_key": API_KEY,
            "sendgrid_api_host": server.url,
            "sendgrid_rate": limit,
        }
        app = world.app(**overrides)
        populate(app, readers)
        Sender(app, "sendgrid").send("weekly", AS_OF, enqueue=True)
        server.reset()
        env = {
            **os.environ,
            "DIGEST_DATABASE_URL": world.db_url,
            "DIGEST_CONFIG": str(world.config),
            "DIGEST_BASE_URL": BASE_URL,
            "DIGEST_SECRET_KEY": SECRET,
            "SENDGRID_API_KEY": API_KEY,
            "DIGEST_SENDGRID_API_HOST": server.url,
            "DIGEST_SENDGRID_RATE": str(limit),
            "DIGEST_LOG_LEVEL": "WARNING",
        }
        args = ["worker", "--backend", "sendgrid", "--concurrency", "2", "--poll", "0.2"]
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "digest.cli", *args],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(workers)
        ]
        started = time.perf_counter()
        try:
            deadline = started + 60 + 3 * readers / limit
            while time.perf_counter() < deadline:
                with app.sessions() as s:
                    if s.scalar(select(Edition.status)) == EditionStatus.SENT:
                        break
                time.sleep(0.2)
            elapsed = time.perf_counter() - started
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(60)
            app.close()
    received = server.stats()
    span = received.get("span_s") or 0.0
    busiest = received.get("busiest_10s") or 0
    return {
        "database": database,
        "readers": readers,
        "workers": workers,
        "limit_per_s": limit,
        "elapsed_s": round(elapsed, 2),
        "delivered_per_s": round(received["recipients"] / span, 1) if span else None,
        "busiest_10s_per_s": round(busiest / 10, 1),
        "ceiling_per_s": round(limit * (1 + TOLERANCE), 1),
        "server": received,
    }

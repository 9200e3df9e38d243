"""An edition for many readers in ten segments, delivered to a local SendGrid contract server.

The parent (:func:`measure`) builds the data, then delivers it in a child
process (``python -m bench.delivery run``), so the delivering process's peak
RSS (``getrusage(RUSAGE_SELF).ru_maxrss``, read by that process as it ends) is
the delivery's alone; the server runs in a process of its own.

The edition goes out the way production sends it, through one
:class:`digest.sender.Sender`: ``send(..., segments=SEGMENTS, enqueue=True)``
(``digest send weekly --segment region-0 … --segment region-9 --enqueue``) plans
the ten audiences in one pass over the list, then
``deliver()`` with four threads (``digest worker --concurrency 4``) delivers
every batch.  Phases:

* **resolve** — creating the edition, counting the ten audiences' category
  choices (one query), streaming their readers from the database in one pass
  (list, status, suppression and the segments' rules), mapping each reader's
  categories to a variant, and writing the ledger (a pending Delivery per
  reader, in batches); render time excluded;
* **render** — the time spent inside :meth:`digest.compose.Composer.render`
  (Jinja2 → MJML → HTML, and the text twin), once per distinct variant;
* **send** — the send loop until every batch is done: claiming batches, the
  send-time re-check of readers, per-reader fields (signed links), building each
  request of up to 1,000 personalizations, posting it and waiting for the 202,
  recording the outcome in the ledger; then settling the edition.

The naive baseline renders the email once per reader instead of once per
variant: it is extrapolated from the run's own mean render time (rendering a
million emails to prove the point would take hours).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from bench.synthetic import AS_OF, SEGMENTS, World, populate, postgres_world, sqlite_world

# ---------------------------------------------------------------------------
# In the child processes


#: What each figure means (also written to results.json).
DEFINITIONS = {
    "resolve_s": "creating the edition and, for the ten audiences in one pass, streaming "
    "their readers (list, status, suppression, segment rules), mapping each to a variant and "
    "writing the ledger; render time excluded",
    "render_s": "time inside Composer.render (Jinja2 → MJML → HTML, and the text twin), "
    "once per distinct variant",
    "send_s": "the send loop until every batch is done (claims, send-time re-check, "
    "per-reader signed links, request bodies, posting and waiting for 202, recording "
    "outcomes), then settling the edition",
    "naive_render_s": "render time had every reader been rendered separately: this run's "
    "mean render time × recipients (extrapolated, not run)",
    "peak_rss_mb": "ru_maxrss of the delivering process (getrusage RUSAGE_SELF, read as it "
    "ends), interpreter and imports included (baseline_rss_mb)",
}


def _rss_now_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class RenderClock:
    """Times every :meth:`Composer.render` while installed (the bench's only patch)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.renders = 0

    @contextmanager
    def installed(self) -> Iterator[RenderClock]:
        from digest.compose import Composer

        original = Composer.render

        def timed(composer: Composer, *args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(composer, *args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
                self.renders += 1

        Composer.render = timed  # type: ignore[method-assign,assignment]
        try:
            yield self
        finally:
            Composer.render = original  # type: ignore[method-assign]


@contextmanager
def _profiled(out: Path) -> Iterator[None]:
    """cProfile the main thread and every sending thread; write merged stats to ``out``."""
    from digest.delivery.loop import SendLoop

    profiles: list[cProfile.Profile] = []
    original = SendLoop._worker

    def worker(loop: SendLoop, *args: Any) -> None:
        prof = cProfile.Profile()
        profiles.append(prof)
        prof.enable()
        try:
            original(loop, *args)
        finally:
            prof.disable()

    main = cProfile.Profile()
    profiles.append(main)
    SendLoop._worker = worker  # type: ignore[method-assign,assignment]
    main.enable()
    try:
        yield
    finally:
        main.disable()
        SendLoop._worker = original  # type: ignore[method-assign]
        stats = pstats.Stats(profiles[0])
        for prof in profiles[1:]:
            stats.add(prof)
        stats.dump_stats(str(out))


def generate(world: World, subscribers: int) -> dict[str, Any]:
    app = world.app()
    start = time.perf_counter()
    populate(app, subscribers)
    app.close()
    return {"seconds": round(time.perf_counter() - start, 2)}


def _app(world: World, backend: str, server_url: str, api_key: str) -> Any:
    if backend == "smtp":
        return world.app(smtp_url=server_url)
    return world.app(sendgrid_api_key=api_key, sendgrid_api_host=server_url)


def deliver_only(
    world: World, backend: str, server_url: str, api_key: str, concurrency: int, edition_id: int
) -> dict[str, Any]:
    """One sending process of several (``--processes``): ``Sender.deliver`` of an edition
    already planned, as a ``digest worker`` does, claiming batches beside the others."""
    from digest.delivery.loop import SendOptions
    from digest.sender import Sender

    app = _app(world, backend, server_url, api_key)
    cpu = _cpu_s()
    Sender(app, backend, options=SendOptions(concurrency=concurrency)).deliver(edition_id)
    app.close()
    return {"cpu_s": round(_cpu_s() - cpu, 2), "peak_rss_mb": round(_peak_rss_mb(), 1)}


def _deliver_in(processes: int, argv: list[str], edition_id: int) -> dict[str, Any]:
    """``processes`` sending processes (``python -m bench.delivery deliver``), together."""
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.delivery",
                "deliver",
                *argv,
                "--edition",
                str(edition_id),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    outs = []
    for child in children:
        out, err = child.communicate()
        if child.returncode != 0:
            raise RuntimeError(f"bench.delivery deliver failed:\n{err[-3000:]}")
        outs.append(json.loads(out.strip().splitlines()[-1]))
    return {
        "cpu_s": round(sum(o["cpu_s"] for o in outs), 2),
        "peak_rss_mb": max(o["peak_rss_mb"] for o in outs),
    }


def run(
    world: World,
    backend: str,
    server_url: str,
    api_key: str,
    concurrency: int,
    profile: Path | None = None,
    processes: int = 1,
    argv: list[str] | None = None,
) -> dict[str, Any]:
    from digest.delivery import ledger
    from digest.delivery.loop import SendOptions
    from digest.models import Edition
    from digest.sender import Sender

    app = _app(world, backend, server_url, api_key)
    with app.transaction() as s:
        s.get(Edition, 1)  # open the pool: the baseline includes a connection
    baseline = _rss_now_mb()
    cpu = [_cpu_s()]
    clock = RenderClock()
    started = time.perf_counter()
    sender = Sender(app, backend, options=SendOptions(concurrency=concurrency))
    with clock.installed(), _profiled(profile) if profile else nullcontext():
        report = sender.send("weekly", AS_OF, segments=SEGMENTS, enqueue=True)
        edition_id = report.edition_id
        assert edition_id is not None
        planned = time.perf_counter()
        cpu.append(_cpu_s())
        peak_planning = _peak_rss_mb()
        if processes > 1:
            app.close()  # the sending processes have the database to themselves
            others = _deliver_in(processes, argv or [], edition_id)
            paused, pause_reason = False, None
        else:
            result = sender.deliver(edition_id)
            others, paused, pause_reason = None, result.paused, result.pause_reason
        finished = time.perf_counter()
        cpu.append(_cpu_s() + (others["cpu_s"] if others else 0.0))
    with app.sessions() as s:
        counts = ledger.edition_tally(s, edition_id).statuses
        edition = s.get(Edition, edition_id)
        assert edition is not None
        status = edition.status
    app.close()
    recipients = counts["sent"] + counts["failed"] + counts["uncertain"] + counts["pending"]
    total = finished - started
    render = clock.seconds
    return {
        "recipients": recipients,
        "counts": {k: v for k, v in counts.items() if v},
        "edition_status": status.value,
        "paused": paused,
        "pause_reason": pause_reason,
        "total_s": round(total, 2),
        "resolve_s": round(planned - started - render, 2),
        "render_s": round(render, 3),
        "send_s": round(finished - planned, 2),
        "cpu_resolve_render_s": round(cpu[1] - cpu[0], 2),
        "cpu_send_s": round(cpu[2] - cpu[1], 2),
        "recipients_per_s": round(recipients / total) if total else None,
        "sent_per_send_s": round(counts["sent"] / (finished - planned)),
        "renders": clock.renders,
        "ms_per_render": round(1000 * render / clock.renders, 1) if clock.renders else None,
        "naive_render_s": round(render / clock.renders * recipients, 1) if clock.renders else None,
        "baseline_rss_mb": round(baseline, 1),
        "peak_rss_after_resolve_mb": round(peak_planning, 1),
        "peak_rss_mb": round(max(_peak_rss_mb(), others["peak_rss_mb"] if others else 0), 1),
        "concurrency": concurrency,
        "processes": processes,
    }


# ---------------------------------------------------------------------------
# In the parent


def _child(*args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.delivery", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"bench.delivery {args[0]} failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def measure(
    database: str,
    subscribers: int,
    root: Path,
    server: Any,
    *,
    backend: str = "sendgrid",
    postgres_url: str | None = None,
    concurrency: int = 4,
    profile: Path | None = None,
    processes: int = 1,
) -> dict[str, Any]:
    """Generate ``subscribers`` readers in a fresh database and deliver one edition to
    them (the sending in ``processes`` processes, as that many ``digest worker``)."""
    folder = root / f"{backend}-{database}-{subscribers}"
    context = (
        postgres_world(folder, postgres_url)
        if database == "postgresql" and postgres_url
        else nullcontext(sqlite_world(folder))
    )
    with context as world:
        where = ["--db", world.db_url, "--root", str(world.root)]
        made = generate(world, subscribers)
        server.reset()
        extra = ["--profile", str(profile)] if profile else []
        result = _child(
            "run",
            *where,
            "--backend",
            backend,
            "--server",
            server.url,
            "--api-key",
            server.info.get("api_key", ""),
            "--concurrency",
            str(concurrency),
            "--processes",
            str(processes),
            *extra,
        )
    received = server.stats()
    return {
        "backend": backend,
        "database": database,
        "subscribers": subscribers,
        "generate_s": made["seconds"],
        **result,
        "server": received,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.delivery")
    parser.add_argument("step", choices=["run", "deliver"])
    parser.add_argument("--db", required=True)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--backend", choices=["sendgrid", "smtp"], default="sendgrid")
    parser.add_argument("--server", default="")
    parser.add_argument("--api-key", default="")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--edition", type=int)
    args = parser.parse_args(argv)
    world = World(args.db, args.root, args.root / "digest.toml")
    common = [
        "--db", args.db, "--root", str(args.root), "--backend", args.backend,
        "--server", args.server, "--api-key", args.api_key,
        "--concurrency", str(args.concurrency),
    ]  # fmt: skip
    if args.step == "deliver":
        result = deliver_only(
            world, args.backend, args.server, args.api_key, args.concurrency, args.edition
        )
    else:
        result = run(
            world,
            args.backend,
            args.server,
            args.api_key,
            args.concurrency,
            args.profile,
            args.processes,
            common,
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()

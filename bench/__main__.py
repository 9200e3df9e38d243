"""``python -m bench [--large]``: measure, print the table, write bench/results.json.

Sizes: deliveries to 10,000 and 100,000 readers (``--large`` adds 1,000,000),
on SQLite and, when ``DIGEST_BENCH_POSTGRES_URL`` or ``DIGEST_TEST_POSTGRES_URL``
is set, on PostgreSQL too (each run in a schema of its own, dropped after);
10,000 SMTP messages; 5,000 feed entries; the 40-article digest against Node
``mjml``; ``digest --version`` against ``import click``; three workers sharing
``DIGEST_SENDGRID_RATE=400`` (the delivered rate and the busiest 10 seconds at
SendGrid's end, against the limit).  Smaller sizes
(``--sizes 300 --smtp 50 …``) make a quick smoke run.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from bench import compose, delivery, ingest, report, shared_rate, smtp, startup, web
from bench.servers import ServerProcess

DEFAULT_OUT = Path(__file__).resolve().parent / "results.json"
SECTIONS = ("compose", "delivery", "smtp", "ingest", "startup", "rate", "web")


def _sizes(text: str) -> list[int]:
    try:
        return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give sizes like 10000,100000") from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--large", action="store_true", help="Add a 1,000,000-reader run.")
    parser.add_argument("--sizes", type=_sizes, help="Delivery sizes (default 10000,100000).")
    parser.add_argument("--smtp", type=int, default=10_000, help="SMTP messages (0: skip).")
    parser.add_argument(
        "--smtp-connections", type=int, default=4, help="SMTP connections, digest and wire alike."
    )
    parser.add_argument("--ingest", type=int, default=5_000, help="Feed entries (0: skip).")
    parser.add_argument(
        "--rate-readers", type=int, default=8_000, help="Readers of the shared-rate run (0: skip)."
    )
    parser.add_argument(
        "--rate-limit", type=float, default=400.0, help="DIGEST_SENDGRID_RATE of that run."
    )
    parser.add_argument("--rate-workers", type=int, default=3, help="Its worker processes.")
    parser.add_argument("--compose-runs", type=int, default=200, help="Renders timed per engine.")
    parser.add_argument("--no-node", action="store_true", help="Skip the Node mjml comparison.")
    parser.add_argument(
        "--startup-runs", type=int, default=7, help="CLI start-ups timed per command (0: skip)."
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get("DIGEST_BENCH_POSTGRES_URL")
        or os.environ.get("DIGEST_TEST_POSTGRES_URL"),
        help="PostgreSQL server URL (default: DIGEST_BENCH_POSTGRES_URL, "
        "DIGEST_TEST_POSTGRES_URL); empty: SQLite only.",
    )
    parser.add_argument("--concurrency", type=int, default=4, help="Sending threads.")
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="Sending processes for the deliveries (as many `digest worker`); default 1.",
    )
    parser.add_argument(
        "--validate-every",
        type=int,
        default=10,
        help="The SendGrid server checks the first request and one in N against the contract.",
    )
    parser.add_argument(
        "--web-seconds", type=float, default=60.0, help="Seconds per web burst (0: skip)."
    )
    parser.add_argument("--web-readers", type=int, default=2_000, help="Web readers.")
    parser.add_argument("--web-concurrency", type=int, default=16, help="Load connections.")
    parser.add_argument("--only", help=f"Comma-separated subset of {', '.join(SECTIONS)}.")
    parser.add_argument("--profile", type=Path, help="Write a cProfile of each delivery here.")
    parser.add_argument("--work", type=Path, help="Folder for databases (default: a temp dir).")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Where the JSON goes.")
    args = parser.parse_args(argv)
    if args.sizes is None:
        args.sizes = [10_000, 100_000] + ([1_000_000] if args.large else [])
    args.only = set(args.only.split(",")) if args.only else set(SECTIONS)
    unknown = args.only - set(SECTIONS)
    if unknown:
        parser.error(f"--only: unknown {', '.join(sorted(unknown))}; use {', '.join(SECTIONS)}")
    return args


def machine() -> dict[str, Any]:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit or None,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }


def run(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": machine()}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="digest-bench-") as tmp:
        work = args.work or Path(tmp)
        if "compose" in args.only:
            with console.status("compose: mjml-python and Node mjml…"):
                results["compose"] = compose.measure(args.compose_runs, node=not args.no_node)
        if "delivery" in args.only and args.sizes:
            databases = ["sqlite"] + (["postgresql"] if args.postgres else [])
            results["delivery"] = []
            with ServerProcess("sendgrid", "--validate-every", str(args.validate_every)) as sg:
                for database in databases:
                    for size in args.sizes:
                        with console.status(f"delivery: {size:,} readers on {database}…"):
                            profile = (
                                args.profile / f"delivery-{database}-{size}.prof"
                                if args.profile
                                else None
                            )
                            if profile:
                                profile.parent.mkdir(parents=True, exist_ok=True)
                            results["delivery"].append(
                                delivery.measure(
                                    database,
                                    size,
                                    work,
                                    sg,
                                    postgres_url=args.postgres,
                                    concurrency=args.concurrency,
                                    profile=profile,
                                    processes=args.processes,
                                )
                            )
        if "smtp" in args.only and args.smtp:
            with (
                ServerProcess("smtp") as sink,
                console.status(f"smtp: {args.smtp:,} messages, digest and the bare wire…"),
            ):
                results["smtp"] = smtp.measure(
                    work, args.smtp, sink, connections=args.smtp_connections
                )
        if "rate" in args.only and args.rate_readers:
            with (
                ServerProcess("sendgrid", "--validate-every", str(args.validate_every)) as sg,
                console.status(
                    f"rate: {args.rate_workers} workers, {args.rate_readers:,} readers at "
                    f"{args.rate_limit:g}/s…"
                ),
            ):
                results["rate"] = shared_rate.measure(
                    work,
                    sg,
                    postgres_url=args.postgres or None,
                    readers=args.rate_readers,
                    workers=args.rate_workers,
                    limit=args.rate_limit,
                )
        if "ingest" in args.only and args.ingest:
            with console.status(f"ingest: {args.ingest:,} entries…"):
                results["ingest"] = ingest.measure(work / "ingest", args.ingest)
        if "web" in args.only and args.web_seconds:
            results["web"] = {"definitions": web.DEFINITIONS, "runs": []}
            for database in ["sqlite"] + (["postgresql"] if args.postgres else []):
                with console.status(f"web: click and unsubscribe bursts on {database}…"):
                    results["web"]["runs"].append(
                        web.measure(
                            database,
                            args.web_readers,
                            args.web_seconds,
                            work / "web",
                            postgres_url=args.postgres,
                            concurrency=args.web_concurrency,
                        )
                    )
    if "startup" in args.only and args.startup_runs:
        with console.status("startup: digest --version against import click…"):
            results["startup"] = startup.measure(args.startup_runs)
    results["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    results["machine"]["bench_seconds"] = round(time.perf_counter() - started, 1)
    results["definitions"] = delivery.DEFINITIONS
    results["targets"] = report.targets(results) + web.targets(results)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 150)
    results = run(args, console)
    web.print_table(results, console)
    report.print_tables(results, console)
    report.write_json(results, args.out)
    console.print(f"Results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

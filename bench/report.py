"""The bench's verdicts against the targets, its table, and ``bench/results.json``.

Compose has no target: its figures (ours against Node mjml) are information."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.startup import VERSION_FACTOR

#: Targets on a 2-core machine (issue 8).
DELIVERY_SIZE = 100_000
DELIVERY_SECONDS = 15.0
DELIVERY_RSS_MB = 300.0
#: The large run (``make bench-large``, issue 17).
LARGE_SIZE = 1_000_000
LARGE_SECONDS = 60.0
#: "Flat": from the second-largest run to the largest (readers ×10), peak RSS grows by less
#: than this factor.  Smaller runs never fill their batches (1,000 readers each), so the
#: working set only reaches its ceiling from about 100,000 readers on.
RSS_FLAT_FACTOR = 1.25
#: digest send --backend smtp against a bare smtplib loop to the same sink (issue 17).
SMTP_RATIO = 0.7
#: Ingest, and re-ingest of unchanged entries, against feedparser alone (issue 17).
INGEST_RATIO = 0.5
REINGEST_RATIO = 0.8


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with the figure measured and whether it is met (None: not measured)."""
    out: list[dict[str, Any]] = []
    smtp = results.get("smtp")
    if smtp:
        out.append(
            {
                "target": f"SMTP ≥ {SMTP_RATIO:.0%} of the wire's limit "
                f"({smtp['connections']} connections, aiosmtpd)",
                "measured": f"{smtp['digest_messages_per_s']:,.0f} vs "
                f"{smtp['wire_messages_per_s']:,.0f} messages/s: ×{smtp['ratio']:.2f}",
                "met": smtp["ratio"] >= SMTP_RATIO,
            }
        )
    ingest = results.get("ingest")
    if ingest and "ratio" in ingest:
        for label, key, goal, rate in (
            ("ingest", "ratio", INGEST_RATIO, "entries_per_s"),
            ("re-ingest of unchanged entries", "reingest_ratio", REINGEST_RATIO, None),
        ):
            mine = ingest[rate] if rate else ingest["reingest_entries_per_s"]
            out.append(
                {
                    "target": f"{label} ≥ {goal:.0%} of feedparser's rate on the same file",
                    "measured": f"{mine:,} vs {ingest['feedparser_entries_per_s']:,} entries/s: "
                    f"×{ingest[key]:.2f}",
                    "met": ingest[key] >= goal,
                }
            )
    runs = results.get("delivery") or []
    for database in sorted({r["database"] for r in runs}):
        mine = sorted(
            (r for r in runs if r["database"] == database), key=lambda r: r["subscribers"]
        )
        headline = next((r for r in mine if r["subscribers"] == DELIVERY_SIZE), None)
        if headline is not None:
            out.append(
                {
                    "target": f"100,000 recipients end to end < {DELIVERY_SECONDS:.0f} s "
                    f"({database})",
                    "measured": f"{headline['total_s']} s",
                    "met": headline["total_s"] < DELIVERY_SECONDS,
                }
            )
            out.append(
                {
                    "target": f"100,000 recipients < {DELIVERY_RSS_MB:.0f} MB peak RSS "
                    f"({database})",
                    "measured": f"{headline['peak_rss_mb']} MB",
                    "met": headline["peak_rss_mb"] < DELIVERY_RSS_MB,
                }
            )
        million = next((r for r in mine if r["subscribers"] == LARGE_SIZE), None)
        if million is not None:
            out.append(
                {
                    "target": f"1,000,000 recipients end to end < {LARGE_SECONDS:.0f} s "
                    f"and < {DELIVERY_RSS_MB:.0f} MB peak RSS ({database})",
                    "measured": f"{million['total_s']} s (resolve {million['resolve_s']}, "
                    f"send {million['send_s']}), {million['peak_rss_mb']} MB",
                    "met": million["total_s"] < LARGE_SECONDS
                    and million["peak_rss_mb"] < DELIVERY_RSS_MB,
                }
            )
        if len(mine) > 1:
            small, large = mine[-2], mine[-1]
            factor = large["peak_rss_mb"] / small["peak_rss_mb"]
            per_reader = (
                (large["peak_rss_mb"] - mine[0]["peak_rss_mb"])
                * 1024
                * 1024
                / (large["subscribers"] - mine[0]["subscribers"])
            )
            out.append(
                {
                    "target": f"peak RSS flat as readers grow ({database}: "
                    f"{small['subscribers']:,} → {large['subscribers']:,} within "
                    f"×{RSS_FLAT_FACTOR})",
                    "measured": " → ".join(f"{r['peak_rss_mb']:.0f}" for r in mine)
                    + f" MB (×{factor:.2f}; {per_reader:.0f} bytes per extra reader)",
                    "met": factor <= RSS_FLAT_FACTOR,
                }
            )
    start = results.get("startup")
    if start and start.get("version_ratio") is not None:
        out.append(
            {
                "target": f"digest --version within {VERSION_FACTOR:.0f}× the start-up of "
                '`python -c "import click"` (CPU)',
                "measured": f"{start['version_s']} s vs {start['click_s']} s "
                f"(×{start['version_ratio']})",
                "met": start["version_ratio"] <= VERSION_FACTOR,
            }
        )
    rate = results.get("rate")
    if rate:
        out.append(
            {
                "target": f"{rate['workers']} workers together within 10% of the shared rate "
                f"over any 10 s ({rate['limit_per_s']:g}/s, {rate['database']})",
                "measured": f"busiest {rate['busiest_10s_per_s']}/s, delivered "
                f"{rate['delivered_per_s']}/s",
                "met": rate["busiest_10s_per_s"] <= rate["ceiling_per_s"]
                and (rate.get("server") or {}).get("duplicates") == 0,
            }
        )
    return out


def print_tables(results: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console(highlight=False)
    compose = results.get("compose")
    if compose:
        t = Table(
            title="Compose: the 40-article digest, MJML → HTML (median of runs; information, "
            "no target)"
        )
        for col in ("engine", "ms per render", "HTML bytes", "note"):
            t.add_column(col)
        node_ms = compose.get("node_ms")
        t.add_row(
            "ours (MRML, mjml-python)",
            _fmt(compose["ours_ms"], 3),
            _fmt(compose["ours_html_bytes"]),
            (f"{compose['ratio']}× faster than Node; " if node_ms is not None else "")
            + f"full composer render (Jinja2 + MJML + text): {compose['full_render_ms']} ms",
        )
        if node_ms is not None:
            t.add_row(
                f"Node mjml {compose['node_mjml_version']} (warm)",
                _fmt(node_ms, 3),
                _fmt(compose["node_html_bytes"]),
                "the reference",
            )
        else:
            t.add_row("Node mjml", "-", "-", f"comparison skipped: {compose['node_skipped']}")
        console.print(t)

    runs = results.get("delivery") or []
    if runs:
        t = Table(
            title="Delivery: one edition, ten segments, category choices → SendGrid contract "
            "server (separate process)"
        )
        for col in (
            "db",
            "readers",
            "total s",
            "resolve s",
            "render s",
            "send s",
            "readers/s",
            "renders",
            "naive s*",
            "RSS MB",
            "received (dup)",
        ):
            t.add_column(col, justify="right")
        for r in runs:
            server = r.get("server") or {}
            t.add_row(
                r["database"],
                _fmt(r["recipients"]),
                _fmt(r["total_s"], 2),
                _fmt(r["resolve_s"], 2),
                _fmt(r["render_s"], 2),
                _fmt(r["send_s"], 2),
                _fmt(r["recipients_per_s"]),
                _fmt(r["renders"]),
                _fmt(r["naive_render_s"], 0),
                _fmt(r["peak_rss_mb"], 0),
                f"{_fmt(server.get('distinct'))} ({_fmt(server.get('duplicates'))})",
            )
        console.print(t)
        console.print(
            "  resolve: readers streamed from the database, mapped to variants, ledger written "
            "(renders excluded) · render: Composer.render, once per variant · send: the send "
            "loop, claim to recorded 202, until every batch is done · RSS: ru_maxrss of the "
            "delivering process · * naive: one render per reader instead of one per variant, "
            "extrapolated from this run's mean render time (see bench/delivery.py)"
        )

    smtp = results.get("smtp")
    if smtp:
        t = Table(
            title="SMTP: the same edition, one message per reader → aiosmtpd (separate process), "
            f"{smtp['connections']} connections"
        )
        for col in ("sender", "messages", "seconds", "messages/s", "bytes each", "received (dup)"):
            t.add_column(col, justify="right")
        for i, run in enumerate(smtp["digest_runs"], start=1):
            server = run.get("server") or {}
            t.add_row(
                f"digest send --backend smtp, run {i}",
                _fmt(run["recipients"]),
                _fmt(run["send_s"], 2),
                _fmt(run["sent_per_send_s"]),
                _fmt(smtp["digest_mean_bytes"]),
                f"{_fmt(server.get('distinct'))} ({_fmt(server.get('duplicates'))})",
            )
        for i, wire in enumerate(smtp["wire_runs"], start=1):
            t.add_row(
                f"bare smtplib loop, run {i}",
                _fmt(wire["messages"]),
                _fmt(wire["seconds"], 2),
                _fmt(wire["messages_per_s"]),
                _fmt(smtp["wire_message_bytes"]),
                _fmt(wire.get("received")),
            )
        console.print(t)

    rate = results.get("rate")
    if rate:
        t = Table(
            title=f"Shared rate: {rate['workers']} workers, one SendGrid account "
            f"(DIGEST_SENDGRID_RATE={rate['limit_per_s']:g}), {rate['database']}"
        )
        for col in (
            "readers",
            "limit/s",
            "delivered/s",
            "busiest 10 s, /s",
            "ceiling/s",
            "elapsed s",
            "received (dup)",
        ):
            t.add_column(col, justify="right")
        server = rate.get("server") or {}
        t.add_row(
            _fmt(rate["readers"]),
            _fmt(rate["limit_per_s"]),
            _fmt(rate["delivered_per_s"]),
            _fmt(rate["busiest_10s_per_s"]),
            _fmt(rate["ceiling_per_s"]),
            _fmt(rate["elapsed_s"], 2),
            f"{_fmt(server.get('distinct'))} ({_fmt(server.get('duplicates'))})",
        )
        console.print(t)
        console.print(
            "  delivered: messages between the first and the last arrival at the server · "
            "busiest: the most messages in any 10 seconds, per second · ceiling: the limit "
            "plus 10% (the budget hands out 95% of the limit; see digest/delivery/throttle.py)"
        )

    ingest = results.get("ingest")
    if ingest:
        t = Table(title="Ingest: one generated RSS file → articles (SQLite)")
        for col in (
            "entries",
            "seconds",
            "entries/s",
            "re-ingest s",
            "re-ingest entries/s",
            "feedparser alone, entries/s",
        ):
            t.add_column(col, justify="right")
        t.add_row(
            _fmt(ingest["entries"]),
            _fmt(ingest["seconds"], 2),
            _fmt(ingest["entries_per_s"]),
            _fmt(ingest["reingest_seconds"], 2),
            _fmt(ingest["reingest_entries_per_s"]),
            _fmt(ingest.get("feedparser_entries_per_s")),
        )
        console.print(t)

    start = results.get("startup")
    if start:
        t = Table(title="Start-up: CPU seconds per run (user + system, median), side by side")
        for col in ("command", "CPU s", "× import click"):
            t.add_column(col, justify="right")
        t.add_row('python -c "import click"', _fmt(start["click_s"], 3), "1.00")
        t.add_row("digest --version", _fmt(start["version_s"], 3), _fmt(start["version_ratio"], 2))
        t.add_row("digest --help", _fmt(start["help_s"], 3), _fmt(start["help_ratio"], 2))
        console.print(t)

    verdicts = results.get("targets") or []
    if verdicts:
        t = Table(title="Targets (2-core machine)")
        for col in ("target", "measured", "met"):
            t.add_column(col)
        for v in verdicts:
            met = {True: "[green]yes[/green]", False: "[red]no[/red]", None: "-"}[v["met"]]
            t.add_row(v["target"], v["measured"], met)
        console.print(t)


def write_json(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")

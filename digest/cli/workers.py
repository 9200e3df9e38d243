"""`digest workers list`: the delivery workers, their state and what each holds."""

from __future__ import annotations

from datetime import datetime

import click
from rich.table import Table

from digest.cli._common import App, console, json_option, pass_app, print_json
from digest.delivery.throttle import budgets
from digest.workers import list_workers
from subscribers.db import utcnow


@click.group()
def workers() -> None:
    """The `digest worker` processes sharing this database.

    \b
    Example:
        digest workers list
    """


@workers.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include workers that stopped.")
@json_option
@pass_app
def workers_list(app: App, show_all: bool, as_json: bool) -> None:
    """Each worker: host, pid, state (running, draining, stopped or lost), when it
    started, its last heartbeat, the batches it holds and the messages it sent; then
    each provider account's shared rate.

    A worker is lost when its heartbeat stopped (or, on this machine, its process is
    gone); its batches are taken over when their lease runs out.

    \b
    Example:
        digest workers list
        digest workers list --all --json
    """
    with app.sessions() as s:
        rows = list_workers(s, include_stopped=show_all)
        accounts = [(b.key, b.rate, b.taken) for b in budgets(s)]
    if as_json:
        print_json(
            {
                "workers": [w.to_dict() for w in rows],
                "rates": [{"account": k, "rate": r, "taken": t} for k, r, t in accounts],
            }
        )
        return
    if not rows:
        console.print(
            "No workers" + (" registered." if show_all else " running (--all: stopped ones too).")
        )
    else:
        table = Table(box=None, pad_edge=False)
        for name in ("host", "pid", "state", "started", "heartbeat", "batches", "sent"):
            table.add_column(
                name, justify="right" if name in ("pid", "batches", "sent") else "left"
            )
        now = utcnow()
        for w in rows:
            table.add_row(
                w.host,
                str(w.pid),
                w.state,
                f"{w.started_at:%Y-%m-%d %H:%M:%S}",
                _ago(now, w.heartbeat_at),
                str(w.batches),
                str(w.sent),
            )
        console.print(table)
    for key, rate, taken in accounts:
        console.print(f"rate {key}: {rate:g} messages/s shared; {taken} taken so far")


def _ago(now: datetime, then: datetime) -> str:
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    return f"{seconds // 3600}h ago"


COMMANDS = [workers]

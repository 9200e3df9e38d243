"""`digest scheduler` (the service), `digest schedule list` and `digest schedule run`."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo

import click
from rich.table import Table

from digest.cli._common import (
    App,
    as_of_option,
    backend_option,
    choose_backend,
    concurrency_option,
    console,
    err_console,
    json_option,
    pass_app,
    print_json,
    rate_option,
    send_options,
)
from digest.cli._period import command_period
from digest.cli.send import print_result
from digest.editions import Purpose
from digest.models import RunOutcome
from digest.scheduling.runs import RunContext, run_edition
from digest.scheduling.service import DigestScheduler, overview
from digest.sender import SendOutcome
from digest.signals import graceful_stop


@click.command()
@backend_option
@concurrency_option
@rate_option
@click.option(
    "--once",
    is_flag=True,
    help="Run what is due now (and take up unfinished runs), then exit: for cron or a timer.",
)
@click.option(
    "--enqueue",
    is_flag=True,
    help="Only plan each run's edition and leave the sending (waves too) to `digest worker` "
    'processes; without it, per newsletter (delivery = "workers" in digest.toml).',
)
@pass_app
def scheduler(
    app: App,
    backend: str | None,
    concurrency: int | None,
    rate: float | None,
    once: bool,
    enqueue: bool,
) -> None:
    """Run every newsletter on its schedule until stopped: ingest its sources, then send
    the edition for the period that just ended.

    Jobs live in the database (table apscheduler_jobs), so a restart, or a second
    scheduler by mistake, never sends an edition twice. A run missed by more than
    DIGEST_SCHEDULER_MISFIRE_GRACE seconds is recorded as missed, not sent late.
    SIGTERM or Ctrl-C stops it after the message in hand; the next start resumes.

    With --enqueue (or delivery = "workers" for a newsletter) a run ingests, plans
    the edition and its ledger, and leaves the batches (local-time waves as batches
    that wait for their time) to `digest worker` processes; when none is running it
    says so in its log, and the admin console shows the edition as waiting.

    \b
    Example:
        digest scheduler
        digest scheduler --backend sendgrid --concurrency 4
        digest scheduler --enqueue   # `digest worker` processes send
        digest scheduler --once   # from cron or a systemd timer
    """
    logging.basicConfig(
        level=app.settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    choice = choose_backend(app, backend)
    stop = threading.Event()
    service = DigestScheduler(
        app,
        backend=choice,
        options=send_options(choice, concurrency, rate, app.settings),
        stop=stop,
        enqueue=enqueue,
    )

    def on_signal(_signum: int) -> None:
        err_console.print("scheduler: stopping after the message in hand…")
        service.wakeup()

    with graceful_stop(stop, on_signal):
        service.start()
        how = "enqueueing for `digest worker`" if enqueue else f"backend {choice}"
        err_console.print(
            f"scheduler: started with {len(app.config.newsletters)} newsletter(s), "
            f"{how}; SIGTERM or Ctrl-C stops it"
        )
        if once:
            service.tick()
            service.shutdown()
        else:
            service.serve()
    err_console.print("scheduler: stopped")


@click.group()
def schedule() -> None:
    """The newsletters' schedules: what runs when, and running one now.

    \b
    Example:
        digest schedule list
        digest schedule run weekly
    """


@schedule.command("list")
@click.option("--count", type=click.IntRange(1, 50), default=3, show_default=True)
@json_option
@pass_app
def schedule_list(app: App, count: int, as_json: bool) -> None:
    """Each newsletter's rule, timezone, next fire times (local and UTC) and last run.

    \b
    Example:
        digest schedule list
        digest schedule list --count 5 --json
    """
    rows = overview(app, count=count)
    if as_json:
        print_json(rows)
        return
    for row in rows:
        local_note = " · readers' local time" if row["local_time"] else ""
        console.print(
            f"[bold]{row['newsletter']}[/bold]  {row['schedule']}  {row['timezone']}{local_note}"
        )
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="dim")
        grid.add_column(no_wrap=True)
        grid.add_column(no_wrap=True)
        zone = ZoneInfo(row["timezone"])
        for i, t in enumerate(row["next"]):
            grid.add_row("next" if i == 0 else "", _short(t["local"], zone), _short(t["utc"], UTC))
        if not row["next"]:
            grid.add_row("next", "never", "")
        last = row["last_run"]
        if last is None:
            grid.add_row("last", "no run yet", "")
        else:
            grid.add_row("last", last["outcome"], f"due {_short(last['scheduled_for'], UTC)}")
        for held in row.get("waiting", []):
            grid.add_row(
                "waves",
                f"{held['deliveries']} deliveries waiting",
                f"next {_short(held['next_wave'], UTC)}",
            )
        console.print(grid)
        if last is not None and last["detail"]:
            console.print(f"  {last['detail']}", style="dim")
        console.print()


def _short(value: str | None, zone: tzinfo) -> str:
    """An ISO time shown in ``zone``: ``Mon 2026-11-30 08:00 GMT``."""
    if not value:
        return "-"
    return f"{datetime.fromisoformat(value).astimezone(zone):%a %Y-%m-%d %H:%M %Z}"


@schedule.command("run")
@click.argument("newsletter")
@as_of_option
@click.option(
    "--dry-run",
    is_flag=True,
    help="Say what the run would send, to whom, for which period and why; ingest, write "
    "and send nothing.",
)
@backend_option
@concurrency_option
@rate_option
@json_option
@pass_app
def schedule_run(
    app: App,
    newsletter: str,
    as_of: str | None,
    dry_run: bool,
    backend: str | None,
    concurrency: int | None,
    rate: float | None,
    as_json: bool,
) -> None:
    """Run a newsletter's scheduled job now: ingest its sources, then send the edition for
    the period before now (or --as-of), recorded like a scheduled run.

    Give --as-of the time of a missed run to send that run's edition late. An
    edition older than one already sent (or going out) is not sent: the run is
    recorded as skipped, saying why (editions go out in period order).

    \b
    Example:
        digest schedule run weekly --dry-run
        digest schedule run weekly
        digest schedule run weekly --as-of 2026-11-23T08:00
    """
    nl = app.config.newsletter(newsletter)
    choice = choose_backend(app, backend, sending=not dry_run)
    period = command_period(nl, as_of, purpose=Purpose.SEND, as_json=as_json)
    when = period.as_of  # the slot the run is recorded for
    cancel = threading.Event()
    options = send_options(choice, concurrency, rate, app.settings)
    ctx = RunContext(app, cancel=cancel, backend=choice, options=options)

    def on_signal(_signum: int) -> None:
        err_console.print("stopping after the message in hand…")

    with graceful_stop(cancel, on_signal):
        result = run_edition(ctx, nl.name, when, manual=True, dry_run=dry_run, choice=period)
    refused = result.report is not None and result.report.outcome is SendOutcome.OUT_OF_ORDER
    if as_json:
        print_json(result.to_dict())
    elif dry_run:
        console.print(
            f"[bold]{nl.name}[/bold] run due {_short(when.isoformat(), nl.zone)} (dry run: "
            "nothing written or sent; sources not ingested)"
        )
        console.print(f"backend: {choice}")
        if result.report is not None and not refused:
            print_result(result.report)
        else:
            console.print(f"would be skipped: {result.detail}")
    else:
        console.print(f"[bold]{nl.name}[/bold] run due {_short(when.isoformat(), nl.zone)}")
        console.print(f"backend: {choice}")
        console.print(f"{result.outcome}: {result.detail}")  # the detail names waiting waves
    if refused:
        raise SystemExit(1)
    if result.outcome in (RunOutcome.STOPPED, RunOutcome.PAUSED):
        raise SystemExit(3)


COMMANDS = [scheduler, schedule]

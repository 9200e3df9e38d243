"""`digest send` and `digest send-test` (`digest editions …` is in :mod:`.editions`)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
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
    newsletter_to_compose,
    parse_as_of,
    pass_app,
    print_json,
    rate_option,
    send_options,
)
from digest.cli._period import command_period, preview_period
from digest.delivery.loop import Progress as SendProgress
from digest.editions import Purpose, choose_period
from digest.sender import SendOutcome, SendResult
from digest.sendtest import editor_addresses
from digest.sendtest import send_test as send_test_copies
from digest.signals import graceful_stop

if TYPE_CHECKING:
    pass


@click.command()
@click.argument("newsletter")
@as_of_option
@click.option(
    "--period",
    metavar="KEY",
    help="Send this period's edition instead of the one before --as-of: an ISO week like "
    "2026-W47, or FIRST..LAST days like 2026-11-16..2026-11-22 for a window of days.",
)
@click.option(
    "--force",
    is_flag=True,
    help="With --period: send it even though a newer edition has gone out already "
    "(editions go out in period order otherwise).",
)
@backend_option
@click.option(
    "--segment",
    "segments",
    metavar="NAME",
    multiple=True,
    help="Send only to this segment of the list; repeat it for several segments, planned "
    "in one pass (a reader in two gets one copy, the first segment's).",
)
@click.option("--dry-run", is_flag=True, help="Show who would get what; write and send nothing.")
@click.option(
    "--resend-uncertain",
    is_flag=True,
    help="Also resend messages that were in flight when an earlier run was killed: those "
    "the provider has reported are settled from its events instead, and with SendGrid the "
    "others wait DIGEST_UNCERTAIN_GRACE seconds (default 900) after their post for its word.",
)
@click.option(
    "--enqueue",
    is_flag=True,
    help="Only plan the edition; `digest worker` processes deliver it.",
)
@concurrency_option
@rate_option
@json_option
@pass_app
def send(
    app: App,
    newsletter: str,
    as_of: str | None,
    period: str | None,
    force: bool,
    backend: str | None,
    segments: tuple[str, ...],
    dry_run: bool,
    resend_uncertain: bool,
    enqueue: bool,
    concurrency: int | None,
    rate: float | None,
    as_json: bool,
) -> None:
    """Create or resume the edition for the period and deliver it, exactly once per reader.

    The period is the one before now (the edition due now), the one before
    --as-of, or the one --period names; the command prints which and why.
    Running it again for the same period resumes the same edition and sends
    only what is still pending. A newsletter's editions go out in period order:
    an edition older than one already sent (or going out) is refused, unless
    you name it and confirm with --period KEY --force. SIGTERM or Ctrl-C stops
    it after the message in hand; run it again to resume.

    \b
    Example:
        digest send weekly --as-of 2026-11-23 --backend outbox
        digest send weekly --segment health --dry-run
        digest send weekly --segment north --segment south --enqueue
        digest send weekly --enqueue   # then: digest worker
        digest send weekly --period 2026-W47 --force
    """
    if period and as_of:
        raise click.UsageError("give --period or --as-of, not both")
    if dry_run and len(segments) > 1:
        raise click.UsageError("--dry-run counts one audience: give at most one --segment")
    nl = newsletter_to_compose(app, newsletter)
    if force and not period:
        due = choose_period(nl, as_of=parse_as_of(as_of, nl.zone) if as_of else None)
        raise click.UsageError(
            "--force needs --period: name the edition to send out of order, e.g. "
            f"--period {due.period.key} --force (`digest editions list --newsletter {nl.name}` "
            "shows the periods)"
        )
    choice = choose_backend(app, backend, sending=not dry_run)
    when = command_period(nl, as_of, purpose=Purpose.SEND, period=period, as_json=as_json)
    quiet = as_json or not console.is_terminal
    bar = Progress(
        TextColumn("[bold]sending"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        disable=quiet,
        transient=True,
    )
    task = bar.add_task("send", total=None)

    def on_progress(p: SendProgress, total: int | None) -> None:
        bar.update(task, total=total, completed=p.sent + p.failed + p.skipped)

    cancel = threading.Event()

    def on_signal(_signum: int) -> None:
        err_console.print("stopping after the message in hand…")

    from digest.api import Digest

    with bar, graceful_stop(cancel, on_signal):
        result = Digest(app).send(
            nl.name,
            period=when,
            backend=choice,
            force=force,
            segments=segments,
            dry_run=dry_run,
            resend_uncertain=resend_uncertain,
            enqueue=enqueue,
            options=send_options(choice, concurrency, rate, app.settings),
            cancel=cancel,
            on_progress=on_progress,
        )
    if as_json:
        print_json(result.to_dict())
    else:
        print_result(result)
    if result.outcome in (SendOutcome.OUT_OF_ORDER, SendOutcome.HELD):
        raise SystemExit(1)
    if result.outcome in (SendOutcome.PAUSED, SendOutcome.STOPPED):
        raise SystemExit(3)


def print_result(r: SendResult) -> None:
    """What a send did (or, for a dry run, would do), for people."""
    head = f"[bold]{r.newsletter} {r.period}[/bold]"
    edition = f"edition {r.edition_id}"
    match r.outcome:
        case SendOutcome.OUT_OF_ORDER:
            err_console.print(f"[red]refused: {r.refusal}[/red]")
            return
        case SendOutcome.HELD:
            err_console.print(f"[yellow]held: {r.refusal}[/yellow]")
            return
        case SendOutcome.NO_ARTICLES:
            console.print(
                f"{r.newsletter} {r.period}: no new articles this period; nothing to send."
            )
            return
        case SendOutcome.DRY_RUN:
            console.print(f"{head} (dry run: nothing written or sent)")
        case SendOutcome.ENQUEUED:
            console.print(
                f"{head}: {edition} planned; {r.enqueued} deliveries queued for `digest worker`."
            )
        case SendOutcome.NO_READERS:
            console.print(f"{head}: {edition} has nobody to go to (no active readers on the list).")
        case SendOutcome.ALL_SKIPPED:
            console.print(
                f"{head}: {edition} has nothing to send (every reader skipped); nothing new sent."
            )
        case SendOutcome.ALREADY_DELIVERED:
            console.print(
                f"{head}: {edition} has nothing left to send (already delivered); nothing new sent."
            )
        case SendOutcome.SENT | SendOutcome.PAUSED | SendOutcome.STOPPED:
            console.print(f"{head}: {edition} {'created' if r.created else 'resumed'}")
    if r.outcome is not SendOutcome.ENQUEUED:
        console.print(f"backend: {r.backend}")
    dry = r.outcome is SendOutcome.DRY_RUN
    c = r.counts
    table = Table(show_header=False, box=None)
    table.add_row("recipients", str(r.recipients))
    if dry:
        table.add_row("would send", str(c.pending))
    else:
        table.add_row("sent", f"{c.sent} ({r.sent_now} in this run)")
        table.add_row("failed", str(c.failed))
        table.add_row("pending", str(c.outstanding))
        table.add_row("uncertain", str(c.uncertain))
    table.add_row("skipped", str(c.skipped))
    for reason, count in r.skipped_reasons.items():
        table.add_row("", f"{count} × {reason}")
    variants = ", ".join(f"{k} ({n})" for k, n in r.variants.items())
    table.add_row("variants", variants or "-")
    if not dry:
        table.add_row("time", f"{r.elapsed:.1f}s")
    console.print(table)
    if dry:
        return
    d = r.delivered
    if d.resolved_sent or d.resolved_failed or d.requeued:
        console.print(
            f"Uncertain messages: {d.resolved_sent} settled as sent and {d.resolved_failed} "
            f"as failed from the provider's events (not resent); {d.requeued} with no word "
            "from the provider resent."
        )
    if c.uncertain and d.awaiting_evidence and d.resend_after is not None:
        console.print(
            f"[yellow]{d.awaiting_evidence} uncertain message(s) were posted less than "
            "DIGEST_UNCERTAIN_GRACE ago: they wait for the provider's events, which settle "
            f"them; run --resend-uncertain again after {d.resend_after:%Y-%m-%d %H:%M} UTC "
            "to resend those still unreported.[/yellow]"
        )
    elif c.uncertain:
        console.print(
            f"[yellow]{c.uncertain} message(s) were handed over without an answer (in flight "
            "when a run stopped, or the provider went silent): they may or may not have gone "
            f"out. See `digest editions show {r.edition_id}`; resend them with "
            "--resend-uncertain.[/yellow]"
        )
    if r.waiting and r.next_wave is not None:
        console.print(
            f"{r.waiting} deliveries scheduled for later waves (readers' local time), next at "
            f"{r.next_wave:%Y-%m-%d %H:%M} UTC: a running `digest scheduler` or `digest worker` "
            "sends each wave when it falls due (or run this command again then)."
        )
    for key in r.superseded:
        console.print(
            f"[yellow]{r.newsletter} {key} was queued but had not started going out: it is "
            f"paused, since {r.period} is newer and editions go out in order. To send it "
            f"anyway: digest send {r.newsletter} --period {key} --force[/yellow]"
        )
    if r.outcome is SendOutcome.STOPPED:
        console.print("[yellow]Stopped on request; run the same command again to resume.[/yellow]")
    if r.outcome is SendOutcome.PAUSED:
        console.print(
            f"[red]Paused: {r.pause_reason}[/red]\nFix the cause, then run the same command "
            "again to resume where it stopped."
        )


@click.command("send-test")
@click.argument("newsletter")
@click.option("--to", "to", required=True, help="Comma-separated addresses of the editors.")
@click.option("--variant", default="all", show_default=True, help="Which variant to send.")
@as_of_option
@backend_option
@pass_app
def send_test(
    app: App, newsletter: str, to: str, variant: str, as_of: str | None, backend: str | None
) -> None:
    """Send a marked [TEST] copy of the edition to editors; the ledger is not touched.

    The edition is the one the next scheduled run will send (or the one before
    --as-of); the command prints which and why.

    \b
    Example:
        digest send-test weekly --to editor@example.org,chief@example.org
    """
    nl = newsletter_to_compose(app, newsletter)
    addresses = editor_addresses([a.strip() for a in to.split(",") if a.strip()])
    choice = choose_backend(app, backend)
    click.echo(f"backend: {choice}")
    when = preview_period(nl, as_of)
    copies = send_test_copies(app, nl, addresses, when.as_of, variant=variant, backend=choice)
    for line in copies.lines():
        click.echo(line)
    if not copies.emailed:
        click.echo(
            "Not emailed: the outbox keeps each message as a file. Give --backend smtp or "
            "sendgrid (or set DIGEST_BACKEND) to email test copies."
        )


COMMANDS = [send, send_test]

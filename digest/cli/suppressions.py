"""`digest suppressions …`: list, search and lift entries of the suppression list."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from digest.cli._common import App, console, json_option, pass_app, print_json
from digest.cli._people import by_admin, date
from subscribers import suppression as suppression_lib
from subscribers.models import SuppressionReason

REASONS = [r.value for r in SuppressionReason]


@click.group("suppressions")
def suppressions_group() -> None:
    """The suppression list: addresses that are never mailed (bounced, complained,
    erased, …). List and search them, and lift one.

    \b
    Example:
        digest suppressions list --reason hard_bounce
        digest suppressions lift ada@example.org --why "mailbox fixed"
    """


def _row(entry: suppression_lib.Entry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "email": entry.email,
        "erased": entry.erased,
        "reason": entry.reason.value,
        "since": entry.since.isoformat(),
        "detail": entry.detail,
        "subscriber_id": entry.subscriber_id,
        "status": entry.status.value if entry.status else None,
    }


@suppressions_group.command("list")
@click.option("--reason", type=click.Choice(REASONS), default=None, help="Only this reason.")
@click.option(
    "--search",
    default="",
    metavar="TEXT",
    help="Addresses or details containing TEXT (a whole address also finds its erased entry).",
)
@click.option("--limit", default=50, show_default=True, help="Show at most this many (0: all).")
@json_option
@pass_app
def suppressions_list(app: App, reason: str | None, search: str, limit: int, as_json: bool) -> None:
    """List suppressed addresses, newest first, with the reason, the date and the
    evidence (a bounce's status code and the server's words).

    \b
    Example:
        digest suppressions list
        digest suppressions list --reason spam_report
        digest suppressions list --search 5.1.1
        digest suppressions list --search example.net --json
    """
    with app.transaction() as session:
        total, rows = suppression_lib.list_suppressions(
            session, reason=reason, search=search, limit=limit or None
        )
    if as_json:
        print_json({"total": total, "entries": [_row(e) for e in rows]})
        return
    table = Table(show_edge=False)
    for col in ("Address", "Reason", "Since", "Reader", "Detail"):
        table.add_column(col, overflow="fold")
    for e in rows:
        reader = f"{e.subscriber_id} ({e.status.value})" if e.subscriber_id and e.status else ""
        table.add_row(e.label(), e.reason.value, date(e.since), reader, e.detail)
    if rows:
        console.print(table)
    shown = f" (showing {len(rows)})" if len(rows) < total else ""
    click.echo(f"{total} suppressed address{'es' if total != 1 else ''}{shown}")


@suppressions_group.command("lift")
@click.argument("email")
@click.option("--why", default="", metavar="TEXT", help="Why, for the consent log.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def suppressions_lift(app: App, email: str, why: str, yes: bool) -> None:
    """Take EMAIL off the suppression list (asks first; --yes does not).

    Lifting does not make the reader active again: someone who bounced, complained
    or unsubscribed gets mail only after they confirm (send them a confirmation
    email with `digest subscribers add EMAIL --list LIST --resubscribe`). The
    reader's consent log records who lifted it, when and why. An erased address
    (only its hash is kept) is lifted by typing the address it was made from.

    \b
    Example:
        digest suppressions lift ada@example.org --why "she fixed her mailbox"
        digest suppressions lift ada@example.org --yes
    """
    with app.transaction() as session:
        entry = suppression_lib.entry_for(session, email)
    if entry is None:
        raise click.ClickException(f"{email.strip()} is not on the suppression list")
    what = f"{entry.reason.value} since {date(entry.since)}"
    if entry.detail:
        what += f": {entry.detail}"
    if entry.erased:
        click.echo(
            f"{email.strip()} was erased on request (only its hash is kept); lifting lets it "
            "be added or imported again."
        )
    if not yes:
        click.confirm(f"Lift the suppression of {email.strip()} ({what})?", abort=True)
    with app.transaction() as session:
        lifted = suppression_lib.lift(
            session, email, by=by_admin(why.strip()), why=why, entry_id=entry.id
        )
    click.echo(f"{email.strip()}: suppression lifted ({what})")
    click.echo(f"Next: {lifted.next_step()}.")


COMMANDS = [suppressions_group]

"""`digest lists …`: thin commands over :mod:`subscribers.lists`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from digest.cli._common import App, console, json_option, pass_app, pass_digest, print_json
from digest.cli._people import by_admin
from subscribers import lists as lists_lib
from subscribers.models import Status

if TYPE_CHECKING:
    from digest.api import Digest


@click.group("lists")
def lists_group() -> None:
    """Mailing lists: create, list, show and delete them.

    \b
    Example:
        digest lists create weekly --description "The weekly round-up"
        digest lists list
    """


@lists_group.command("create")
@click.argument("name")
@click.option("--description", default="", help="What the list is for (shown to admins).")
@click.option(
    "--double-opt-in/--single-opt-in",
    default=True,
    show_default=True,
    help="Whether web signups must confirm by email first.",
)
@pass_app
def lists_create(app: App, name: str, description: str, double_opt_in: bool) -> None:
    """Create a mailing list.

    \b
    Example:
        digest lists create weekly --description "The weekly round-up"
    """
    with app.transaction() as session:
        lists_lib.create_list(session, name, description=description, double_opt_in=double_opt_in)
    mode = "double opt-in" if double_opt_in else "single opt-in"
    click.echo(f"Created list {name} ({mode})")


@lists_group.command("list")
@json_option
@pass_digest
def lists_list(d: Digest, as_json: bool) -> None:
    """List the mailing lists with their member counts.

    \b
    Example:
        digest lists list --json
    """
    rows: list[dict[str, Any]] = [
        {
            "name": info.name,
            "description": info.description,
            "double_opt_in": info.double_opt_in,
            "active": info.counts[Status.ACTIVE],
            "pending": info.counts[Status.PENDING],
            "unsubscribed": info.counts[Status.UNSUBSCRIBED],
            "total": info.total,
        }
        for info in d.lists()
    ]
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("No lists yet; create one with `digest lists create NAME`.")
        return
    table = Table(show_edge=False)
    for col in ("List", "Opt-in", "Active", "Pending", "Unsubscribed", "Description"):
        table.add_column(
            col, justify="right" if col in ("Active", "Pending", "Unsubscribed") else "left"
        )
    for r in rows:
        table.add_row(
            r["name"],
            "double" if r["double_opt_in"] else "single",
            str(r["active"]),
            str(r["pending"]),
            str(r["unsubscribed"]),
            r["description"],
        )
    console.print(table)


@lists_group.command("show")
@click.argument("name")
@json_option
@pass_digest
def lists_show(d: Digest, name: str, as_json: bool) -> None:
    """Show one list: counts, segments, and the newsletters that mail it.

    \b
    Example:
        digest lists show weekly
    """
    info = d.mailing_list(name)
    data: dict[str, Any] = {
        "name": name,
        "description": info.description,
        "double_opt_in": info.double_opt_in,
        "created_at": info.created_at.isoformat(),
        "members": {status: n for status, n in info.counts.items() if n},
        "recipients": info.recipients,
        "segments": info.segments,
        "newsletters": info.newsletters,
        "categories": info.categories,
    }
    if as_json:
        print_json(data)
        return
    console.print(f"[bold]{name}[/bold] — {data['description'] or 'no description'}")
    console.print(f"Opt-in: {'double' if data['double_opt_in'] else 'single'}")
    members = ", ".join(f"{n} {s}" for s, n in data["members"].items()) or "none"
    console.print(f"Members: {members}; {data['recipients']} would receive a send now")
    console.print(f"Segments: {', '.join(data['segments']) or 'none'}")
    console.print(f"Newsletters: {', '.join(data['newsletters']) or 'none'}")
    if data["categories"]:
        console.print(f"Categories: {', '.join(data['categories'])}")


@lists_group.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def lists_delete(app: App, name: str, yes: bool) -> None:
    """Delete a list with its memberships and segments (subscribers themselves stay).

    \b
    Example:
        digest lists delete old-list --yes
    """
    with app.transaction() as session:
        summary = lists_lib.summary(session, name)
        if not yes:
            click.confirm(f"Delete list {name!r} and its {summary.total} memberships?", abort=True)
        removed = lists_lib.delete_list(
            session, name, by=by_admin(f"list {name!r} deleted on the command line")
        )
    click.echo(f"Deleted list {name} ({removed} memberships removed)")


COMMANDS = [lists_group]

__all__ = ["COMMANDS"]

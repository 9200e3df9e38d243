"""`digest subscribers …`: thin commands over the ``subscribers`` package (plus the
pipeline's delivery records for erasure and personal-data export, which only
``digest`` knows about)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from digest.cli._common import (
    App,
    console,
    err_console,
    json_option,
    pass_app,
    pass_digest,
    print_json,
)
from digest.cli._people import by_admin, cli_actor, list_option, newsletters_of, split
from digest.config import NewsletterConfig
from subscribers import io as csv_io
from subscribers import lists as lists_lib
from subscribers import service
from subscribers.errors import NotFound
from subscribers.models import Status

if TYPE_CHECKING:
    from digest.api import Digest

STATUSES = [s.value for s in Status]
SHOW_REJECTED = 50


def _parse_attrs(pairs: tuple[str, ...]) -> dict[str, str]:
    attrs: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(
                f"{pair!r} is not KEY=VALUE; write e.g. --attr sector=health", param_hint="--attr"
            )
        attrs[key.strip()] = value.strip()
    return attrs


@click.group("subscribers")
def subscribers_group() -> None:
    """Subscribers: add, change, unsubscribe, list, import and export them; erase or
    export one person's data.

    \b
    Example:
        digest subscribers add ada@example.org --list weekly --name "Ada"
        digest subscribers import people.csv --list weekly --dry-run
    """


@subscribers_group.command("add")
@click.argument("email")
@list_option
@click.option("--name", default=None, help="Their name.")
@click.option("--categories", default=None, help="Chosen categories, comma-separated (none = all).")
@click.option("--attr", "attrs", multiple=True, metavar="KEY=VALUE", help="An attribute; repeat.")
@click.option("--timezone", default=None, help="IANA timezone, e.g. Europe/London.")
@click.option(
    "--resubscribe",
    is_flag=True,
    help="They unsubscribed before and asked to come back: email them a confirmation "
    "link (they are back once they follow it).",
)
@pass_app
def subscribers_add(
    app: App,
    email: str,
    list_name: str,
    name: str | None,
    categories: str | None,
    attrs: tuple[str, ...],
    timezone: str | None,
    resubscribe: bool,
) -> None:
    """Add someone to a list (or update them).  Admin adds count as consent: they are
    active at once, with consent method "admin".

    Someone who unsubscribed, bounced or complained is refused: only they can come
    back, by confirming.  --resubscribe sends them a confirmation email (through the
    newsletter that mails the list) and records the request in their consent log;
    they stay unsubscribed until they follow its link.

    \b
    Example:
        digest subscribers add ada@example.org --list weekly --name "Ada Lovelace" \\
            --categories "Data and security" --attr sector=health --attr region=north
        digest subscribers add bob@example.org --list weekly --resubscribe
    """
    attributes = _parse_attrs(attrs)
    newsletter = _confirming_newsletter(app, list_name) if resubscribe else None
    with app.transaction() as session:
        added = service.add_subscriber(
            session,
            email,
            list_name,
            name=name,
            categories=split(categories),
            attributes=attributes,
            timezone=timezone,
            resubscribe=resubscribe,
            known_categories=app.config.choosable_categories([list_name]),
            everything=app.config.choosable_categories([list_name], other=False),
            by=by_admin(),
        )
        address = added.subscriber.email
        sid = added.subscriber.id
        state = Status(added.membership.status).value if added.membership else "not on it"
    if added.asked and newsletter is not None:
        from digest.web.optin import send_confirmation

        where = send_confirmation(app, newsletter, sid)
        left = f"left {list_name}" if added.membership else "unsubscribed from everything"
        click.echo(
            f"{address} {left} before, so only they can come back: a confirmation email "
            f"for {newsletter.title} went to them ({where}); they are back on {list_name} "
            "once they follow its link (it lasts 7 days)"
        )
    elif added.created:
        click.echo(f"Added {address} to {list_name} ({state})")
    elif added.joined:
        click.echo(f"Added existing subscriber {address} to {list_name} ({state})")
    elif added.changed:
        click.echo(f"Updated {address} (already on {list_name}, {state})")
    else:
        click.echo(f"{address} is already on {list_name} ({state}); nothing changed")


def _confirming_newsletter(app: App, list_name: str) -> NewsletterConfig:
    """The newsletter whose confirmation email --resubscribe sends for ``list_name``."""
    names = newsletters_of(app, list_name)
    if not names:
        raise click.UsageError(
            f"no newsletter in {app.settings.config_path} mails list {list_name!r}, so there is no "
            "confirmation email to send; only the reader can resubscribe, by confirming"
        )
    return app.config.newsletters[names[0]]


@subscribers_group.command("remove")
@click.argument("email")
@list_option
@pass_app
def subscribers_remove(app: App, email: str, list_name: str) -> None:
    """Take someone off a list entirely (no unsubscribe record: a later import may add
    them again).  To stop mail for good use `unsubscribe`; to erase them, `forget`.
    Someone who unsubscribed from the list stays on it as unsubscribed: that record is
    what keeps imports from adding them again.

    \b
    Example:
        digest subscribers remove ada@example.org --list weekly
    """
    with app.transaction() as session:
        service.remove_from_list(session, email, list_name, by=by_admin())
    click.echo(f"Removed {email} from {list_name}")


@subscribers_group.command("unsubscribe")
@click.argument("email")
@click.option("--list", "list_name", default=None, metavar="LIST", help="Only this list.")
@click.option("--reason", default="", help="Why (kept in the consent log).")
@pass_app
def subscribers_unsubscribe(app: App, email: str, list_name: str | None, reason: str) -> None:
    """Unsubscribe someone from one list, or from every list.

    \b
    Example:
        digest subscribers unsubscribe ada@example.org --list weekly
        digest subscribers unsubscribe ada@example.org
    """
    with app.transaction() as session:
        subscriber = service.get_subscriber(session, email)
        if list_name is not None:
            mlist = lists_lib.get_list(session, list_name)
            if service.membership(session, subscriber.id, mlist.id) is None:
                raise NotFound(f"{subscriber.email} is not on list {list_name!r}")
        service.unsubscribe(session, subscriber.id, list_name, reason=reason, by=by_admin(reason))
        address = subscriber.email
    click.echo(f"Unsubscribed {address} from {list_name or 'every list'}")


@subscribers_group.command("show")
@click.argument("email")
@json_option
@pass_digest
def subscribers_show(d: Digest, email: str, as_json: bool) -> None:
    """Show one subscriber: status, lists, consent and its log, attributes, suppression.

    \b
    Example:
        digest subscribers show ada@example.org
    """
    person = d.describe(email)
    data, entry = person.to_dict(), person.suppression
    if as_json:
        print_json(data)
        return
    console.print(f"[bold]{data['email']}[/bold] {data['name']}  (id {data['id']})")
    console.print(f"Status: {data['status']}" + (f" · suppressed: {entry.reason}" if entry else ""))
    if entry:
        console.print(
            f"Suppressed since {entry.since:%Y-%m-%d %H:%M} UTC ({entry.reason})"
            + (f": {entry.detail}" if entry.detail else "")
            + "; `digest suppressions lift` takes the address off the list",
            soft_wrap=True,
        )
    consent = data["consent"]
    console.print(
        f"Consent: {consent['method'] or 'none recorded'} {consent['at'] or ''}"
        + (f" from {consent['ip']}" if consent["ip"] else "")
    )
    console.print(f"Categories: {', '.join(data['categories']) or 'all'}")
    if data["timezone"]:
        console.print(f"Timezone: {data['timezone']}")
    if data["attributes"]:
        attrs = ", ".join(f"{k}={v}" for k, v in sorted(data["attributes"].items()))
        console.print(f"Attributes: {attrs}")
    table = Table(show_edge=False)
    table.add_column("List")
    table.add_column("Status")
    table.add_column("Joined")
    for m in data["memberships"]:
        table.add_row(m["list"], m["status"], m["joined_at"][:10] if m["joined_at"] else "")
    if data["memberships"]:
        console.print(table)
    else:
        console.print("Not on any list")
    console.print("Consent log (UTC):")
    for line in data["consent_log"]:
        by = f" by {line['actor']}" if line["actor"] else ""
        note = f": {line['detail']}" if line["detail"] else ""
        console.print(
            f"  {line['at'][:16].replace('T', ' ')}  {line['list'] or 'the person'}  "
            f"{_change(line)}  ({line['source']}{by}){note}",
            soft_wrap=True,
        )


def _change(line: dict[str, Any]) -> str:
    if line["request"]:
        return "asked for a confirmation email"
    if line.get("note"):
        return f"no change ({line['to'] or '—'})"
    return f"{line['from'] or '—'} → {line['to'] or 'off the list'}"


@subscribers_group.command("list")
@list_option
@click.option("--segment", default=None, help="Only this segment of the list.")
@click.option("--status", type=click.Choice(STATUSES), default=None, help="Only this status.")
@click.option("--limit", default=50, show_default=True, help="Show at most this many (0: all).")
@json_option
@pass_digest
def subscribers_list(
    d: Digest,
    list_name: str,
    segment: str | None,
    status: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List a list's members (optionally one segment, one status).

    The status shown is the person's own when it is not active (bounced, …),
    else their status on this list.

    \b
    Example:
        digest subscribers list --list weekly --segment health --status active
    """
    page = d.subscribers(list_name, segment=segment, status=status, limit=limit or None)
    total = page.total
    rows = [row.to_dict() for row in page.rows]
    if as_json:
        print_json(rows)
        return
    table = Table(show_edge=False)
    for col in ("Id", "Email", "Name", "Status", "Categories", "Joined"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["email"],
            r["name"],
            r["status"],
            ", ".join(r["categories"]) or "all",
            r["joined_at"][:10],
        )
    console.print(table)
    more = f" (showing {len(rows)}; --limit 0 shows all)" if total > len(rows) else ""
    console.print(f"{total} subscriber{'s' if total != 1 else ''}{more}")


@subscribers_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@list_option
@click.option("--dry-run", is_flag=True, help="Check and report, change nothing.")
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Write the row-by-row report to this CSV file.",
)
@pass_digest
def subscribers_import(
    d: Digest, file: Path, list_name: str, dry_run: bool, report_path: Path | None
) -> None:
    """Import subscribers from a CSV file into a list, in one transaction.

    The header row names the columns: `email` (required), `name`, `categories`
    (several separated by ; or | inside the cell), `timezone` (IANA name); any
    other column becomes an attribute.  UTF-8 with or without BOM, comma or
    semicolon separated.  Empty cells change nothing.  Suppressed, unsubscribed,
    bounced and complained addresses are never subscribed again (only the reader
    can come back, by confirming); imported people are active at once (the import
    is the admin's statement of their consent).  A categories cell naming every
    section means all of them.  Re-importing the same file changes nothing.

    \b
    Example:
        digest subscribers import people.csv --list weekly --dry-run
        digest subscribers import people.csv --list weekly --report report.csv
    """
    progress = Progress(
        TextColumn("Importing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )
    task = progress.add_task("import", total=None)

    def advance(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)

    with progress:
        report = d.import_subscribers(
            file, list_name, dry_run=dry_run, actor=cli_actor(), progress=advance
        )
    if report_path is not None:
        report.write_csv(report_path)
    _print_report(report, report_path)


def _print_report(report: csv_io.ImportReport, report_path: Path | None) -> None:
    counts = report.counts()
    prefix = "Dry run, nothing changed; would have " if report.dry_run else ""
    console.print(
        f"{prefix}imported {counts['imported']}, updated {counts['updated']}, "
        f"unchanged {counts['unchanged']}, rejected {counts['rejected']} "
        f"(list {report.list_name})"
    )
    rejected = report.rejected
    if rejected:
        table = Table(title="Rejected rows", title_justify="left", show_edge=False)
        table.add_column("Line", justify="right")
        table.add_column("Email")
        table.add_column("Reason")
        for row in rejected[:SHOW_REJECTED]:
            table.add_row(str(row.line), row.email, row.reason)
        console.print(table)
        if len(rejected) > SHOW_REJECTED and report_path is None:
            console.print(f"… and {len(rejected) - SHOW_REJECTED} more; --report FILE lists all")
    if report_path is not None:
        console.print(f"Report written to {report_path}")


@subscribers_group.command("export")
@list_option
@click.option("--segment", default=None, help="Only this segment of the list.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Write to this file (default: standard output).",
)
@pass_digest
def subscribers_export(d: Digest, list_name: str, segment: str | None, out: Path | None) -> None:
    """Export a list's recipients (active, not suppressed) as CSV that imports back.

    Cells that a spreadsheet would run as a formula (starting with = + - @, tab or
    CR) get a leading ' which `import` removes again.

    \b
    Example:
        digest subscribers export --list weekly --segment health --out health.csv
    """
    written = d.export_subscribers(list_name, sys.stdout if out is None else out, segment=segment)
    if out is not None:
        click.echo(f"Exported {written} subscribers to {out}")


@subscribers_group.command("forget")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_digest
def subscribers_forget(d: Digest, email: str, yes: bool) -> None:
    """Erase everything about one person (right to erasure).

    Deletes their subscriber record, memberships and consent log, clears their address from
    delivery and event records, and keeps only a hash of the address on the
    suppression list so it is never imported again by accident.

    \b
    Example:
        digest subscribers forget ada@example.org --yes
    """
    if not yes:
        click.confirm(f"Erase everything held about {email}? This cannot be undone", abort=True)
    erased = d.forget(email, by=by_admin("erased on request"))
    what = "subscriber record" if erased.subscriber_id else "no subscriber record"
    click.echo(
        f"Erased {email}: {what}, {erased.memberships} memberships, "
        f"{erased.records_cleared} delivery/event records cleared; the address stays "
        "suppressed (hashed)"
    )


@subscribers_group.command("export-personal")
@click.argument("email")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Write the JSON to this file (default: standard output).",
)
@pass_digest
def subscribers_export_personal(d: Digest, email: str, out: Path | None) -> None:
    """Everything held about one person, as JSON (subject access request): their
    subscriber record, lists, consent and consent log, suppression, deliveries and
    events.

    \b
    Example:
        digest subscribers export-personal ada@example.org --out ada.json
    """
    data = d.export_personal(email)
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
    if out is None:
        click.echo(text)
    else:
        out.write_text(text + "\n", encoding="utf-8")
        click.echo(f"Wrote {out}", err=True)


COMMANDS = [subscribers_group]

__all__ = ["COMMANDS"]

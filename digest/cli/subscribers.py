"""`digest lists …`, `digest subscribers …`, `digest segments …`: thin commands over
the ``subscribers`` package (plus the pipeline's delivery records for erasure and
personal-data export, which only ``digest`` knows about)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.orm import Session

from digest import privacy
from digest.cli._common import App, console, err_console, json_option, pass_app, print_json
from subscribers import io as csv_io
from subscribers import lists as lists_lib
from subscribers import segments as segments_lib
from subscribers import service
from subscribers.errors import NotFound
from subscribers.models import Status

STATUSES = [s.value for s in Status]
SHOW_REJECTED = 50


def _split(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


def _newsletters_of(app: App, list_name: str) -> list[str]:
    return sorted(n for n, nl in app.config.newsletters.items() if nl.list_name == list_name)


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


def _date(value: Any) -> str:
    return f"{value:%Y-%m-%d}" if value else ""


# ---------------------------------------------------------------------------
# digest lists


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
    with app.session() as session:
        lists_lib.create_list(session, name, description=description, double_opt_in=double_opt_in)
    mode = "double opt-in" if double_opt_in else "single opt-in"
    click.echo(f"Created list {name} ({mode})")


@lists_group.command("list")
@json_option
@pass_app
def lists_list(app: App, as_json: bool) -> None:
    """List the mailing lists with their member counts.

    \b
    Example:
        digest lists list --json
    """
    with app.session() as session:
        summaries = lists_lib.all_lists(session)
        rows: list[dict[str, Any]] = [
            {
                "name": s.mailing_list.name,
                "description": s.mailing_list.description,
                "double_opt_in": s.mailing_list.double_opt_in,
                "active": s.count(Status.ACTIVE),
                "pending": s.count(Status.PENDING),
                "unsubscribed": s.count(Status.UNSUBSCRIBED),
                "total": s.total,
            }
            for s in summaries
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
@pass_app
def lists_show(app: App, name: str, as_json: bool) -> None:
    """Show one list: counts, segments, and the newsletters that mail it.

    \b
    Example:
        digest lists show weekly
    """
    with app.session() as session:
        summary = lists_lib.summary(session, name)
        segs = segments_lib.list_segments(session, name)
        data: dict[str, Any] = {
            "name": name,
            "description": summary.mailing_list.description,
            "double_opt_in": summary.mailing_list.double_opt_in,
            "created_at": summary.mailing_list.created_at.isoformat(),
            "members": {s.value: summary.count(s) for s in Status if summary.count(s)},
            "recipients": service.count(session, service.recipients(session, name)),
            "segments": [s.name for s in segs],
            "newsletters": _newsletters_of(app, name),
            "categories": app.config.choosable_categories([name]),
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
    with app.session() as session:
        summary = lists_lib.summary(session, name)
        if not yes:
            click.confirm(f"Delete list {name!r} and its {summary.total} memberships?", abort=True)
        removed = lists_lib.delete_list(session, name)
    click.echo(f"Deleted list {name} ({removed} memberships removed)")


# ---------------------------------------------------------------------------
# digest subscribers


@click.group("subscribers")
def subscribers_group() -> None:
    """Subscribers: add, change, unsubscribe, list, import and export them; erase or
    export one person's data.

    \b
    Example:
        digest subscribers add ada@example.org --list weekly --name "Ada"
        digest subscribers import people.csv --list weekly --dry-run
    """


list_option = click.option("--list", "list_name", required=True, metavar="LIST", help="The list.")


@subscribers_group.command("add")
@click.argument("email")
@list_option
@click.option("--name", default=None, help="Their name.")
@click.option("--categories", default=None, help="Chosen categories, comma-separated (none = all).")
@click.option("--attr", "attrs", multiple=True, metavar="KEY=VALUE", help="An attribute; repeat.")
@click.option("--timezone", default=None, help="IANA timezone, e.g. Europe/London.")
@click.option(
    "--resubscribe", is_flag=True, help="They unsubscribed before and asked to come back."
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

    \b
    Example:
        digest subscribers add ada@example.org --list weekly --name "Ada Lovelace" \\
            --categories "Data and security" --attr sector=health --attr region=north
    """
    attributes = _parse_attrs(attrs)
    with app.session() as session:
        added = service.add_subscriber(
            session,
            email,
            list_name,
            name=name,
            categories=_split(categories),
            attributes=attributes,
            timezone=timezone,
            resubscribe=resubscribe,
            known_categories=app.config.choosable_categories([list_name]),
        )
        address = added.subscriber.email
        state = Status(added.membership.status).value
    if added.created:
        click.echo(f"Added {address} to {list_name} ({state})")
    elif added.joined:
        click.echo(f"Added existing subscriber {address} to {list_name} ({state})")
    elif added.changed:
        click.echo(f"Updated {address} (already on {list_name}, {state})")
    else:
        click.echo(f"{address} is already on {list_name} ({state}); nothing changed")


@subscribers_group.command("remove")
@click.argument("email")
@list_option
@pass_app
def subscribers_remove(app: App, email: str, list_name: str) -> None:
    """Take someone off a list entirely (no unsubscribe record: a later import may add
    them again).  To stop mail for good use `unsubscribe`; to erase them, `forget`.

    \b
    Example:
        digest subscribers remove ada@example.org --list weekly
    """
    with app.session() as session:
        service.remove_from_list(session, email, list_name)
    click.echo(f"Removed {email} from {list_name}")


@subscribers_group.command("unsubscribe")
@click.argument("email")
@click.option("--list", "list_name", default=None, metavar="LIST", help="Only this list.")
@click.option("--reason", default="admin", show_default=True, help="Why (logged).")
@pass_app
def subscribers_unsubscribe(app: App, email: str, list_name: str | None, reason: str) -> None:
    """Unsubscribe someone from one list, or from every list.

    \b
    Example:
        digest subscribers unsubscribe ada@example.org --list weekly
        digest subscribers unsubscribe ada@example.org
    """
    with app.session() as session:
        subscriber = service.get_subscriber(session, email)
        if list_name is not None:
            mlist = lists_lib.get_list(session, list_name)
            if service.membership(session, subscriber.id, mlist.id) is None:
                raise NotFound(f"{subscriber.email} is not on list {list_name!r}")
        service.unsubscribe(session, subscriber.id, list_name, reason=reason)
        address = subscriber.email
    click.echo(f"Unsubscribed {address} from {list_name or 'every list'}")


@subscribers_group.command("show")
@click.argument("email")
@json_option
@pass_app
def subscribers_show(app: App, email: str, as_json: bool) -> None:
    """Show one subscriber: status, lists, consent, attributes, suppression.

    \b
    Example:
        digest subscribers show ada@example.org
    """
    with app.session() as session:
        subscriber = service.get_subscriber(session, email)
        data = service.describe(session, subscriber)
        entry = service.suppression_for(session, email)
        data["suppressed"] = entry.reason.value if entry else None
    if as_json:
        print_json(data)
        return
    console.print(f"[bold]{data['email']}[/bold] {data['name']}  (id {data['id']})")
    console.print(
        f"Status: {data['status']}" + (f" · suppressed: {entry.reason.value}" if entry else "")
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


@subscribers_group.command("list")
@list_option
@click.option("--segment", default=None, help="Only this segment of the list.")
@click.option("--status", type=click.Choice(STATUSES), default=None, help="Only this status.")
@click.option("--limit", default=50, show_default=True, help="Show at most this many (0: all).")
@json_option
@pass_app
def subscribers_list(
    app: App,
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
    with app.session() as session:
        stmt = service.members(session, list_name, segment=segment, status=status)
        total = service.count(session, stmt)
        if limit:
            stmt = stmt.limit(limit)
        rows: list[dict[str, Any]] = [
            {
                "id": sub.id,
                "email": sub.email,
                "name": sub.name,
                "status": (
                    Status(mem.status) if sub.status is Status.ACTIVE else Status(sub.status)
                ).value,
                "categories": list(sub.categories or []),
                "attributes": dict(sub.attributes or {}),
                "joined_at": mem.created_at.isoformat(),
            }
            for sub, mem in session.execute(stmt)
        ]
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
@pass_app
def subscribers_import(
    app: App, file: Path, list_name: str, dry_run: bool, report_path: Path | None
) -> None:
    """Import subscribers from a CSV file into a list, in one transaction.

    The header row names the columns: `email` (required), `name`, `categories`
    (several separated by ; or | inside the cell), `timezone` (IANA name); any
    other column becomes an attribute.  UTF-8 with or without BOM, comma or
    semicolon separated.  Empty cells change nothing.  Suppressed, unsubscribed,
    bounced and complained addresses are never subscribed again; imported people
    are active at once (the import is the admin's statement of their consent).
    Re-importing the same file changes nothing.

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

    with progress, app.session() as session:
        report = csv_io.import_csv(
            session,
            file,
            list_name,
            known_categories=app.config.choosable_categories([list_name]),
            dry_run=dry_run,
            progress=advance,
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
@pass_app
def subscribers_export(app: App, list_name: str, segment: str | None, out: Path | None) -> None:
    """Export a list's recipients (active, not suppressed) as CSV that imports back.

    Cells that a spreadsheet would run as a formula (starting with = + - @, tab or
    CR) get a leading ' which `import` removes again.

    \b
    Example:
        digest subscribers export --list weekly --segment health --out health.csv
    """
    with app.session() as session:
        if out is None:
            written = csv_io.export_csv(session, sys.stdout, list_name, segment=segment)
        else:
            with out.open("w", encoding="utf-8", newline="") as fh:
                written = csv_io.export_csv(session, fh, list_name, segment=segment)
    if out is not None:
        click.echo(f"Exported {written} subscribers to {out}")


@subscribers_group.command("forget")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def subscribers_forget(app: App, email: str, yes: bool) -> None:
    """Erase everything about one person (right to erasure).

    Deletes their subscriber record and memberships, clears their address from
    delivery and event records, and keeps only a hash of the address on the
    suppression list so it is never imported again by accident.

    \b
    Example:
        digest subscribers forget ada@example.org --yes
    """
    if not yes:
        click.confirm(f"Erase everything held about {email}? This cannot be undone", abort=True)
    with app.session() as session:
        result, cleared = privacy.forget_person(session, email)
    what = "subscriber record" if result.subscriber_id else "no subscriber record"
    click.echo(
        f"Erased {email}: {what}, {result.memberships} memberships, "
        f"{cleared} delivery/event records cleared; the address stays suppressed (hashed)"
    )


@subscribers_group.command("export-personal")
@click.argument("email")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Write the JSON to this file (default: standard output).",
)
@pass_app
def subscribers_export_personal(app: App, email: str, out: Path | None) -> None:
    """Everything held about one person, as JSON (subject access request): their
    subscriber record, lists, consent, suppression, deliveries and events.

    \b
    Example:
        digest subscribers export-personal ada@example.org --out ada.json
    """
    with app.session() as session:
        data = privacy.personal_data(session, email)
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
    if out is None:
        click.echo(text)
    else:
        out.write_text(text + "\n", encoding="utf-8")
        click.echo(f"Wrote {out}", err=True)


# ---------------------------------------------------------------------------
# digest segments


@click.group("segments")
def segments_group() -> None:
    """Segments: saved rules that pick part of a list (by attributes, categories,
    status, signup date), optionally fixing the categories their readers get.

    Rules are JSON or TOML data, never code:

    \b
      {"all": [RULE, ...]}   {"any": [RULE, ...]}   {"not": RULE}
      {"attr": "sector", "equals": "health"}       exact text (numbers as text)
      {"attr": "region", "in": ["north", "south"]}
      {"attr": "role", "contains": "cio"}          substring, any case
      {"attr": "sector", "exists": true}           set and not empty
      {"category": "Data and security"}            chose it, or chose none (= all)
      {"status": "active"}  or  {"status": ["pending", "active"]}
      {"signed_up": {"after": "2026-01-01", "before": "2026-06-30"}}   days inclusive, UTC

    \b
    Example:
        digest segments create health --list weekly --rule '{"attr": "sector", "equals": "health"}'
        digest segments show health --list weekly
    """


def _resolve_list(session: Session, name: str, list_name: str | None) -> str:
    """``--list``, or the one list that has a segment called ``name``."""
    if list_name is not None:
        return list_name
    owners = segments_lib.find_segment_lists(session, name)
    if len(owners) == 1:
        return owners[0]
    if not owners:
        raise NotFound(f"no segment called {name!r} on any list; see `digest segments list`")
    raise click.UsageError(
        f"segment {name!r} exists on lists {', '.join(owners)}; say which with --list"
    )


@segments_group.command("create")
@click.argument("name")
@list_option
@click.option("--rule", "rule_text", default=None, help="The rule as JSON.")
@click.option(
    "--file",
    "rule_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Read the rule from a .json or .toml file.",
)
@click.option(
    "--categories",
    default=None,
    help="Categories every reader in the segment gets, comma-separated (default: their own).",
)
@pass_app
def segments_create(
    app: App,
    name: str,
    list_name: str,
    rule_text: str | None,
    rule_file: Path | None,
    categories: str | None,
) -> None:
    """Save a segment of a list from a rule (--rule JSON, or --file rule.json|rule.toml).

    \b
    Example:
        digest segments create north-health --list weekly --rule \\
            '{"all": [{"attr": "sector", "equals": "health"},
                      {"attr": "region", "in": ["north", "north-west"]}]}'
        digest segments create security --list weekly --file security.toml \\
            --categories "Data and security"
    """
    if (rule_text is None) == (rule_file is None):
        raise click.UsageError("give the rule with either --rule '…' or --file FILE")
    rule = (
        segments_lib.parse_rule_text(rule_text)
        if rule_text is not None
        else segments_lib.load_rule_file(rule_file)  # type: ignore[arg-type]
    )
    with app.session() as session:
        segment = segments_lib.create_segment(
            session,
            list_name,
            name,
            rule,
            categories=_split(categories) or [],
            known_categories=app.config.choosable_categories([list_name]),
        )
        n = service.count(session, service.recipients(session, list_name, name))
        fixed = list(segment.categories)
    extra = f"; readers get {', '.join(fixed)}" if fixed else ""
    click.echo(f"Created segment {name} on {list_name}: {n} recipients now{extra}")


@segments_group.command("list")
@click.option("--list", "list_name", default=None, metavar="LIST", help="Only this list.")
@json_option
@pass_app
def segments_list(app: App, list_name: str | None, as_json: bool) -> None:
    """List segments with their rules.

    \b
    Example:
        digest segments list --list weekly
    """
    with app.session() as session:
        rows: list[dict[str, Any]] = [
            {
                "list": seg.mailing_list.name,
                "name": seg.name,
                "rule": seg.rule,
                "categories": list(seg.categories or []),
            }
            for seg in segments_lib.list_segments(session, list_name)
        ]
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("No segments yet; create one with `digest segments create`.")
        return
    table = Table(show_edge=False)
    for col in ("List", "Segment", "Rule", "Categories"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["list"],
            r["name"],
            json.dumps(r["rule"], ensure_ascii=False),
            ", ".join(r["categories"]) or "their own",
        )
    console.print(table)


@segments_group.command("show")
@click.argument("name")
@click.option("--list", "list_name", default=None, metavar="LIST", help="The segment's list.")
@json_option
@pass_app
def segments_show(app: App, name: str, list_name: str | None, as_json: bool) -> None:
    """Show a segment with its live count of recipients.

    \b
    Example:
        digest segments show health --list weekly
    """
    with app.session() as session:
        list_name = _resolve_list(session, name, list_name)
        seg = segments_lib.get_segment(session, list_name, name)
        data: dict[str, Any] = {
            "list": list_name,
            "name": seg.name,
            "rule": seg.rule,
            "categories": list(seg.categories or []),
            "recipients": service.count(session, service.recipients(session, list_name, name)),
            "members": service.count(session, service.members(session, list_name, segment=name)),
            "created_at": seg.created_at.isoformat(),
        }
    if as_json:
        print_json(data)
        return
    console.print(f"[bold]{name}[/bold] on list {list_name}")
    console.print(f"Rule: {json.dumps(data['rule'], ensure_ascii=False, indent=2)}")
    console.print(f"Categories: {', '.join(data['categories']) or 'each reader’s own choice'}")
    console.print(
        f"Recipients now: {data['recipients']} (members matching, any status: {data['members']})"
    )


@segments_group.command("delete")
@click.argument("name")
@click.option("--list", "list_name", default=None, metavar="LIST", help="The segment's list.")
@pass_app
def segments_delete(app: App, name: str, list_name: str | None) -> None:
    """Delete a segment (its subscribers are not touched).

    \b
    Example:
        digest segments delete health --list weekly
    """
    with app.session() as session:
        list_name = _resolve_list(session, name, list_name)
        segments_lib.delete_segment(session, list_name, name)
    click.echo(f"Deleted segment {name} from {list_name}")


COMMANDS = [lists_group, subscribers_group, segments_group]

__all__ = ["COMMANDS"]

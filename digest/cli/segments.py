"""`digest segments …`: thin commands over :mod:`subscribers.segments`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.table import Table
from sqlalchemy.orm import Session

from digest.cli._common import App, console, json_option, pass_app, print_json
from digest.cli._people import list_option, split
from subscribers import segments as segments_lib
from subscribers import service
from subscribers.errors import NotFound


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
    with app.transaction() as session:
        segment = segments_lib.create_segment(
            session,
            list_name,
            name,
            rule,
            categories=split(categories) or [],
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
    with app.transaction() as session:
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
    with app.transaction() as session:
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
    with app.transaction() as session:
        list_name = _resolve_list(session, name, list_name)
        segments_lib.delete_segment(session, list_name, name)
    click.echo(f"Deleted segment {name} from {list_name}")


COMMANDS = [segments_group]

__all__ = ["COMMANDS"]

"""`digest editions …`: list and show editions, and the editor's desk (thin commands
over :mod:`digest.desk`, which the admin's edition pages call too)."""

from __future__ import annotations

import sys
import threading
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.markup import escape
from rich.table import Table

from digest import desk
from digest.cli._common import (
    App,
    as_of_option,
    backend_option,
    choose_backend,
    console,
    err_console,
    json_option,
    parse_as_of,
    pass_app,
    pass_digest,
    print_json,
    send_options,
)
from digest.cli.send import print_result
from digest.errors import DigestError
from digest.sender import Sender
from digest.sendtest import editor_addresses
from digest.signals import graceful_stop

if TYPE_CHECKING:
    from digest.api import Digest


class BadInput(DigestError):
    """A file or option the command cannot use."""

    exit_code = 2


@click.group()
def editions() -> None:
    """Editions: list and show them, and the editor's desk: prepare a draft, edit it
    (intro, articles, order, subject), approve, send, pause, resume, cancel.

    EDITION is an id or NEWSLETTER/PERIOD; ARTICLE a URL or an id, as `show` lists
    them.  Every action is recorded (who, when, what) and shown by `show`.

    \b
    Example:
        digest editions prepare weekly
        digest editions note 12 --file intro.md
        digest editions approve 12
    """


@editions.command("list")
@click.option("--newsletter", help="Only this newsletter.")
@json_option
@pass_digest
def editions_list(d: Digest, newsletter: str | None, as_json: bool) -> None:
    """List editions, newest first, with delivery counts.

    \b
    Example:
        digest editions list --newsletter weekly
    """
    found = d.editions(newsletter)
    if as_json:
        print_json(
            [
                {
                    "id": e.id,
                    "newsletter": e.newsletter,
                    "period": e.period,
                    "status": e.status,
                    "counts": e.ledger,
                }
                for e in found
            ]
        )
        return
    if not found:
        console.print("No editions yet; `digest send NEWSLETTER` creates one.")
        return
    table = Table()
    for col in (
        "id",
        "newsletter",
        "period",
        "status",
        "sent",
        "failed",
        "skipped",
        "uncertain",
        "pending",
    ):
        table.add_column(col)
    for e in found:
        c = e.ledger
        table.add_row(
            str(e.id),
            e.newsletter,
            e.period,
            e.status,
            str(c["sent"]),
            str(c["failed"]),
            str(c["skipped"]),
            str(c["uncertain"]),
            str(c["pending"] + c["sending"]),
        )
    console.print(table)


@editions.command("show")
@click.argument("edition")
@json_option
@pass_digest
def editions_show(d: Digest, edition: str, as_json: bool) -> None:
    """Show one edition (by id or NEWSLETTER/PERIOD): counts, reasons, uncertain readers,
    and, for a draft, its articles, intro and the editors' action log.

    \b
    Example:
        digest editions show weekly/2026-W47
    """
    e = d.edition(edition)
    desk_view = desk.view(d.app, e.id)
    if as_json:
        print_json({**desk_view.to_dict(), **e.to_dict(), "status": desk_view.status})
        return
    console.print(f"[bold]Edition {e.id}[/bold] {e.newsletter} {e.period} · {e.status}")
    if e.subject:
        console.print(f"Subject: {escape(e.subject)}")
    table = Table(show_header=False, box=None)
    for key, value in e.counts.items():
        table.add_row(key, str(value))
    console.print(table)
    for title, reasons in (("Failed", e.failed_reasons), ("Skipped", e.skipped_reasons)):
        for reason, n in reasons.items():
            console.print(f"{title}: {n} × {escape(reason)}")
    if e.uncertain:
        console.print(
            f"[yellow]Uncertain ({e.counts['uncertain']}): may or may not have been sent[/yellow]"
        )
        for address in e.uncertain:
            console.print(f"  {address or '(erased)'}")
    print_desk(desk_view)


def print_desk(v: desk.EditionView) -> None:
    """A draft's (or approved edition's) contents and its action log."""
    if v.approved_at:
        console.print(
            f"Approved {v.approved_at:%Y-%m-%d %H:%M} UTC by {escape(v.approved_by or '?')}"
            + (f"; to go out at {v.send_at:%Y-%m-%d %H:%M} UTC" if v.send_at else "")
        )
    if v.held:
        console.print(f"[yellow]Held: {v.held}[/yellow]")
    if v.intro:
        console.print("[bold]Intro[/bold]")
        console.print(escape(v.intro))
    for name, lines in v.sections:
        console.print(f"[bold]{escape(name)}[/bold]")
        for a in lines:
            mark = " [green](top story)[/green]" if a.top else ""
            console.print(
                f"  {a.position}. {escape(a.title)}{mark}\n     {escape(a.url)}", soft_wrap=True
            )
    if v.excluded:
        console.print("[bold]Excluded[/bold]")
        for a in v.excluded:
            console.print(
                f"  - {escape(a.title)} ({escape(a.section)})\n     {escape(a.url)}",
                soft_wrap=True,
            )
    if v.offered:
        console.print(
            f"[yellow]{len(v.offered)} new article(s) since this draft was prepared; "
            f"add them with `digest editions add-new {v.id}`:[/yellow]"
        )
        for a in v.offered:
            console.print(f"  + {escape(a.title)}\n     {escape(a.url)}", soft_wrap=True)
    if v.log:
        console.print("[bold]Log[/bold]")
        for entry in v.log:
            console.print(
                f"  {entry.at:%Y-%m-%d %H:%M} {escape(entry.actor)}: {entry.action}"
                + (f" ({escape(entry.detail)})" if entry.detail else "")
            )


edition_argument = click.argument("edition")


@editions.command("prepare")
@click.argument("newsletter")
@as_of_option
@pass_app
def editions_prepare(app: App, newsletter: str, as_of: str | None) -> None:
    """Prepare the draft of the edition the next scheduled run sends (or the one before
    --as-of): its articles as they are now, to edit and approve.  Prints its id.

    \b
    Example:
        digest editions prepare weekly
        digest editions prepare weekly --as-of 2026-11-23
    """
    nl = app.config.newsletter(newsletter)
    when = parse_as_of(as_of, nl.zone) if as_of else None
    done = desk.prepare(app, nl.name, as_of=when, actor=desk.cli_actor())
    console.print(f"period: {done.choice}")
    if done.created:
        console.print(f"Draft edition {done.edition_id} prepared.")
    else:
        console.print(f"Edition {done.edition_id} exists already ({done.status}).")
    console.print(f"Next: digest editions show {done.edition_id}")


@editions.command("note")
@edition_argument
@click.option(
    "--file",
    "path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The intro in Markdown ('-' reads standard input; an empty file removes it).",
)
@pass_app
def editions_note(app: App, edition: str, path: Path) -> None:
    """Write the editor's intro (Markdown), shown above the first section in the HTML and
    the text email.

    \b
    Example:
        digest editions note 12 --file intro.md
    """
    if str(path) == "-":
        text = sys.stdin.read()
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise BadInput(f"{path}: not UTF-8 text; save it as UTF-8 and try again") from None
        except OSError as exc:
            raise BadInput(f"{path}: cannot read it ({exc.strerror or exc})") from None
    desk.note(app, edition, text, actor=desk.cli_actor())
    console.print("Intro saved." if text.strip() else "Intro removed.")


@editions.command("subject")
@edition_argument
@click.argument("text")
@pass_app
def editions_subject(app: App, edition: str, text: str) -> None:
    """Set the subject line ('' puts the template's back).

    \b
    Example:
        digest editions subject 12 "Budget week: what changed"
    """
    desk.subject(app, edition, text, actor=desk.cli_actor())
    console.print(f"Subject: {text}" if text.strip() else "Subject reset to the template's.")


@editions.command("exclude")
@edition_argument
@click.argument("article")
@pass_app
def editions_exclude(app: App, edition: str, article: str) -> None:
    """Leave an article out of a draft (`include` puts it back).

    \b
    Example:
        digest editions exclude 12 https://news.example.org/policy/3
    """
    title = desk.exclude(app, edition, article, actor=desk.cli_actor())
    console.print(f"Excluded: {escape(title)}")


@editions.command("include")
@edition_argument
@click.argument("article")
@pass_app
def editions_include(app: App, edition: str, article: str) -> None:
    """Put an excluded article back where it was.

    \b
    Example:
        digest editions include 12 https://news.example.org/policy/3
    """
    title = desk.include(app, edition, article, actor=desk.cli_actor())
    console.print(f"Included: {escape(title)}")


@editions.command("move")
@edition_argument
@click.argument("article")
@click.option("--to", "to", type=click.IntRange(1, 1000), help="Its position in its section.")
@click.option("--top", is_flag=True, help="Make it the top story (the first thing readers see).")
@pass_app
def editions_move(app: App, edition: str, article: str, to: int | None, top: bool) -> None:
    """Move an article within its section (--to N), or make it the top story (--top).

    \b
    Example:
        digest editions move 12 https://news.example.org/data/1 --to 1
        digest editions move 12 https://news.example.org/data/1 --top
    """
    if to is None and not top:
        raise click.UsageError("say where to: --to N (its position in its section) or --top")
    title = desk.move(app, edition, article, actor=desk.cli_actor(), to=to, top=top)
    where = " and ".join(
        ([f"to {to} in its section"] if to else []) + (["to the top story"] if top else [])
    )
    console.print(f"Moved {escape(title)} {where}.")


@editions.command("add-new")
@edition_argument
@pass_app
def editions_add_new(app: App, edition: str) -> None:
    """Add the articles that arrived since the draft was prepared (`show` lists them).

    \b
    Example:
        digest editions add-new 12
    """
    added = desk.add_new(app, edition, actor=desk.cli_actor())
    console.print(f"Added {added} new article(s)." if added else "No new articles to add.")


@editions.command("approve")
@edition_argument
@click.option(
    "--send-at",
    "send_at",
    help="Send at this time instead of at the next scheduled run: ISO 8601, in the "
    "newsletter's time zone unless it carries an offset (2026-11-23T08:00, or "
    "2026-11-23T08:00+00:00).",
)
@click.option(
    "--no-send",
    is_flag=True,
    help="Only approve, even when its scheduled run has passed (the scheduler sends it).",
)
@backend_option
@pass_app
def editions_approve(
    app: App, edition: str, send_at: str | None, no_send: bool, backend: str | None
) -> None:
    """Approve a draft: its contents are frozen and it goes out at the next scheduled run
    (or --send-at).  When its scheduled run was held waiting for this approval, it is
    sent at once.

    \b
    Example:
        digest editions approve 12
        digest editions approve 12 --send-at 2026-11-23T08:00
    """
    nl = desk.newsletter_of(app, edition) if send_at else None
    when = _when(send_at, nl.zone) if send_at and nl else None
    done = desk.approve(app, edition, actor=desk.cli_actor(), send_at=when)
    console.print(f"Edition {done.edition_id} approved.")
    if done.due and not no_send:
        console.print("Its scheduled time has passed: sending it now.")
        _send(app, str(done.edition_id), None, backend)
    elif when and nl:
        local = when.astimezone(nl.zone)
        console.print(
            f"It goes out at {local:%Y-%m-%d %H:%M} ({nl.timezone}; {when.astimezone(UTC):%H:%M} "
            "UTC) by a running `digest scheduler`."
        )
    else:
        console.print("It goes out at the newsletter's next scheduled run.")


def _when(value: str, zone: tzinfo) -> datetime:
    """``--send-at``: an ISO 8601 time, in ``zone`` (the newsletter's) without an offset."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise BadInput(
            f"--send-at {value!r} is not a time; write ISO 8601 like 2026-11-23T08:00 (in the "
            "newsletter's time zone) or 2026-11-23T08:00+00:00"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def _sender(app: App, backend: str | None, cancel: threading.Event) -> Sender:
    """A sender as `digest send` builds one: the backend's threads (SMTP's
    ``?connections=N``), its shared rate, and a stop after the message in hand."""
    choice = choose_backend(app, backend)
    options = send_options(choice, None, None, app.settings)
    return Sender(app, choice, options=options, cancel=cancel)


def _stopping(_signum: int) -> None:
    err_console.print("stopping after the message in hand…")


def _send(app: App, edition: str, segment: str | None, backend: str | None) -> None:
    cancel = threading.Event()
    sender = _sender(app, backend, cancel)
    with graceful_stop(cancel, _stopping):
        result = desk.send(app, edition, actor=desk.cli_actor(), segment=segment, sender=sender)
    print_result(result)
    if result.outcome.value in ("out_of_order", "held"):
        raise SystemExit(1)
    if result.outcome.value in ("paused", "stopped"):
        raise SystemExit(3)


@editions.command("send")
@edition_argument
@click.option("--segment", help="Send to this segment of the list only.")
@backend_option
@pass_app
def editions_send(app: App, edition: str, segment: str | None, backend: str | None) -> None:
    """Send an approved edition now (or resume one going out).  Editions go out in period
    order: an edition older than one already sent is refused.

    \b
    Example:
        digest editions send 12
    """
    _send(app, edition, segment, backend)


@editions.command("test")
@edition_argument
@click.option("--to", "to", required=True, help="Comma-separated addresses.")
@backend_option
@pass_app
def editions_test(app: App, edition: str, to: str, backend: str | None) -> None:
    """Send a marked [TEST] copy of the edition as it is now (a draft with its edits).

    \b
    Example:
        digest editions test 12 --to editor@example.org
    """
    addresses = editor_addresses([a.strip() for a in to.split(",") if a.strip()])
    copies = desk.test_copy(
        app, edition, addresses, actor=desk.cli_actor(), backend=choose_backend(app, backend)
    )
    for line in copies.lines():
        click.echo(line)


@editions.command("pause")
@edition_argument
@pass_app
def editions_pause(app: App, edition: str) -> None:
    """Pause an edition going out (after the batch in hand); `resume` goes on.

    \b
    Example:
        digest editions pause 12
    """
    desk.pause(app, edition, actor=desk.cli_actor())
    console.print("Paused.")


@editions.command("resume")
@edition_argument
@click.option("--no-send", is_flag=True, help="Only mark it going; the scheduler sends the rest.")
@backend_option
@pass_app
def editions_resume(app: App, edition: str, no_send: bool, backend: str | None) -> None:
    """Resume a paused edition and send what is left.

    \b
    Example:
        digest editions resume 12
    """
    cancel = threading.Event()
    sender = None if no_send else _sender(app, backend, cancel)
    with graceful_stop(cancel, _stopping):
        sent = desk.resume(app, edition, actor=desk.cli_actor(), sender=sender, deliver=not no_send)
    console.print(f"Resumed; {sent} sent now." if not no_send else "Resumed.")


@editions.command("cancel")
@edition_argument
@pass_app
def editions_cancel(app: App, edition: str) -> None:
    """Cancel an edition: what has not gone out never will.

    \b
    Example:
        digest editions cancel 12
    """
    skipped = desk.cancel(app, edition, actor=desk.cli_actor())
    console.print(f"Cancelled; {skipped} pending deliveries skipped.")


COMMANDS = [editions]

"""`digest ingest`: read feeds and article pages into the article store."""

from __future__ import annotations

from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from digest.cli._common import App, console, err_console, json_option, pass_app, print_json
from digest.ingest import IngestReport, SourceResult, plan_sources
from digest.ingest import ingest as run_ingest


@click.command()
@click.argument("sources", nargs=-1, metavar="[SOURCE]...")
@json_option
@pass_app
def ingest(app: App, sources: tuple[str, ...], as_json: bool) -> None:
    """Read feeds (RSS, Atom, JSON Feed) and article pages into the article store.

    With no SOURCE, reads every source listed in digest.toml. A SOURCE is a URL
    or a file path. Each source is stored on its own: one that fails gets one
    error line and the others still land. Exits 1 only when every source failed.

    \b
    Example:
        digest ingest
        digest ingest https://www.example.org/feed.xml ./saved-page.html --json
    """
    refs = list(sources) or None
    total = len(plan_sources(app.config, refs))
    folders = (app.config.path.parent.resolve(),)
    if as_json or total <= 1:
        report = run_ingest(app.sessions, app.config, app.settings, refs)
    else:
        with Progress(
            TextColumn("Ingesting"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            console=err_console,
            transient=True,
        ) as bar:
            task = bar.add_task("", total=total)

            def advance(result: SourceResult) -> None:
                bar.update(task, advance=1, description=_short(result.ref, folders))

            report = run_ingest(app.sessions, app.config, app.settings, refs, progress=advance)
    if as_json:
        print_json(report.to_dict())
    else:
        _print_report(report, folders)
    if not report.ok:
        raise click.exceptions.Exit(1)  # every source failed


def _short(ref: str, folders: tuple[Path, ...] = ()) -> str:
    """A file path relative to the working directory or the config's folder when inside one."""
    if ref.startswith(("http://", "https://")):
        return ref
    path = Path(ref)
    for folder in (Path.cwd(), *folders):
        if path.is_relative_to(folder):
            return str(path.relative_to(folder))
    return ref


def _print_report(report: IngestReport, folders: tuple[Path, ...]) -> None:
    if not report.results:
        console.print("No sources: add some to digest.toml or name them on the command line.")
        return
    table = Table(show_edge=False)
    table.add_column("Source", overflow="fold")
    table.add_column("Kind")
    for name in ("New", "Updated", "Unchanged", "Errors"):
        table.add_column(name, justify="right")
    for r in report.results:
        unchanged = f"{r.unchanged} (304)" if r.not_modified else str(r.unchanged)
        table.add_row(
            _short(r.ref, folders),
            r.kind,
            str(r.new),
            str(r.updated),
            unchanged,
            "1" if r.error else "0",
        )
    console.print(table)
    totals = report.totals
    click.echo(
        f"{totals['sources']} source{'s' if totals['sources'] != 1 else ''}: "
        f"{totals['new']} new, {totals['updated']} updated, {totals['unchanged']} unchanged, "
        f"{totals['errors']} failed"
    )
    for r in report.results:
        for warning in r.warnings:
            click.secho(f"warning: {warning}", err=True, fg="yellow")
    for error in report.errors:
        click.secho(f"error: {error}", err=True, fg="red")


COMMANDS = [ingest]

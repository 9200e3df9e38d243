"""`digest ingest`: read feeds and article pages into the article store."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from digest.cli._common import console, err_console, json_option, pass_digest, print_json
from digest.ingest import IngestReport, SourceResult, plan_sources

if TYPE_CHECKING:
    from digest.api import Digest


@click.command()
@click.argument("sources", nargs=-1, metavar="[SOURCE]...")
@click.option(
    "--as-article",
    is_flag=True,
    help="Store the HTML pages among the SOURCEs as articles even when they do not say "
    "they are one (no JSON-LD Article, no og:type=article).",
)
@json_option
@pass_digest
def ingest(d: Digest, sources: tuple[str, ...], as_article: bool, as_json: bool) -> None:
    """Read feeds (RSS, Atom, JSON Feed) and article pages into the article store.

    With no SOURCE, reads every source listed in digest.toml. A SOURCE is a URL
    or a file path. Each source is stored on its own: one that fails gets one
    error line and the others still land. Exits 1 only when every source failed.

    Every entry that is not stored as an article of its own is named with the
    reason: skipped (no usable link) or merged (the same article as another
    entry, or as another feed's copy). A page is stored only when it says it is
    an article (JSON-LD Article/NewsArticle/BlogPosting or og:type=article); a
    home or channel page is refused, with the feed it links to. To store such a
    page all the same, name it with --as-article, or give it kind = "page" in
    digest.toml.

    Articles belong to the newsletters whose sources list their source: a SOURCE
    that is in no newsletter's sources appears in no edition (add it to
    digest.toml to include it).

    \b
    Example:
        digest ingest
        digest ingest https://www.example.org/feed.xml ./saved-page.html --json
        digest ingest --as-article https://www.example.org/about/annual-report
    """
    refs = list(sources) or None
    if as_article and refs is None:
        raise click.UsageError(
            "--as-article applies to the sources you name: give the page's URL or file, "
            'or set kind = "page" for it in digest.toml'
        )
    config = d.app.config
    total = len(plan_sources(config, refs))
    folders = (config.path.parent.resolve(),)
    if as_json or total <= 1:
        report = d.ingest(refs, as_article=as_article)
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

            report = d.ingest(refs, progress=advance, as_article=as_article)
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
    # Merged and skipped columns only when some source has such entries: the source
    # names keep their room on an 80-column terminal in the everyday case.
    any_dropped = any(r.merged or r.skipped for r in report.results)
    names = ("New", "Updated", "Unchanged", *(("Merged", "Skipped") if any_dropped else ()))
    table = Table(show_edge=False)
    table.add_column("Source", overflow="fold", min_width=12)
    table.add_column("Kind")
    for name in names:
        table.add_column(name, justify="right")
    for r in report.results:
        if r.error:
            # The error line below says why; "refused": a page that is not an article.
            status = "[red]refused[/red]" if r.refused else "[red]failed[/red]"
            table.add_row(_short(r.ref, folders), status, *["–"] * len(names))
            continue
        unchanged = f"{r.unchanged} (304)" if r.not_modified else str(r.unchanged)
        counts = [str(r.new), str(r.updated), unchanged]
        if any_dropped:
            counts += [str(r.merged), str(r.skipped)]
        table.add_row(_short(r.ref, folders), r.kind, *counts)
    console.print(table)
    totals = report.totals
    click.echo(
        f"{totals['sources']} source{'s' if totals['sources'] != 1 else ''}: "
        f"{totals['new']} new, {totals['updated']} updated, {totals['unchanged']} unchanged, "
        f"{totals['merged']} merged, {totals['skipped']} skipped, {totals['errors']} failed"
    )
    for r in report.results:
        name = _short(r.ref, folders)
        for dropped in r.dropped:
            # Every entry that did not become an article of its own, with why.
            click.echo(f"{name}: {dropped.describe()}")
    for r in report.results:
        for warning in r.warnings:
            click.secho(f"warning: {warning}", err=True, fg="yellow")
    for r in report.results:
        if r.ok and not r.newsletters:
            click.secho(
                f"note: {_short(r.ref, folders)} is in no newsletter's sources, so its articles "
                "appear in no edition; add it to a newsletter's sources in digest.toml",
                err=True,
                fg="yellow",
            )
    for error in report.errors:
        click.secho(f"error: {error}", err=True, fg="red")


COMMANDS = [ingest]

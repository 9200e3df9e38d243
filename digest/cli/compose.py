"""`digest compose`: render an edition's variants to files for a look before sending."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.table import Table

from digest.cli._common import (
    as_of_option,
    console,
    err_console,
    newsletter_to_compose,
    pass_digest,
)
from digest.cli._period import preview_period
from digest.compose import HTML_WARN_BYTES

if TYPE_CHECKING:
    from digest.api import Digest


@click.command()
@click.argument("newsletter")
@as_of_option
@click.option("--segment", metavar="NAME", help="Only the variants this segment's readers get.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the files (default: ./out/NEWSLETTER-PERIOD/).",
)
@click.option("--keep-mjml", is_flag=True, help="Also write each variant's MJML source.")
@pass_digest
def compose(
    d: Digest,
    newsletter: str,
    as_of: str | None,
    segment: str | None,
    out_dir: Path | None,
    keep_mjml: bool,
) -> None:
    """Render an edition to HTML and text files: by default the one the next scheduled
    run will send (or the period before --as-of); it prints which and why.

    Writes the full edition ("all") and one variant per distinct set of
    sections the readers chose, as KEY.html and KEY.txt, with preview values
    in place of each reader's name and links. Warns when an HTML body is
    over 90 KB (Gmail clips near 102 KB), and when the newsletter's locale
    has no translation of the emails' words (they stay English).

    \b
    Example:
        digest compose weekly --as-of 2026-11-23
        digest compose weekly --segment councils --out /tmp/preview --keep-mjml
    """
    nl = newsletter_to_compose(d.app, newsletter)
    when = preview_period(nl, as_of)
    composed = d.compose(newsletter, period=when, segment=segment)
    collection = composed.collection
    if collection.is_empty:
        console.print(f"{nl.title} · {collection.period.key}: No new articles this period.")
        return
    target = out_dir or Path("out") / f"{nl.name}-{collection.period.key}"
    written = d.write_previews(composed, target, keep_mjml=keep_mjml)
    by_key = composed.readers
    table = Table(title=f"{nl.title} · {collection.period.key}", title_justify="left")
    table.add_column("Variant", no_wrap=True)
    table.add_column("Sections")
    table.add_column("Articles", justify="right")
    table.add_column("Readers", justify="right")
    table.add_column("HTML KB", justify="right")
    table.add_column("Text KB", justify="right")
    for item in written:
        v = item.variant
        big = v.html_bytes > HTML_WARN_BYTES
        table.add_row(
            v.key,
            "all" if v.key == "all" else ", ".join(v.sections),
            str(item.articles),
            str(by_key.get(v.key, 0)),
            f"[red]{v.html_bytes / 1024:.1f}[/red]" if big else f"{v.html_bytes / 1024:.1f}",
            f"{v.text_bytes / 1024:.1f}",
        )
    console.print(table)
    for item in written:
        if item.variant.html_bytes > HTML_WARN_BYTES:
            err_console.print(
                f"warning: {item.html_path} is {item.variant.html_bytes / 1024:.0f} KB of HTML; "
                "Gmail clips messages near 102 KB, so lower max_per_category or shorten the "
                "templates"
            )
    skipped = composed.skipped
    if skipped:
        console.print(f"{skipped} reader(s) chose only categories with no articles this period.")
    console.print(f"Wrote {len(written)} variant(s) to {target}/")


COMMANDS = [compose]

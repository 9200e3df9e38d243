"""`digest compose`: render an edition's variants to files for a look before sending."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from digest.audience import section_sets
from digest.cli._common import (
    App,
    as_of_option,
    console,
    err_console,
    newsletter_to_compose,
    pass_app,
)
from digest.cli._period import preview_period
from digest.collect import collect_period
from digest.compose import HTML_WARN_BYTES, Composer, variant_key, write_previews
from subscribers.errors import NotFound as SubscribersNotFound


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
@pass_app
def compose(
    app: App,
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
    nl = newsletter_to_compose(app, newsletter)
    when = preview_period(nl, as_of)
    with app.transaction() as session:
        collection = collect_period(session, nl, when.period)
        if collection.is_empty:
            console.print(f"{nl.title} · {collection.period.key}: No new articles this period.")
            return
        everything = tuple(s.name for s in collection.sections)
        try:
            readers = section_sets(session, nl, collection, segment)
        except SubscribersNotFound:
            if segment is not None:
                raise
            readers = {}  # no subscriber list yet: the full edition only
        composer = Composer(app.settings, nl)
        variants = composer.render_all(collection, [everything, *readers])
    target = out_dir or Path("out") / f"{nl.name}-{collection.period.key}"
    written = write_previews(
        app.settings, collection, variants.values(), target, keep_mjml=keep_mjml
    )

    by_key: dict[str, int] = {}
    for sections, count in readers.items():
        if sections:
            key = variant_key(sections, everything)
            by_key[key] = by_key.get(key, 0) + count
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
    skipped = readers.get((), 0)
    if skipped:
        console.print(f"{skipped} reader(s) chose only categories with no articles this period.")
    console.print(f"Wrote {len(written)} variant(s) to {target}/")


COMMANDS = [compose]

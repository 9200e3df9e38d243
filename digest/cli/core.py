"""`digest init`, `digest collect`, `digest pin`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
from rich.table import Table
from sqlalchemy import select

from digest import db
from digest.cli._common import (
    App,
    as_of_option,
    console,
    json_option,
    pass_app,
    pass_digest,
    print_json,
)
from digest.cli._period import preview_period
from digest.collect import newsletter_articles
from digest.errors import NotFound
from digest.models import Article

if TYPE_CHECKING:
    from digest.api import Digest


@click.command()
@pass_app
def init(app: App) -> None:
    """Create the database schema, or upgrade it to this version. Safe to run again.

    \b
    Example:
        DIGEST_DATABASE_URL=postgresql+psycopg://digest@db/digest digest init
    """
    engine = db.make_engine(app.settings.database_url)
    try:
        before, after = db.upgrade(engine)
    finally:
        engine.dispose()
    where = engine.url.render_as_string(hide_password=True)
    if before == after:
        click.echo(f"Schema already current ({after}) in {where}")
    elif before is None:
        click.echo(f"Created schema {after} in {where}")
    else:
        click.echo(f"Upgraded schema {before} → {after} in {where}")


@click.command()
@click.argument("newsletter")
@as_of_option
@json_option
@pass_digest
def collect(d: Digest, newsletter: str, as_of: str | None, as_json: bool) -> None:
    """Show the articles of the period before the send date, grouped by category.

    The period is the ISO week before the send date in the newsletter's
    timezone (or its configured window); without --as-of, the edition the next
    scheduled send will carry. Only articles from the newsletter's own sources.

    \b
    Example:
        digest collect weekly --as-of 2026-11-23
    """
    nl = d.newsletter(newsletter)
    when = preview_period(nl, as_of, as_json=as_json)  # prints the period and why
    result = d.collect(newsletter, period=when)
    if as_json:
        print_json(result.to_dict())
        return
    first, last = result.period.local_dates(nl)
    heading = f"{nl.title} · {result.period.key} ({first:%a %d %b} – {last:%a %d %b %Y})"
    if result.is_empty:
        console.print(f"{heading}\nNo new articles this period.")
        return
    console.print(f"[bold]{heading}[/bold] · {result.total} articles")
    # Titles stay readable on an 80-column terminal: long author lists are cut
    # (with "…") before the title column is squeezed.
    author_width = max(10, min(24, (console.width - 20) // 3))
    for section in result.sections:
        table = Table(title=section.name, title_justify="left", show_edge=False, expand=False)
        table.add_column("Published", no_wrap=True)
        table.add_column("Title", ratio=1, overflow="fold")
        table.add_column("Author", no_wrap=True, overflow="ellipsis", max_width=author_width)
        for art in section.articles:
            local = art.published_at.astimezone(nl.zone)
            pin = "📌 " if art.pinned else ""
            table.add_row(f"{local:%a %d %b %H:%M}", pin + art.title, art.author)
        console.print(table)


@click.command()
@click.argument("url")
@click.option("--off", is_flag=True, help="Unpin instead.")
@pass_app
def pin(app: App, url: str, off: bool) -> None:
    """Pin an article so it leads its section (or unpin it with --off).

    The article leads its section in every newsletter it belongs to: those
    whose sources it came from. An article from a source that no newsletter
    lists is in no edition, pinned or not (the command says so).

    \b
    Example:
        digest pin https://www.example.org/news/big-story
    """
    from digest.ingest.clean import canonical_url, url_variants

    key = canonical_url(url, keep_fragment=True)
    spellings = {url, key, canonical_url(url), *url_variants(key)}
    with app.transaction() as session:
        article = session.scalars(
            select(Article).where(Article.canonical_url.in_(spellings)).order_by(Article.id)
        ).first()
        if article is None:
            raise NotFound(f"no article with URL {url!r}; run `digest ingest` first")
        article.pinned = not off
        click.echo(f"{'Unpinned' if off else 'Pinned'}: {article.title}")
        names = [
            nl.name
            for nl in app.config.newsletters.values()
            if session.scalar(
                select(Article.id).where(
                    Article.id == article.id, Article.id.in_(newsletter_articles(nl))
                )
            )
        ]
        if names:
            click.echo(f"In: {', '.join(names)}")
        else:
            click.secho(
                "note: it came from no newsletter's sources, so no edition shows it; "
                "add its feed to a newsletter's sources in digest.toml",
                err=True,
                fg="yellow",
            )


COMMANDS = [init, collect, pin]

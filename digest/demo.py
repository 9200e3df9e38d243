"""`make demo`: the weekly job on the bundled sample, step by step, with the real commands.

Each step is the `digest` command a user would type, run in-process and shown
as ``$ digest …``.  The sample's articles are dated in the three ISO weeks
2026-W45..W47, so the demo pins the send date to Monday 2026-11-23 (the edition
for 2026-W47): it shows a full week whatever today's date is.  Running it again
is safe: nothing is ingested, imported or sent twice.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import click

from digest.cli import cli
from digest.config import SAMPLE_DIR

AS_OF = "2026-11-23"


def _run(*args: str) -> None:
    click.secho(f"\n$ digest {shlex.join(args)}", fg="cyan", bold=True)
    try:
        cli.main(args=list(args), prog_name="digest", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise


def _list_exists(name: str) -> bool:
    from digest.app import App
    from subscribers.lists import find_list

    app = App()
    try:
        with app.transaction() as session:
            return find_list(session, name) is not None
    finally:
        app.close()


def main() -> None:
    database = os.environ.get("DIGEST_DATABASE_URL", "sqlite:///digest.db")
    outbox = Path(os.environ.get("DIGEST_OUTBOX_DIR", "outbox"))
    previews = Path("demo/out") if outbox.parts[:1] == ("demo",) else Path("out")
    click.secho("digest demo: the bundled sample publication, edition 2026-W47", bold=True)
    _run("init")
    _run("ingest")
    _run("collect", "weekly", "--as-of", AS_OF)
    if not _list_exists("weekly"):
        _run("lists", "create", "weekly", "--description", "The weekly digest (sample readers)")
    _run("subscribers", "import", str(SAMPLE_DIR / "subscribers.csv"), "--list", "weekly")
    _run("compose", "weekly", "--as-of", AS_OF, "--out", str(previews / "weekly-2026-W47"))
    _run("send", "weekly", "--as-of", AS_OF, "--backend", "outbox")
    _run("editions", "show", "weekly/2026-W47")
    emails = sorted(outbox.rglob("*.eml"))
    click.secho("\nWhere to look", bold=True)
    click.echo(f"  previews (open in a browser): {(previews / 'weekly-2026-W47').resolve()}/")
    click.echo(f"  delivered messages (.eml):    {outbox.resolve()}/ ({len(emails)} files)")
    if emails:
        click.echo(f"  one of them:                  {emails[0].resolve()}")
    click.echo(f"  database:                     {database}")
    click.echo("Run `make demo` again: nothing is sent twice.")


if __name__ == "__main__":
    main()

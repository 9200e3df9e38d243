"""`digest inbound`: receive bounces, spam complaints and unsubscribe mails."""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

import click

from digest.cli._common import App, err_console, pass_app
from digest.errors import ConfigError
from digest.inbound import imap, server
from digest.inbound.process import handle
from digest.signals import graceful_stop

log = logging.getLogger("digest.inbound")

#: Exit code for a message that could not be processed (sysexits EX_TEMPFAIL: a pipe
#: transport in Postfix or Exim keeps the message and tries again).
EX_TEMPFAIL = 75


@click.command("inbound")
@click.option(
    "--lmtp",
    "lmtp",
    multiple=True,
    metavar="HOST:PORT",
    help="Listen for LMTP from the MTA (e.g. 127.0.0.1:8024); repeat for more addresses.",
)
@click.option(
    "--smtp",
    "smtp",
    multiple=True,
    metavar="HOST:PORT",
    help="Listen for SMTP, for relays that forward by SMTP (e.g. 127.0.0.1:8025).",
)
@click.option(
    "--imap",
    "use_imap",
    is_flag=True,
    help="Poll the mailbox of DIGEST_BOUNCE_IMAP_URL once (with --every, again and again); "
    "processed messages are moved to DIGEST_BOUNCE_IMAP_FOLDER, never deleted.",
)
@click.option(
    "--every",
    type=click.IntRange(10, 86_400),
    metavar="SECONDS",
    help="With --imap: poll every this many seconds until stopped.",
)
@click.option(
    "--file",
    "files",
    multiple=True,
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="Process a saved message (.eml), or '-' for standard input (for a pipe transport).",
)
@pass_app
def inbound(
    app: App,
    lmtp: tuple[str, ...],
    smtp: tuple[str, ...],
    use_imap: bool,
    every: int | None,
    files: tuple[Path, ...],
) -> None:
    """Receive bounces, spam complaints and unsubscribe mails, and act on them.

    Point the MTA's transport for DIGEST_BOUNCE_ADDRESS (bounces+*@…) and for
    the newsletters' unsubscribe_mailto addresses at the LMTP listener, or poll a
    mailbox with --imap. A hard bounce or a complaint suppresses the address at
    once; soft bounces do after DIGEST_SOFT_BOUNCE_LIMIT within
    DIGEST_SOFT_BOUNCE_DAYS days; an unsubscribe mail unsubscribes the reader
    from the list its token names. Anything else is logged and dropped.
    Listeners run until SIGTERM or Ctrl-C.

    \b
    Example:
        digest inbound --lmtp 127.0.0.1:8024
        digest inbound --imap --every 300
        digest inbound --file bounce.eml
    """
    if every and not use_imap:
        raise click.UsageError("--every goes with --imap")
    if not (lmtp or smtp or use_imap or files):
        raise click.UsageError(
            "say what to do: --lmtp HOST:PORT, --smtp HOST:PORT, --imap or --file"
        )
    logging.basicConfig(
        level=app.settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # aiosmtpd logs every connection and command at INFO: our own line per message says it
        logging.getLogger("mail.log").setLevel(logging.WARNING)
    if files:
        _files(app, files)
        if not (lmtp or smtp or use_imap):
            return
    imap_settings = None
    if use_imap:
        raw_url = app.settings.bounce_imap_url
        imap_settings = imap.parse_imap_url(raw_url.get_secret_value() if raw_url else None)
        imap.check_folder(app.settings.bounce_imap_folder)
    addresses_lmtp = [server.parse_listen(v, "--lmtp") for v in lmtp]
    addresses_smtp = [server.parse_listen(v, "--smtp") for v in smtp]
    if not app.settings.bounce_address:
        err_console.print(
            "inbound: DIGEST_BOUNCE_ADDRESS is unset, so mail goes out without VERP; "
            "bounces are matched by the address they name"
        )
    if imap_settings is not None and not (addresses_lmtp or addresses_smtp) and not every:
        _poll(app, imap_settings)
        return
    listeners = server.start_all(app, addresses_lmtp, addresses_smtp)
    for listener in listeners:
        err_console.print(
            f"inbound: {listener.protocol.upper()} on {listener.host}:{listener.port}"
        )
    stop = threading.Event()
    try:
        with graceful_stop(stop, lambda _s: err_console.print("inbound: stopping…")):
            while not stop.is_set():
                if imap_settings is not None:
                    try:
                        _poll(app, imap_settings)
                    except imap.ImapError as exc:
                        again = f"trying again in {every} s" if every else "not polling again"
                        err_console.print(f"inbound: {exc}; {again}")
                    if not every:
                        imap_settings = None
                stop.wait(every or 3600)
    finally:
        for listener in listeners:
            listener.stop()
    click.echo("inbound: stopped")


def _poll(app: App, settings: imap.ImapSettings) -> None:
    folder = app.settings.bounce_imap_folder
    summary = imap.poll(app, settings, folder)
    click.echo(summary.line(folder))


def _files(app: App, files: tuple[Path, ...]) -> None:
    failed = False
    for path in files:
        if str(path) == "-":
            raw = sys.stdin.buffer.read()
        else:
            try:
                raw = path.read_bytes()
            except OSError as exc:
                raise ConfigError(f"{path}: cannot read it ({exc.strerror})") from None
        for result in handle(app, raw, (), via="file"):
            click.echo(f"{path}: {result.action}: {result.summary}")
            failed = failed or not result.ok
    if failed:
        raise SystemExit(EX_TEMPFAIL)


COMMANDS = [inbound]

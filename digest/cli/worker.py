"""`digest worker`: deliver queued batches, on any number of machines."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import click

from digest.cli._common import (
    App,
    backend_option,
    choose_backend,
    concurrency_option,
    err_console,
    pass_app,
    rate_option,
    send_options,
)
from digest.signals import graceful_stop
from digest.worker import run_worker


@click.command()
@backend_option
@concurrency_option
@rate_option
@click.option(
    "--poll",
    type=click.FloatRange(min=0.1),
    default=2.0,
    show_default=True,
    help="Seconds between looks for new work.",
)
@click.option(
    "--lease",
    type=click.FloatRange(min=1),
    default=300.0,
    show_default=True,
    help="Seconds a claimed batch stays this worker's without a sign of life; after that "
    "another worker may take it over. Keep it well above the provider's timeout.",
)
@click.option("--once", is_flag=True, help="Stop when no batch is left instead of waiting.")
@pass_app
def worker(
    app: App,
    backend: str | None,
    concurrency: int | None,
    rate: float | None,
    poll: float,
    lease: float,
    once: bool,
) -> None:
    """Claim queued delivery batches and send them until stopped (SIGTERM or Ctrl-C).

    Run as many as you like, on any machines that share the (PostgreSQL)
    database; each batch goes to exactly one worker. Pair with
    `digest send NEWSLETTER --enqueue` or a scheduler that enqueues
    (`digest scheduler --enqueue`, or delivery = "workers" in digest.toml).
    Together they keep to the account's DIGEST_SMTP_RATE / DIGEST_SENDGRID_RATE;
    --rate paces this process alone. Each worker registers itself (`digest
    workers list`). SIGTERM drains it: the post in hand finishes and its batches
    are released at once. A batch held by a worker that died is taken over when
    its --lease runs out (at once when the dead worker ran on this machine);
    what it had in flight is reported uncertain.

    \b
    Example:
        digest send weekly --enqueue
        digest worker --backend sendgrid --concurrency 4
        digest worker --backend sendgrid --lease 120
    """
    logging.basicConfig(
        level=app.settings.log_level, format="%(asctime)s %(levelname)s %(message)s"
    )
    choice = choose_backend(app, backend)
    err_console.print(f"worker: backend {choice}")
    stop = threading.Event()

    def on_signal(_signum: int) -> None:
        err_console.print(
            "worker: draining: finishing the post in hand, then releasing its batches"
        )

    with graceful_stop(stop, on_signal):
        stats = run_worker(
            app,
            choice,
            options=send_options(
                choice, concurrency, rate, app.settings, lease=timedelta(seconds=lease)
            ),
            poll=poll,
            once=once,
            stop=stop,
        )
    click.echo(
        f"worker: sent {stats.sent}, failed {stats.failed}, uncertain {stats.uncertain}, "
        f"recovered {stats.recovered} from stopped senders, released {stats.released} "
        "batch(es) for other workers"
    )


COMMANDS = [worker]

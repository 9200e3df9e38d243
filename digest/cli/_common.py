"""Helpers shared by the command modules: option sets, time parsing, output."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import UTC, date, datetime, time, tzinfo
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.console import Console

from digest.app import App
from digest.config import NewsletterConfig, Settings
from digest.delivery.registry import BackendChoice, backend_class, names, resolve_backend

if TYPE_CHECKING:  # the send loop loads with the commands that send
    from digest.delivery.loop import SendOptions

F = TypeVar("F", bound=Callable[..., Any])

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def pass_app(f: F) -> F:
    return click.pass_obj(f)  # type: ignore[return-value]


def pass_digest(f: Callable[..., Any]) -> Callable[..., Any]:
    """Give the command the :class:`~digest.api.Digest` over the run's App (first argument)."""

    @functools.wraps(f)
    def command(app: App, *args: Any, **kwargs: Any) -> Any:
        from digest.api import Digest  # the facade loads with the command that uses it

        return f(Digest(app), *args, **kwargs)

    return click.pass_obj(command)


def parse_as_of(value: str | None, zone: tzinfo = UTC) -> datetime:
    """``--as-of``: a date or an ISO datetime, read in ``zone`` (the newsletter's
    timezone) when it carries no offset; default now."""
    if not value:
        return datetime.now(UTC)
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(0), tzinfo=zone)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a date; use YYYY-MM-DD or an ISO datetime like "
            "2026-11-23T08:00+00:00",
            param_hint="--as-of",
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


def as_of_option(f: F) -> F:
    return click.option(
        "--as-of",
        "as_of",
        metavar="DATE",
        help="Pretend it is this date or time (YYYY-MM-DD or ISO datetime) for a reproducible run.",
    )(f)


#: ``--backend`` for every command that delivers.
backend_option = click.option(
    "--backend",
    type=click.Choice(names()),
    help="Where to deliver (default: DIGEST_BACKEND; if unset, the provider whose settings "
    "are filled in, else 'outbox').",
)


def choose_backend(app: App, backend: str | None, *, sending: bool = True) -> BackendChoice:
    """The backend ``--backend`` (or, without it, the settings) selects, and why; for a
    real send (``sending``), one that emails readers needs safe links (see
    :func:`~digest.delivery.registry.resolve_backend`)."""
    return resolve_backend(app.settings, backend, requested_by="--backend", sending=sending)


concurrency_option = click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=None,
    help="Sending threads (default: 4 for sendgrid, for smtp the URL's ?connections=N, "
    "else 1; never more than ?connections allows).",
)
rate_option = click.option(
    "--rate",
    type=click.FloatRange(min=0.1),
    help="At most this many messages per second from this process (the account's "
    "DIGEST_SMTP_RATE / DIGEST_SENDGRID_RATE holds across every process as well).",
)


def send_options(
    backend: str | BackendChoice,
    concurrency: int | None,
    rate: float | None,
    settings: Settings | None = None,
    **more: Any,
) -> SendOptions:
    """The send loop's options from --concurrency and --rate (and ``more``); without
    --concurrency, as many threads as the provider's connection limit in ``settings``
    (SMTP's ``?connections=N``), else the backend's default."""
    from digest.delivery.loop import SendOptions

    name = backend.name if isinstance(backend, BackendChoice) else backend
    cls = backend_class(name)
    limit = cls.connection_limit(settings) if settings is not None else None
    threads = concurrency or limit or cls.concurrency
    return SendOptions(concurrency=threads, rate=rate, **more)


def newsletter_to_compose(app: App, name: str) -> NewsletterConfig:
    """Newsletter ``name`` for a command that composes it; the config's warnings about
    it (a locale with no interface translation) go to stderr, one line each."""
    from digest.compose import config_warnings  # loads the templates' machinery

    newsletter = app.config.newsletter(name)
    for message in config_warnings(app.config, newsletter):
        click.echo(f"warning: {message}", err=True)
    return newsletter


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(f)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))


__all__ = [
    "App",
    "as_of_option",
    "backend_option",
    "choose_backend",
    "concurrency_option",
    "console",
    "json_option",
    "newsletter_to_compose",
    "parse_as_of",
    "pass_app",
    "pass_digest",
    "rate_option",
    "send_options",
]

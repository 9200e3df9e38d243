"""`digest serve` (the web app) and `digest preview` (the editor's preview, locally)."""

from __future__ import annotations

import errno
import socket
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import click

from digest.cli._common import App, as_of_option, console, pass_app
from digest.cli._period import preview_period
from digest.errors import ConfigError

if TYPE_CHECKING:
    from digest.web.serving import ServeLimits

# uvicorn and the web app are imported inside the commands: other commands start faster.


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0 picks a free one), or a clear error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"{host}:{port} is already in use; pick another with --port (0 picks a free one)"
            ) from None
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def run(
    web: object, sock: socket.socket, log_level: str, limits: ServeLimits | None = None
) -> None:
    from digest.web.serving import serve

    serve(web, sock, log_level, limits)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option(
    "--header-timeout",
    type=click.FloatRange(0.1, 600),
    default=10.0,
    show_default=True,
    help="Seconds a request's line and headers may take to arrive; then the connection closes.",
)
@click.option(
    "--body-timeout",
    type=click.FloatRange(0.1, 600),
    default=15.0,
    show_default=True,
    help="Seconds a request body may pause between two pieces; then it is refused (408).",
)
@click.option(
    "--keep-alive",
    type=click.IntRange(1, 600),
    default=5,
    show_default=True,
    help="Seconds an idle connection is kept open between requests.",
)
@click.option("--reload", is_flag=True, help="Restart when the Python code changes (development).")
@pass_app
def serve(
    app: App,
    host: str,
    port: int,
    header_timeout: float,
    body_timeout: float,
    keep_alive: int,
    reload: bool,
) -> None:
    """Run the web app: subscribe pages, preview, admin console and webhooks.

    Public pages answer at DIGEST_BASE_URL (put a TLS proxy in front and set it to
    the https address); the admin console at /admin needs an account (digest users
    add) or, until the first admin account exists, DIGEST_ADMIN_PASSWORD.
    X-Forwarded-For is believed only from DIGEST_TRUSTED_PROXIES (none by default),
    so that rate limits see real client addresses.  Slow clients are cut off: see
    --header-timeout, --body-timeout and --keep-alive.

    \b
    Example:
        digest serve
        digest users add ada@example.org --role admin && digest serve --port 8080
        DIGEST_TRUSTED_PROXIES=127.0.0.1 digest serve --header-timeout 5
    """
    from digest.web import WebOptions, check_settings, create_app
    from digest.web.serving import ServeLimits, server_config

    limits = ServeLimits(header_timeout=header_timeout, keep_alive=keep_alive)

    check_settings(app.settings)  # before anything listens (also for --reload's child)
    if reload:
        import uvicorn
        from uvicorn.supervisors import ChangeReload

        console.print(f"Serving on http://{host}:{port}/ (restarting on code changes)")
        config = server_config(
            "digest.web:main",
            app.settings.log_level,
            limits,
            factory=True,
            host=host,
            port=port,
            reload=True,
        )
        sock = config.bind_socket()
        ChangeReload(config, target=uvicorn.Server(config).run, sockets=[sock]).run()
        return
    web = create_app(app, options=WebOptions(body_timeout=body_timeout))
    sock = bind(host, port)
    console.print(f"Serving on http://{host}:{sock.getsockname()[1]}/")
    run(web, sock, app.settings.log_level, limits)


@click.command()
@click.argument("newsletter", required=False)
@as_of_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8001,
    show_default=True,
    help="Port (0 picks a free one).",
)
@pass_app
def preview(app: App, newsletter: str | None, as_of: str | None, host: str, port: int) -> None:
    """Preview an edition in the browser; the page reloads when a template is saved.

    Without --as-of the page shows the edition the next scheduled run will send
    (on a Sunday, this week's articles for Monday's send), and says why.
    Serves the preview (no sign-in: keep it on 127.0.0.1) and prints its URL.
    The page shows the email at desktop and mobile widths and in dark mode, the
    plain-text version, the size against Gmail's clip and any problems found, and
    can send a test copy.  Stop it with Ctrl+C.

    \b
    Example:
        digest preview weekly --as-of 2026-11-23
        DIGEST_TEMPLATES=./my-templates digest preview --port 0
    """
    from digest.web import create_app

    config = app.config
    nl = config.newsletter(newsletter) if newsletter else next(iter(config.newsletters.values()))
    when = preview_period(nl, as_of)
    web = create_app(app, open_preview=True)
    sock = bind(host, port)
    where = sock.getsockname()
    shown = f"[{where[0]}]" if ":" in where[0] else where[0]
    # without --as-of the page picks the next scheduled send itself (and keeps doing so)
    params = {"newsletter": nl.name}
    if as_of:
        params["as_of"] = when.as_of.astimezone(nl.zone).date().isoformat()
    query = urlencode(params)
    click.echo(f"Preview of {nl.title}: http://{shown}:{where[1]}/preview?{query}")
    click.echo("Saving a template or digest.toml reloads the page. Stop with Ctrl+C.")
    run(web, sock, "warning")


COMMANDS = [serve, preview]

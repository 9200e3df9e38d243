"""The ``digest`` command line: thin commands over library functions.

Each module in this package exposes ``COMMANDS``, a list of click commands or
groups; they are all mounted on the root group below, the first time a command is
looked up (so ``digest --version`` imports none of them, nor the database layer).
A :class:`DigestError` becomes one ``error: …`` line on stderr and its exit code; anything else is a
bug and keeps its traceback.  ``subscribers`` errors are shown the same way.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from typing import Any

import click

from digest import __version__
from digest.errors import DigestError
from subscribers.errors import SubscribersError


class UserError(click.ClickException):
    """A DigestError, shown as one line."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click declares it on the class

    def show(self, file: Any = None) -> None:
        click.secho(f"error: {self.message}", err=True, fg="red")


class DigestGroup(click.Group):
    """The root group: shows DigestErrors as one line; mounts the command modules when a
    command is first looked up (listing them for ``--help``, or running one)."""

    _mounted = False

    @property  # type: ignore[override]
    def commands(self) -> dict[str, click.Command]:
        if not self._mounted:
            self._mounted = True
            _mount(self)
        return self._commands

    @commands.setter
    def commands(self, value: dict[str, click.Command]) -> None:
        self._commands = value

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (DigestError, SubscribersError) as exc:
            raise UserError(str(exc), exc.exit_code) from None


@click.group(cls=DigestGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="digest")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Weekly email digests: collect a site's articles, compose them, deliver them once.

    Settings come from the environment and ./.env (see .env.example);
    newsletters from ./digest.toml, or the bundled sample when it is absent.

    \b
    Example:
        digest init
        digest ingest
        digest collect weekly
    """
    if ctx.obj is None:
        from digest.app import App

        ctx.obj = App()
    ctx.call_on_close(ctx.obj.close)


def _mount(group: click.Group) -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for command in getattr(module, "COMMANDS", []):
            group.add_command(command)


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="digest")

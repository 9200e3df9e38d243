"""The ``digest`` command line: thin commands over library functions.

Each module in this package exposes ``COMMANDS``, a list of click commands or
groups; they are all mounted on the root group below, the first time a command is
looked up (so ``digest --version`` imports none of them, nor the database layer).
A :class:`DigestError` becomes one ``error: …`` line on stderr and its exit code; anything else is a
bug and keeps its traceback.  ``subscribers`` errors are shown the same way.
"""

from __future__ import annotations

import ast
import functools
import importlib
import pkgutil
import sys
from pathlib import Path
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
    """The root group: shows DigestErrors as one line, and loads command modules when
    they are needed: running a command imports its own module only (found with
    :func:`command_modules`); listing them all (``--help``) mounts every module."""

    _mounted = False

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if not self._mounted:
            module = command_modules().get(cmd_name)
            if module is not None and cmd_name not in self._commands:
                for command in getattr(importlib.import_module(module), "COMMANDS", []):
                    self._commands[command.name or ""] = command
            found = self._commands.get(cmd_name)
            if found is not None:
                return found
        return super().get_command(ctx, cmd_name)  # not indexed: mount everything

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


def _command_name(function: ast.FunctionDef, decorator: ast.expr) -> str | None:
    """The name ``@click.command(...)`` or ``@click.group(...)`` gives ``function`` (as
    click derives it: the first argument or ``name=``, else the function's name with
    dashes and without a ``_command``/``_group`` suffix); None for other decorators."""
    call = decorator if isinstance(decorator, ast.Call) else None
    target = call.func if call else decorator
    if not (
        isinstance(target, ast.Attribute)
        and target.attr in ("command", "group")
        and isinstance(target.value, ast.Name)
        and target.value.id == "click"
    ):
        return None
    given = (
        [*(call.args[:1] if call else []), *(k.value for k in call.keywords if k.arg == "name")]
        if call
        else []
    )
    if given and isinstance(given[0], ast.Constant) and isinstance(given[0].value, str):
        return given[0].value
    name = function.name.lower().replace("_", "-")
    left, sep, suffix = name.rpartition("-")
    return left if sep and suffix in ("command", "cmd", "group", "grp") else name


@functools.cache
def command_modules() -> dict[str, str]:
    """Root command name → the module defining it, read from the modules' source (no
    import): each top-level ``@click.command``/``@click.group`` function a module lists
    in ``COMMANDS``.  A name missing here still works: the group then mounts them all."""
    found: dict[str, str] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        path = Path(__path__[0]) / f"{info.name}.py"
        if not path.is_file():
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        listed: set[str] = set()
        for node in tree.body:
            if (
                isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "COMMANDS" for t in node.targets)
                and isinstance(node.value, ast.List | ast.Tuple)
            ):
                listed = {e.id for e in node.value.elts if isinstance(e, ast.Name)}
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name in listed:
                for decorator in node.decorator_list:
                    name = _command_name(node, decorator)
                    if name is not None:
                        found[name] = f"{__name__}.{info.name}"
    return found


def _mount(group: click.Group) -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for command in getattr(module, "COMMANDS", []):
            group.add_command(command)


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="digest")

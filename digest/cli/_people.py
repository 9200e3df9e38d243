"""Helpers shared by `digest lists`, `digest subscribers` and `digest segments`."""

from __future__ import annotations

import getpass
from typing import Any

import click

from digest.cli._common import App
from subscribers.consent import By
from subscribers.models import ConsentSource

#: ``--list LIST`` (required) for commands that act on one list.
list_option = click.option("--list", "list_name", required=True, metavar="LIST", help="The list.")


def split(value: str | None) -> list[str] | None:
    """A comma-separated option as a list (None when the option is not given)."""
    if value is None:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


def newsletters_of(app: App, list_name: str) -> list[str]:
    """The newsletters (by name) that mail ``list_name``."""
    from digest.api import Digest

    return Digest(app).newsletters_of(list_name)


def cli_actor() -> str:
    """Who acts, in the consent log, for a change made on the command line."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name in the environment or the password file
        return "command line"
    return f"command line ({user})"


def by_admin(detail: str = "") -> By:
    """An admin on the command line, as the consent log records them."""
    return By(ConsentSource.ADMIN, cli_actor(), detail)


def date(value: Any) -> str:
    return f"{value:%Y-%m-%d}" if value else ""

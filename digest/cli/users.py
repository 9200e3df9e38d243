"""`digest users …`: the people who sign in to the web app (accounts and roles)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from digest import accounts
from digest.cli._common import App, console, json_option, pass_app, print_json
from digest.errors import DigestError


@click.group("users")
def users_group() -> None:
    """Accounts for the web app: each person signs in with their own email address and
    password (hashed with argon2id). Roles: editor (editions and the preview) and admin
    (everything, including lists, subscribers, suppressions and accounts).

    \b
    Example:
        digest users add ada@example.org --role admin
        digest users list
    """


def _password(password_file: Path | None, *, prompt: str = "Password") -> str:
    if password_file is not None:
        try:
            text = password_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DigestError(f"{password_file}: cannot read the password ({exc})") from None
        lines = text.splitlines()
        password = lines[0] if lines else ""
        if not password:
            raise DigestError(f"{password_file}: the first line (the password) is empty")
        return accounts.check_password(password)
    value = click.prompt(prompt, hide_input=True, confirmation_prompt=True, err=True)
    return accounts.check_password(str(value))


password_file_option = click.option(
    "--password-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Read the password from the first line of this file instead of asking twice.",
)


@users_group.command("add")
@click.argument("email")
@click.option(
    "--role",
    type=click.Choice(accounts.ROLES),
    required=True,
    help="editor: editions and the preview; admin: everything.",
)
@password_file_option
@pass_app
def users_add(app: App, email: str, role: str, password_file: Path | None) -> None:
    """Add an account: EMAIL signs in with the password asked for (twice), or the one
    in --password-file. The first admin account switches DIGEST_ADMIN_PASSWORD off.

    \b
    Example:
        digest users add ada@example.org --role admin
        digest users add grace@example.org --role editor --password-file pw.txt
    """
    key = accounts.normalise_email(email)
    accounts.check_role(role)
    password = _password(password_file)
    with app.transaction() as session:
        bootstrap_ends = role == accounts.ADMIN and not accounts.admin_exists(session)
        accounts.add(session, key, role, password)
    console.print(f"Added {key} ({role}).")
    if bootstrap_ends and app.settings.admin_password:
        console.print(
            "This is the first admin account: DIGEST_ADMIN_PASSWORD no longer signs in, "
            "and its sessions have ended."
        )


@users_group.command("list")
@json_option
@pass_app
def users_list(app: App, as_json: bool) -> None:
    """List the accounts: address, role, when added, when the password last changed,
    and how many browsers are signed in.

    \b
    Example:
        digest users list
        digest users list --json
    """
    with app.transaction() as session:
        rows = accounts.list_accounts(session)
    if as_json:
        print_json(
            [
                {
                    "email": r.email,
                    "role": r.role,
                    "created_at": r.created_at.isoformat(),
                    "password_changed_at": r.password_changed_at.isoformat(),
                    "signed_in": r.signed_in,
                }
                for r in rows
            ]
        )
        return
    if not rows:
        console.print("No accounts yet. Add one with `digest users add EMAIL --role admin`.")
        return
    table = Table(show_edge=False)
    for col in ("Email", "Role", "Added (UTC)", "Password changed (UTC)", "Signed in"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(
            r.email,
            r.role,
            f"{r.created_at:%Y-%m-%d}",
            f"{r.password_changed_at:%Y-%m-%d %H:%M}",
            str(r.signed_in),
        )
    console.print(table)


@users_group.command("remove")
@click.argument("email")
@pass_app
def users_remove(app: App, email: str) -> None:
    """Remove an account and sign out every browser it is signed in on.

    \b
    Example:
        digest users remove grace@example.org
    """
    with app.transaction() as session:
        accounts.remove(session, email)
        left = accounts.admin_exists(session)
    console.print(f"Removed {email.strip().lower()}.")
    if not left:
        console.print(
            "No admin account is left: DIGEST_ADMIN_PASSWORD (if set) signs in again as "
            "the bootstrap admin."
        )


@users_group.command("passwd")
@click.argument("email")
@password_file_option
@pass_app
def users_passwd(app: App, email: str, password_file: Path | None) -> None:
    """Set a new password for an account (asked twice, or from --password-file); every
    browser signed in to it is signed out.

    \b
    Example:
        digest users passwd ada@example.org
        digest users passwd ada@example.org --password-file pw.txt
    """
    with app.transaction() as session:
        accounts.existing(session, email)  # before asking for a password
    password = _password(password_file, prompt="New password")
    with app.transaction() as session:
        accounts.set_password(session, email, password)
    console.print(f"Password changed for {email.strip().lower()}; its sessions are signed out.")


COMMANDS = [users_group]

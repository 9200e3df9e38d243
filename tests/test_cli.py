"""The CLI as a whole: every command documented with an example; errors are one line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from digest.cli import cli


def _walk(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in sorted(group.commands.items()):
        path = (*prefix, name)
        yield path
        if isinstance(command, click.Group):
            yield from _walk(command, path)


COMMANDS = list(_walk(cli))


def test_there_are_commands() -> None:
    assert ("send",) in COMMANDS and ("subscribers", "import") in COMMANDS


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) for p in COMMANDS])
def test_every_command_has_help_with_an_example(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example:" in result.output, f"`digest {' '.join(path)} --help` has no Example block"
    assert f"digest {path[0]}" in result.output.split("Example:", 1)[1]


def test_unknown_newsletter_is_one_line_exit_2(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DIGEST_DATABASE_URL", f"sqlite:///{tmp_path / 'd.db'}")
    result = CliRunner().invoke(cli, ["collect", "nosuch"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "no newsletter called 'nosuch' (defined: weekly)" in lines[0]


def test_bad_config_is_one_line_exit_2(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "digest.toml").write_text("[newsletters.weekly]\ntitle = 1\n")
    result = CliRunner().invoke(cli, ["collect", "weekly"])
    assert result.exit_code == 2
    assert result.output.startswith("error: digest.toml: newsletters.weekly.")
    assert "Traceback" not in result.output


def test_unreachable_database_is_one_line(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DIGEST_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    result = CliRunner().invoke(cli, ["init"])
    assert result.exit_code == 1
    assert result.output.startswith("error: cannot open the database")
    assert "check DIGEST_DATABASE_URL" in result.output


def test_bad_database_url_is_one_line(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DIGEST_DATABASE_URL", "not a url")
    result = CliRunner().invoke(cli, ["init"])
    assert result.exit_code == 2
    assert "is not a database URL" in result.output


def test_init_is_idempotent(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DIGEST_DATABASE_URL", f"sqlite:///{tmp_path / 'sub' / 'd.db'}")
    first = CliRunner().invoke(cli, ["init"])
    assert first.exit_code == 0 and first.output.startswith("Created schema")
    again = CliRunner().invoke(cli, ["init"])
    assert again.exit_code == 0 and again.output.startswith("Schema already current")


def test_send_worker_and_scheduler_share_their_send_options() -> None:
    """One definition of --concurrency's default: the backend's own (threads overlap
    SendGrid's network waits; the file outbox and SMTP send one at a time)."""
    from datetime import timedelta

    from digest.cli._common import send_options

    assert send_options("sendgrid", None, None).concurrency == 4
    assert send_options("outbox", None, None).concurrency == 1
    assert send_options("smtp", None, 2.5).rate == 2.5
    options = send_options("sendgrid", 2, None, lease=timedelta(seconds=60))
    assert (options.concurrency, options.lease) == (2, timedelta(seconds=60))


def test_version_loads_no_command_and_no_database_layer() -> None:
    """``digest --version`` is cheap (issue 12 §5; its speed is for `make bench`)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from digest.cli import cli\n"
        "cli.main(['--version'], prog_name='digest', standalone_mode=False)\n"
        "heavy = ('sqlalchemy', 'fastapi', 'mjml', 'feedparser', 'jinja2', 'digest.cli.')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == ["digest, version 0.1.0", "[]"]


def test_each_command_is_found_in_its_own_module_without_importing_the_others() -> None:
    """Running a command imports only the module that defines it (its name is read from
    the modules' source); the index agrees with what mounting every module gives."""
    import subprocess
    import sys

    from digest.cli import command_modules

    assert command_modules() == {n: c.callback.__module__ for n, c in cli.commands.items()}  # type: ignore[union-attr]
    code = (
        "import sys\n"
        "from digest.cli import cli\n"
        "cli.main(['collect', '--help'], prog_name='digest', standalone_mode=False)\n"
        "print(sorted(m for m in sys.modules if m.startswith('digest.cli.') and '._' not in m))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == "['digest.cli.core']"

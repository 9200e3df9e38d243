"""Which period a command uses, and why: printed by every command that picks one.

The decision is :func:`digest.editions.choose_period`'s; this module turns the
command's options into its arguments and prints the result as one line,
``period: 2026-W47 (Mon 16 Nov – Sun 22 Nov): the week before …`` (to stderr when
the command prints JSON, so that stdout stays parseable).
"""

from __future__ import annotations

from digest.cli._common import console, err_console, parse_as_of
from digest.config import NewsletterConfig
from digest.editions import PeriodChoice, Purpose, choose_period


def say_period(choice: PeriodChoice, *, as_json: bool = False) -> None:
    """One line (wrapped to the terminal's width), on stderr with ``--json``."""
    (err_console if as_json else console).print(f"period: {choice}", markup=False)


def command_period(
    newsletter: NewsletterConfig,
    as_of: str | None,
    *,
    purpose: Purpose,
    period: str | None = None,
    as_json: bool = False,
) -> PeriodChoice:
    """The period for ``--as-of`` / ``--period`` (neither: the default for ``purpose``),
    printed with its reason."""
    when = parse_as_of(as_of, newsletter.zone) if as_of else None
    choice = choose_period(newsletter, as_of=when, period=period, purpose=purpose)
    say_period(choice, as_json=as_json)
    return choice


def preview_period(
    newsletter: NewsletterConfig, as_of: str | None, *, as_json: bool = False
) -> PeriodChoice:
    """What an editor's command (collect, compose, preview, send-test) looks at: the
    period before ``--as-of``, else the edition the next scheduled run will send;
    printed with its reason."""
    return command_period(newsletter, as_of, purpose=Purpose.PREVIEW, as_json=as_json)


__all__ = ["command_period", "preview_period", "say_period"]

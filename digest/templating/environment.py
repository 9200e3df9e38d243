"""The Jinja2 environment every email is rendered with, its filters, and error reports.

Safety rules baked into the environment, whatever a template does:

* autoescaping is on for ``*.mjml.j2`` and ``*.html.j2`` (and strings), off for
  ``*.txt.j2``; undefined names are errors (``StrictUndefined``);
* every value printed with ``{{ … }}`` that is not already ``Markup`` has any
  ``~~`` broken up (:mod:`.placeholders`);
* the ``link`` and ``safe_url`` filters let only absolute ``http(s)`` URLs through.

Filters: ``date`` and ``daterange`` (Babel, in the newsletter's locale and
timezone), ``summary`` (sentence-boundary trimming), ``link`` (http(s) only,
with the edition's UTM parameters from the context's ``utm``) and ``safe_url``
(http(s) only, no tracking).  Interface words: Jinja2's i18n extension, ``_()``,
``gettext()``, ``ngettext()`` and ``{% trans %}`` (trimmed), from the locale's
catalogue (:mod:`.i18n`).  Globals: ``locale`` and ``lang`` (``en-GB``).
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2

from digest.errors import TemplateError
from digest.templating.dates import format_date_range, format_day
from digest.templating.i18n import gettext_callables, html_lang
from digest.templating.loader import template_dirs
from digest.templating.placeholders import finalize
from digest.templating.text import trim_summary
from digest.templating.urls import safe_url, tracked_url


def create_environment(
    override: Path | None = None, *, locale: str = "en_GB", timezone: str = "UTC"
) -> jinja2.Environment:
    """A Jinja2 environment over ``override`` then the built-ins, for one locale.

    A template can reach the built-in version of a name it overrides with the
    ``builtin/`` prefix (``{% extends "builtin/digest.mjml.j2" %}``)."""
    dirs = template_dirs(override)
    builtin = jinja2.FileSystemLoader(str(dirs[-1]))
    loader = jinja2.ChoiceLoader(
        [
            *(jinja2.FileSystemLoader(str(d)) for d in dirs),
            jinja2.PrefixLoader({"builtin": builtin}),
        ]
    )
    env = jinja2.Environment(
        loader=loader,
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("mjml.j2", "html.j2", "mjml", "html"),
            disabled_extensions=("txt.j2", "txt"),
            default_for_string=True,
            default=True,
        ),
        undefined=jinja2.StrictUndefined,
        finalize=finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
        extensions=["jinja2.ext.i18n"],
    )
    zone = ZoneInfo(timezone)

    def date_filter(value: date | datetime, fmt: str = "medium") -> str:
        return format_day(value, fmt, locale, zone)

    def daterange_filter(first: date, last: date, long_months: bool = True) -> str:
        return format_date_range(first, last, locale, long_months=long_months)

    @jinja2.pass_context
    def link_filter(ctx: jinja2.runtime.Context, url: object) -> str | None:
        return tracked_url(url, ctx.get("utm") or {})

    env.filters.update(
        date=date_filter,
        daterange=daterange_filter,
        summary=trim_summary,
        link=link_filter,
        safe_url=safe_url,
    )
    # {% trans %} blocks are read as pybabel extracts them (babel.cfg: trimmed = true).
    env.policies["ext.i18n.trimmed"] = True
    gettext, ngettext = gettext_callables(locale)
    env.install_gettext_callables(  # type: ignore[attr-defined]  # added by the extension
        gettext, ngettext, newstyle=False
    )
    env.globals.update(locale=locale, lang=html_lang(locale))
    return env


def render(env: jinja2.Environment, name: str, context: Mapping[str, Any]) -> str:
    """Render template ``name``; any template problem becomes a TemplateError with the
    template's file and line."""
    try:
        return env.get_template(name).render(context)
    except jinja2.TemplateSyntaxError as exc:
        where = exc.filename or exc.name or name
        raise TemplateError(
            f"{where}, line {exc.lineno}: {exc.message}; fix the template syntax"
        ) from None
    except jinja2.TemplateNotFound as exc:
        searched = ", ".join(_searched(env)) or "nowhere"
        raise TemplateError(
            f"template {exc.name!r} not found (needed by {name!r}; searched {searched})"
        ) from None
    except (jinja2.TemplateError, ArithmeticError, LookupError, TypeError, ValueError) as exc:
        where = _template_frame(exc) or name
        raise TemplateError(f"{where}: {type(exc).__name__}: {exc}") from exc


def _searched(env: jinja2.Environment) -> list[str]:
    loader = env.loader
    if isinstance(loader, jinja2.ChoiceLoader):
        return [
            str(p)
            for sub in loader.loaders
            if isinstance(sub, jinja2.FileSystemLoader)
            for p in sub.searchpath
        ]
    return []


def _template_frame(exc: BaseException) -> str | None:
    """``path/to/template.j2, line N`` of the innermost template frame in the traceback."""
    found = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename.endswith(".j2") or "/templates/" in frame.filename:
            found = f"{frame.filename}, line {frame.lineno}"
    return found


__all__ = ["create_environment", "render"]

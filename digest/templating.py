"""The Jinja2 environment every email is rendered with, and its filters.

Templates are looked up in ``DIGEST_TEMPLATES`` (an override folder) first and
then in the built-ins, so an override folder only needs the files it changes.
A template can also reach the built-in version of a name it overrides with the
``builtin/`` prefix (``{% extends "builtin/digest.mjml.j2" %}``).

Safety rules baked into the environment, whatever a template does:

* autoescaping is on for ``*.mjml.j2`` and ``*.html.j2`` (and strings), off for
  ``*.txt.j2``; undefined names are errors (``StrictUndefined``);
* every value printed with ``{{ … }}`` that is not already ``Markup`` has any
  ``~~`` broken up, so text from an article can never spell a personalisation
  placeholder (see :mod:`digest.personalize`);
* :func:`safe_url` lets only absolute ``http(s)`` URLs through.

Filters: ``date`` and ``daterange`` (Babel, in the newsletter's locale and
timezone), ``summary`` (sentence-boundary trimming), ``link`` (http(s) only,
with the edition's UTM parameters from the context's ``utm``) and ``safe_url``
(http(s) only, no tracking).  Globals: ``_`` (a few interface strings in the
newsletter's language).
"""

from __future__ import annotations

import re
import textwrap
import traceback
from collections.abc import Mapping
from datetime import date, datetime, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import jinja2
import mjml
from babel import Locale
from babel.dates import format_date, format_skeleton, parse_pattern
from markupsafe import Markup

import digest
from digest.errors import ConfigError, TemplateError

TEXT_WIDTH = 78
SUMMARY_LIMIT = 240

# ---------------------------------------------------------------------------
# Where templates live


def builtin_templates_dir() -> Path:
    """The built-in templates: ``digest/_templates`` in a wheel, ``templates/`` in a checkout."""
    package = Path(digest.__file__).resolve().parent
    for candidate in (package / "_templates", package.parent / "templates"):
        if (candidate / "base.mjml.j2").is_file():
            return candidate
    raise TemplateError(
        f"built-in templates not found in {package / '_templates'} or "
        f"{package.parent / 'templates'}; reinstall digest"
    )


def template_dirs(override: Path | None) -> list[Path]:
    """The folders searched, in order: the override folder (if any), then the built-ins."""
    dirs = []
    if override is not None and str(override):
        if not override.is_dir():
            raise ConfigError(
                f"DIGEST_TEMPLATES: {override} is not a folder; create it, or unset "
                "DIGEST_TEMPLATES to use the built-in templates"
            )
        dirs.append(override)
    dirs.append(builtin_templates_dir())
    return dirs


# ---------------------------------------------------------------------------
# Neutralising placeholder look-alikes

_TILDES = re.compile(r"~(?=~)")


def neutralise(value: str) -> str:
    """Break every ``~~`` with a word joiner, so no placeholder can be spelled."""
    return _TILDES.sub("~\u2060", value)


def _finalize(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, Markup):
        return value
    if isinstance(value, str):
        return neutralise(value)
    return value


# ---------------------------------------------------------------------------
# URLs

_URL_SAFE = "!#$%&'()*+,/:;=?@[]"


def safe_url(url: object) -> str | None:
    """``url`` if it is an absolute http(s) URL (re-quoted), else None.

    Whitespace, quotes, angle brackets and non-ASCII characters are
    percent-encoded; ``~`` becomes ``%7E`` (equivalent per RFC 3986), so a URL
    can never carry a placeholder either.
    """
    if not isinstance(url, str):
        return None
    url = url.strip()
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in {"http", "https"} or not parts.hostname:
        return None
    return quote(url, safe=_URL_SAFE).replace("~", "%7E")


def add_params(url: str, params: Mapping[str, str]) -> str:
    """``url`` with ``params`` in its query string (replacing same-named ones)."""
    if not params:
        return url
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query.extend(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def utm_params(template: Mapping[str, str], *, newsletter: str, period: str) -> dict[str, str]:
    """The newsletter's ``utm`` table with ``{newsletter}`` and ``{period}`` filled in."""
    values = {"newsletter": newsletter, "period": period}
    out = {}
    for key, value in template.items():
        try:
            out[key] = value.format_map(values)
        except (KeyError, ValueError, IndexError) as exc:
            raise ConfigError(
                f"newsletters.{newsletter}.utm.{key}: cannot fill {value!r} ({exc}); "
                "only {newsletter} and {period} can be used"
            ) from None
    return out


def tracked_url(url: object, params: Mapping[str, str]) -> str | None:
    """A safe http(s) ``url`` carrying ``params``, or None when the URL is not http(s)."""
    checked = safe_url(url)
    if checked is None:
        return None
    return safe_url(add_params(checked, params))


# ---------------------------------------------------------------------------
# Text

_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*(?=\s+[\"'“‘(\[]?[A-Z0-9À-Þ])")
_SPACES = re.compile(r"\s+")


def trim_summary(text: object, limit: int = SUMMARY_LIMIT) -> str:
    """Plain ``text`` shortened at a sentence boundary near ``limit`` characters.

    Whitespace is collapsed.  Text up to ``limit`` (plus a tenth) is kept
    whole.  Otherwise it ends at the sentence end closest to ``limit``
    (between half of it and a sixth more); when no sentence ends there it is
    cut at the last word boundary before ``limit`` and ends with ``…``.  Never
    mid-word.
    """
    text = _SPACES.sub(" ", str(text or "")).strip()
    if len(text) <= limit + limit // 10:
        return text
    ends = [m.end() for m in _SENTENCE_END.finditer(text, 0, limit + limit // 6 + 1)]
    ends = [e for e in ends if limit // 2 <= e <= limit + limit // 6]
    if ends:
        return text[: min(ends, key=lambda e: abs(e - limit))].rstrip()
    cut = text.rfind(" ", 0, limit)
    if cut < limit // 2:  # one enormous word: still never cut inside it
        cut = text.find(" ", limit)
        if cut == -1:
            return text
    return text[:cut].rstrip(" ,;:–—-") + "…"


def wrap_text(text: str, width: int = TEXT_WIDTH) -> str:
    """Wrap every line longer than ``width`` at spaces, keeping its indent.

    Words are never split, so a URL longer than ``width`` stays whole on a
    line of its own.  A line starting with a list marker (``- ``, ``* ``,
    ``1. ``) continues under the text, not under the marker.
    """
    out: list[str] = []
    for line in text.splitlines():
        line = line.rstrip()
        if len(line) <= width:
            out.append(line)
            continue
        indent = re.match(r"\s*(?:[-*•]\s+|\d+[.)]\s+)?", line)
        lead = indent.group(0) if indent else ""
        out.extend(
            textwrap.wrap(
                line[len(lead) :],
                width=width,
                initial_indent=lead,
                subsequent_indent=" " * len(lead),
                break_long_words=False,
                break_on_hyphens=False,
            )
        )
    result = "\n".join(out)
    return result + "\n" if text.endswith("\n") else result


# ---------------------------------------------------------------------------
# Dates and interface strings

_NAMED_FORMATS = {"short", "medium", "long", "full"}
_LONG_MONTH = re.compile(r"(?<![ML])(MMM|LLL)(?![ML])")


def _local(value: date | datetime, zone: tzinfo) -> date | datetime:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(zone)
    return value


def format_day(value: date | datetime, fmt: str, locale: str, zone: tzinfo) -> str:
    """A date in ``locale``: ``fmt`` is short/medium/long/full or a CLDR skeleton (``MMMd``)."""
    day = _local(value, zone)
    if isinstance(day, datetime):
        day = day.date()
    if fmt in _NAMED_FORMATS:
        return format_date(day, fmt, locale=locale)
    return format_skeleton(fmt, day, locale=locale)


def format_date_range(first: date, last: date, locale: str, *, long_months: bool = True) -> str:
    """``16 – 22 November 2026`` (en_GB), ``16.–22. November 2026`` (de_DE): CLDR's
    interval pattern for day-month-year, with the month spelled out."""
    loc = Locale.parse(locale)
    if first == last:
        return format_date(first, "long" if long_months else "medium", locale=loc)
    pieces = loc.interval_formats.get("yMMMd")
    if not pieces:
        return f"{format_date(first, 'long', locale=loc)} – {format_date(last, 'long', locale=loc)}"
    if first.year != last.year:
        field = "y"
    elif first.month != last.month:
        field = "M"
    else:
        field = "d"
    patterns = list(pieces.get(field) or pieces["y"])
    if long_months:
        patterns = [_LONG_MONTH.sub(lambda m: m.group(0) + m.group(0)[0], p) for p in patterns]
    return "".join(
        parse_pattern(p).apply(day, loc) for p, day in zip(patterns, (first, last), strict=True)
    )


# A handful of interface strings for the built-in templates, by language.
MESSAGES: dict[str, dict[str, str]] = {
    "de": {
        "You receive this because you subscribed to %s.": (
            "Sie erhalten diese E-Mail, weil Sie %s abonniert haben."
        ),
        "Hi": "Hallo",
        "there": "zusammen",
        "Top story": "Top-Thema",
        "In this issue": "In dieser Ausgabe",
        "Read more": "Weiterlesen",
        "By": "Von",
        "View in your browser": "Im Browser ansehen",
        "Manage preferences": "Einstellungen verwalten",
        "Unsubscribe": "Abbestellen",
        "here is what happened this week.": "das war diese Woche wichtig.",
        "stories": "Beiträge",
        "Confirm my subscription": "Anmeldung bestätigen",
        "If the button does not work, copy this link into your browser:": (
            "Falls die Schaltfläche nicht funktioniert, kopieren Sie diesen Link in Ihren Browser:"
        ),
        "If you did not ask for this, ignore this email: you will not hear from us again.": (
            "Falls Sie das nicht angefordert haben, ignorieren Sie diese E-Mail: Sie hören "
            "dann nicht wieder von uns."
        ),
        "This was not me": "Das war ich nicht",
    },
    "fr": {
        "You receive this because you subscribed to %s.": (
            "Vous recevez cet e-mail car vous êtes abonné à %s."
        ),
        "Hi": "Bonjour",
        "there": "à tous",
        "Top story": "À la une",
        "In this issue": "Dans ce numéro",
        "Read more": "Lire la suite",
        "By": "Par",
        "View in your browser": "Voir dans le navigateur",
        "Manage preferences": "Gérer vos préférences",
        "Unsubscribe": "Se désabonner",
        "here is what happened this week.": "voici l’essentiel de la semaine.",
        "stories": "articles",
        "Confirm my subscription": "Confirmer mon abonnement",
        "If the button does not work, copy this link into your browser:": (
            "Si le bouton ne fonctionne pas, copiez ce lien dans votre navigateur :"
        ),
        "If you did not ask for this, ignore this email: you will not hear from us again.": (
            "Si vous n’avez rien demandé, ignorez cet e-mail : vous n’entendrez plus parler "
            "de nous."
        ),
        "This was not me": "Ce n’était pas moi",
    },
    "es": {
        "You receive this because you subscribed to %s.": (
            "Recibes este correo porque te suscribiste a %s."
        ),
        "Hi": "Hola",
        "there": "a todos",
        "Top story": "Noticia destacada",
        "In this issue": "En este número",
        "Read more": "Leer más",
        "By": "Por",
        "View in your browser": "Ver en el navegador",
        "Manage preferences": "Gestionar preferencias",
        "Unsubscribe": "Darse de baja",
        "here is what happened this week.": "esto es lo más destacado de la semana.",
        "stories": "artículos",
        "Confirm my subscription": "Confirmar mi suscripción",
        "If the button does not work, copy this link into your browser:": (
            "Si el botón no funciona, copia este enlace en tu navegador:"
        ),
        "If you did not ask for this, ignore this email: you will not hear from us again.": (
            "Si no lo has pedido, ignora este correo: no volverás a saber de nosotros."
        ),
        "This was not me": "No he sido yo",
    },
    "nl": {
        "You receive this because you subscribed to %s.": (
            "Je ontvangt deze e-mail omdat je je hebt aangemeld voor %s."
        ),
        "Hi": "Hallo",
        "there": "allemaal",
        "Top story": "Uitgelicht",
        "In this issue": "In dit nummer",
        "Read more": "Lees verder",
        "By": "Door",
        "View in your browser": "Bekijk in je browser",
        "Manage preferences": "Voorkeuren beheren",
        "Unsubscribe": "Afmelden",
        "here is what happened this week.": "dit gebeurde er deze week.",
        "stories": "artikelen",
        "Confirm my subscription": "Mijn aanmelding bevestigen",
        "If the button does not work, copy this link into your browser:": (
            "Werkt de knop niet? Kopieer deze link naar je browser:"
        ),
        "If you did not ask for this, ignore this email: you will not hear from us again.": (
            "Heb je hier niet om gevraagd? Negeer deze e-mail: je hoort dan niets meer van ons."
        ),
        "This was not me": "Dit was ik niet",
    },
}


def translate(message: str, locale: str) -> str:
    """``message`` in ``locale``'s language when the small built-in catalogue has it."""
    try:
        language = Locale.parse(locale).language
    except (ValueError, TypeError):
        return message
    return MESSAGES.get(language, {}).get(message, message)


def html_lang(locale: str) -> str:
    """``en_GB`` → ``en-GB`` for ``<html lang>``."""
    return str(Locale.parse(locale)).replace("_", "-")


# ---------------------------------------------------------------------------
# The environment


def create_environment(
    override: Path | None = None, *, locale: str = "en_GB", timezone: str = "UTC"
) -> jinja2.Environment:
    """A Jinja2 environment over ``override`` then the built-ins, for one locale."""
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
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
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

    def gettext(message: str, *args: object) -> str:
        text = translate(message, locale)
        return text % args if args else text

    env.globals.update(_=gettext, locale=locale)
    env.globals["lang"] = html_lang(locale)
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


def mjml_to_html(source: str, *, template: str) -> str:
    """MJML → HTML with MRML: no web fonts fetched, comments kept out."""
    try:
        return mjml.mjml2html(source, disable_comments=True, fonts={})
    except ValueError as exc:
        raise TemplateError(
            f"{template}: the rendered MJML is not valid ({exc}); check the template's "
            "mj-* tags are balanced and only use components MJML knows"
        ) from None


__all__ = [
    "MESSAGES",
    "TEXT_WIDTH",
    "add_params",
    "builtin_templates_dir",
    "create_environment",
    "format_date_range",
    "format_day",
    "html_lang",
    "mjml_to_html",
    "neutralise",
    "render",
    "safe_url",
    "template_dirs",
    "tracked_url",
    "translate",
    "trim_summary",
    "utm_params",
    "wrap_text",
]

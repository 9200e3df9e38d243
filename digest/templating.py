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

MJML becomes HTML in :func:`mjml_to_html`, with MRML (mjml-python, in Rust)
and a shortcut.  In MJML the content of the *ending tags* (``mj-text``,
``mj-button``, ``mj-table``) is raw HTML, to be passed through untouched, and
Node mjml (the reference) does just that; MRML parses and re-serialises it,
which is most of its time on a digest, whose articles all sit in ``mj-text``.
So those contents are lifted out, each replaced by a random marker, MRML
renders the small skeleton left, and the contents are spliced back verbatim
where their markers come out (trimmed, as Node mjml trims them).  The splice
is checked (every marker back exactly once, in order); when it cannot be
trusted, or MRML rejects the skeleton, the whole document goes through MRML
as before.  HTML comments in those contents stay, as in Node mjml; contents
holding an MJML tag are left to MRML.
"""

from __future__ import annotations

import functools
import re
import secrets
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
    if "~~" not in value:  # nearly always: skip the regular expression
        return value
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
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")


def safe_url(url: object) -> str | None:
    """``url`` if it is an absolute http(s) URL (re-quoted), else None.

    Whitespace, quotes, angle brackets and non-ASCII characters are
    percent-encoded; ``~`` becomes ``%7E`` (equivalent per RFC 3986), so a URL
    can never carry a placeholder either.
    """
    if not isinstance(url, str):
        return None
    url = url.strip()
    if _CONTROL_CHARACTER.search(url):
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
    if not parts.query:  # the usual case: every URL of an edition gets the same query
        return urlunsplit(parts._replace(query=_encoded(tuple(params.items()))))
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query.extend(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


@functools.lru_cache(maxsize=64)
def _encoded(params: tuple[tuple[str, str], ...]) -> str:
    return urlencode(params)


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


def trim_summary(text: object, limit: int = SUMMARY_LIMIT) -> str:
    """Plain ``text`` shortened at a sentence boundary near ``limit`` characters.

    Whitespace is collapsed.  Text up to ``limit`` (plus a tenth) is kept
    whole.  Otherwise it ends at the sentence end closest to ``limit``
    (between half of it and a sixth more); when no sentence ends there it is
    cut at the last word boundary before ``limit`` and ends with ``…``.  Never
    mid-word.
    """
    text = " ".join(str(text or "").split())  # whitespace runs → one space, ends stripped
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


_LIST_LEAD = re.compile(r"\s*(?:[-*•]\s+|\d+[.)]\s+)?")
#: Whitespace other than a single space: lines holding some go to ``textwrap``.
_ODD_SPACE = re.compile(r"[^\S ]|  ")


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
        indent = _LIST_LEAD.match(line)
        lead = indent.group(0) if indent else ""
        rest = line[len(lead) :]
        if _ODD_SPACE.search(rest):
            out.extend(
                textwrap.wrap(
                    rest,
                    width=width,
                    initial_indent=lead,
                    subsequent_indent=" " * len(lead),
                    break_long_words=False,
                    break_on_hyphens=False,
                )
            )
        else:
            out.extend(_wrap_words(rest, width - len(lead), lead))
    result = "\n".join(out)
    return result + "\n" if text.endswith("\n") else result


def _wrap_words(text: str, room: int, lead: str) -> list[str]:
    """What ``textwrap.wrap`` gives (words never broken, not even at hyphens) for
    ``text`` without leading, trailing or repeated whitespace, nor any but spaces:
    each line takes as many words as fit in ``room``, or one longer word."""
    lines = _line_pattern(max(room, 1)).findall(text)
    indent = " " * len(lead)
    return [lead + lines[0], *(indent + line for line in lines[1:])]


@functools.lru_cache(maxsize=32)
def _line_pattern(room: int) -> re.Pattern[str]:
    # The longest run of whole words that fits in `room`, else one (long) word.
    return re.compile(f"(.{{1,{room}}}|[^ ]+)(?: |\\Z)")


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
    return _format_local_day(day, fmt, locale)


@functools.lru_cache(maxsize=4096)
def _format_local_day(day: date, fmt: str, locale: str) -> str:
    # Cached: a digest prints the same few days dozens of times, and Babel takes
    # tens of microseconds for each.
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
    return _catalogue(locale).get(message, message)


@functools.lru_cache(maxsize=64)
def _catalogue(locale: str) -> Mapping[str, str]:
    """The built-in messages for ``locale``'s language (empty if none, or if ``locale``
    is not a locale)."""
    try:
        language = Locale.parse(locale).language
    except (ValueError, TypeError):
        return {}
    return MESSAGES.get(language, {})


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


# ---------------------------------------------------------------------------
# MJML → HTML

#: The name of an opening MJML *ending tag* (MJML's word for a component whose
#: content is raw HTML, not MJML) that we lift: group 1 is the name without ``mj-``.
_ENDING_NAME = re.compile(r"<mj-(text|button|table)(?![\w-])")
#: The whole opening tag, when its attributes hold a quote that may hide a ``>``.
_ENDING_OPEN = re.compile(
    r"""<mj-(text|button|table)(?![\w-])[^>"']*+(?:(?:"[^"]*+"|'[^']*+')[^>"']*+)*+>"""
)
_ENDING_CLOSE = {"text": "</mj-text>", "button": "</mj-button>", "table": "</mj-table>"}
#: ``<mj-`` or ``</mj-``: what ends an ending tag's content (normally its own
#: closing tag; any other MJML tag in there and MRML gets the tag whole).
_MJML_TAG = re.compile(r"</?mj-")
#: How many ``j`` of the content's own text to step over before handing the rest
#: of the search to :data:`_MJML_TAG` (see :func:`_lift_ending_tags`).
_J_STEPS = 8
_ASCII_SPACE = " \t\n\r\f"
_NOT_ASCII_SPACE = re.compile(r"[^ \t\n\r\f]")
#: Hex digits → capital letters other than D (so a marker, ``DGX`` + nonce +
#: ``W``, can overlap neither itself nor a neighbour: see :func:`mjml_to_html`)
#: and other than I, J, M (which ``str.find`` filters like tab, newline and CR:
#: HTML has few capitals, so a marker is quick to find).
_NONCE_LETTERS = str.maketrans("0123456789abcdef", "ABCEFHKLNPQRSTUV")
_MARKER_TRIES = 3


def _new_marker() -> str:
    """A fresh random marker: ``DGX``, 12 letters (48 random bits), ``W``."""
    return "DGX" + secrets.token_hex(6).translate(_NONCE_LETTERS) + "W"


def _lift_ending_tags(source: str) -> tuple[list[str], list[str]] | None:
    """The MJML around the contents of the ending tags in ``<mj-body>``, and those
    contents: ``[text, "0", text, "1", …, text]`` and ``[content 0, content 1, …]``.
    None when there is nothing to lift.

    A content runs from the end of the opening tag to the first closing tag of
    the same name, as MJML reads it, and is trimmed of ASCII whitespace at both
    ends (as Node mjml's ``getContent()`` does).  HTML comments in it stay, as
    Node mjml keeps them there even with ``keepComments: false`` (MRML would drop
    plain ones).  A tag keeps its content, for MRML to deal with, when that is
    blank, holds an MJML tag, or is not closed by its own closing tag.  Nothing
    before ``<mj-body>`` (the ``mj-head``, its ``mj-attributes``) is touched,
    and the search for the next opening tag starts after the last closing one:
    contents are never scanned for tags.

    Speed matters here (this runs for every variant), so the scans are mostly
    ``str.find`` for one character, which uses ``memchr``: the first MJML tag
    in a content is found through its ``j`` (rare in text, though ``.jpg`` has
    one); after :data:`_J_STEPS` other ``j`` a regular expression takes over.
    """
    head_end = source.find("</mj-head>")
    body = source.find("<mj-body", max(head_end, 0))
    body_end = source.rfind("</mj-body>")
    if body < 0 or body_end < body:
        return None
    next_name = _ENDING_NAME.search
    find = source.find
    rfind = source.rfind
    startswith = source.startswith
    comments = find("!", body, body_end) >= 0  # could the body hold a comment at all?
    pieces: list[str] = []
    contents: list[str] = []
    done = 0  # source[:done] is in `pieces` already
    match = next_name(source, body, body_end)
    while match is not None:
        # The opening tag ends at the first ">", unless a quote may hide it.
        name_end = match.end()
        start = find(">", name_end, body_end) + 1
        attributes = source[name_end:start]
        if "'" in attributes or attributes.count('"') % 2:
            whole = _ENDING_OPEN.match(source, match.start(), body_end)
            if whole is None:
                break  # an unterminated quote: MRML will judge
            start = whole.end()
        elif start == 0:
            break
        if source[start - 2] == "/":  # <mj-text … />: no content
            match = next_name(source, start, body_end)
            continue
        close = _ENDING_CLOSE[match[1]]
        # The content ends at the first <mj-… or </mj-… after the opening tag;
        # find its "j".  Normally it is the tag's own closing tag.
        j = find("j", start, body_end)
        steps = _J_STEPS
        while j >= 0 and not startswith(close, j - 3):
            if (
                source[j + 1] == "-"
                and source[j - 1] == "m"
                and (source[j - 2] == "<" or source[j - 3 : j - 1] == "</")
            ):
                break  # another MJML tag
            steps -= 1  # a "j" of the content's own text
            if not steps:
                tag = _MJML_TAG.search(source, j, body_end)
                j = -1 if tag is None else tag.end() - 2  # its j
                break
            j = find("j", j + 1, body_end)
        if j < 0:
            break  # unclosed: MRML will say so
        if startswith(close, j - 3):
            stop = j - 3
            # The closing tag may sit inside a tag's attributes or a comment
            # (<a title="</mj-text>">, <!-- </mj-text> -->): MJML parsers read past
            # those, so the content would be cut short; MRML reads it all instead.
            lt = rfind("<", start, stop)
            if lt >= 0 and source[lt + 1] != "/":  # (a closing tag holds no attributes)
                gt = find(">", lt, stop)
                if gt < 0:
                    return None
                last_tag = source[lt:gt]
                if last_tag.count('"') % 2 or last_tag.count("'") % 2:
                    return None
            if comments and rfind("<!--", start, stop) > rfind("-->", start, stop):
                return None
            first = start
            if source[first] in _ASCII_SPACE:
                text = _NOT_ASCII_SPACE.search(source, start, stop)
                first = stop if text is None else text.start()
            if first < stop:
                last = stop
                while source[last - 1] in _ASCII_SPACE:
                    last -= 1
                pieces.append(source[done:start])
                pieces.append(str(len(contents)))
                contents.append(source[first:last])
                done = stop
        else:  # an MJML tag, or a stray closing tag, inside: MRML's business
            stop = find(close, j, body_end)
            if stop < 0:
                break
        match = next_name(source, stop + len(close), body_end)
    if not contents:
        return None
    pieces.append(source[done:])
    return pieces, contents


def mrml_problem(source: str) -> str | None:
    """What MRML objects to in ``source`` when it reads all of it, the HTML inside
    the ending tags included (which :func:`mjml_to_html` passes through as
    written, as Node mjml does); None when MRML renders it.  For editors' checks
    (the preview's lint, ``digest compose``), not for every send."""
    try:
        _mrml(source)
    except ValueError as exc:
        return str(exc)
    return None


def _mrml(source: str) -> str:
    return mjml.mjml2html(source, disable_comments=True, fonts={})


def mjml_to_html(source: str, *, template: str) -> str:
    """MJML → HTML with MRML (mjml-python): no web fonts fetched, MJML comments left out.

    MJML's *ending tags* (``mj-text``, ``mj-button``, ``mj-table``) hold raw
    HTML, to be passed through: Node mjml does so, but MRML parses and
    re-serialises it, which is most of its time on a digest (and drops the
    whitespace between tags, and writes ``<img>`` as ``<img />``).  So their
    contents are lifted out (:func:`_lift_ending_tags`), each replaced by a
    marker, ``{marker}{n}{marker}``; MRML renders the small skeleton left, and
    the contents are put back, verbatim, where their markers came out.

    The marker is random and must not occur in the skeleton (else another is
    drawn): a marker's ``D`` is its first letter only, so no occurrence can
    straddle a marker's edge or overlap another, and the skeleton spells the
    marker exactly twice per content unless the source itself does.  The
    splice is only trusted if MRML's output holds each marker pair exactly
    once and in order; otherwise, or if MRML rejects the skeleton, the whole
    document goes through MRML as it is (with its error message, if any).
    """
    lifted = _lift_ending_tags(source)
    if lifted is not None:
        pieces, contents = lifted
        for _ in range(_MARKER_TRIES):
            marker = _new_marker()
            skeleton = marker.join(pieces)
            if skeleton.count(marker) == 2 * len(contents):
                spliced = _render_and_splice(skeleton, marker, pieces, contents)
                if spliced is not None:
                    return spliced
                break
    try:
        return _mrml(source)
    except ValueError as exc:
        raise TemplateError(
            f"{template}: the rendered MJML is not valid ({exc}); check the template's "
            "mj-* tags are balanced and only use components MJML knows"
        ) from None


def _render_and_splice(
    skeleton: str, marker: str, pieces: list[str], contents: list[str]
) -> str | None:
    """MRML's HTML for ``skeleton`` with each marker pair replaced by its content;
    None if MRML fails or the markers did not come back exactly once each, in
    order."""
    try:
        html = _mrml(skeleton)
    except Exception:
        return None
    # html.split(marker): text, "0", text, "1", …, text
    parts = html.split(marker)
    if len(parts) != len(pieces) or parts[1::2] != pieces[1::2]:
        return None
    parts[1::2] = contents
    return "".join(parts)


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
    "mrml_problem",
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

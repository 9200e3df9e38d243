"""Per-recipient fields, and filling them into a rendered variant.

A variant is rendered once with placeholders where the reader's first name
and links go; every delivery backend fills them with the functions here (a
plain string fill for SMTP and the outbox, :func:`substitutions` for
SendGrid).

Placeholders are spelled ``~~digest.html.NAME~~`` in HTML bodies and
``~~digest.text.NAME~~`` in plain text (and subjects).  Only URL-unreserved
characters, nothing Jinja2, MRML or an HTML parser changes, and valid inside
an ``href``.  The two spellings are distinct because SendGrid applies one
substitution map to every content part: the HTML one gets the HTML-escaped
value.  Article text can never spell one (the template environment breaks up
every ``~~`` in printed values, see :mod:`digest.templating`).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from datetime import date
from functools import lru_cache
from urllib.parse import quote, urlencode

from markupsafe import Markup, escape

from digest.config import Settings
from digest.errors import TemplateError
from digest.templating import neutralise, translate
from subscribers.tokens import make_token

#: Every field a rendered variant may ask for.
FIELDS = ("first_name", "unsubscribe_url", "preferences_url", "web_url")

_PLACEHOLDER = re.compile(r"~~digest\.(html|text)\.([a-z][a-z0-9_]*)~~")


def placeholder(name: str, *, html: bool) -> str:
    """The placeholder for field ``name`` in an HTML or a plain-text body."""
    return f"~~digest.{'html' if html else 'text'}.{name}~~"


def placeholders(*, html: bool) -> dict[str, Markup]:
    """``{field: placeholder}`` for templates (``recipient.unsubscribe_url`` …)."""
    return {name: Markup(placeholder(name, html=html)) for name in FIELDS}


def first_name(name: str, locale: str = "en_GB") -> str:
    """The first word of ``name`` (at most 40 characters), or the locale's fallback."""
    printable = name if name.isprintable() else "".join(c for c in name if c.isprintable())
    words = neutralise(printable).split()
    if words:
        return words[0][:40]
    return translate("there", locale)


def recipient_fields(
    settings: Settings,
    *,
    subscriber_id: int,
    name: str,
    newsletter: str,
    period: str,
    variant_key: str,
    list_name: str | None = None,
    locale: str = "en_GB",
    edition_id: int | None = None,
) -> dict[str, str]:
    """The values of every placeholder for one reader.

    The links carry signed tokens of ``subscriber_id``, never the address itself; the
    unsubscribe link names ``list_name``, the list the email came from, so it leaves
    only that list; with ``edition_id``, the unsubscribe and preferences links name the
    edition, so what the reader does through them counts on it.
    """
    return {
        "first_name": first_name(name, locale),
        **personal_links(settings, subscriber_id, list_name=list_name, edition_id=edition_id),
        "web_url": web_url(settings, newsletter, period, variant_key),
    }


def personal_links(
    settings: Settings,
    subscriber_id: int,
    purposes: tuple[str, ...] = ("unsubscribe", "preferences"),
    *,
    list_name: str | None = None,
    edition_id: int | None = None,
) -> dict[str, str]:
    """``{purpose}_url`` for each of ``purposes``: the reader's own signed links
    (``/u/…`` to unsubscribe, ``/p/…`` for preferences, ``/c/…`` to confirm).  With
    ``list_name``, the confirm and unsubscribe links name that list (join it, leave
    it); the preferences page covers every list either way.  With ``edition_id``, the
    unsubscribe and preferences links name the edition they came in."""
    secret = settings.secret_key.get_secret_value()
    base = settings.base_url.rstrip("/")
    return {
        f"{purpose}_url": f"{base}/{purpose[0]}/"
        + make_token(
            secret,
            subscriber_id,
            purpose,
            list_name=list_name if purpose in _LIST_SCOPED else None,
            edition_id=edition_id if purpose in _EDITION_SCOPED else None,
        )
        for purpose in purposes
    }


#: Links that act on the list the email came from.
_LIST_SCOPED = frozenset({"confirm", "unsubscribe"})
#: Links whose use counts on the edition that carried them.
_EDITION_SCOPED = frozenset({"unsubscribe", "preferences"})


def web_url(settings: Settings, newsletter: str, period: str, variant_key: str) -> str:
    """``{base_url}/e/{newsletter}/{period}/{variant_key}``: the edition on the web."""
    return _web_url(settings.base_url.rstrip("/"), newsletter, period, variant_key)


@lru_cache(maxsize=1024)
def _web_url(base: str, newsletter: str, period: str, variant_key: str) -> str:
    # the same for every reader of a variant: worked out once, not per reader
    parts = "/".join(quote(p, safe="") for p in (newsletter, period, variant_key))
    return f"{base}/e/{parts}"


def preview_page_url(settings: Settings, newsletter: str, as_of: date, variant_key: str) -> str:
    """``{base_url}/preview?…``: the editor's preview of one variant of the edition sent on
    ``as_of`` (the page ``digest serve`` shows signed-in editors, ``digest preview`` anyone)."""
    query = urlencode(
        {"newsletter": newsletter, "as_of": as_of.isoformat(), "variant": variant_key}
    )
    return f"{settings.base_url.rstrip('/')}/preview?{query}"


def preview_fields(
    settings: Settings, *, newsletter: str, period: str, variant_key: str
) -> dict[str, str]:
    """Stand-in values for previews: a reader called "Reader" and ``…/preview`` links."""
    base = settings.base_url.rstrip("/")
    return {
        "first_name": "Reader",
        "unsubscribe_url": f"{base}/u/preview",
        "preferences_url": f"{base}/p/preview",
        "web_url": web_url(settings, newsletter, period, variant_key),
    }


def personalize(body: str, fields: Mapping[str, str], *, html: bool) -> str:
    """``body`` with every placeholder filled from ``fields``.

    Values are HTML-escaped in HTML bodies.  Either spelling is filled (a
    template may mix them), in one pass, so a value is never scanned again.
    Raises TemplateError when the body asks for a field ``fields`` lacks.
    """
    if "~~digest." not in body:
        return body  # nothing to fill (most subjects): skip the scan
    missing = sorted({m.group(0) for m in _PLACEHOLDER.finditer(body)} - _fillable(fields))
    if missing:
        raise TemplateError(
            f"placeholder {missing[0]} has no value (fields given: {', '.join(sorted(fields))}); "
            "templates may only use recipient.first_name, unsubscribe_url, preferences_url "
            "and web_url"
        )

    def fill(match: re.Match[str]) -> str:
        value = fields[match.group(2)]
        return str(escape(value)) if html else value

    return _PLACEHOLDER.sub(fill, body)


def _fillable(fields: Mapping[str, str]) -> set[str]:
    return {placeholder(n, html=h) for n in fields for h in (True, False)}


def substitutions(fields: Mapping[str, str], only: Collection[str] | None = None) -> dict[str, str]:
    """``{placeholder: value}`` for both spellings, ready for SendGrid ``substitutions``:
    the HTML spelling maps to the escaped value, the text spelling to the raw one.
    With ``only``, just those fields (see :func:`fields_used`)."""
    out: dict[str, str] = {}
    for name, value in fields.items():
        if only is not None and name not in only:
            continue
        html, text = _SPELLINGS.get(name) or _spellings(name)
        out[html] = _escaped(value)
        out[text] = value
    return out


def _escaped(value: str) -> str:
    # most values (links, most names) have nothing to escape: skip building Markup
    return str(escape(value)) if _HTML_SPECIAL.search(value) else value


_HTML_SPECIAL = re.compile(r"[&<>\"']")


def fill_shared(body: str, fields: Mapping[str, str], *, html: bool) -> str:
    """``body`` with the placeholders of ``fields`` filled and every other left as is:
    for values every reader of a variant shares (``web_url``), filled once per variant."""
    if "~~digest." not in body:
        return body

    def fill(match: re.Match[str]) -> str:
        if match.group(1) != ("html" if html else "text") or match.group(2) not in fields:
            return match.group(0)
        value = fields[match.group(2)]
        return _escaped(value) if html else value

    return _PLACEHOLDER.sub(fill, body)


def fields_used(*bodies: str) -> frozenset[str]:
    """The names of the fields whose placeholders (either spelling) are in ``bodies``."""
    return frozenset(m.group(2) for body in bodies for m in _PLACEHOLDER.finditer(body))


def _spellings(name: str) -> tuple[str, str]:
    return placeholder(name, html=True), placeholder(name, html=False)


#: Both spellings of each field's placeholder, spelt once (substitutions are per reader).
_SPELLINGS = {name: _spellings(name) for name in FIELDS}


def unfilled(body: str) -> list[str]:
    """The placeholders still in ``body``, in order of first appearance (none once filled)."""
    return list(dict.fromkeys(m.group(0) for m in _PLACEHOLDER.finditer(body)))


__all__ = [
    "FIELDS",
    "fields_used",
    "fill_shared",
    "first_name",
    "personal_links",
    "personalize",
    "placeholder",
    "placeholders",
    "preview_fields",
    "preview_page_url",
    "recipient_fields",
    "substitutions",
    "unfilled",
    "web_url",
]

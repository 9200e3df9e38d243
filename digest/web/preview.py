"""The editor's preview: one variant of one period, rendered now, with its checks.

The edition of the period is used when it exists (its frozen contents), otherwise
the period's articles as they are in the database, exactly as ``digest compose``
would render them.  Templates are read afresh on every render, so a saved template
shows on the next one.

Variants on offer: everything; each set of sections readers actually get (when the
list exists), with their reader counts; the edition's stored variants; each
section on its own.

Dark mode: an iframe follows the *browser's* colour scheme, which the editor does
not want to flip back and forth.  :func:`force_dark` instead rewrites the email's
own ``@media (prefers-color-scheme: dark)`` rules to always apply (and its
``light`` ones to never), and sets ``color-scheme: dark``: the copy looks the way
Apple Mail and Outlook show the email to a reader in dark mode.  Gmail ignores
those rules (it may invert colours by itself), so the light copy is what Gmail shows.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from digest import audience
from digest.app import App
from digest.collect import Period, period_for
from digest.compose import Composer, article_count, variant_key
from digest.config import NewsletterConfig
from digest.editions import period_collection
from digest.errors import NotFound
from digest.personalize import personalize, preview_fields
from digest.web import lint
from subscribers.errors import SubscribersError

ALL = "all"


@dataclass(frozen=True)
class VariantChoice:
    key: str
    label: str
    sections: tuple[str, ...]
    #: Readers who get this variant (None when not known: no list, or not a reader set).
    readers: int | None = None


@dataclass(frozen=True)
class Preview:
    newsletter: NewsletterConfig
    period: Period
    as_of: date
    first_day: date
    last_day: date
    edition_id: int | None
    edition_status: str | None
    variant: VariantChoice
    choices: tuple[VariantChoice, ...]
    subject: str
    preheader: str
    #: The HTML and text as a reader sees them (preview values in the personal fields).
    html: str
    text: str
    articles: int
    findings: tuple[lint.Finding, ...] = field(default_factory=tuple)

    @property
    def html_bytes(self) -> int:
        return len(self.html.encode("utf-8"))

    @property
    def text_bytes(self) -> int:
        return len(self.text.encode("utf-8"))

    @property
    def clip_percent(self) -> float:
        """The HTML's size as a share of Gmail's clipping threshold."""
        return 100.0 * self.html_bytes / lint.GMAIL_CLIP_BYTES

    def to_dict(self) -> dict[str, Any]:
        return {
            "newsletter": self.newsletter.name,
            "period": self.period.key,
            "as_of": self.as_of.isoformat(),
            "first_day": self.first_day.isoformat(),
            "last_day": self.last_day.isoformat(),
            "edition_id": self.edition_id,
            "edition_status": self.edition_status,
            "variant": self.variant.key,
            "sections": list(self.variant.sections),
            "variants": [
                {"key": c.key, "label": c.label, "sections": list(c.sections), "readers": c.readers}
                for c in self.choices
            ],
            "subject": self.subject,
            "preheader": self.preheader,
            "articles": self.articles,
            "html_bytes": self.html_bytes,
            "text_bytes": self.text_bytes,
            "gmail_clip_bytes": lint.GMAIL_CLIP_BYTES,
            "findings": [{"level": f.level, "message": f.message} for f in self.findings],
        }


def build_preview(
    app: App, newsletter: NewsletterConfig, as_of: datetime, variant: str = ALL
) -> Preview:
    """Render ``variant`` of the period before ``as_of``; NotFound when the period has no
    articles or the variant is not one on offer."""
    period = period_for(newsletter, as_of)
    with app.transaction() as session:
        edition, collection = period_collection(session, newsletter, period)
        if collection.is_empty:
            raise NotFound(
                f"{newsletter.name} {period.key} has no articles; pick another date, or run "
                "`digest ingest` first"
            )
        names = [s.name for s in collection.sections]
        choices = _choices(session, newsletter, collection, names, edition)
        chosen = choices.get(variant)
        if chosen is None:
            raise NotFound(
                f"no variant {variant!r} for {newsletter.name} {period.key}; "
                f"choose one of {', '.join(choices)}"
            )
        rendered = Composer(app.settings, newsletter).render(collection, list(chosen.sections))
        articles = article_count(collection, chosen.sections)
        edition_id = edition.id if edition is not None else None
        edition_status = str(edition.status) if edition is not None else None
    fields = preview_fields(
        app.settings, newsletter=newsletter.name, period=period.key, variant_key=rendered.key
    )
    html = personalize(rendered.html, fields, html=True)
    text = personalize(rendered.text, fields, html=False)
    subject = personalize(rendered.subject, fields, html=False)
    findings = [
        *lint.check_headers(subject, rendered.preheader),
        *lint.check_locale(newsletter.locale),
        *lint.check_size(len(html.encode("utf-8"))),
        *lint.check_html(html),
        *lint.check_text(text),
        *lint.check_sections(newsletter.category_names, names),
    ]
    first, last = period.local_dates(newsletter)
    return Preview(
        newsletter=newsletter,
        period=period,
        as_of=as_of.astimezone(newsletter.zone).date(),
        first_day=first,
        last_day=last,
        edition_id=edition_id,
        edition_status=edition_status,
        variant=chosen,
        choices=tuple(choices.values()),
        subject=subject,
        preheader=rendered.preheader,
        html=html,
        text=text,
        articles=articles,
        findings=tuple(findings),
    )


def _choices(
    session: Any,
    newsletter: NewsletterConfig,
    collection: Any,
    names: list[str],
    edition: Any,
) -> dict[str, VariantChoice]:
    out: dict[str, VariantChoice] = {
        ALL: VariantChoice(ALL, "Everything (all sections)", tuple(names))
    }
    try:
        sets = audience.section_sets(session, newsletter, collection)
    except SubscribersError:  # no subscriber list yet
        sets = {}
    for sections, count in sorted(sets.items(), key=lambda item: -item[1]):
        if not sections:
            continue
        key = variant_key(sections, names)
        label = "Everything" if key == ALL else " + ".join(sections)
        before = out.get(key)
        readers = count + ((before.readers or 0) if before else 0)
        out[key] = VariantChoice(
            key,
            f"{label} ({readers} reader{'' if readers == 1 else 's'})",
            tuple(sections),
            readers,
        )
    if edition is not None:
        for stored in edition.variants:
            sections = tuple(s for s in names if s in set(stored.sections))
            if sections and stored.key not in out:
                out[stored.key] = VariantChoice(stored.key, " + ".join(sections), sections)
    for name in names:
        key = variant_key([name], names)
        out.setdefault(key, VariantChoice(key, f"Only {name}", (name,)))
    return out


# ---------------------------------------------------------------------------
# What the iframes show

_DARK = re.compile(r"\(\s*prefers-color-scheme\s*:\s*dark\s*\)", re.I)
_LIGHT = re.compile(r"\(\s*prefers-color-scheme\s*:\s*light\s*\)", re.I)
_HEAD = re.compile(r"<head[^>]*>", re.I)
_HEAD_END = re.compile(r"</head\s*>", re.I)


def force_dark(html: str) -> str:
    """The email with its dark-mode rules always on (see the module docs)."""
    html = _DARK.sub("(min-width: 0px)", html)
    html = _LIGHT.sub("(max-width: 0px)", html)
    extra = "<style>:root { color-scheme: dark; }</style>"
    match = _HEAD_END.search(html)
    if match:
        return html[: match.start()] + extra + html[match.start() :]
    return extra + html


def framed(html: str) -> str:
    """The email for an iframe: its links open in a new tab instead of inside the frame."""
    base = '<base target="_blank">'
    match = _HEAD.search(html)
    if match:
        return html[: match.end()] + base + html[match.end() :]
    return base + html


class PreviewCache:
    """Recent previews, so the page and its three frames cost one render.  Keyed by the
    request and the watched files' signature; entries live a few seconds (articles
    can change in the database without any file changing)."""

    def __init__(self, ttl: float = 5.0, size: int = 16) -> None:
        self.ttl = ttl
        self.size = size
        self._items: OrderedDict[tuple[str, ...], tuple[float, Preview]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, ...]) -> Preview | None:
        now = time.monotonic()
        with self._lock:
            item = self._items.get(key)
            if item is None or now - item[0] > self.ttl:
                self._items.pop(key, None)
                return None
            return item[1]

    def put(self, key: tuple[str, ...], preview: Preview) -> None:
        with self._lock:
            self._items[key] = (time.monotonic(), preview)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


__all__ = [
    "ALL",
    "Preview",
    "PreviewCache",
    "VariantChoice",
    "build_preview",
    "force_dark",
    "framed",
]

"""Composer: a collection of articles → rendered variants (subject, preheader, HTML, text).

A *variant* is the edition for one distinct set of sections.  Each is rendered
exactly once, with per-recipient fields left as placeholders
(:mod:`digest.personalize`), however many readers share it.

Rendering: ``digest.subject.txt.j2`` and ``digest.preheader.txt.j2`` first,
then ``digest.mjml.j2`` through Jinja2 and MJML to HTML, and ``digest.txt.j2``
to the plain-text twin, wrapped at 78 columns.  MJML is rendered by
:func:`digest.templating.mjml_to_html` (MRML, mjml-python, on the whole
document).  Templates
receive safe, ready-to-print data (see :class:`ArticleView`): URLs are http(s)
only and carry the edition's UTM parameters, summaries are trimmed.

Template context: ``newsletter`` (NewsletterConfig), ``edition``
(:class:`EditionView`), ``top`` (the top story or None), ``sections`` (the
variant's sections, the top story lifted out of its own), ``articles`` (every
article in the variant, top story first), ``recipient`` (placeholders:
first_name, unsubscribe_url, preferences_url, web_url), ``utm``, ``subject``
and ``preheader`` (in the body templates), ``lang`` and ``locale``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import jinja2

from digest.collect import Collection
from digest.config import DigestConfig, NewsletterConfig, Settings, category_key
from digest.models import Article
from digest.personalize import personalize, placeholders, preview_fields
from digest.templating import (
    add_params,
    create_environment,
    day_format,
    locale_warning,
    mjml_to_html,
    render,
    safe_url,
    trim_summary,
    utm_params,
    wrap_text,
)

#: Gmail clips HTML bodies near 102 KB; `digest compose` warns above this.
HTML_WARN_BYTES = 90 * 1024

SUBJECT_TEMPLATE = "digest.subject.txt.j2"
PREHEADER_TEMPLATE = "digest.preheader.txt.j2"
HTML_TEMPLATE = "digest.mjml.j2"
TEXT_TEMPLATE = "digest.txt.j2"


def variant_key(sections: Sequence[str], all_sections: Sequence[str]) -> str:
    """``all`` for the full edition, else ``s-`` and a 10-hex-digit hash of the sorted
    section names (only those present in ``all_sections``): stable across editions,
    safe in file names and URLs."""
    present = set(all_sections)
    chosen = sorted({s for s in sections if s in present})
    if set(chosen) == present:
        return "all"
    digest_ = hashlib.sha256("\x1f".join(chosen).encode("utf-8")).hexdigest()
    return f"s-{digest_[:10]}"


def sections_for(
    collection: Collection,
    reader_categories: Sequence[str],
    segment_categories: Sequence[str] = (),
) -> tuple[str, ...]:
    """The sections one reader gets, in the edition's order.

    The segment's fixed categories when it has any, else the reader's own
    choice; an empty choice means every section (``Other`` included).
    Categories are matched case- and ``&``-insensitively, through the
    newsletter's aliases.  May be empty: the caller skips that reader.
    """
    present = tuple(s.name for s in collection.sections)
    chosen = segment_categories or reader_categories
    if not chosen:
        return present
    nl = collection.newsletter
    wanted = {category_key(nl.normalise_category(c)) for c in chosen}
    return tuple(name for name in present if category_key(name) in wanted)


@dataclass(frozen=True)
class RenderedVariant:
    key: str
    sections: tuple[str, ...]
    subject: str
    preheader: str
    html: str
    text: str
    mjml: str

    @property
    def html_bytes(self) -> int:
        return len(self.html.encode("utf-8"))

    @property
    def text_bytes(self) -> int:
        return len(self.text.encode("utf-8"))


@dataclass(frozen=True)
class ArticleView:
    """An article as templates see it: every field safe to print."""

    id: int
    title: str
    #: http(s) URL with the edition's UTM parameters, or None (then no link is shown).
    url: str | None
    #: The URL as published (http(s) only, no tracking), or None.
    plain_url: str | None
    summary: str
    #: The full plain-text summary, for templates that trim differently (``|summary(400)``).
    summary_text: str
    author: str
    published: datetime
    date_estimated: bool
    #: http(s) image URL, or None.
    image_url: str | None
    pinned: bool
    section: str


@dataclass(frozen=True)
class SectionView:
    name: str
    articles: tuple[ArticleView, ...]
    #: The section's article count including a top story lifted out of it.
    total: int


@dataclass(frozen=True)
class EditionView:
    newsletter: str
    period: str
    first_day: date
    last_day: date
    #: The newsletter's window: ``week`` or ``Nd``; the intro's wording follows it.
    window: str
    #: Calendar days in the period (7 for a week).
    days: int
    #: CLDR skeleton for an article's day: ``MMMd``, or ``yMMMd`` when the period
    #: crosses a year boundary or is longer than a year.
    day_format: str
    variant: str
    #: Names of the sections in this variant, in order.
    sections: tuple[str, ...]
    #: Articles in this variant (top story included).
    total: int
    #: True when the variant is the full edition.
    complete: bool


class Composer:
    """Renders one newsletter's variants; ``renders`` counts the renders performed."""

    def __init__(self, settings: Settings, newsletter: NewsletterConfig) -> None:
        self.settings = settings
        self.newsletter = newsletter
        self.env: jinja2.Environment = create_environment(
            settings.templates, locale=newsletter.locale, timezone=newsletter.timezone
        )
        self.renders = 0

    # -- public -------------------------------------------------------------

    def render(
        self, collection: Collection, sections: Sequence[str] | None = None
    ) -> RenderedVariant:
        """Render the variant with ``sections`` (None: all of them) once."""
        present = [s.name for s in collection.sections]
        chosen = present if sections is None else [s for s in present if s in set(sections)]
        if not chosen:
            raise ValueError(
                "nothing to render: the collection is empty or none of "
                f"{list(sections or [])} is among its sections {present}"
            )
        key = variant_key(chosen, present)
        context = self._context(collection, tuple(chosen), key)
        subject = " ".join(render(self.env, SUBJECT_TEMPLATE, context).split())
        preheader = " ".join(render(self.env, PREHEADER_TEMPLATE, context).split())
        html_context = {
            **context,
            "subject": subject,
            "preheader": preheader,
            "recipient": placeholders(html=True),
        }
        source = render(self.env, HTML_TEMPLATE, html_context)
        html = mjml_to_html(source, template=HTML_TEMPLATE)
        text_context = {**html_context, "recipient": placeholders(html=False)}
        text = wrap_text(render(self.env, TEXT_TEMPLATE, text_context).strip() + "\n")
        self.renders += 1
        return RenderedVariant(
            key=key,
            sections=tuple(chosen),
            subject=subject,
            preheader=preheader,
            html=html,
            text=text,
            mjml=source,
        )

    def render_all(
        self, collection: Collection, section_sets: Iterable[Sequence[str]]
    ) -> dict[str, RenderedVariant]:
        """One render per distinct variant among ``section_sets`` (empty sets skipped)."""
        present = [s.name for s in collection.sections]
        wanted: dict[str, tuple[str, ...]] = {}
        for sections in section_sets:
            chosen = tuple(s for s in present if s in set(sections))
            if chosen:
                wanted.setdefault(variant_key(chosen, present), chosen)
        return {key: self.render(collection, chosen) for key, chosen in wanted.items()}

    # -- context --------------------------------------------------------------

    def _context(self, collection: Collection, chosen: tuple[str, ...], key: str) -> dict[str, Any]:
        nl = self.newsletter
        utm = utm_params(nl.utm, newsletter=nl.name, period=collection.period.key)
        picked = [s for s in collection.sections if s.name in set(chosen)]
        views = {s.name: [self._article(a, s.name, utm) for a in s.articles] for s in picked}
        top = _top_story([v for s in picked for v in views[s.name]], views[picked[0].name])
        sections = [
            SectionView(
                name=s.name,
                articles=tuple(v for v in views[s.name] if v is not top),
                total=len(views[s.name]),
            )
            for s in picked
        ]
        sections = [s for s in sections if s.articles]
        articles = [top, *(a for s in sections for a in s.articles)]
        first, last = collection.period.local_dates(nl)
        edition = EditionView(
            newsletter=nl.name,
            period=collection.period.key,
            first_day=first,
            last_day=last,
            window=nl.window,
            days=(last - first).days + 1,
            day_format=day_format(first, last),
            variant=key,
            sections=chosen,
            total=len(articles),
            complete=key == "all",
        )
        return {
            "newsletter": nl,
            "edition": edition,
            "top": top,
            "sections": sections,
            "articles": articles,
            "utm": utm,
        }

    def _article(self, article: Article, section: str, utm: dict[str, str]) -> ArticleView:
        plain_url = safe_url(article.canonical_url)
        return ArticleView(
            id=article.id,
            title=" ".join(article.title.split()),
            # tracked_url(canonical_url, utm), without checking the URL twice
            url=None if plain_url is None else safe_url(add_params(plain_url, utm)),
            plain_url=plain_url,
            summary=trim_summary(article.summary_text),
            summary_text=article.summary_text or "",
            author=" ".join((article.author or "").split()),
            published=article.published_at.astimezone(self.newsletter.zone),
            date_estimated=bool(article.date_estimated),
            image_url=safe_url(article.image_url) if article.image_url else None,
            pinned=bool(article.pinned),
            section=section,
        )


@dataclass(frozen=True)
class ArticleLink:
    """An article's link as the composed email prints it (UTM parameters and all)."""

    url: str
    article_id: int
    title: str
    section: str


def article_links(newsletter: NewsletterConfig, collection: Collection) -> list[ArticleLink]:
    """Every article link the variants of ``collection`` print, once each, in order: what
    click tracking (:mod:`digest.tracking`) sends through its redirect."""
    utm = utm_params(newsletter.utm, newsletter=newsletter.name, period=collection.period.key)
    seen: dict[str, ArticleLink] = {}
    for section in collection.sections:
        for article in section.articles:
            plain_url = safe_url(article.canonical_url)
            url = None if plain_url is None else safe_url(add_params(plain_url, utm))
            if url is not None and url not in seen:
                title = " ".join(article.title.split())
                seen[url] = ArticleLink(url, article.id, title, section.name)
    return list(seen.values())


@dataclass(frozen=True)
class WrittenVariant:
    variant: RenderedVariant
    #: Articles in the variant (top story included).
    articles: int
    html_path: Path
    text_path: Path
    mjml_path: Path | None


def article_count(collection: Collection, sections: Sequence[str]) -> int:
    """How many of ``collection``'s articles a variant with ``sections`` shows."""
    wanted = set(sections)
    return sum(len(s.articles) for s in collection.sections if s.name in wanted)


def write_previews(
    settings: Settings,
    collection: Collection,
    variants: Iterable[RenderedVariant],
    out_dir: Path,
    *,
    keep_mjml: bool = False,
) -> list[WrittenVariant]:
    """Write each variant as ``<key>.html`` and ``<key>.txt`` (and ``<key>.mjml``) into
    ``out_dir``, placeholders filled with preview values (a reader called "Reader",
    ``…/u/preview`` links) so the files read as a subscriber would see them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for variant in variants:
        fields = preview_fields(
            settings,
            newsletter=collection.newsletter.name,
            period=collection.period.key,
            variant_key=variant.key,
        )
        html_path = out_dir / f"{variant.key}.html"
        text_path = out_dir / f"{variant.key}.txt"
        html_path.write_text(personalize(variant.html, fields, html=True), encoding="utf-8")
        text_path.write_text(personalize(variant.text, fields, html=False), encoding="utf-8")
        mjml_path = None
        if keep_mjml:
            mjml_path = out_dir / f"{variant.key}.mjml"
            mjml_path.write_text(variant.mjml, encoding="utf-8")
        written.append(
            WrittenVariant(
                variant=variant,
                articles=article_count(collection, variant.sections),
                html_path=html_path,
                text_path=text_path,
                mjml_path=mjml_path,
            )
        )
    return written


def _top_story(articles: list[ArticleView], first_section: list[ArticleView]) -> ArticleView:
    """A pinned article if any, else the newest in the first section."""
    for article in articles:
        if article.pinned:
            return article
    return max(first_section, key=lambda a: a.published)


def config_warnings(config: DigestConfig, newsletter: NewsletterConfig) -> list[str]:
    """What works in ``newsletter``'s configuration, but not as its author may expect
    (a locale with no interface translation), one line each, naming the file and key."""
    problem = locale_warning(newsletter.locale)
    if problem is None:
        return []
    return [f"{config.path}: newsletters.{newsletter.name}.locale: {problem}"]


__all__ = [
    "HTML_WARN_BYTES",
    "ArticleLink",
    "ArticleView",
    "Composer",
    "EditionView",
    "RenderedVariant",
    "SectionView",
    "WrittenVariant",
    "article_count",
    "article_links",
    "config_warnings",
    "sections_for",
    "variant_key",
    "write_previews",
]

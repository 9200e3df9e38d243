"""Article pages: one :class:`~digest.ingest.feeds.Entry` from an HTML page's metadata.

A page is stored as an article only when it says it is one: JSON-LD of an
article type (``NewsArticle``/``Article``/``BlogPosting``…, also inside
``@graph`` or a list) or ``og:type`` ``article``.  A site's home page or a
channel page is not an article; it is refused (:class:`NotAnArticle`) with the
feeds it links to (``<link rel="alternate" type="application/rss+xml">``,
Atom, JSON Feed), unless the user says it is one (``digest ingest
--as-article`` or ``kind = "page"`` in ``digest.toml``).

Each field is taken from the first place that has it: JSON-LD, then OpenGraph
(``og:*``, ``article:*``), then plain ``<meta>`` tags, ``<title>`` and ``<link
rel=canonical>``.  The HTML is read with the standard library's tolerant
:class:`html.parser.HTMLParser`; nothing in the page is run.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from html.parser import HTMLParser
from typing import Any

from digest.errors import SourceError
from digest.ingest.clean import (
    canonical_url,
    clean_text,
    decode_text,
    html_to_text,
    is_picture,
    parse_date,
    safe_url,
    text_to_html,
    well_formed,
)
from digest.ingest.feeds import Entry, Parsed
from digest.ingest.http import Fetched

ARTICLE_TYPES = frozenset(
    {
        "article",
        "newsarticle",
        "blogposting",
        "reportagenewsarticle",
        "analysisnewsarticle",
        "opinionnewsarticle",
        "reviewnewsarticle",
        "backgroundnewsarticle",
        "scholarlyarticle",
        "techarticle",
        "report",
        "socialmediaposting",
        "liveblogposting",
    }
)
_MAX_JSONLD = 1_000_000
#: ``<link rel="alternate">`` types that are feeds digest reads.
FEED_TYPES = frozenset(
    {"application/rss+xml", "application/atom+xml", "application/feed+json", "application/rdf+xml"}
)
#: The elements (and their attributes) metadata is read from; all else is dropped first.
_KEPT: dict[str, set[str]] = {
    "meta": {"property", "name", "itemprop", "http-equiv", "content", "charset"},
    "link": {"rel", "href", "type", "title"},
    "base": {"href"},
    "script": {"type"},
    "title": set(),
    "h1": set(),
}  # characters of one JSON-LD block we are willing to parse


@dataclass
class _Head:
    """What the page's markup says about itself."""

    jsonld: list[str] = field(default_factory=list)
    #: ``meta`` values by lowercased ``property``/``name``/``itemprop``, in page order.
    meta: dict[str, list[str]] = field(default_factory=dict)
    title: str = ""
    canonical: str | None = None
    base: str | None = None
    h1: str = ""
    #: ``<link rel="alternate">`` feeds as written: (href, title).
    feeds: list[tuple[str, str]] = field(default_factory=list)

    def first(self, *keys: str) -> str:
        """The first non-empty text value among ``keys`` (markup read as HTML)."""
        for key in keys:
            for value in self.meta.get(key, []):
                if value := _plain(value):
                    return value
        return ""

    def raw(self, *keys: str) -> str:
        """The first non-empty value among ``keys`` as written (URLs, dates, charsets)."""
        for key in keys:
            for value in self.meta.get(key, []):
                if value := clean_text(value):
                    return value
        return ""

    def every(self, key: str) -> list[str]:
        return [v for value in self.meta.get(key, []) if (v := _plain(value))]


class _HeadParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.head = _Head()
        self._capture: str | None = None  # "jsonld" | "title" | "h1"
        self._buffer: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag == "meta":
            key = a.get("property") or a.get("name") or a.get("itemprop") or a.get("http-equiv")
            key = (key or "").strip().lower()
            if key and "content" in a:
                self.head.meta.setdefault(key, []).append(a["content"])
            elif (charset := a.get("charset")) is not None:
                self.head.meta.setdefault("charset", []).append(charset)
        elif tag == "base" and self.head.base is None and a.get("href"):
            self.head.base = a["href"]
        elif tag == "link":
            rels = (a.get("rel") or "").lower().split()
            if "canonical" in rels and self.head.canonical is None and a.get("href"):
                self.head.canonical = a["href"]
            kind = (a.get("type") or "").split(";")[0].strip().lower()
            if "alternate" in rels and kind in FEED_TYPES and a.get("href", "").strip():
                self.head.feeds.append((a["href"].strip(), clean_text(a.get("title"))))
        elif tag == "script":
            kind = (a.get("type") or "").split(";")[0].strip().lower()
            self._start("jsonld" if kind == "application/ld+json" else "skip")
        elif tag == "title" and not self.head.title:
            self._start("title")
        elif tag == "h1" and not self.head.h1 and self._capture is None:
            self._start("h1")

    def _start(self, what: str) -> None:
        self._capture = what
        self._buffer = []

    def handle_endtag(self, tag: str) -> None:
        if self._capture is None:
            return
        text = "".join(self._buffer)
        if tag == "script" and self._capture in ("jsonld", "skip"):
            if self._capture == "jsonld" and len(text) <= _MAX_JSONLD:
                self.head.jsonld.append(text)
        elif tag == "title" and self._capture == "title":
            self.head.title = clean_text(text)
        elif tag == "h1" and self._capture == "h1":
            self.head.h1 = clean_text(text)
        else:
            return
        self._capture = None
        self._buffer = []

    def handle_data(self, data: str) -> None:
        if self._capture is not None and self._capture != "skip":
            self._buffer.append(data)


# ---------------------------------------------------------------------------
# JSON-LD


def _types(node: dict[str, Any]) -> set[str]:
    value = node.get("@type")
    values = value if isinstance(value, list) else [value]
    return {v.rsplit("/", 1)[-1].lower() for v in values if isinstance(v, str)}


def _walk(node: Any, depth: int = 0) -> list[dict[str, Any]]:
    """Every object in a JSON-LD document, breadth first through @graph and lists."""
    if depth > 20:
        return []
    if isinstance(node, list):
        return [found for item in node for found in _walk(item, depth + 1)]
    if not isinstance(node, dict):
        return []
    found = [node]
    graph = node.get("@graph")
    if graph is not None:
        found.extend(_walk(graph, depth + 1))
    return found


def _jsonld_article(blocks: list[str]) -> dict[str, Any]:
    for block in blocks:
        try:
            doc = json.loads(block.strip().removeprefix("<!--").removesuffix("-->"))
        except (ValueError, RecursionError):
            continue  # one broken block must not hide the rest of the page
        for node in _walk(doc):
            if _types(node) & ARTICLE_TYPES:
                return node
    return {}


def _plain(value: str) -> str:
    """Metadata is text, but pages put markup and entities in it: read those as HTML."""
    return clean_text(html_to_text(value)) if "<" in value or "&" in value else clean_text(value)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return _plain(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def _people(value: Any) -> list[str]:
    """Author names from a string, an object with ``name`` or a list of either."""
    if isinstance(value, list):
        return [name for item in value for name in _people(item)]
    if isinstance(value, dict):
        name = _text(value.get("name"))
        return [name] if name else []
    name = _text(value)
    return [name] if name and not name.startswith(("http://", "https://")) else []


def _urls(value: Any) -> list[str]:
    """URLs from a string, an ``ImageObject``-like object, or a list of either."""
    if isinstance(value, list):
        return [url for item in value for url in _urls(item)]
    if isinstance(value, dict):
        return _urls(value.get("url") or value.get("contentUrl") or value.get("@id"))
    return [value.strip()] if isinstance(value, str) and value.strip() else []


def _labels(value: Any) -> list[str]:
    if isinstance(value, list):
        return [label for item in value for label in _labels(item)]
    label = _text(value)
    return [label] if label else []


# ---------------------------------------------------------------------------
# The page


class NotAnArticle(SourceError):
    """An HTML page that does not say it is an article (a home page, a channel page)."""

    def __init__(self, message: str, feeds: list[str]) -> None:
        super().__init__(message)
        #: The feeds the page links to, absolute, most likely first.
        self.feeds = feeds


def _says_article(head: _Head, ld: dict[str, Any]) -> bool:
    og_type = head.raw("og:type").lower()
    return bool(ld) or og_type == "article" or og_type.startswith("article:")


def _refusal(head: _Head, base: str | None) -> NotAnArticle:
    # A site's comments feed is rarely what the user wants: offer it last.
    listed = sorted(head.feeds, key=lambda f: "comment" in (f[1] + f[0]).lower())
    feeds = list(dict.fromkeys(url for href, _ in listed if (url := safe_url(href, base))))
    said = head.raw("og:type")
    what = f"its og:type is {said!r}" if said else "it has no JSON-LD Article and no og:type"
    message = f"not an article page: {what}, so this looks like a home, section or channel page; "
    if feeds:
        message += f"use its feed instead: {feeds[0]}"
        if len(feeds) > 1:
            message += f" (it also lists {', '.join(feeds[1:3])})"
    else:
        message += "use the site's RSS, Atom or JSON feed instead (the page links to none)"
    message += '; or, if it is an article, pass --as-article (kind = "page" in digest.toml)'
    return NotAnArticle(message, feeds)


def decode_html(fetched: Fetched) -> tuple[str, str | None]:
    """The page as text: byte-order mark, HTTP charset, then ``<meta charset>``."""
    declared = fetched.charset or _meta_charset(fetched.body[:4096])
    return decode_text(fetched.body, declared)


def _read_head(text: str) -> _Head:
    """The metadata elements of a page, wherever they are in it."""
    parser = _HeadParser()
    parser.feed(well_formed(text, set(_KEPT), _KEPT))
    parser.close()
    return parser.head


def _meta_charset(head: bytes) -> str | None:
    head_info = _read_head(head.decode("latin-1"))
    if charset := head_info.raw("charset"):
        return charset
    content_type = head_info.raw("content-type")
    match = re.search(r"charset\s*=\s*['\"]?([\w.:-]+)", content_type, re.I)
    return match.group(1) if match else None


def parse_page(fetched: Fetched, *, as_article: bool = False) -> Parsed:
    """The article an HTML page describes; a page that does not say it is an article
    is refused (:class:`NotAnArticle`) unless ``as_article``."""
    text, note = decode_html(fetched)
    warnings = [f"encoding: {note}"] if note else []
    head = _read_head(text)
    ld = _jsonld_article(head.jsonld)
    page_url = fetched.location if fetched.is_http else None
    page_url = safe_url(head.base, page_url) or page_url  # <base href> when it is a web URL
    if not as_article and not _says_article(head, ld):
        home = safe_url(head.canonical, page_url) or safe_url(head.raw("og:url"), page_url)
        raise _refusal(head, page_url or home)

    url = None
    for candidate in (head.canonical, head.raw("og:url"), *_urls(ld.get("url"))):
        if candidate and (url := safe_url(candidate, page_url)):
            break
    url = url or page_url
    if not url:
        raise SourceError(
            "the page does not say its own web address; a local page needs "
            '<link rel="canonical" href="https://…"> or <meta property="og:url">'
        )
    title = (
        _text(ld.get("headline"))
        or _text(ld.get("name"))
        or head.first("og:title", "twitter:title")
        or head.title
        or head.h1
    )
    if not title:
        raise SourceError(
            "no article title found (JSON-LD headline, og:title or <title>); "
            "is this an article page?"
        )
    summary = _text(ld.get("description")) or head.first(
        "og:description", "description", "twitter:description"
    )
    authors = _people(ld.get("author")) or [
        a for a in head.every("article:author") if not a.startswith(("http://", "https://"))
    ]
    author = ", ".join(dict.fromkeys(authors)) or head.first("author", "dc.creator")
    published: datetime | None = parse_date(ld.get("datePublished")) or next(
        (
            d
            for key in ("article:published_time", "datepublished", "date", "dc.date")
            if (d := parse_date(head.raw(key)))
        ),
        None,
    )
    sections = _labels(ld.get("articleSection")) or head.every("article:section")
    image = None
    for candidate in (
        *_urls(ld.get("image")),
        head.raw("og:image:secure_url"),
        head.raw("og:image"),
        head.raw("twitter:image"),
    ):
        if candidate and (image := safe_url(candidate, page_url)) and is_picture(image):
            break
        image = None
    summary_html = text_to_html(summary)
    guid = ld.get("@id") if isinstance(ld.get("@id"), str) else None
    return Parsed(
        kind="page",
        warnings=warnings,
        entries=[
            Entry(
                url=canonical_url(url, keep_fragment=True),
                guid=clean_text(guid) or None,
                title=title,
                summary_html=summary_html,
                summary_text=html_to_text(summary_html),
                author=author,
                categories=list(dict.fromkeys(sections)),
                image_url=image,
                published_at=published,
            )
        ],
    )

"""Feeds: what a body is (sniffing), and RSS, Atom and JSON Feed entries from it.

RSS 0.9x/1.0/2.0 and Atom go through feedparser; JSON Feed 1.0/1.1 is read
here with :mod:`json`.  Every parser returns :class:`Entry` objects that are
already clean: canonical link, sanitised summary plus its plain text, safe
image URL, aware UTC date (or None when the source gave none).  The one
exception is asked for: given the raw hashes of a source's stored entries
(:class:`Stored`), an RSS or Atom entry found among them is cleaned only as far
as its link, id and title, the rest when :meth:`Entry.complete` is called.

Choices about hostile XML, in one place:

* A document whose prolog declares entities (``<!ENTITY``) is refused before
  any parser sees it: that rules out entity-expansion bombs ("billion laughs")
  and external entities alike.  Feeds never need their own entities.
* The bytes are decoded here, not by the parser, so a wrong or missing
  ``encoding=`` is recovered (see :func:`digest.ingest.clean.decode_text`) and
  reported as a warning rather than stored as mojibake.
* feedparser is lenient: on broken XML it retries with a loose parser.  A
  document that does not end with its root's closing tag is *truncated* and is
  refused outright, since its last entry may be cut short.  A complete document
  with an XML error (a stray ``&``, an undefined entity) keeps the entries that
  parsed, with a warning; if no entry parsed it is an error.  Broken XML over
  ``LENIENT_LIMIT`` is refused, as the loose parser slows down badly on it.
* Summary HTML is sanitised by nh3 (html5ever), not by feedparser.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import xml.sax
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any
from xml.parsers import expat

import feedparser

from digest.errors import SourceError
from digest.ingest.clean import (
    bom_encoding,
    canonical_url,
    clean_text,
    content_picture,
    decode_entities,
    decode_text,
    html_to_text,
    is_picture,
    parse_date,
    safe_url,
    sanitize_html,
    sanitized_to_text,
    text_to_html,
    unescape_markup,
)
from digest.ingest.http import Fetched

JSONFEED_VERSION = "https://jsonfeed.org/version/"
#: Both schemes: the spec says https, and many feeds in the wild still say http.
JSONFEED_VERSIONS = (JSONFEED_VERSION, "http://jsonfeed.org/version/")
#: Broken XML larger than this is refused instead of handed to feedparser's loose
#: (regular-expression) parser, whose time grows quickly on hostile input.
LENIENT_LIMIT = 1024 * 1024
#: Characters of a title we look at; anything longer is not a headline.
MAX_TITLE = 1000


@dataclass
class Entry:
    """One article as a source describes it, already cleaned."""

    url: str
    title: str
    guid: str | None = None
    summary_html: str = ""
    summary_text: str = ""
    author: str = ""
    categories: list[str] = field(default_factory=list)
    image_url: str | None = None
    published_at: datetime | None = None
    #: SHA-256 of the entry as the feed gave it, before cleaning, with everything its
    #: cleaning depends on (see :func:`parse_xml_feed`); None when not computed.
    raw_hash: str | None = None
    #: What fills in the fields after ``guid``, ``url`` and ``title`` when their
    #: cleaning was deferred (:meth:`complete` runs it); None once they are filled.
    deferred: Callable[[Entry], None] | None = field(default=None, repr=False, compare=False)

    def complete(self) -> Entry:
        """The entry with every field filled in (cleaning any that were deferred)."""
        if self.deferred is not None:
            finish, self.deferred = self.deferred, None
            finish(self)
        return self


@dataclass
class Dropped:
    """An entry of a source that did not become an article of its own, and why."""

    #: ``skipped`` (unusable: no link, say) or ``merged`` (the same article as another).
    action: str
    reason: str
    title: str = ""
    url: str | None = None
    guid: str | None = None

    def describe(self) -> str:
        """One line naming the entry: its title, else its link or id."""
        name = f"“{self.title}”" if self.title else (self.url or self.guid or "an entry")
        return f"{self.action} {name}: {self.reason}"


@dataclass
class Parsed:
    """A source's entries, what kind of source it was, and anything worth a warning."""

    kind: str
    entries: list[Entry] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: Entries that were not kept, each with its reason (see :class:`Dropped`).
    dropped: list[Dropped] = field(default_factory=list)


# ---------------------------------------------------------------------------
# Sniffing

_MAGIC = (
    (b"\x89PNG", "a PNG image"),
    (b"GIF8", "a GIF image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"RIFF", "a RIFF file (WebP image or audio)"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or an office document)"),
    (b"\x1f\x8b", "gzip-compressed data"),
    (b"\x7fELF", "a program (ELF binary)"),
)
_HTML_ROOTS = frozenset(
    {"html", "head", "body", "meta", "title", "link", "div", "p", "article", "main", "script"}
)
_ROOT_NAME = re.compile(r"<([A-Za-z_][\w.:-]*)")
_ENTITIES_REFUSED = (
    "refused: the XML declares its own entities (<!ENTITY>), which feeds never "
    "need and entity-expansion attacks (billion laughs, external entities) rely on"
)


@dataclass
class Sniffed:
    """``kind`` is ``rss``, ``atom``, ``jsonfeed`` or ``page``; ``root`` the XML root."""

    kind: str
    root: str = ""


def _head_text(body: bytes, size: int = 65536) -> str:
    encoding, skip = bom_encoding(body)
    head = body[skip : skip + size]
    if encoding and encoding != "utf-8":
        return head.decode(encoding, errors="ignore")
    return head.decode("latin-1")  # byte-transparent: enough to read ASCII markup


def sniff(body: bytes) -> Sniffed:
    """Tell a feed from an article page by looking at the bytes, never the file name."""
    if not body.strip():
        raise SourceError("empty: no bytes to read, not a feed or article page")
    for magic, what in _MAGIC:
        if body.startswith(magic):
            raise SourceError(f"not a feed or article page: looks like {what}")
    encoding, _ = bom_encoding(body)
    if encoding in (None, "utf-8") and b"\x00" in body[:4096]:
        raise SourceError("not a feed or article page: binary data (contains NUL bytes)")
    head = _head_text(body).lstrip()
    if head.startswith(("{", "[")):
        return Sniffed("jsonfeed")  # confirmed (or refused) by parse_jsonfeed
    if head.startswith("<"):
        pos = _prolog_end(head)
        prolog, rest = head[:pos], head[pos:].lstrip()
        if "<!ENTITY" in prolog:
            raise SourceError(_ENTITIES_REFUSED)
        root = _ROOT_NAME.match(rest)
        name = root.group(1) if root else ""
        local = name.rsplit(":", 1)[-1].lower()
        # The root element decides, whatever the DOCTYPE says: feed generators
        # do put an XHTML DOCTYPE before <rss>.
        if local in ("rss", "rdf"):
            return Sniffed("rss", name)
        if local == "feed":
            return Sniffed("atom", name)
        if re.search(r"<!DOCTYPE\s+html", prolog, re.I):
            return Sniffed("page", "html")
        if root:
            if local in _HTML_ROOTS:
                return Sniffed("page", name)
            raise SourceError(
                f"not a feed or article page: XML whose root element is <{name}> "
                "(feeds start with <rss>, <rdf:RDF> or <feed>)"
            )
    raise SourceError(f"not a feed or article page: text starting {_preview(head)!r}")


def _prolog_end(text: str) -> int:
    """Where the prolog (XML declaration, comments, PIs, DOCTYPE) ends.

    A plain scanner rather than a regular expression: an internal DTD subset
    in hostile input must not trigger catastrophic backtracking.
    """
    pos, size = 0, len(text)
    while True:
        while pos < size and text[pos].isspace():
            pos += 1
        if text.startswith("<?", pos):
            end = text.find("?>", pos + 2)
            closing = 2
        elif text.startswith("<!--", pos):
            end = text.find("-->", pos + 4)
            closing = 3
        elif text[pos : pos + 9].upper() == "<!DOCTYPE":
            end = _doctype_end(text, pos + 9)
            closing = 1
        else:
            return pos
        if end < 0:
            return pos  # unfinished: whatever follows is not a root element
        pos = end + closing


def _doctype_end(text: str, pos: int) -> int:
    """Index of the ``>`` closing a DOCTYPE, skipping its internal subset and quotes."""
    depth, quote = 0, ""
    for i in range(pos, len(text)):
        char = text[i]
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif char == ">" and depth <= 0:
            return i
    return -1


def _preview(text: str, size: int = 40) -> str:
    line = " ".join(text.split())
    return line[:size] + ("…" if len(line) > size else "")


# ---------------------------------------------------------------------------
# XML feeds (feedparser)

_TAG_LIKE = re.compile(r"</?[A-Za-z][\w-]*(?:\s[^>]*)?/?>")
#: ``<link href=""/>`` (Atom; WordPress writes these), ``<link></link>`` or ``<link/>`` (RSS).
_EMPTY_LINK = re.compile(
    r"""<(?P<p>(?:[A-Za-z_][\w.-]*:)?)link\b(?=[^>]*\bhref\s*=\s*(?:"\s*"|'\s*'))[^>]*?"""
    r"""(?:/>|>\s*</(?P=p)link\s*>)"""
    r"|<(?P<q>(?:[A-Za-z_][\w.-]*:)?)link\s*(?:/>|>\s*</(?P=q)link\s*>)"
)
_XML_DECL = re.compile(r"""^\s*<\?xml\b[^>]*?\?>""")
_XML_ENCODING = re.compile(r"""encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


def _prolog(text: str) -> str:
    """Everything before the root element's start tag."""
    match = re.search(r"<[A-Za-z_]", text)
    return text[: match.start()] if match else text


def _ends_with_root(text: str, root: str) -> bool:
    tail = text[-4096:].rstrip()
    while tail.endswith("-->"):  # trailing comments are allowed
        start = tail.rfind("<!--")
        if start < 0:
            return False
        tail = tail[:start].rstrip()
    return bool(re.search(rf"</\s*{re.escape(root)}\s*>$", tail))


def decode_xml(fetched: Fetched) -> tuple[str, str | None]:
    """The document as text (see :func:`decode_text`) and a note if its encoding was off."""
    head = _head_text(fetched.body, 512)
    decl = _XML_DECL.match(head)
    declared = None
    if decl and (enc := _XML_ENCODING.search(decl.group(0))):
        declared = enc.group(1)
    candidates = [c for c in (fetched.charset, declared) if c]
    return _decode_candidates(fetched.body, candidates)


def _decode_candidates(body: bytes, candidates: list[str]) -> tuple[str, str | None]:
    """Decode with the first claimed encoding that fits the bytes; else recover."""
    first: tuple[str, str | None] | None = None
    for name in candidates or [None]:  # type: ignore[list-item]
        text, note = decode_text(body, name)
        if note is None:
            return text, None
        first = first or (text, note)
    assert first is not None
    return first


@dataclass(frozen=True)
class Stored:
    """What a source's stored articles say about their feed entries: the raw hashes of the
    entries they were cleaned from, and the context those hashes were computed in (a
    fingerprint of the cleaning code and of the settings it uses, such as category
    aliases).  Given to :func:`parse_xml_feed`, it lets the cleaning of an entry whose raw
    hash is among ``raw_hashes`` wait until someone needs its fields
    (:meth:`Entry.complete`): the store finds most such entries unchanged and never does."""

    context: str
    raw_hashes: Container[str] = frozenset()


def raw_entry_hash(raw: Any, base: str | None, feed_author: str, context: str) -> str:
    """SHA-256 of a feedparser entry with everything its cleaning reads besides the entry
    itself (the base URL, the feed's author) and ``context`` (see :class:`Stored`).

    The entry's ``repr`` covers every field feedparser gave it, so any change to the
    entry changes the hash; a value whose ``repr`` is not stable would only make the
    entry look changed (cleaned again), never unchanged."""
    blob = f"{context}\n{base}\n{feed_author}\n{raw!r}"
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()


def parse_xml_feed(fetched: Fetched, sniffed: Sniffed, stored: Stored | None = None) -> Parsed:
    """RSS or Atom entries via feedparser, after the checks described above.

    With ``stored``, every entry gets its :attr:`Entry.raw_hash`, and the cleaning of
    those whose hash is in ``stored.raw_hashes`` is deferred (see :class:`Stored`).
    """
    text, note = decode_xml(fetched)
    warnings = [f"encoding: {note}"] if note else []
    if "<!ENTITY" in _prolog(text):
        raise SourceError(_ENTITIES_REFUSED)
    if not _ends_with_root(text, sniffed.root):
        raise SourceError(
            f"truncated XML: the document ends before its closing </{sniffed.root}> tag; "
            "the server may have cut the response short, try again later"
        )
    # Hand feedparser UTF-8 that says so: the decoding decisions were made above.
    utf8 = _XML_DECL.sub('<?xml version="1.0" encoding="utf-8"?>', text, count=1)
    # An empty link is no link (feedparser would resolve it to xml:base, often the
    # feed file itself): take such links out before it sees them.
    utf8 = _EMPTY_LINK.sub("", utf8)
    headers = {"content-type": "application/xml; charset=utf-8"}
    if fetched.is_http:
        headers["content-location"] = fetched.location
    raw = utf8.encode("utf-8")
    if len(raw) > LENIENT_LIMIT and (problem := _expat_error(raw)):
        raise SourceError(
            f"malformed XML: {problem}; at {len(raw)} bytes it is too large to read leniently"
        )
    # Our own nh3 pass sanitises and resolves links in summaries (against each
    # element's xml:base); feedparser's older sanitiser is slow on hostile markup.
    data = feedparser.parse(
        io.BytesIO(raw),
        response_headers=headers,
        sanitize_html=False,
        resolve_relative_uris=False,
    )
    malformed = _xml_problem(data)
    version = data.get("version") or ""
    if not version.startswith(("rss", "atom")):
        if malformed:
            raise SourceError(f"malformed XML: {malformed}; no entries found")
        raise SourceError(
            f"not a feed: feedparser could not recognise <{sniffed.root}> as RSS or Atom"
        )
    kind = "atom" if version.startswith("atom") else "rss"
    feed = data.get("feed", {})
    base = fetched.location if fetched.is_http else safe_url(feed.get("link"))
    feed_author = _names(feed.get("authors")) or _name(feed.get("author_detail"))
    parsed = Parsed(kind=kind, warnings=warnings)
    for raw in data.entries:
        raw_hash = defer = None
        if stored is not None:
            raw_hash = raw_entry_hash(raw, base, feed_author, stored.context)
            defer = raw_hash in stored.raw_hashes
        entry = _feedparser_entry(raw, base, feed_author, raw_hash=raw_hash, defer=bool(defer))
        if isinstance(entry, Dropped):
            parsed.dropped.append(entry)
        else:
            parsed.entries.append(entry)
    if malformed:
        if not parsed.entries:
            raise SourceError(f"malformed XML: {malformed}; no entries found")
        parsed.warnings.append(f"malformed XML ({malformed}); kept the entries that could be read")
    return parsed


def _expat_error(raw: bytes) -> str | None:
    """Why ``raw`` is not well-formed XML, or None.  (Entities were refused earlier.)"""
    parser = expat.ParserCreate()
    try:
        parser.Parse(raw, True)
    except expat.ExpatError as exc:
        return f"{expat.ErrorString(exc.code)} at line {exc.lineno}"
    return None


def _xml_problem(data: Any) -> str | None:
    """feedparser's XML well-formedness error, if it hit one (other 'bozo' notes are ignored)."""
    problem = data.get("bozo_exception") if data.get("bozo") else None
    if not isinstance(problem, xml.sax.SAXException):
        return None
    if isinstance(problem, xml.sax.SAXParseException):
        return f"{problem.getMessage()} at line {problem.getLineNumber()}"
    return problem.getMessage()


def _no_link(title: str, guid: str | None, why: str) -> Dropped:
    return Dropped("skipped", f"no usable http(s) link: {why}", title=title, guid=guid)


def _feedparser_link(raw: Any, guid: str | None, base: str | None) -> tuple[str | None, str]:
    """The entry's web address, or None and why there is none.

    Its ``rel="alternate"`` links come first, HTML before any other type: an entry
    whose only link is a PDF, an audio file or a video is an article with that link.
    Then an http(s) id (a GUID that is a permalink); never a link that is really an id
    like ``tag:…`` resolved against the feed's address.
    """
    links = raw.get("links") or []
    alternates = [
        link
        for link in links
        if (link.get("rel") or "alternate") == "alternate" and link.get("href")
    ]
    alternates.sort(key=lambda link: 0 if "html" in (link.get("type") or "text/html") else 1)
    candidates = [link["href"] for link in alternates]
    link = raw.get("link")
    if link and link != guid and link not in candidates:
        candidates.append(link)
    for candidate in candidates:
        if url := safe_url(candidate, base):
            return url, ""
    if guid and guid.startswith(("http://", "https://")) and (url := safe_url(guid)):
        return url, ""
    if candidates:
        return None, f"its link {_preview(candidates[0], 80)!r} is not a web address"
    if guid:
        return None, f"it has no link and its id {_preview(guid, 80)!r} is not a web address"
    return None, "it has no link and no id"


def _feedparser_entry(
    raw: Any,
    base: str | None,
    feed_author: str,
    *,
    raw_hash: str | None = None,
    defer: bool = False,
) -> Entry | Dropped:
    """The entry, cleaned; with ``defer``, only its link, id and title are cleaned now and
    the rest when :meth:`Entry.complete` is called (unless the title must come from the
    summary)."""
    guid = clean_text(raw.get("id")) or None
    url, why = _feedparser_link(raw, guid, base)
    title = _feedparser_title(raw)
    if url is None:
        return _no_link(title or _title_from(_feedparser_summary(raw, base)[1]), guid, why)
    entry = Entry(
        url=canonical_url(url, keep_fragment=True), guid=guid, title=title, raw_hash=raw_hash
    )
    finish = partial(_finish_feedparser_entry, raw, base, feed_author)
    if defer and title:
        entry.deferred = finish
    else:
        finish(entry)
    return entry


def _finish_feedparser_entry(raw: Any, base: str | None, feed_author: str, entry: Entry) -> None:
    """Fill in an entry's fields after its link, id and title."""
    entry.summary_html, entry.summary_text = _feedparser_summary(raw, base)
    entry.title = entry.title or _title_from(entry.summary_text)
    entry.author = _names(raw.get("authors")) or _name(raw.get("author_detail")) or feed_author
    entry.categories = [
        label
        for tag in raw.get("tags") or []
        if (label := clean_text(tag.get("label") or tag.get("term")))
    ]
    entry.image_url = _feedparser_image(raw, base)
    entry.published_at = _struct_time(
        raw.get("published_parsed") or raw.get("updated_parsed") or raw.get("created_parsed")
    )


def _feedparser_title(raw: Any) -> str:
    detail = raw.get("title_detail") or {}
    value = (raw.get("title") or "")[:MAX_TITLE]
    # RSS cannot say whether a title is text or HTML; escaped markup in one
    # (``&lt;em&gt;``) is meant as HTML, so read anything tag-like as HTML.
    if "html" in (detail.get("type") or "") or _TAG_LIKE.search(value):
        return clean_text(html_to_text(value))
    return clean_text(value)


def _feedparser_summary(raw: Any, base: str | None) -> tuple[str, str]:
    candidates = []
    if raw.get("summary"):
        candidates.append(raw.get("summary_detail") or {"value": raw["summary"]})
    candidates.extend(raw.get("content") or [])
    for detail in candidates:
        value = detail.get("value") or ""
        if not value.strip():
            continue
        if "html" in (detail.get("type") or "text/html"):
            # Escaped twice, the markup would show as text: decode it once more.
            value = unescape_markup(value)
            cleaned = sanitize_html(value, safe_url(detail.get("base"), base) or base)
            if cleaned:  # html5ever wrote it: its text is read without parsing it again
                return cleaned, sanitized_to_text(cleaned)
        elif cleaned := text_to_html(value):
            return cleaned, html_to_text(cleaned)
    return "", ""


def _feedparser_image(raw: Any, base: str | None) -> str | None:
    """The entry's picture: what the feed names as one (``media:thumbnail``,
    ``media:content``, an image enclosure, ``itunes:image``), else the first
    picture in its content; trackers, icons, emoji and avatars never (see
    :func:`digest.ingest.clean.is_picture`)."""
    declared: list[tuple[Any, Any, Any]] = [
        (t.get("url"), t.get("width"), t.get("height")) for t in raw.get("media_thumbnail") or []
    ]
    for media in raw.get("media_content") or []:
        medium = media.get("medium") or ""
        mime = media.get("type") or ""
        if medium == "image" or mime.startswith("image/") or (not medium and not mime):
            declared.append((media.get("url"), media.get("width"), media.get("height")))
    declared.extend(
        (link.get("href"), None, None)
        for link in raw.get("links") or []
        if link.get("rel") == "enclosure" and (link.get("type") or "").startswith("image/")
    )
    declared.append(((raw.get("image") or {}).get("href"), None, None))
    for candidate, width, height in declared:
        if candidate and isinstance(candidate, str):
            url = safe_url(candidate, base)
            if url and is_picture(url, width, height):
                return url
    for detail in [raw.get("summary_detail") or {}, *(raw.get("content") or [])]:
        value = detail.get("value") or ""
        if "html" in (detail.get("type") or "text/html"):
            value = unescape_markup(value)
        if picture := content_picture(value, safe_url(detail.get("base"), base) or base):
            return picture
    return None


def _struct_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        year, month, day, hour, minute, second = (int(v) for v in value[:6])
        return datetime(year, month, day, hour, minute, min(second, 59), tzinfo=UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def _name(detail: Any) -> str:
    if not isinstance(detail, dict):
        return ""
    return clean_text(detail.get("name") if isinstance(detail.get("name"), str) else "")


def _names(details: Any) -> str:
    if not isinstance(details, list):
        return ""
    names = [n for d in details if (n := _name(d))]
    return ", ".join(dict.fromkeys(names))


def _title_from(text: str, size: int = 80) -> str:
    line = " ".join(text.split())
    if not line:
        return "Untitled"
    return line if len(line) <= size else line[: size - 1].rsplit(" ", 1)[0] + "…"


# ---------------------------------------------------------------------------
# JSON Feed


def parse_jsonfeed(fetched: Fetched) -> Parsed:
    """Entries of a JSON Feed 1.0 or 1.1 document."""
    text, note = _decode_candidates(fetched.body, [fetched.charset or "utf-8"])
    warnings = [f"encoding: {note}"] if note else []
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SourceError(_json_error(text, exc)) from None
    except RecursionError:
        raise SourceError("malformed JSON: nested too deeply") from None
    version = doc.get("version") if isinstance(doc, dict) else None
    if not isinstance(version, str) or not version.startswith(JSONFEED_VERSIONS):
        raise SourceError(
            "not a feed or article page: JSON, but not a JSON Feed "
            f'(no "version": "{JSONFEED_VERSION}1.1")'
        )
    items = doc.get("items")
    if not isinstance(items, list):
        raise SourceError('invalid JSON Feed: "items" must be a list')
    home = _str(doc.get("home_page_url")) or _str(doc.get("feed_url"))
    base = fetched.location if fetched.is_http else safe_url(home)
    feed_author = _json_authors(doc)
    parsed = Parsed(kind="jsonfeed", warnings=warnings)
    for number, item in enumerate(items, 1):
        if not isinstance(item, dict):
            parsed.dropped.append(
                Dropped("skipped", f"item {number} is not a JSON object", title=f"item {number}")
            )
            continue
        entry = _json_item(item, base, feed_author)
        if isinstance(entry, Dropped):
            parsed.dropped.append(entry)
        else:
            parsed.entries.append(entry)
    return parsed


def _json_error(text: str, exc: json.JSONDecodeError) -> str:
    """What is wrong with a JSON document, saying "truncated" when it just stops."""
    where = f"line {exc.lineno} column {exc.colno}"
    # json's messages end in "… starting at" for strings: avoid "at at line 3".
    what = exc.msg.removesuffix(" at").removesuffix(" starting")
    rest = text[exc.pos :].strip()
    unterminated = exc.msg.startswith("Unterminated string") and '"' not in text[exc.pos + 1 :]
    if not rest or unterminated:
        return (
            f"truncated JSON: the document ends before it is complete ({what} at {where}); "
            "the server may have cut the response short, try again later"
        )
    return f"malformed JSON: {what} at {where}"


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _plain(value: Any) -> str:
    """A JSON Feed text field (plain text by the spec), with the HTML character
    references publishers put in it anyway decoded once: ``Q&amp;A`` is ``Q&A``."""
    return decode_entities(_str(value))


def _json_authors(obj: dict[str, Any]) -> str:
    authors = obj.get("authors")
    if isinstance(authors, list):
        return _names(authors)
    return _name(obj.get("author"))


def _json_tags(tags: Any) -> list[str]:
    """``"tags"``: a list of strings, or (in the wild) one comma-separated string."""
    if isinstance(tags, str):
        tags = tags.split(",")
    if not isinstance(tags, list):
        return []
    return [t for tag in tags if (t := clean_text(_plain(tag)))]


def _json_item(item: dict[str, Any], base: str | None, feed_author: str) -> Entry | Dropped:
    raw_id = item.get("id")
    guid = clean_text(str(raw_id)) if isinstance(raw_id, str | int) else None
    summary_html = ""
    if summary := _plain(item.get("summary")).strip():
        summary_html = text_to_html(summary)
    elif content := _str(item.get("content_html")).strip():
        summary_html = sanitize_html(content, base)
    elif content := _plain(item.get("content_text")).strip():
        summary_html = text_to_html(content)
    summary_text = html_to_text(summary_html)
    title = clean_text(_plain(item.get("title"))[:MAX_TITLE]) or _title_from(summary_text)
    url = None
    for key in ("url", "external_url"):
        if candidate := safe_url(_str(item.get(key)), base):
            url = candidate
            break
    if url is None and guid and guid.startswith(("http://", "https://")):
        url = safe_url(guid)
    if url is None:
        link = _str(item.get("url")) or _str(item.get("external_url"))
        why = (
            f"its url {_preview(link, 80)!r} is not a web address"
            if link
            else "it has no url or external_url"
        )
        return _no_link(title, guid or None, why)
    image = None
    for key in ("image", "banner_image"):
        candidate = safe_url(_str(item.get(key)), base)
        if candidate and is_picture(candidate):
            image = candidate
            break
    if image is None and (content := _str(item.get("content_html"))):
        image = content_picture(content, base)
    return Entry(
        url=canonical_url(url, keep_fragment=True),
        guid=guid or None,
        title=title,
        summary_html=summary_html,
        summary_text=summary_text,
        author=_json_authors(item) or feed_author,
        categories=_json_tags(item.get("tags")),
        image_url=image,
        published_at=(
            parse_date(item.get("date_published")) or parse_date(item.get("date_modified"))
        ),
    )

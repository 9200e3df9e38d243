"""Making untrusted feed and page content safe and uniform.

URLs are canonicalised (so one article has one key however it is linked) and
checked (only ``http``/``https`` ever reach an email); summary HTML is cut down
to a small allowlist with nh3; text is decoded from bytes whatever the feed
claims its encoding is; dates become timezone-aware UTC datetimes.
"""

from __future__ import annotations

import codecs
import hashlib
import html as html_lib
import re
import unicodedata
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache
from html.parser import HTMLParser
from urllib.parse import unquote_plus, urljoin, urlsplit, urlunsplit

import nh3

ALLOWED_TAGS = frozenset({"p", "a", "em", "strong", "b", "i", "ul", "ol", "li", "br", "blockquote"})
#: Tags removed together with everything inside them (not just unwrapped).
DROPPED_WITH_CONTENT = frozenset(
    {
        "script", "style", "template", "noscript", "iframe", "object", "svg", "math", "title",
        "figcaption",  # a photo's caption or credit says nothing of the article
    }
)  # fmt: skip
_SAFE_SCHEMES = ("http", "https")
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Browsers ignore tabs and newlines anywhere in a URL ("java\tscript:") and
# leading/trailing control characters and spaces: strip them the same way.
_URL_IGNORED = re.compile(r"[\t\n\r]")
_URL_STRIPPED = "".join(map(chr, range(0x21)))
# C0 controls (but tab and newline) and lone surrogates: no database takes them
# (PostgreSQL refuses NUL; a surrogate cannot be encoded as UTF-8).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_URL_UNSAFE = re.compile(r"[\x00-\x20\x7f]")
#: Any character the three patterns above (and the strip) would change: most links have none.
_URL_TOUCHED = re.compile(r"[\x00-\x20\x7f\ud800-\udfff]")
_HAS_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


# ---------------------------------------------------------------------------
# URLs


def _is_http(url: str | None) -> bool:
    return bool(url) and urlsplit(url or "").scheme.lower() in _SAFE_SCHEMES


def _prepare(url: str, base: str | None) -> str:
    if _URL_TOUCHED.search(url):
        url = _URL_IGNORED.sub("", url).strip(_URL_STRIPPED)
        url = _URL_UNSAFE.sub(lambda m: f"%{ord(m.group()):02X}", _CONTROL.sub("", url))
    if base and _is_http(base) and not _HAS_SCHEME.match(url):
        url = urljoin(base, url)  # relative only: "https://" alone must not become the base
    return url


def safe_url(url: str | None, base: str | None = None) -> str | None:
    """``url`` made absolute against ``base``, if it is ``http(s)`` with a host; else None.

    ``javascript:``, ``data:``, ``vbscript:``, ``file:`` and anything else that is
    not a web link is rejected, as is a relative link with no web ``base``.
    """
    if not url:
        return None
    try:
        prepared = _prepare(url, base)
        parts = urlsplit(prepared)
        if parts.scheme.lower() not in _SAFE_SCHEMES or not parts.hostname:
            return None
    except ValueError:  # e.g. "http://[::1" (bad IPv6 literal) or a bad port
        return None
    return prepared


def canonical_url(url: str, base: str | None = None, *, keep_fragment: bool = False) -> str:
    """The one spelling of ``url`` used as an article's key.

    Relative URLs are resolved against ``base``; ``utm_*`` parameters are
    dropped, and so is the ``#fragment`` unless ``keep_fragment`` (a site that
    publishes several posts on one page tells them apart by fragment: see
    :func:`digest.ingest.dedupe.settle_fragments`); the scheme and host are
    lowercased and a default port removed; an empty path becomes ``/``.  Other
    query parameters keep their order (the link must still work when a reader
    follows it).
    """
    prepared = _prepare(url, base)
    try:
        parts = urlsplit(prepared)
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return prepared
    if not scheme or not host:
        return prepared
    netloc = host if ":" not in host else f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        netloc = f"{netloc}:{port}"
    if parts.username is not None:
        userinfo = parts.username + (f":{parts.password}" if parts.password is not None else "")
        netloc = f"{userinfo}@{netloc}"
    path = parts.path or "/"
    # Filter the raw "k=v" pieces so kept parameters stay byte for byte as published.
    query = "&".join(
        piece
        for piece in parts.query.split("&")
        if piece and not unquote_plus(piece.split("=", 1)[0]).lower().startswith("utm_")
    )
    fragment = parts.fragment if keep_fragment else ""
    return urlunsplit((scheme, netloc, path, query, fragment))


def without_fragment(url: str) -> str:
    """``url`` without its ``#fragment``."""
    return url.split("#", 1)[0]


def url_variants(url: str) -> list[str]:
    """The spellings of a canonical ``url`` that name the same article.

    URLs that differ only in scheme (``http``/``https``), a leading ``www.`` or
    a trailing slash on the path are one article: sites publish the same post
    under each, one feed or another (the default port is already gone from a
    canonical URL).  ``url`` itself comes first.
    """
    return list(_url_variants(url))


@lru_cache(maxsize=16384)  # a store looks each entry's spellings up twice
def _url_variants(url: str) -> tuple[str, ...]:
    try:
        parts = urlsplit(url)
    except ValueError:
        return (url,)
    if parts.scheme not in _SAFE_SCHEMES or not parts.netloc:
        return (url,)
    netloc = parts.netloc
    bare = netloc[4:] if netloc.startswith("www.") else netloc
    hosts = [netloc, bare if netloc != bare else f"www.{bare}"]
    path = parts.path or "/"
    paths = [path]
    if path != "/":
        paths.append(path[:-1] if path.endswith("/") else path + "/")
    schemes = [parts.scheme, "http" if parts.scheme == "https" else "https"]
    found = [
        urlunsplit((scheme, host, p, parts.query, parts.fragment))
        for scheme in schemes
        for host in hosts
        for p in paths
    ]
    return tuple(dict.fromkeys(found))


def site_of(url: str) -> str:
    """The site an article URL belongs to: its host, lowercased, without ``www.``."""
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""
    return host[4:] if host.startswith("www.") else host


_TITLE_DROP = re.compile(r"[^\w\s]+")


def normalise_title(title: str) -> str:
    """A title as compared across feeds: entities decoded, case, quotes, punctuation and
    spacing folded (``Q&amp;A: ‘Data’`` and ``Q&A: 'data'`` are the same title)."""
    text = unicodedata.normalize("NFKC", html_lib.unescape(title or "")).casefold()
    return " ".join(_TITLE_DROP.sub(" ", text).split())


@lru_cache(maxsize=16384)  # a store computes each entry's key twice
def title_key(title: str, url: str) -> str | None:
    """The key under which an article's title is compared with other feeds' articles from
    the same site (a SHA-1 of site and normalised title), or None for a title too short
    or generic to tell articles apart."""
    text = normalise_title(title)
    site = site_of(url)
    if not site or len(text) < 8 or text == "untitled":
        return None
    return hashlib.sha1(f"{site}\n{text}".encode(), usedforsecurity=False).hexdigest()


# ---------------------------------------------------------------------------
# HTML


def sanitize_html(html: str, base: str | None = None) -> str:
    """``html`` reduced to a small allowlist of tags, with safe absolute links.

    Scripts, styles and their content go; so do event handlers and every
    attribute except ``href`` on links.  Links are resolved against ``base``,
    kept only when they are ``http(s)``, and get ``rel="noopener"``.
    """
    if not html or not html.strip():
        return ""

    def keep(tag: str, attr: str, value: str) -> str | None:
        if attr == "href":
            return safe_url(value, base)
        return value

    cleaned = nh3.clean(
        _CONTROL.sub("", html),
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(DROPPED_WITH_CONTENT),
        attributes={"a": {"href"}},
        attribute_filter=keep,
        url_schemes=set(_SAFE_SCHEMES),
        link_rel="noopener",
        strip_comments=True,
    )
    # Only inline text and simple blocks are allowed (no <pre>): runs of
    # whitespace carry no meaning, so store them as one space.
    return re.sub(r"[ \t\n\r\f]+", " ", cleaned).strip()


_BLOCKS = frozenset(
    {
        "p", "div", "blockquote", "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6",
        "table", "tr", "section", "article", "header", "footer", "pre", "figure",
        "figcaption", "dl", "dt", "dd", "hr",
    }
)  # fmt: skip
_BR = "\x00"  # marks a <br>; control characters are stripped from the input first
_SKIPPED = frozenset({"script", "style", "template", "noscript", "head", "title"})


class _TextExtractor(HTMLParser):
    """Blocks of text; list items become ``- `` (or ``1. ``) lines, one per item."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        #: (text, which top-level list it is in, 0 for none) per block, in order.
        self.blocks: list[tuple[str, int]] = []
        self._list_count = 0
        self._current: list[str] = []
        self._skip = 0
        #: One entry per open <ul>/<ol>: the next number, or None for bullets.
        self._lists: list[int | None] = []
        #: The marker waiting for the first text of the current list item.
        self._marker = ""
        #: Inside a list item: later blocks of it are indented under its marker.
        self._item_indent = ""

    def _break(self) -> None:
        lines = "".join(self._current).split(_BR)
        text = "\n".join(" ".join(line.split()) for line in lines).strip()
        self._current = []
        if not text:
            return
        if self._marker:
            lead, self._marker = self._marker, ""
        else:
            lead = self._item_indent
        if lead:
            text = lead + text.replace("\n", "\n" + " " * len(lead))
        self.blocks.append((text, self._list_count if self._lists else 0))

    def _start_item(self) -> None:
        depth = max(len(self._lists) - 1, 0)
        number = self._lists[-1] if self._lists else None
        if number is None:
            marker = "- "
        else:
            marker = f"{number}. "
            self._lists[-1] = number + 1
        self._marker = "  " * depth + marker
        self._item_indent = " " * len(self._marker)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self._skip += 1
        elif tag == "br":
            self._current.append(_BR)
        elif tag in _BLOCKS:
            self._break()
            if tag in ("ul", "ol"):
                if not self._lists:
                    self._list_count += 1
                self._lists.append(1 if tag == "ol" else None)
                self._marker = self._item_indent = ""
            elif tag == "li":
                self._start_item()

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self._current.append(_BR)
        elif tag in _BLOCKS:
            self._break()

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCKS:
            self._break()
            if tag in ("ul", "ol") and self._lists:
                self._lists.pop()
                self._marker = ""
                self._item_indent = "  " * len(self._lists) if self._lists else ""
            elif tag == "li":
                self._marker = ""
                self._item_indent = "  " * len(self._lists) if self._lists else ""

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self._current.append(data)

    def text(self) -> str:
        self.close()
        self._break()
        out = ""
        previous = 0
        for text, in_list in self.blocks:
            if out:
                # The lines of one list follow each other; every other block is a paragraph.
                out += "\n" if in_list and in_list == previous else "\n\n"
            out += text
            previous = in_list
        return out


def well_formed(html: str, tags: set[str], attributes: dict[str, set[str]] | None = None) -> str:
    """``html`` parsed by a real HTML5 parser (html5ever, inside nh3) and written back
    with only ``tags`` (others unwrapped; scripts and styles dropped unless in ``tags``).

    Hostile markup can make the standard library's HTMLParser quadratic or make it
    raise; html5ever's output is well-formed, which HTMLParser reads in linear time.
    So every HTMLParser here reads this function's output, never raw input.
    """
    return nh3.clean(
        _CONTROL.sub("", html),
        tags=tags,
        clean_content_tags=set(DROPPED_WITH_CONTENT) - tags,
        attributes=attributes or {},
        link_rel=None,
        strip_comments=True,
    )


def html_to_text(html: str) -> str:
    """The plain-text form of an HTML fragment.

    Entities are decoded, whitespace collapsed, and paragraphs (and other
    blocks) separated by a blank line; ``<br>`` keeps its line break.
    """
    if not html:
        return ""
    return sanitized_to_text(well_formed(html, set(_BLOCKS | {"br"})))


def sanitized_to_text(html: str) -> str:
    """:func:`html_to_text` of HTML that html5ever wrote already (the output of
    :func:`sanitize_html` or :func:`well_formed`): the same text, without parsing and
    writing it once more."""
    if not html:
        return ""
    parser = _TextExtractor()
    parser.feed(html)
    return parser.text()


#: Hosts whose images count opens, never illustrate an article.
TRACKER_HOSTS = frozenset(
    {
        "pixel.wp.com",
        "stats.wordpress.com",
        "feeds.feedburner.com",
        "feedproxy.google.com",
        "feeds.feedblitz.com",
        "www.google-analytics.com",
        "pixel.quantserve.com",
        "b.scorecardresearch.com",
        "sb.scorecardresearch.com",
    }
)
#: (host or parent domain, path prefix) pairs of trackers, emoji and author avatars.
_NOT_PICTURES = (
    ("medium.com", "/_/stat"),
    ("s.w.org", "/images/core/emoji/"),
    ("gravatar.com", "/avatar/"),  # also 0.…, 2.…, secure.gravatar.com
)
#: Path pieces of smilies, emoji and file-type icons (WordPress's ``wp-includes/images``).
_ICON_PATHS = re.compile(r"/emoji/|/smilies/|/wp-includes/images/", re.I)
#: Below this many pixels (declared width or height) an image is an icon or a pixel.
MIN_PICTURE_PX = 100


def _pixels(value: object) -> int | None:
    match = re.match(r"\s*(\d+)(?:\.\d*)?\s*(?:px)?\s*$", str(value)) if value else None
    return int(match.group(1)) if match else None


def is_picture(url: str | None, width: object = None, height: object = None) -> bool:
    """Whether an image could illustrate an article: an http(s) URL that is not a
    tracking pixel (known tracker hosts, Medium's ``stat``), an emoji, a smiley, a
    file-type icon or an avatar, and is not declared smaller than ``MIN_PICTURE_PX``
    on either side (a 1×1 pixel, a 72 px emoji).  ``data:`` URLs never are."""
    if not url or not _is_http(url):
        return False
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        return False
    if host in TRACKER_HOSTS or host.endswith(".doubleclick.net"):
        return False
    path = parts.path or "/"
    if any((host == h or host.endswith("." + h)) and path.startswith(p) for h, p in _NOT_PICTURES):
        return False
    if _ICON_PATHS.search(path):
        return False
    return all((px := _pixels(side)) is None or px >= MIN_PICTURE_PX for side in (width, height))


class _ImageLister(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.images: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            found = {k: v for k, v in attrs if v is not None}
            if found.get("src"):
                self.images.append(found)

    handle_startendtag = handle_starttag


def content_images(html: str) -> list[tuple[str, str | None, str | None, str]]:
    """Every ``<img>`` in an HTML fragment as (src, width, height, class), in order."""
    if "<img" not in html.lower():
        return []
    lister = _ImageLister()
    lister.feed(well_formed(html, {"img"}, {"img": {"src", "width", "height", "class", "style"}}))
    lister.close()
    return [_image_tuple(attrs) for attrs in lister.images]


def _image_tuple(attrs: dict[str, str]) -> tuple[str, str | None, str | None, str]:
    style = attrs.get("style", "")
    width = attrs.get("width") or _style_px(style, "width")
    height = attrs.get("height") or _style_px(style, "height")
    return attrs["src"], width, height, attrs.get("class", "")


def _style_px(style: str, prop: str) -> str | None:
    match = re.search(rf"(?:^|;)\s*{prop}\s*:\s*([\d.]+)(px|em)?", style, re.I)
    if not match:
        return None
    if match.group(2) and match.group(2).lower() == "em":
        return "16"  # "height: 1em": text-sized, an emoji or a smiley
    return match.group(1)


def content_picture(html: str, base: str | None = None) -> str | None:
    """The first image in an HTML fragment that could illustrate its article (see
    :func:`is_picture`; smilies and emoji marked by class count as icons), resolved
    against ``base``; None when there is none."""
    for src, width, height, classes in content_images(html):
        if re.search(r"\b(?:wp-smiley|emoji|avatar|icon)\b", classes, re.I):
            continue
        url = safe_url(src, base)
        if url and is_picture(url, width, height):
            return url
    return None


def first_image_src(html: str) -> str | None:
    """The ``src`` of the first ``<img>`` in an HTML fragment, as written (not yet checked)."""
    images = content_images(html)
    return images[0][0] if images else None


#: Markup written as text: ``&lt;img src=…&gt;``, ``&lt;/p&gt;``, ``&lt;br /&gt;``.
_ESCAPED_MARKUP = re.compile(
    r"&lt;(?:/(?:p|a|div|span|em|strong|b|i|ul|ol|li|figure|blockquote|h[1-6])\s*&gt;"
    r"|(?:img|a|p|div|span|figure|iframe|source|video)\s+[a-z-]+\s*=|br\s*/?\s*&gt;)",
    re.I,
)


def unescape_markup(html: str) -> str:
    """HTML whose markup was escaped once too often, decoded once.

    A feed that says its summary is HTML (Atom ``type="html"``) sometimes escapes
    it twice: the HTML then *shows* ``<img src=…>`` as text.  When the value holds
    escaped tags (an escaped element with attributes, a closing tag or ``<br>``),
    it is decoded once so those tags become markup again; ordinary text that
    merely mentions ``&lt;img&gt;`` is left alone.
    """
    return html_lib.unescape(html) if _ESCAPED_MARKUP.search(html) else html


_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")


def decode_entities(text: str) -> str:
    """Plain text with the HTML character references publishers put in it decoded
    (``Q&amp;A`` → ``Q&A``, ``&#8217;`` → ``’``).  Only complete references (with
    their ``;``) are decoded, so ``AT&T`` and ``R&D`` stay as they are."""
    if "&" not in text:
        return text
    return _ENTITY.sub(lambda m: html_lib.unescape(m.group(0)), text)


def text_to_html(text: str) -> str:
    """Plain text as HTML paragraphs (blank lines separate them)."""
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", _CONTROL.sub("", text or ""))]
    return "".join(f"<p>{html_lib.escape(p, quote=False)}</p>" for p in paragraphs if p)


def clean_text(value: str | None) -> str:
    """One line of text: control characters dropped, whitespace collapsed."""
    if not value:
        return ""
    return " ".join(_CONTROL.sub("", value).split())


def strip_controls(value: str) -> str:
    """``value`` without C0 control characters other than tab and newline (NUL included)."""
    return _CONTROL.sub("", value)


# ---------------------------------------------------------------------------
# Dates


def parse_date(value: object) -> datetime | None:
    """An ISO 8601 or RFC 2822 date as an aware UTC datetime (naive → UTC); else None."""
    if not isinstance(value, str) or not value.strip():
        return None
    value = value.strip()
    parsed: datetime | None = None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        try:
            parsed = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


# ---------------------------------------------------------------------------
# Bytes to text

_LATIN = {"latin_1", "iso8859_1", "cp1252", "ascii"} | {f"iso8859_{n}" for n in range(2, 17)}
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def bom_encoding(data: bytes) -> tuple[str | None, int]:
    """The encoding a byte-order mark announces, and the mark's length."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            return name, len(bom)
    return None, 0


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name.strip().strip("\"'")).name.replace("-", "_")
    except LookupError:
        return None


def decode_text(data: bytes, declared: str | None) -> tuple[str, str | None]:
    """Decode ``data`` whose document (or HTTP header) claims ``declared``.

    Returns the text and, when the claim was missing, wrong or unusable, a note
    saying what was done instead.  A byte-order mark wins; UTF-8 bytes labelled
    as a Latin code page are read as UTF-8 (valid non-ASCII UTF-8 almost never
    occurs by chance).  Bytes that are not valid in the claimed encoding (or in
    UTF-8 when nothing is claimed), and bytes labelled with a Latin code page
    that are really in another script's legacy encoding (KOI8-R, Shift_JIS,
    EUC-JP, windows-1255…), are given to a charset detector (charset-normalizer);
    when it finds no other script, Windows-1252, which every browser falls back to.
    """
    bom, skip = bom_encoding(data)
    if bom:
        return data[skip:].decode(bom, errors="replace"), None
    codec = _codec(declared)
    if codec and codec.startswith(("utf_16", "utf_32")) and b"\x00" not in data[:1024]:
        text, fallback = _utf8_or_detected(data)  # no BOM and no NUL bytes: not UTF-16/32
        return text, f"declared {declared} but the bytes are not; read as {fallback}"
    if declared and codec is None:
        note = f"unknown encoding {declared!r}"
        text, fallback = _utf8_or_detected(data)
        return text, f"{note}; read as {fallback}"
    if codec is None or codec == "utf_8":
        text, fallback = _utf8_or_detected(data)
        if fallback == "utf-8":
            return text, None
        what = "declared UTF-8" if declared else "no encoding declared"
        return text, f"{what} but the bytes are not UTF-8; read as {fallback}"
    if codec in _LATIN and not data.isascii():
        try:
            return data.decode("utf-8"), (
                f"declared {declared} but the bytes are UTF-8; read as UTF-8"
            )
        except UnicodeDecodeError:
            pass
        if found := detect_other_script(data):
            return found[0], f"declared {declared} but the text is {found[1]}; read as {found[1]}"
    try:
        return data.decode(codec), None
    except (UnicodeDecodeError, LookupError):
        text, fallback = _utf8_or_detected(data)
        return text, f"bytes are not valid {declared}; read as {fallback}"


#: How much of a document the detector looks at (it samples within this).
DETECT_BYTES = 256 * 1024
_CODEC_NAMES = {
    "koi8_r": "KOI8-R",
    "koi8_u": "KOI8-U",
    "cp932": "Shift_JIS",
    "shift_jis": "Shift_JIS",
    "shift_jis_2004": "Shift_JIS",
    "shift_jisx0213": "Shift_JIS",
    "euc_jp": "EUC-JP",
    "euc_jis_2004": "EUC-JP",
    "euc_jisx0213": "EUC-JP",
    "euc_kr": "EUC-KR",
    "cp949": "EUC-KR",
    "gb2312": "GB2312",
    "gbk": "GBK",
    "gb18030": "GB18030",
    "big5": "Big5",
    "iso2022_jp": "ISO-2022-JP",
    "mac_cyrillic": "Mac Cyrillic",
}


def encoding_label(codec: str) -> str:
    """A codec's usual name: ``cp1255`` → ``windows-1255``, ``koi8_r`` → ``KOI8-R``."""
    if codec in _CODEC_NAMES:
        return _CODEC_NAMES[codec]
    if match := re.fullmatch(r"cp(125\d)", codec):
        return f"windows-{match.group(1)}"
    if match := re.fullmatch(r"iso8859_(\d+)", codec):
        return f"ISO-8859-{match.group(1)}"
    return codec.replace("_", "-")


def _other_script(text: str) -> bool:
    """Whether most non-ASCII letters of ``text`` are beyond the Latin alphabets
    (Cyrillic, Greek, Hebrew, Arabic, CJK, Thai…)."""
    letters = [c for c in text if c.isalpha() and ord(c) > 0x7F]
    if len(letters) < 3:
        return False
    beyond = sum(1 for c in letters if ord(c) > 0x24F)
    return beyond / len(letters) > 0.8


def detect_other_script(data: bytes) -> tuple[str, str] | None:
    """``data`` decoded as the legacy encoding of a non-Latin script that a charset
    detector finds in it, and that encoding's name; None when it finds none.

    Only other scripts are taken from the detector: on Latin text (a few accented
    letters in English or French) detectors often name a wrong Latin code page,
    where Windows-1252 is right.
    """
    from charset_normalizer import from_bytes  # imported when needed: it loads tables

    sample = data[:DETECT_BYTES]
    if len(data) > DETECT_BYTES:
        cut = sample.rfind(b"\n")  # a whole line: no multi-byte character cut in two
        sample = sample[:cut] if cut > 0 else sample
    best = from_bytes(sample).best()
    if best is None or best.encoding in ("utf_8", "ascii") or best.encoding.startswith("utf_"):
        return None
    try:
        text = data.decode(best.encoding, errors="replace")
    except LookupError:
        return None
    if not _other_script(text):
        return None
    return text, encoding_label(best.encoding)


def _utf8_or_detected(data: bytes) -> tuple[str, str]:
    """``data`` as UTF-8 when it is; else as the detected legacy encoding of another
    script; else as Windows-1252.  With the name of what it was read as."""
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    if found := detect_other_script(data):
        return found
    # cp1252 leaves five bytes undefined; "replace" keeps those as U+FFFD.
    return data.decode("cp1252", errors="replace"), "Windows-1252"

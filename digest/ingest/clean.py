"""Making untrusted feed and page content safe and uniform.

URLs are canonicalised (so one article has one key however it is linked) and
checked (only ``http``/``https`` ever reach an email); summary HTML is cut down
to a small allowlist with nh3; text is decoded from bytes whatever the feed
claims its encoding is; dates become timezone-aware UTC datetimes.
"""

from __future__ import annotations

import codecs
import html as html_lib
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from urllib.parse import unquote_plus, urljoin, urlsplit, urlunsplit

import nh3

ALLOWED_TAGS = frozenset({"p", "a", "em", "strong", "b", "i", "ul", "ol", "li", "br", "blockquote"})
#: Tags removed together with everything inside them (not just unwrapped).
DROPPED_WITH_CONTENT = frozenset(
    {"script", "style", "template", "noscript", "iframe", "object", "svg", "math", "title"}
)
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


# ---------------------------------------------------------------------------
# URLs


def _is_http(url: str | None) -> bool:
    return bool(url) and urlsplit(url or "").scheme.lower() in _SAFE_SCHEMES


def _prepare(url: str, base: str | None) -> str:
    url = _URL_IGNORED.sub("", url).strip(_URL_STRIPPED)
    url = _URL_UNSAFE.sub(lambda m: f"%{ord(m.group()):02X}", _CONTROL.sub("", url))
    if base and _is_http(base) and not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", url):
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


def canonical_url(url: str, base: str | None = None) -> str:
    """The one spelling of ``url`` used as an article's key.

    Relative URLs are resolved against ``base``; ``utm_*`` parameters and the
    ``#fragment`` are dropped; the scheme and host are lowercased and a default
    port removed; an empty path becomes ``/``.  Other query parameters keep
    their order (the link must still work when a reader follows it).
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
    return urlunsplit((scheme, netloc, path, query, ""))


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
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[str] = []
        self._current: list[str] = []
        self._skip = 0

    def _break(self) -> None:
        lines = "".join(self._current).split(_BR)
        text = "\n".join(" ".join(line.split()) for line in lines).strip()
        if text:
            self.blocks.append(text)
        self._current = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self._skip += 1
        elif tag == "br":
            self._current.append(_BR)
        elif tag in _BLOCKS:
            self._break()
            if tag == "li":
                self._current.append("- ")

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

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self._current.append(data)

    def text(self) -> str:
        self.close()
        self._break()
        return "\n\n".join(self.blocks)


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
    parser = _TextExtractor()
    parser.feed(well_formed(html, set(_BLOCKS | {"br"})))
    return parser.text()


def first_image_src(html: str) -> str | None:
    """The ``src`` of the first ``<img>`` in an HTML fragment, as written (not yet checked)."""
    if "<img" not in html.lower():
        return None
    found: list[str] = []

    def collect(tag: str, attr: str, value: str) -> str | None:
        if tag == "img" and attr == "src" and not found:
            found.append(value)
        return None

    nh3.clean(_CONTROL.sub("", html), tags={"img"}, attributes={"img": {"src"}},
              attribute_filter=collect)  # fmt: skip
    return found[0] if found else None


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

    Returns the text and, when the claim was wrong or unusable, a note saying
    what was done instead.  A byte-order mark wins; UTF-8 bytes labelled as a
    Latin code page are read as UTF-8 (valid non-ASCII UTF-8 almost never occurs
    by chance); bytes that are not valid in the claimed encoding (or UTF-8 when
    nothing is claimed) fall back to Windows-1252, which every browser uses.
    """
    bom, skip = bom_encoding(data)
    if bom:
        return data[skip:].decode(bom, errors="replace"), None
    codec = _codec(declared)
    if codec and codec.startswith(("utf_16", "utf_32")) and b"\x00" not in data[:1024]:
        text, fallback = _utf8_or_cp1252(data)  # no BOM and no NUL bytes: not UTF-16/32
        return text, f"declared {declared} but the bytes are not; read as {fallback}"
    if declared and codec is None:
        note = f"unknown encoding {declared!r}"
        text, fallback = _utf8_or_cp1252(data)
        return text, f"{note}; read as {fallback}"
    if codec is None or codec == "utf_8":
        text, fallback = _utf8_or_cp1252(data)
        if fallback == "utf-8":
            return text, None
        what = "declared UTF-8" if declared else "no encoding declared"
        return text, f"{what} but the bytes are not UTF-8; read as Windows-1252"
    if codec in _LATIN and not data.isascii():
        try:
            return data.decode("utf-8"), (
                f"declared {declared} but the bytes are UTF-8; read as UTF-8"
            )
        except UnicodeDecodeError:
            pass
    try:
        return data.decode(codec), None
    except (UnicodeDecodeError, LookupError):
        text, fallback = _utf8_or_cp1252(data)
        return text, f"bytes are not valid {declared}; read as {fallback}"


def _utf8_or_cp1252(data: bytes) -> tuple[str, str]:
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        # cp1252 leaves five bytes undefined; "replace" keeps those as U+FFFD.
        return data.decode("cp1252", errors="replace"), "Windows-1252"

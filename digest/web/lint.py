"""Checks an editor wants before sending: size against Gmail's clip, images without
``alt``, malformed links, leftover placeholders, empty sections, missing subject.

Each finding is a :class:`Finding` with a level: ``error`` (readers will see
something broken: a clipped message, a dead link), ``warning`` (worth fixing) or
``note`` (good to know).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urlsplit

from digest.compose import HTML_WARN_BYTES
from digest.templating import locale_warning

#: Gmail clips an HTML body larger than about 102 KB behind "View entire message".
GMAIL_CLIP_BYTES = 102 * 1024
#: Past this, warn: personal fields and tracking make the sent message a little larger.
SIZE_WARN_BYTES = HTML_WARN_BYTES  # as `digest compose` warns
SUBJECT_NOTE_CHARS = 78

_SCHEMES = {"http", "https", "mailto", "tel"}


@dataclass(frozen=True)
class Finding:
    level: str  # "error", "warning" or "note"
    message: str


class _Scan(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.images: list[dict[str, str | None]] = []
        self.links: list[dict[str, str | None]] = []
        self._open_link: dict[str, str | None] | None = None
        self._link_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        if tag == "img":
            self.images.append(attr)
            if self._open_link is not None and (attr.get("alt") or "").strip():
                self._link_text.append(attr["alt"] or "")
        elif tag == "a":
            self._close_link()
            self._open_link = attr
            self._link_text = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._close_link()

    def handle_data(self, data: str) -> None:
        if self._open_link is not None:
            self._link_text.append(data)

    def _close_link(self) -> None:
        if self._open_link is not None:
            self._open_link["_text"] = " ".join("".join(self._link_text).split())
            self.links.append(self._open_link)
            self._open_link = None

    def close(self) -> None:
        super().close()
        self._close_link()


def link_problem(href: str | None) -> str | None:
    """Why ``href`` is not a working link, or None when it is fine."""
    if href is None:
        return "has no href"
    value = href.strip()
    if not value:
        return "has an empty href"
    if value.startswith("#"):
        return f"points to {value!r} on the page itself, which goes nowhere in an email"
    if "~~digest." in value:
        return f"still holds a placeholder ({value[:60]})"
    if any(c.isspace() for c in value):
        return f"contains spaces ({value[:60]!r})"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return f"is not a valid URL ({value[:60]!r})"
    scheme = parts.scheme.lower()
    if not scheme:
        return f"is relative ({value[:60]!r}); email links must be absolute"
    if scheme not in _SCHEMES:
        return f"uses the {scheme}: scheme ({value[:60]!r})"
    if scheme in {"http", "https"} and not parts.hostname:
        return f"has no host ({value[:60]!r})"
    return None


def check_html(html: str) -> list[Finding]:
    """Images without ``alt``, malformed links and links without text in an HTML body."""
    scan = _Scan()
    scan.feed(html)
    scan.close()
    found: list[Finding] = []
    for image in scan.images:
        if "alt" not in image:
            src = (image.get("src") or "")[:80]
            found.append(Finding("warning", f"image without alt text: {src or '(no src)'}"))
    for link in scan.links:
        text = link.get("_text") or ""
        problem = link_problem(link.get("href"))
        label = f"link {text[:40]!r}" if text else "a link"
        if problem:
            found.append(Finding("error", f"{label} {problem}"))
        elif not text:
            href = (link.get("href") or "")[:60]
            found.append(
                Finding("warning", f"link without text (screen readers say nothing): {href}")
            )
    return found


def check_locale(locale: str) -> list[Finding]:
    """A newsletter whose interface words have no translation into its ``locale``."""
    problem = locale_warning(locale)
    return [] if problem is None else [Finding("warning", f"locale: {problem}")]


def check_size(html_bytes: int) -> list[Finding]:
    kb = html_bytes / 1024
    if html_bytes > GMAIL_CLIP_BYTES:
        return [
            Finding(
                "error",
                f"the HTML is {kb:.0f} KB: Gmail clips it (over 102 KB), hiding the end and "
                "the unsubscribe link; lower max_per_category or shorten the templates",
            )
        ]
    if html_bytes > SIZE_WARN_BYTES:
        return [Finding("warning", f"the HTML is {kb:.0f} KB, close to Gmail's 102 KB clip")]
    return []


def check_text(text: str) -> list[Finding]:
    if not text.strip():
        return [Finding("warning", "the plain-text version is empty")]
    if "~~digest." in text:
        return [Finding("error", "the plain-text version still holds a placeholder")]
    return []


def check_headers(subject: str, preheader: str) -> list[Finding]:
    found = []
    if not subject.strip():
        found.append(Finding("error", "the subject is empty"))
    elif len(subject) > SUBJECT_NOTE_CHARS:
        found.append(
            Finding("note", f"the subject is {len(subject)} characters; phones show about 40")
        )
    if not preheader.strip():
        found.append(Finding("warning", "the preheader is empty: inboxes will show body text"))
    return found


def check_sections(configured: Sequence[str], present: Sequence[str]) -> list[Finding]:
    """Configured categories with no articles in this period."""
    have = set(present)
    return [
        Finding(
            "warning",
            f"empty section: {name!r} has no articles this period; readers who chose only "
            "it get no email",
        )
        for name in configured
        if name not in have
    ]


__all__ = [
    "GMAIL_CLIP_BYTES",
    "SIZE_WARN_BYTES",
    "Finding",
    "check_headers",
    "check_html",
    "check_locale",
    "check_sections",
    "check_size",
    "check_text",
    "link_problem",
]

"""The editor's intro to an edition: Markdown to safe HTML and to its plain-text twin.

The HTML comes from markdown-it-py (CommonMark, raw HTML off) and is then cleaned with
nh3 to a short list of tags, http(s)/mailto links only.  The text twin is rendered
from the same tokens: paragraphs, ``- `` lists, ``1. `` lists, headings in capitals,
links as ``text (url)``.  Both are neutralised (:func:`~.placeholders.neutralise`), so
no intro can spell a personalisation placeholder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token
from markupsafe import Markup

from digest.templating.placeholders import neutralise

#: The longest intro an editor may write (characters of Markdown).
MAX_NOTE_CHARS = 10_000

_TAGS = {"p", "a", "strong", "em", "ul", "ol", "li", "br", "h3", "h4", "blockquote", "code"}
_URL_SCHEMES = {"http", "https", "mailto"}


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.disable(["image", "html_inline", "html_block", "code_block", "fence", "table"], True)
    return md


_MD = _parser()


@dataclass(frozen=True)
class Note:
    """An intro rendered: ``html`` (safe markup) and ``text`` (its plain twin)."""

    markdown: str
    html: Markup
    text: str

    def __bool__(self) -> bool:
        return bool(self.markdown.strip())


def render_note(markdown: str) -> Note:
    """``markdown`` as sanitised HTML and plain text (empty for blank input)."""
    source = (markdown or "").replace("\r\n", "\n").strip()
    if not source:
        return Note("", Markup(""), "")
    # headings shrink to h3/h4: the email's h1 is the title, its h2s the sections
    tokens = _MD.parse(source)
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = "h3" if token.tag in ("h1", "h2", "h3") else "h4"
    raw = _MD.renderer.render(tokens, _MD.options, {})
    clean = nh3.clean(
        raw,
        tags=_TAGS,
        attributes={"a": {"href"}},
        url_schemes=_URL_SCHEMES,
        link_rel="noopener",
    )
    return Note(source, Markup(neutralise(clean)), neutralise(_text(tokens)))


def _inline_text(token: Token) -> str:
    out: list[str] = []
    href: str | None = None
    start = 0
    for child in token.children or []:
        kind = child.type
        if kind in ("text", "code_inline"):
            out.append(child.content)
        elif kind in ("softbreak", "hardbreak"):
            out.append("\n" if kind == "hardbreak" else " ")
        elif kind == "link_open":
            href = str(child.attrs.get("href", ""))
            start = len(out)
        elif kind == "link_close" and href is not None:
            label = "".join(out[start:])
            if href and href != label and href.split(":", 1)[0].lower() in _URL_SCHEMES:
                out.append(f" ({href})")
            href = None
    return "".join(out)


def _text(tokens: list[Token]) -> str:
    # (text, the top-level list it belongs to or None): items of one list share lines
    blocks: list[tuple[str, int | None]] = []
    lists: list[dict[str, Any]] = []
    heading = False
    quote = 0
    list_no = 0
    for token in tokens:
        kind = token.type
        if kind in ("bullet_list_open", "ordered_list_open"):
            if not lists:
                list_no += 1
            lists.append({"ordered": kind == "ordered_list_open", "n": 0})
        elif kind in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
        elif kind == "list_item_open" and lists:
            lists[-1]["n"] += 1
        elif kind == "heading_open":
            heading = True
        elif kind == "heading_close":
            heading = False
        elif kind == "blockquote_open":
            quote += 1
        elif kind == "blockquote_close":
            quote -= 1
        elif kind == "inline":
            text = _inline_text(token)
            if heading:
                text = text.upper()
            if lists:
                current = lists[-1]
                marker = f"{current['n']}." if current["ordered"] else "-"
                text = f"{'  ' * (len(lists) - 1)}{marker} {text}"
            if quote:
                text = "\n".join("> " + line for line in text.split("\n"))
            blocks.append((text, list_no if lists else None))
    out: list[str] = []
    previous: int | None = None
    for text, in_list in blocks:
        if out and in_list is not None and in_list == previous:
            out[-1] += "\n" + text
        else:
            out.append(text)
        previous = in_list
    return "\n\n".join(out)


__all__ = ["MAX_NOTE_CHARS", "Note", "render_note"]

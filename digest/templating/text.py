"""Plain text: summaries trimmed at a sentence, lines wrapped for the text part."""

from __future__ import annotations

import functools
import re
import textwrap

TEXT_WIDTH = 78
#: The line before a signature or footer, "dash dash space": mail programs recognise it
#: (they grey out or leave out what follows in replies); without the space it is text.
SIGNATURE_SEPARATOR = "-- "
SUMMARY_LIMIT = 240

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
    """Wrap every line longer than ``width`` at spaces, keeping its indent, and strip
    trailing whitespace (except from a signature separator line, ``"-- "``).

    Words are never split, so a URL longer than ``width`` stays whole on a
    line of its own.  A line starting with a list marker (``- ``, ``* ``,
    ``1. ``) continues under the text, not under the marker.
    """
    out: list[str] = []
    for line in text.splitlines():
        if line == SIGNATURE_SEPARATOR:
            out.append(line)  # its trailing space is what makes it one (RFC 3676, 4.3)
            continue
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


__all__ = ["SIGNATURE_SEPARATOR", "SUMMARY_LIMIT", "TEXT_WIDTH", "trim_summary", "wrap_text"]

"""One source's entries made one per article: fragments settled, repeats dropped and said.

Two rules, applied to each source's entries before they are stored
(:func:`within_source`):

* **Fragments.**  A canonical URL loses its ``#fragment``, except when that
  would make entries whose ids differ share one URL: a site that publishes
  several posts a day on one page (``/2026/11/23#a``, ``#b``…, each with its
  own ``<guid>``) keeps one article per post.
* **Repeats.**  Entries that still share a link (a sponsor slot repeated under
  new titles, an entry listed twice) or an id are one article: the first entry,
  the newest in a feed's usual order, is kept and every other one is reported
  as merged, with the entry it was merged into.

Matching against articles already stored (from this or other sources) is
:mod:`digest.ingest.store`'s job.
"""

from __future__ import annotations

from digest.ingest.clean import without_fragment
from digest.ingest.feeds import Dropped, Entry, Parsed

#: Longest article URL stored (the column's size).
MAX_URL = 2048


def _identity(entry: Entry) -> str:
    return f"id:{entry.guid}" if entry.guid else f"title:{entry.title}"


def _fragment(url: str) -> str:
    return url.split("#", 1)[1] if "#" in url else ""


def settle_fragments(entries: list[Entry]) -> None:
    """Drop each entry's URL fragment unless it tells apart entries with different ids."""
    groups: dict[str, list[Entry]] = {}
    for entry in entries:
        groups.setdefault(without_fragment(entry.url), []).append(entry)
    for url, group in groups.items():
        ids = {_identity(e) for e in group}
        fragments = {_fragment(e.url) for e in group}
        if len(ids) > 1 and len(fragments) > 1:
            continue  # the fragments tell these entries apart: keep them
        for entry in group:
            entry.url = url


def _name(entry: Entry) -> str:
    return f"“{entry.title}”" if entry.title else entry.url


def drop_repeats(entries: list[Entry]) -> tuple[list[Entry], list[Dropped]]:
    """The entries to store, one per link and id, and the ones merged into them."""
    kept: list[Entry] = []
    dropped: list[Dropped] = []
    by_url: dict[str, Entry] = {}
    by_guid: dict[str, Entry] = {}
    for entry in entries:
        if len(entry.url) > MAX_URL:
            dropped.append(
                Dropped(
                    "skipped",
                    f"its link is longer than {MAX_URL} characters",
                    title=entry.title,
                    url=entry.url[:200] + "…",
                    guid=entry.guid,
                )
            )
            continue
        if (first := by_url.get(entry.url)) is not None:
            if entry.guid and entry.guid == first.guid:
                reason = f"listed twice in the feed; kept its first copy, {_name(first)}"
            else:
                reason = (
                    f"same link as {_name(first)}, which is kept: entries sharing a link "
                    "(a sponsor slot, a repeated post) are one article"
                )
        elif entry.guid and (first := by_guid.get(entry.guid)) is not None:
            reason = f"same id as {_name(first)}, which is kept (its newer copy)"
        else:
            by_url[entry.url] = entry
            if entry.guid:
                by_guid[entry.guid] = entry
            kept.append(entry)
            continue
        dropped.append(Dropped("merged", reason, title=entry.title, url=entry.url, guid=entry.guid))
    return kept, dropped


def within_source(parsed: Parsed) -> Parsed:
    """``parsed`` with its entries settled as described in the module doc (in place)."""
    settle_fragments(parsed.entries)
    parsed.entries, repeats = drop_repeats(parsed.entries)
    parsed.dropped.extend(repeats)
    return parsed


__all__ = ["MAX_URL", "drop_repeats", "settle_fragments", "within_source"]

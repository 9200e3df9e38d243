"""Writing a source's entries as articles: dedupe, update in place, remember the source.

An article is one row per canonical URL.  An entry also matches an existing
article through its GUID: across every source when the GUID is globally unique
by construction (a URL, ``tag:``, ``urn:`` or UUID), otherwise only within the
same source (plain numbers like ``"42"`` are reused by many feeds).

The source that first stored an article owns it: only the owner's changes
update it.  When the same article appears in two feeds (an RSS and an Atom feed
of one site, say) their copies never overwrite each other back and forth on
every run; the other feed's copy counts as unchanged.

A re-ingest compares ``content_hash`` (SHA-256 of the fields we store) and
writes nothing when it matches.  ``first_seen_at`` and ``pinned`` are never
changed by an update; a date-less entry keeps the date it was first given.

Inserts use the dialect's ``INSERT … ON CONFLICT DO NOTHING`` (SQLite and
PostgreSQL), so two ingests racing on one new article cannot both insert it:
the loser finds the winner's row and treats its entry as an update.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from digest.config import category_key
from digest.ingest.clean import strip_controls
from digest.ingest.feeds import Entry, Parsed
from digest.ingest.http import Fetched
from digest.models import Article, Source

MAX_URL = 2048
MAX_ETAG = 512
MAX_LAST_MODIFIED = 100
MAX_AUTHOR = 300
MAX_CATEGORY = 100
MAX_CATEGORIES = 20
_GLOBAL_GUID = re.compile(
    r"^(?:https?://|tag:|urn:)|^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
    re.I,
)


@dataclass
class Counts:
    new: int = 0
    updated: int = 0
    unchanged: int = 0


def is_global_guid(guid: str) -> bool:
    """Whether ``guid`` is unique across publishers by construction."""
    return bool(_GLOBAL_GUID.search(guid))


def normalise_categories(labels: list[str], aliases: dict[str, str]) -> list[str]:
    """Labels mapped through the configured aliases; unknown ones kept, duplicates dropped."""
    out: dict[str, str] = {}
    for label in labels:
        spaced = " ".join(strip_controls(label).split())[:MAX_CATEGORY]
        if not spaced:
            continue
        name = aliases.get(category_key(spaced), spaced)
        out.setdefault(category_key(name) or name, name)  # first spelling wins
    return list(out.values())[:MAX_CATEGORIES]


def _fields(entry: Entry, aliases: dict[str, str]) -> dict[str, Any]:
    guid = entry.guid if entry.guid and len(entry.guid) <= MAX_URL else None
    image = entry.image_url if entry.image_url and len(entry.image_url) <= MAX_URL else None
    # Parsers already clean these; NUL is stripped once more because PostgreSQL
    # rejects it in text, and a single bad entry must not fail its whole source.
    return {
        "canonical_url": entry.url,
        "guid": strip_controls(guid) if guid else None,
        "title": strip_controls(entry.title) or "Untitled",
        "summary_html": strip_controls(entry.summary_html),
        "summary_text": strip_controls(entry.summary_text),
        "author": strip_controls(entry.author)[:MAX_AUTHOR],
        "categories": normalise_categories(entry.categories, aliases),
        "image_url": image,
    }


def content_hash(fields: dict[str, Any], published_at: datetime | None) -> str:
    """SHA-256 of the stored fields (a missing date hashes as missing, not as 'now')."""
    payload = dict(fields, published_at=published_at.isoformat() if published_at else None)
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------
# Sources


def _insert_ignore(session: Session, table: Table, values: dict[str, Any], key: str) -> int | None:
    """Insert a row unless ``key`` already exists; the new id, or None on conflict."""
    dialect = session.get_bind().dialect.name
    builder = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = (
        builder(table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[key])
        .returning(table.c.id)
    )
    return session.execute(stmt).scalar_one_or_none()


def source_row(session: Session, ref: str, kind: str) -> Source:
    """The Source row for ``ref``, created when missing (safe against a racing ingest)."""
    found = session.scalars(select(Source).where(Source.url == ref)).one_or_none()
    if found is not None:
        return found
    _insert_ignore(session, Source.__table__, {"url": ref, "kind": kind}, "url")  # type: ignore[arg-type]
    return session.scalars(select(Source).where(Source.url == ref)).one()


def conditional_state(session: Session, ref: str) -> tuple[str | None, str | None]:
    """The ETag and Last-Modified remembered from the last successful fetch of ``ref``."""
    row = session.execute(
        select(Source.etag, Source.last_modified).where(Source.url == ref)
    ).one_or_none()
    return (row.etag, row.last_modified) if row else (None, None)


def _remember_validators(source: Source, fetched: Fetched) -> None:
    """Keep ETag/Last-Modified for the next conditional GET (unless absurdly long)."""
    etag, modified = fetched.etag, fetched.last_modified
    source.etag = strip_controls(etag) if etag and len(etag) <= MAX_ETAG else None
    source.last_modified = (
        strip_controls(modified) if modified and len(modified) <= MAX_LAST_MODIFIED else None
    )


def record_error(session: Session, ref: str, kind: str, error: str, now: datetime) -> None:
    source = source_row(session, ref, kind)
    source.last_error = error
    source.last_fetched_at = now


def record_not_modified(session: Session, ref: str, fetched: Fetched, now: datetime) -> int:
    """Note a ``304``; returns how many articles this source owns (all unchanged)."""
    source = source_row(session, ref, "auto")
    _remember_validators(source, fetched)
    source.last_error = None
    source.last_fetched_at = now
    return (
        session.scalar(
            select(func.count()).select_from(Article).where(Article.source_id == source.id)
        )
        or 0
    )


# ---------------------------------------------------------------------------
# Articles


def store_parsed(
    session: Session,
    ref: str,
    parsed: Parsed,
    fetched: Fetched,
    *,
    now: datetime,
    aliases: dict[str, str],
) -> Counts:
    """Write ``parsed``'s entries and the source's fetch state, in the caller's transaction."""
    source = source_row(session, ref, parsed.kind)
    source.kind = parsed.kind
    _remember_validators(source, fetched)
    source.last_error = None
    source.last_fetched_at = now
    counts = Counts()
    seen_urls: set[str] = set()
    seen_guids: set[str] = set()
    for entry in parsed.entries:
        if len(entry.url) > MAX_URL or entry.url in seen_urls:
            continue
        if entry.guid and entry.guid in seen_guids:
            continue  # the feed lists one article twice: keep its first (newest) copy
        seen_urls.add(entry.url)
        if entry.guid:
            seen_guids.add(entry.guid)
        outcome = _store_entry(session, source, entry, now=now, aliases=aliases)
        setattr(counts, outcome, getattr(counts, outcome) + 1)
    return counts


def _find(session: Session, source: Source, url: str, guid: str | None) -> Article | None:
    found = session.scalars(select(Article).where(Article.canonical_url == url)).one_or_none()
    if found is not None or not guid:
        return found
    query = select(Article).where(Article.guid == guid)
    if not is_global_guid(guid):
        query = query.where(Article.source_id == source.id)
    return session.scalars(query.order_by(Article.id).limit(1)).first()


def _store_entry(
    session: Session, source: Source, entry: Entry, *, now: datetime, aliases: dict[str, str]
) -> str:
    fields = _fields(entry, aliases)
    digest = content_hash(fields, entry.published_at)
    article = _find(session, source, entry.url, fields["guid"])
    if article is None:
        values = {
            **fields,
            "published_at": entry.published_at or now,
            "date_estimated": entry.published_at is None,
            "first_seen_at": now,
            "updated_at": now,
            "content_hash": digest,
            "source_id": source.id,
        }
        if _insert_ignore(session, Article.__table__, values, "canonical_url") is not None:  # type: ignore[arg-type]
            return "new"
        # Another ingest inserted it a moment ago: carry on as an update of that row.
        article = session.scalars(select(Article).where(Article.canonical_url == entry.url)).one()
    if article.source_id not in (None, source.id):
        return "unchanged"  # owned by another source; see the module docstring
    if article.content_hash == digest:
        if article.source_id is None:
            article.source_id = source.id
        return "unchanged"
    for name, value in fields.items():
        setattr(article, name, value)
    if entry.published_at is not None:
        article.published_at = entry.published_at
        article.date_estimated = False
    article.content_hash = digest
    article.source_id = source.id
    article.updated_at = now
    return "updated"


__all__ = [
    "Counts",
    "conditional_state",
    "content_hash",
    "is_global_guid",
    "normalise_categories",
    "record_error",
    "record_not_modified",
    "source_row",
    "store_parsed",
]

"""Writing a source's entries as articles: dedupe, update in place, remember the sources.

An article is one row per canonical URL.  An entry is the same article as one
already stored when (in this order):

1. their canonical URLs are equal;
2. their URLs differ only in scheme, a leading ``www.`` or a trailing slash
   (:func:`~digest.ingest.clean.url_variants`);
3. they share a GUID: across every source when it is globally unique by
   construction (a URL, ``tag:``, ``urn:`` or UUID), otherwise only within the
   same source (plain numbers like ``"42"`` are reused by many feeds);
4. the entry comes from another source than the one that stored the article,
   from the same site (host without ``www.``), with the same normalised title,
   published within ``SAME_TITLE_WINDOW`` (48 hours) of it: a site's Atom and
   JSON feeds that spell their links differently.  Within one source, equal
   titles are different posts (a daily "Morning briefing"); among several
   candidates the one published closest in time is taken.

Every source an article is seen in is recorded in ``article_source``: a
newsletter's articles are those seen in one of its sources.  The source that
first stored an article owns it: only the owner's changes update it, so two
feeds' copies never overwrite each other back and forth on every run.  Another
source's copy is reported as *merged* the first time it is seen (with the
article it was merged into), and as unchanged after that.

A re-ingest compares ``content_hash`` (SHA-256 of the fields we store) and
writes nothing when it matches.  Before that, a feed entry whose raw hash (SHA-256 of
the entry as feedparser gave it, with the cleaning code and the category aliases: see
:func:`raw_context`) equals the ``raw_hash`` of the article this source stored under
its exact link is unchanged without being cleaned or compared field by field: the
raw entry is what the stored fields were cleaned from.  ``first_seen_at`` and ``pinned`` are never
changed by an update; a date-less entry keeps the date it was first given.

Inserts use the dialect's ``INSERT … ON CONFLICT DO NOTHING`` (SQLite and
PostgreSQL), so two ingests racing on one new article cannot both insert it:
the loser finds the winner's row and treats its entry as an update.  A source's
new articles wait and are inserted together, a page of rows per statement, before
anything that could see them is read (a lookup by link or id, a link change) and
at the end of the source.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

from sqlalchemy import Table, func, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

import digest.ingest.clean as clean_module
import digest.ingest.dedupe as dedupe_module
import digest.ingest.feeds as feeds_module
from digest.config import category_key
from digest.ingest.clean import strip_controls, title_key, url_variants
from digest.ingest.dedupe import MAX_URL
from digest.ingest.feeds import Dropped, Entry, Parsed
from digest.ingest.http import Fetched
from digest.models import Article, ArticleSource, Source

#: Another feed's entry from the same site with the same title, published within
#: this long of an article, is that article.
SAME_TITLE_WINDOW = timedelta(hours=48)
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
    #: Entries merged into an article another source stored (each also in ``dropped``).
    merged: int = 0
    #: Entries not stored as articles of their own, with why.
    dropped: list[Dropped] = field(default_factory=list)


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
    title = strip_controls(entry.title) or "Untitled"
    return {
        "canonical_url": entry.url,
        "guid": strip_controls(guid) if guid else None,
        "title": title,
        "title_key": title_key(title, entry.url),
        "summary_html": strip_controls(entry.summary_html),
        "summary_text": strip_controls(entry.summary_text),
        "author": strip_controls(entry.author)[:MAX_AUTHOR],
        "categories": normalise_categories(entry.categories, aliases),
        "image_url": image,
    }


def content_hash(fields: dict[str, Any], published_at: datetime | None) -> str:
    """SHA-256 of the stored fields (a missing date hashes as missing, not as 'now').

    ``title_key`` is derived from the title and URL, so it is left out: articles
    stored before it existed hash the same."""
    payload = {k: v for k, v in fields.items() if k != "title_key"}
    payload["published_at"] = published_at.isoformat() if published_at else None
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@cache
def _cleaning_code() -> str:
    """A fingerprint of the code that turns a raw feed entry into stored fields: a new
    version of it cleans every entry once more (as ``content_hash`` always did)."""
    versions = "\n".join(package_version(name) for name in ("feedparser", "nh3"))
    digest_ = hashlib.sha256(versions.encode())
    for name, file in (
        (clean_module.__name__, clean_module.__file__),
        (feeds_module.__name__, feeds_module.__file__),
        (dedupe_module.__name__, dedupe_module.__file__),
        (__name__, __file__),
    ):
        try:
            digest_.update(Path(file or "").read_bytes())
        except OSError:  # no source file (a frozen build): its version stands for it
            digest_.update(f"{name} {package_version('digest')}".encode())
    try:  # category labels are folded by digest.config's category_key
        digest_.update(inspect.getsource(category_key).encode())
    except (OSError, TypeError):
        digest_.update(package_version("digest").encode())
    return digest_.hexdigest()


def raw_context(aliases: dict[str, str]) -> str:
    """What besides a raw entry its stored fields depend on: the cleaning code and the
    category aliases (part of :func:`~digest.ingest.feeds.raw_entry_hash`)."""
    return _cleaning_code() + json.dumps(aliases, sort_keys=True, ensure_ascii=False)


def stored_raw_hashes(session: Session, ref: str) -> frozenset[str]:
    """The raw hashes of the articles the source at ``ref`` owns (see the module doc)."""
    return frozenset(
        session.scalars(
            select(Article.raw_hash)
            .join(Source, Article.source_id == Source.id)
            .where(Source.url == ref, Article.raw_hash.is_not(None))
        )
    )


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


def _insert_articles(session: Session, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Insert articles (rows of the same columns) unless their link exists already, a
    page of rows per statement; the new ids by link (a link stored already is missing)."""
    dialect = session.get_bind().dialect.name
    stmt = _ARTICLE_INSERTS.get(dialect)
    if stmt is None:
        table: Table = Article.__table__  # type: ignore[assignment]
        builder = pg_insert if dialect == "postgresql" else sqlite_insert
        stmt = _ARTICLE_INSERTS[dialect] = (
            builder(table)
            .on_conflict_do_nothing(index_elements=["canonical_url"])
            .returning(table.c.id, table.c.canonical_url)
        )
    ids: dict[str, int] = {}
    for start in range(0, len(rows), 500):
        result = session.connection().execute(stmt, rows[start : start + 500])
        ids.update((url, article_id) for article_id, url in result)
    return ids


_ARTICLE_INSERTS: dict[str, Any] = {}


def _link(session: Session, article_ids: list[int], source_id: int, now: datetime) -> None:
    """Record that the articles were seen in ``source_id`` (those already recorded, by a
    racing ingest say, stay as they are)."""
    if not article_ids:
        return
    dialect = session.get_bind().dialect.name
    builder = pg_insert if dialect == "postgresql" else sqlite_insert
    table: Table = ArticleSource.__table__  # type: ignore[assignment]
    stmt = builder(table).on_conflict_do_nothing(index_elements=["article_id", "source_id"])
    rows = [{"article_id": a, "source_id": source_id, "first_seen_at": now} for a in article_ids]
    for start in range(0, len(rows), 1000):
        session.execute(stmt, rows[start : start + 1000])


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
    """Note a ``304``; returns how many articles this source has (all unchanged)."""
    source = source_row(session, ref, "auto")
    _remember_validators(source, fetched)
    source.last_error = None
    source.last_fetched_at = now
    return (
        session.scalar(
            select(func.count())
            .select_from(ArticleSource)
            .where(ArticleSource.source_id == source.id)
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
    """Write ``parsed``'s entries and the source's fetch state, in the caller's transaction.

    ``parsed`` is expected to be one entry per article already
    (:func:`digest.ingest.dedupe.within_source`); an entry repeating an earlier
    one's link or id is merged into it all the same, and reported.
    """
    source = source_row(session, ref, parsed.kind)
    source.kind = parsed.kind
    _remember_validators(source, fetched)
    source.last_error = None
    source.last_fetched_at = now
    counts = Counts()
    seen_urls: set[str] = set()
    seen_guids: set[str] = set()
    linked = set(session.scalars(_source_articles(source)))
    same_raw = _same_raw(session, source, parsed.entries)
    rest = [e for e in parsed.entries if e.url not in same_raw]
    batch = _Batch(
        # The articles this source was seen in already: linking them again writes nothing.
        linked=linked,
        titles=_known_title_keys(session, source, rest),
        known=_Known.load(session, rest, source_articles=frozenset(linked)),
        same_raw=same_raw,
        counts=counts,
    )
    for entry in parsed.entries:
        if len(entry.url) > MAX_URL or entry.url in seen_urls:
            counts.dropped.append(_repeat(entry, "its link is repeated or too long"))
            continue
        if entry.guid and entry.guid in seen_guids:
            counts.dropped.append(_repeat(entry, "its id is repeated in the feed"))
            continue
        seen_urls.add(entry.url)
        if entry.guid:
            seen_guids.add(entry.guid)
        if _unchanged_raw(entry, batch):
            counts.unchanged += 1
            continue
        _count(counts, _store_entry(session, source, entry, batch, now=now, aliases=aliases))
    _insert_pending(session, source, batch, now=now)
    _link(session, batch.new_links, source.id, now)
    return counts


def _count(counts: Counts, outcome: str | Dropped) -> None:
    if isinstance(outcome, Dropped):
        counts.merged += 1
        counts.dropped.append(outcome)
    else:
        setattr(counts, outcome, getattr(counts, outcome) + 1)


@dataclass
class _Batch:
    """What one source's store remembers between its entries."""

    #: Ids of the articles seen in this source (before this run, and new in it).
    linked: set[int]
    #: Title keys of other sources' articles that some entry of this source shares:
    #: only those entries need the same-title lookup.
    titles: set[str]
    #: Stored articles the entries may be, looked up together before the first entry.
    known: _Known = field(default_factory=lambda: _Known({}, {}, frozenset()))
    #: Articles first seen in this source in this run: recorded together at the end.
    new_links: list[int] = field(default_factory=list)
    #: Entries (by link) whose raw hash is their article's (see :func:`_same_raw`): the
    #: article's id.  Left out of ``titles`` and ``known``.
    same_raw: dict[str, int] = field(default_factory=dict)
    #: Articles this run wrote to.
    written: set[int] = field(default_factory=set)
    #: New articles not inserted yet (entry, its fields and hash): inserted together
    #: (:func:`_insert_pending`) before anything that could see them is read.
    pending: list[tuple[Entry, dict[str, Any], str]] = field(default_factory=list)
    #: The source's counts (a new article found inserted by a racing ingest becomes an
    #: update when the pending articles are inserted).
    counts: Counts = field(default_factory=Counts)

    def see(self, article_id: int) -> bool:
        """Note that this source has ``article_id``; True the first time ever."""
        if article_id in self.linked:
            return False
        self.linked.add(article_id)
        self.new_links.append(article_id)
        return True


@dataclass
class _Known:
    """The stored articles a source's entries may be, by link spelling and by id, read in
    a few queries for the whole feed rather than one or two per entry (a re-ingest of
    unchanged entries was mostly those lookups).  Articles inserted during the run, or
    whose link changed in it, are not: an entry spelling one of those links is looked
    up in the database as before (``inserted``)."""

    by_url: dict[str, Article]
    by_guid: dict[str, list[Article]]
    #: The source's articles before this run (a non-global id matches only those).
    source_articles: frozenset[int]
    inserted: set[str] = field(default_factory=set)

    @classmethod
    def load(
        cls, session: Session, entries: list[Entry], *, source_articles: frozenset[int]
    ) -> _Known:
        urls = sorted({u for e in entries if len(e.url) <= MAX_URL for u in url_variants(e.url)})
        guids = sorted({g for e in entries if (g := _guid(e))})
        by_url: dict[str, Article] = {}
        by_guid: dict[str, list[Article]] = {}
        for start in range(0, len(urls), 500):
            for a in session.scalars(
                select(Article).where(Article.canonical_url.in_(urls[start : start + 500]))
            ):
                by_url[a.canonical_url] = a
        for start in range(0, len(guids), 500):
            for a in session.scalars(
                select(Article)
                .where(Article.guid.in_(guids[start : start + 500]))
                .order_by(Article.id)
            ):
                by_guid.setdefault(a.guid or "", []).append(a)
        return cls(by_url, by_guid, source_articles)


def _guid(entry: Entry) -> str | None:
    return entry.guid


def _same_raw(session: Session, source: Source, entries: list[Entry]) -> dict[str, int]:
    """The entries whose article (the one this source owns under the entry's exact link)
    was stored from the same raw entry: link → article id, read for the whole feed."""
    wanted = {e.url: e.raw_hash for e in entries if e.raw_hash and len(e.url) <= MAX_URL}
    urls = sorted(wanted)
    found: dict[str, int] = {}
    for start in range(0, len(urls), 500):
        for row in session.execute(
            select(Article.id, Article.canonical_url, Article.raw_hash).where(
                Article.canonical_url.in_(urls[start : start + 500]),
                Article.source_id == source.id,
            )
        ):
            if row.raw_hash == wanted[row.canonical_url]:
                found[row.canonical_url] = row.id
    return found


def _unchanged_raw(entry: Entry, batch: _Batch) -> bool:
    """Whether ``entry`` is its article unchanged by its raw hash (see :func:`_same_raw`),
    and nothing earlier in this run touched that article or its link's spellings."""
    article_id = batch.same_raw.get(entry.url)
    if article_id is None or article_id in batch.written:
        return False
    inserted = batch.known.inserted
    if inserted and not inserted.isdisjoint(url_variants(entry.url)):
        return False
    batch.see(article_id)
    return True


def _known_title_keys(session: Session, source: Source, entries: list[Entry]) -> set[str]:
    keys = sorted({k for e in entries if (k := title_key(e.title, e.url))})
    found: set[str] = set()
    for start in range(0, len(keys), 500):
        found.update(
            session.scalars(
                select(Article.title_key)
                .where(
                    Article.title_key.in_(keys[start : start + 500]),
                    or_(Article.source_id.is_(None), Article.source_id != source.id),
                )
                .distinct()
            )
        )
    return found


def _repeat(entry: Entry, why: str) -> Dropped:
    return Dropped("merged", why, title=entry.title, url=entry.url, guid=entry.guid)


def _source_articles(source: Source) -> Any:
    return select(ArticleSource.article_id).where(ArticleSource.source_id == source.id)


def _find(
    session: Session,
    source: Source,
    entry: Entry,
    fields: dict[str, Any],
    now: datetime,
    titles: set[str],
    known: _Known | None = None,
    before_query: Callable[[], None] = lambda: None,
) -> tuple[Article | None, str]:
    """The stored article ``entry`` is (see the module doc), and how it was matched.
    ``before_query`` runs before the article table is read by link or id."""
    url = entry.url
    # The URL and its other spellings (read for the whole feed before, or one indexed
    # lookup); the exact one wins.
    spellings = url_variants(url)
    if known is not None and not known.inserted.intersection(spellings):
        by_url = {u: known.by_url[u] for u in spellings if u in known.by_url}
    else:
        before_query()
        rows = session.scalars(select(Article).where(Article.canonical_url.in_(spellings))).all()
        by_url = {a.canonical_url: a for a in rows}
    if by_url:
        same = next(by_url[u] for u in spellings if u in by_url)
        if same.canonical_url == url:
            return same, "the same link"
        return same, f"the same link spelt differently ({same.canonical_url})"
    guid = fields["guid"]
    if guid and known is not None and guid == entry.guid:
        matches = [
            a
            for a in known.by_guid.get(guid, ())
            if is_global_guid(guid) or a.id in known.source_articles
        ]
        if matches:
            return matches[0], "the same id"
    elif guid:
        before_query()
        query = select(Article).where(Article.guid == guid)
        if not is_global_guid(guid):
            query = query.where(Article.id.in_(_source_articles(source)))
        found = session.scalars(query.order_by(Article.id).limit(1)).first()
        if found is not None:
            return found, "the same id"
    key = fields["title_key"]
    if key and key in titles:
        when = entry.published_at or now
        candidates = session.scalars(
            select(Article)
            .where(
                Article.title_key == key,
                Article.published_at >= when - SAME_TITLE_WINDOW,
                Article.published_at <= when + SAME_TITLE_WINDOW,
                # Equal titles within one feed are different posts (a daily
                # "Morning briefing"): only another source's article can match.
                or_(Article.source_id.is_(None), Article.source_id != source.id),
            )
            .order_by(Article.id)
        ).all()
        if candidates:
            closest = min(candidates, key=lambda a: abs(a.published_at - when))
            return closest, (
                "the same title from the same site within "
                f"{int(SAME_TITLE_WINDOW.total_seconds() // 3600)} hours ({closest.canonical_url})"
            )
    return None, ""


def _store_entry(
    session: Session,
    source: Source,
    entry: Entry,
    batch: _Batch,
    *,
    now: datetime,
    aliases: dict[str, str],
) -> str | Dropped:
    """``new``, ``updated`` or ``unchanged``; or the report of its merge into another
    source's article."""
    entry.complete()
    fields = _fields(entry, aliases)
    digest = content_hash(fields, entry.published_at)
    known: _Known | None = batch.known
    if entry.url in batch.same_raw:
        # Left out of the lookups made for the whole feed: look it up on its own.
        known = None
        batch.titles |= _known_title_keys(session, source, [entry])
    article, how = _find(
        session,
        source,
        entry,
        fields,
        now,
        batch.titles,
        known,
        before_query=lambda: _insert_pending(session, source, batch, now=now),
    )
    if article is None:
        # Inserted with the others before anything that could see it is read.
        batch.pending.append((entry, fields, digest))
        batch.known.inserted.add(entry.url)
        return "new"
    return _update(session, source, entry, article, how, fields, digest, batch, now=now)


def _insert_pending(session: Session, source: Source, batch: _Batch, *, now: datetime) -> None:
    """Insert the new articles waiting in ``batch``, in a few statements.  One that a
    racing ingest inserted a moment ago is that row's update instead."""
    if not batch.pending:
        return
    pending, batch.pending = batch.pending, []
    session.flush()  # changes of links made before these inserts land before them
    rows = [
        {
            **fields,
            "published_at": entry.published_at or now,
            "date_estimated": entry.published_at is None,
            "first_seen_at": now,
            "updated_at": now,
            "content_hash": digest,
            "raw_hash": entry.raw_hash,
            "source_id": source.id,
        }
        for entry, fields, digest in pending
    ]
    ids = _insert_articles(session, rows)
    for entry, fields, digest in pending:
        new_id = ids.get(entry.url)
        if new_id is not None:
            batch.see(new_id)
            batch.written.add(new_id)
            continue
        # Another ingest inserted it a moment ago: carry on as an update of that row.
        article = session.scalars(select(Article).where(Article.canonical_url == entry.url)).one()
        batch.counts.new -= 1
        outcome = _update(
            session, source, entry, article, "the same link", fields, digest, batch, now=now
        )
        _count(batch.counts, outcome)


def _update(
    session: Session,
    source: Source,
    entry: Entry,
    article: Article,
    how: str,
    fields: dict[str, Any],
    digest: str,
    batch: _Batch,
    *,
    now: datetime,
) -> str | Dropped:
    """``entry``'s stored ``article`` brought up to date: ``updated`` or ``unchanged``, or
    the report of its merge into another source's article."""
    first_time = batch.see(article.id)
    if article.source_id not in (None, source.id):
        # Owned by another source (see the module docstring): reported once, when merged.
        if not first_time:
            return "unchanged"
        owner = session.get(Source, article.source_id)
        return Dropped(
            "merged",
            f"same article as “{article.title}”, already stored from "
            f"{owner.url if owner else 'another source'}: {how}",
            title=entry.title,
            url=entry.url,
            guid=entry.guid,
        )
    if article.content_hash == digest and article.canonical_url == entry.url:
        if article.source_id is None:
            article.source_id = source.id
        if article.raw_hash != entry.raw_hash:
            article.raw_hash = entry.raw_hash  # what it was cleaned from, for next time
        return "unchanged"
    if article.canonical_url != entry.url:
        _insert_pending(session, source, batch, now=now)  # one of them may have that link
        if _taken(session, entry.url, article.id):
            return "unchanged"  # the new spelling belongs to another article already
    if article.canonical_url != entry.url:
        # its link changes: entries spelling either link are looked up in the database
        batch.known.inserted.update({article.canonical_url, entry.url})
    for name, value in fields.items():
        setattr(article, name, value)
    if entry.published_at is not None:
        article.published_at = entry.published_at
        article.date_estimated = False
    article.content_hash = digest
    article.raw_hash = entry.raw_hash
    article.source_id = source.id
    article.updated_at = now
    batch.written.add(article.id)
    return "updated"


def _taken(session: Session, url: str, article_id: int) -> bool:
    return (
        session.scalar(
            select(Article.id).where(Article.canonical_url == url, Article.id != article_id)
        )
        is not None
    )


__all__ = [
    "Counts",
    "conditional_state",
    "content_hash",
    "is_global_guid",
    "normalise_categories",
    "raw_context",
    "record_error",
    "record_not_modified",
    "source_row",
    "store_parsed",
    "stored_raw_hashes",
]

"""Ingestion: feeds and article pages into the article store, one source at a time.

:func:`ingest` reads each source (URL or file), decides what it is by looking at
its bytes, parses it and stores its articles in a transaction of its own.  A
source that fails (unreachable, too large, malformed, hostile) becomes one
error line in the :class:`IngestReport` and writes no articles; the others still
land.  Modules: :mod:`~digest.ingest.http` (fetching), :mod:`~digest.ingest.feeds`
(sniffing, RSS/Atom/JSON Feed), :mod:`~digest.ingest.pages` (article pages),
:mod:`~digest.ingest.clean` (URLs, HTML, text, dates, pictures),
:mod:`~digest.ingest.dedupe` (one entry per article within a source),
:mod:`~digest.ingest.store` (matching stored articles, and writes).

No entry is lost or merged silently: every entry that does not become an
article of its own is in its source's ``dropped`` list with the reason
(skipped: no usable link…; merged: the same article as another entry or a
stored article), and a page that is not an article is refused with the feeds
it links to.

An article belongs to the newsletters whose ``sources`` it was seen in; a
source given on the command line that no newsletter lists feeds none of them
(:attr:`SourceResult.newsletters` is empty).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from digest.config import DigestConfig, Settings, resolve_source_ref
from digest.errors import DatabaseError, SourceError
from digest.ingest import store
from digest.ingest.dedupe import within_source
from digest.ingest.feeds import Dropped, Parsed, Stored, parse_jsonfeed, parse_xml_feed, sniff
from digest.ingest.http import Fetched, fetch, make_client
from digest.ingest.pages import NotAnArticle, parse_page

log = logging.getLogger(__name__)

_KIND_NAMES = {
    "rss": "an RSS feed",
    "atom": "an Atom feed",
    "jsonfeed": "a JSON Feed",
    "page": "an HTML page",
}
_STORE_ATTEMPTS = 3


@dataclass
class SourceResult:
    """What happened to one source."""

    ref: str
    #: ``rss``, ``atom``, ``jsonfeed`` or ``page`` once known; else the configured kind.
    kind: str
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    #: Entries merged into an article of their own source or another one.
    merged: int = 0
    #: Entries not stored: no usable link, a link too long…
    skipped: int = 0
    #: One line naming the source and the problem; None when it succeeded.
    error: str | None = None
    #: The server answered ``304 Not Modified``: nothing was parsed.
    not_modified: bool = False
    #: Problems that were worked around (wrong encoding, …).
    warnings: list[str] = field(default_factory=list)
    #: Every entry that did not become an article of its own, with its reason.
    dropped: list[Dropped] = field(default_factory=list)
    #: A page refused as not being an article (``error`` says why).
    refused: bool = False
    #: Feeds a refused page links to: the source to use instead.
    feeds: list[str] = field(default_factory=list)
    #: The newsletters whose ``sources`` list this source (empty: it feeds none).
    newsletters: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class IngestReport:
    results: list[SourceResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """At least one source succeeded, or there was nothing to do."""
        return not self.results or any(r.ok for r in self.results)

    @property
    def totals(self) -> dict[str, int]:
        return {
            "sources": len(self.results),
            "new": sum(r.new for r in self.results),
            "updated": sum(r.updated for r in self.results),
            "unchanged": sum(r.unchanged for r in self.results),
            "merged": sum(r.merged for r in self.results),
            "skipped": sum(r.skipped for r in self.results),
            "errors": sum(1 for r in self.results if not r.ok),
        }

    @property
    def errors(self) -> list[str]:
        return [r.error for r in self.results if r.error]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "totals": self.totals,
            "sources": [r.to_dict() for r in self.results],
        }


def parse_source(
    fetched: Fetched,
    expect: str = "auto",
    *,
    as_article: bool = False,
    stored: Stored | None = None,
) -> Parsed:
    """Parse a source's bytes as whatever they turn out to be (``expect``: auto/feed/page),
    one entry per article (:func:`~digest.ingest.dedupe.within_source`).

    ``stored``: what the source's stored articles say of their raw feed entries; RSS and
    Atom entries then carry their raw hash, and those already stored are cleaned only
    when needed (see :class:`~digest.ingest.feeds.Stored`).

    An HTML page is stored only when it says it is an article, or when the user
    says so: ``as_article``, or ``expect == "page"`` (``kind = "page"`` in
    digest.toml names a page to store as an article).
    """
    sniffed = sniff(fetched.body)
    if expect == "feed" and sniffed.kind == "page":
        raise SourceError('configured as kind = "feed" but this is an HTML page')
    if expect == "page" and sniffed.kind != "page":
        raise SourceError(
            f'configured as kind = "page" but this is {_KIND_NAMES.get(sniffed.kind, "a feed")}'
        )
    if sniffed.kind == "page":
        parsed = parse_page(fetched, as_article=as_article or expect == "page")
    elif sniffed.kind == "jsonfeed":
        parsed = parse_jsonfeed(fetched)
    else:
        parsed = parse_xml_feed(fetched, sniffed, stored)
    return within_source(parsed)


def plan_sources(config: DigestConfig, refs: Sequence[str] | None) -> list[tuple[str, str]]:
    """(location, kind) for each source to read, each once, in order.

    With no ``refs``: every source of every newsletter.  Given refs are URLs or
    paths relative to the working directory; a ref that is also configured keeps
    its configured kind.
    """
    configured: dict[str, str] = {}
    for _newsletter, source in config.all_sources():
        configured.setdefault(config.resolve_source(source), source.kind)
    if refs is None:
        return list(configured.items())
    planned: dict[str, str] = {}
    for ref in refs:
        location = resolve_source_ref(ref.strip(), Path.cwd())
        planned.setdefault(location, configured.get(location, "auto"))
    return list(planned.items())


def newsletters_by_source(config: DigestConfig) -> dict[str, list[str]]:
    """Each configured source's location and the newsletters that list it."""
    found: dict[str, list[str]] = {}
    for newsletter, source in config.all_sources():
        names = found.setdefault(config.resolve_source(source), [])
        if newsletter.name not in names:
            names.append(newsletter.name)
    return found


def ingest(
    sessions: sessionmaker[Session],
    config: DigestConfig,
    settings: Settings,
    refs: Sequence[str] | None = None,
    *,
    client: httpx.Client | None = None,
    now: datetime | None = None,
    progress: Callable[[SourceResult], None] | None = None,
    as_article: bool = False,
) -> IngestReport:
    """Read every source (or just ``refs``) into the article store; see the module doc.

    ``as_article``: store HTML pages among the sources as articles even when they
    do not say they are (``digest ingest --as-article``).
    """
    now = now or datetime.now(UTC)
    aliases = config.category_aliases()
    members = newsletters_by_source(config)
    report = IngestReport()
    own_client = client is None
    http = client or make_client(settings)
    try:
        for location, kind in plan_sources(config, refs):
            result = _ingest_one(
                sessions,
                settings,
                location,
                kind,
                client=http,
                now=now,
                aliases=aliases,
                as_article=as_article,
            )
            result.newsletters = members.get(location, [])
            report.results.append(result)
            if progress is not None:
                progress(result)
    finally:
        if own_client:
            http.close()
    return report


def _ingest_one(
    sessions: sessionmaker[Session],
    settings: Settings,
    ref: str,
    kind: str,
    *,
    client: httpx.Client,
    now: datetime,
    aliases: dict[str, str],
    as_article: bool = False,
) -> SourceResult:
    result = SourceResult(ref=ref, kind=kind)
    try:
        if len(ref) > store.MAX_URL:
            raise SourceError(f"the location is longer than {store.MAX_URL} characters")
        with sessions() as session:
            etag, last_modified = store.conditional_state(session, ref)
            stored = Stored(store.raw_context(aliases), store.stored_raw_hashes(session, ref))
        # Network and parsing happen outside any transaction: no lock is held meanwhile.
        fetched = fetch(ref, settings, client=client, etag=etag, last_modified=last_modified)
        if fetched.not_modified:
            with sessions() as session, session.begin():
                result.unchanged = store.record_not_modified(session, ref, fetched, now)
            result.not_modified = True
            return result
        parsed = parse_source(fetched, kind, as_article=as_article, stored=stored)
        result.kind = parsed.kind
        result.warnings = [f"{ref}: {w}" for w in parsed.warnings]
        counts = _store(sessions, ref, parsed, fetched, now=now, aliases=aliases)
        result.new, result.updated, result.unchanged = counts.new, counts.updated, counts.unchanged
        result.dropped = [*parsed.dropped, *counts.dropped]
        result.merged = sum(1 for d in result.dropped if d.action == "merged")
        result.skipped = sum(1 for d in result.dropped if d.action == "skipped")
    except NotAnArticle as exc:
        result.kind = "page"
        result.refused = True
        result.feeds = exc.feeds
        result.error = f"{ref}: {exc}"
    except SourceError as exc:
        result.error = f"{ref}: {exc}"
    except (OperationalError, InterfaceError) as exc:  # the database itself is unwell
        raise DatabaseError(
            f"the database failed while storing {ref}: {_first_line(exc)}; "
            "check DIGEST_DATABASE_URL and run `digest init`"
        ) from None
    except SQLAlchemyError as exc:  # this source's data, not the database: its own error
        log.debug("could not store %s", ref, exc_info=True)
        result.error = f"{ref}: could not be stored ({_first_line(exc)})"
    except Exception as exc:  # a parser tripping over input we did not foresee
        log.debug("unexpected error reading %s", ref, exc_info=True)
        result.error = (
            f"{ref}: could not be read ({type(exc).__name__}: {_first_line(exc)}); "
            "please report this with the source attached"
        )
    if result.error:
        try:
            with sessions() as session, session.begin():
                store.record_error(session, ref, kind, result.error, now)
        except SQLAlchemyError:
            log.debug("could not record the error for %s", ref, exc_info=True)
    return result


def _store(
    sessions: sessionmaker[Session],
    ref: str,
    parsed: Parsed,
    fetched: Fetched,
    *,
    now: datetime,
    aliases: dict[str, str],
) -> store.Counts:
    """One transaction for the whole source, retried if a racing ingest got in first."""
    for attempt in range(1, _STORE_ATTEMPTS + 1):
        try:
            with sessions() as session, session.begin():
                return store.store_parsed(session, ref, parsed, fetched, now=now, aliases=aliases)
        except IntegrityError:
            if attempt == _STORE_ATTEMPTS:
                raise
            log.debug("conflict storing %s; retrying (attempt %d)", ref, attempt)
    raise AssertionError("unreachable")


def _first_line(exc: BaseException) -> str:
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


__all__ = [
    "Dropped",
    "IngestReport",
    "SourceResult",
    "ingest",
    "newsletters_by_source",
    "parse_source",
    "plan_sources",
]

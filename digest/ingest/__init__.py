"""Ingestion: feeds and article pages into the article store, one source at a time.

:func:`ingest` reads each source (URL or file), decides what it is by looking at
its bytes, parses it and stores its articles in a transaction of its own.  A
source that fails (unreachable, too large, malformed, hostile) becomes one
error line in the :class:`IngestReport` and writes no articles; the others still
land.  Modules: :mod:`~digest.ingest.http` (fetching), :mod:`~digest.ingest.feeds`
(sniffing, RSS/Atom/JSON Feed), :mod:`~digest.ingest.pages` (article pages),
:mod:`~digest.ingest.clean` (URLs, HTML, text, dates), :mod:`~digest.ingest.store`
(dedupe and writes).
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
from digest.ingest.feeds import Parsed, parse_jsonfeed, parse_xml_feed, sniff
from digest.ingest.http import Fetched, fetch, make_client
from digest.ingest.pages import parse_page

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
    #: One line naming the source and the problem; None when it succeeded.
    error: str | None = None
    #: The server answered ``304 Not Modified``: nothing was parsed.
    not_modified: bool = False
    #: Problems that were worked around (wrong encoding, skipped entries, …).
    warnings: list[str] = field(default_factory=list)

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


def parse_source(fetched: Fetched, expect: str = "auto") -> Parsed:
    """Parse a source's bytes as whatever they turn out to be (``expect``: auto/feed/page)."""
    sniffed = sniff(fetched.body)
    if expect == "feed" and sniffed.kind == "page":
        raise SourceError('configured as kind = "feed" but this is an HTML page')
    if expect == "page" and sniffed.kind != "page":
        raise SourceError(
            f'configured as kind = "page" but this is {_KIND_NAMES.get(sniffed.kind, "a feed")}'
        )
    if sniffed.kind == "page":
        return parse_page(fetched)
    if sniffed.kind == "jsonfeed":
        return parse_jsonfeed(fetched)
    return parse_xml_feed(fetched, sniffed)


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


def ingest(
    sessions: sessionmaker[Session],
    config: DigestConfig,
    settings: Settings,
    refs: Sequence[str] | None = None,
    *,
    client: httpx.Client | None = None,
    now: datetime | None = None,
    progress: Callable[[SourceResult], None] | None = None,
) -> IngestReport:
    """Read every source (or just ``refs``) into the article store; see the module doc."""
    now = now or datetime.now(UTC)
    aliases = config.category_aliases()
    report = IngestReport()
    own_client = client is None
    http = client or make_client(settings)
    try:
        for location, kind in plan_sources(config, refs):
            result = _ingest_one(
                sessions, settings, location, kind, client=http, now=now, aliases=aliases
            )
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
) -> SourceResult:
    result = SourceResult(ref=ref, kind=kind)
    try:
        if len(ref) > store.MAX_URL:
            raise SourceError(f"the location is longer than {store.MAX_URL} characters")
        with sessions() as session:
            etag, last_modified = store.conditional_state(session, ref)
        # Network and parsing happen outside any transaction: no lock is held meanwhile.
        fetched = fetch(ref, settings, client=client, etag=etag, last_modified=last_modified)
        if fetched.not_modified:
            with sessions() as session, session.begin():
                result.unchanged = store.record_not_modified(session, ref, fetched, now)
            result.not_modified = True
            return result
        parsed = parse_source(fetched, kind)
        result.kind = parsed.kind
        result.warnings = [f"{ref}: {w}" for w in parsed.warnings]
        counts = _store(sessions, ref, parsed, fetched, now=now, aliases=aliases)
        result.new, result.updated, result.unchanged = counts.new, counts.updated, counts.unchanged
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


__all__ = ["IngestReport", "SourceResult", "ingest", "parse_source", "plan_sources"]

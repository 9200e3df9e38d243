"""Click and open tracking, and the edition events of a reader's own links, for every
delivery backend.

Opt-in per newsletter (``track_clicks``, ``track_opens`` in ``digest.toml``).  A variant
is rendered once; when its envelope is built (:mod:`digest.delivery.envelopes`), every
article link is replaced by ``{base_url}/r/{reader}/{link}`` and, with open tracking, a
1x1 image ``{base_url}/o/{reader}`` goes before ``</body>``:

* ``{link}`` is a signed token of the link's row in ``edition_link`` (:func:`links_for`
  stores the edition's article links once): the same for every reader, worked out once
  per variant.  The redirect reads the URL from that row, so no token can send anyone
  anywhere else (no open redirect);
* ``{reader}`` is the placeholder ``track`` (:mod:`digest.personalize`), filled per reader
  with a signed token of (edition, subscriber): one signature per message, as for the
  unsubscribe link, and plain substitution, no re-rendering.

Both tokens are signed with itsdangerous (HMAC-SHA256 keyed by the app's secret, each
with its own salt, the signature cut to 128 bits to keep links short).  A token that
does not verify, or a link of another edition, is a 404 page, never a redirect.

A reader who opted out (``Subscriber.no_tracking``, on their preferences page) gets the
variant untouched: direct links, no image.

Recording: the web app does not write a click or an open while the reader waits.  It
puts it on a :class:`HitRecorder`, an in-process queue that a thread of its own writes
every ``DIGEST_HIT_FLUSH_SECONDS`` (or sooner, once :data:`HitRecorder.batch` are waiting)
in one transaction of a few statements (:func:`record_hits`: readers who opted out or were
erased since, and editions deleted since, are skipped).  Stopping the web app (SIGTERM,
Ctrl-C) writes what is waiting before the process ends.  With the setting at 0 each hit
is written at once, in its own ``INSERT … SELECT`` (:func:`record_hit`).  The link's URL
is cached in memory, so a burst of clicks reads nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, cast

from itsdangerous import BadSignature, Signer
from itsdangerous.signer import HMACAlgorithm
from markupsafe import escape
from sqlalchemy import Table, false, func, insert, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from digest.compose import ArticleLink
from digest.models import Edition, EditionLink, Hit
from digest.personalize import placeholder
from subscribers.db import MAX_ID, utcnow
from subscribers.models import Subscriber

log = logging.getLogger(__name__)

#: The per-reader placeholder in tracked links and the pixel.
FIELD = "track"
CLICK = "click"
OPEN = "open"

_READER_SALT = "digest.tracking.reader"
_LINK_SALT = "digest.tracking.link"
#: Bytes of HMAC-SHA256 kept in a signature (128 bits).
_SIG_BYTES = 16

#: A transparent 1x1 GIF.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


class BadTrackingToken(ValueError):
    """A tracking token that is damaged, made with another secret, or of another kind."""


class _ShortHMAC(HMACAlgorithm):
    """HMAC-SHA256 cut to :data:`_SIG_BYTES` (links stay short; 128 bits is plenty)."""

    def get_signature(self, key: bytes, value: bytes) -> bytes:
        return super().get_signature(key, value)[:_SIG_BYTES]


@lru_cache(maxsize=16)
def _signer(secret: str, salt: str) -> Signer:
    if not secret:
        raise ValueError("an empty secret cannot sign tokens; set DIGEST_SECRET_KEY")
    return Signer(
        secret,
        salt=salt,
        digest_method=hashlib.sha256,
        algorithm=_ShortHMAC(hashlib.sha256),
    )


class _Minter:
    """Signs exactly as :func:`_signer`'s Signer does (the same bytes), with the keyed
    HMAC state built once and copied per token: a send signs one token per reader."""

    def __init__(self, secret: str, salt: str) -> None:
        key = _signer(secret, salt).derive_key()
        self._mac = hmac.new(key, digestmod=hashlib.sha256)

    def sign(self, value: str) -> str:
        mac = self._mac.copy()
        mac.update(value.encode("ascii"))
        sig = base64.urlsafe_b64encode(mac.digest()[:_SIG_BYTES]).rstrip(b"=").decode("ascii")
        return f"{value}.{sig}"


@lru_cache(maxsize=16)
def _minter(secret: str, salt: str) -> _Minter:
    return _Minter(secret, salt)


def _check_id(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")


def reader_token(secret: str, edition_id: int, subscriber_id: int) -> str:
    """The per-reader part of tracked links: ``{edition}-{subscriber}.{signature}``."""
    _check_id("edition id", edition_id)
    _check_id("subscriber id", subscriber_id)
    return _minter(secret, _READER_SALT).sign(f"{edition_id}-{subscriber_id}")


def link_token(secret: str, link_id: int) -> str:
    """The per-link part of tracked links: ``{link id}.{signature}``."""
    _check_id("link id", link_id)
    return _minter(secret, _LINK_SALT).sign(str(link_id))


def _unsign(secret: str, salt: str, token: str) -> str:
    try:
        value = _signer(secret, salt).unsign(token).decode("ascii")
    except (BadSignature, UnicodeError):
        raise BadTrackingToken("the link is damaged or was not issued by us") from None
    # base64 ignores the last character's spare bits: several spellings decode to the
    # same signature.  Only the one we issue is taken, so a changed token never works.
    if not hmac.compare_digest(token, _minter(secret, salt).sign(value)):
        raise BadTrackingToken("the link is damaged or was not issued by us")
    return value


def _number(text: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 10) or not 0 < int(text) <= MAX_ID:
        raise BadTrackingToken("the link carries no valid id")
    return int(text)


def read_reader(secret: str, token: str) -> tuple[int, int]:
    """(edition id, subscriber id) of a reader token; :class:`BadTrackingToken` if bad."""
    edition, dash, subscriber = _unsign(secret, _READER_SALT, token).partition("-")
    if not dash:
        raise BadTrackingToken("the link carries no reader")
    return _number(edition), _number(subscriber)


def read_link(secret: str, token: str) -> int:
    """The link id of a link token; :class:`BadTrackingToken` if bad."""
    return _number(_unsign(secret, _LINK_SALT, token))


# ---------------------------------------------------------------------------
# Composing tracked bodies


def _url_hash(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


def links_for(session: Session, edition_id: int, links: Sequence[ArticleLink]) -> dict[str, int]:
    """``{url: link id}`` for ``links`` of the edition, storing those not stored yet
    (race-safe: two senders building the same variant get the same rows)."""
    if not links:
        return {}
    table = cast(Table, EditionLink.__table__)
    dialect = session.get_bind().dialect.name
    insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    now = utcnow()
    rows = [
        {
            "edition_id": edition_id,
            "url_hash": _url_hash(link.url),
            "url": link.url,
            "article_id": link.article_id,
            "title": link.title[:2000],
            "section": link.section[:200],
            "created_at": now,
        }
        for link in links
    ]
    session.execute(
        insert(table).values(rows).on_conflict_do_nothing(index_elements=["edition_id", "url_hash"])
    )
    by_hash = dict(
        session.execute(
            select(EditionLink.url_hash, EditionLink.id).where(
                EditionLink.edition_id == edition_id,
                EditionLink.url_hash.in_([r["url_hash"] for r in rows]),
            )
        ).all()
    )
    return {link.url: by_hash[_url_hash(link.url)] for link in links}


def click_url(base_url: str, token: str, *, html: bool) -> str:
    """A tracked link with the reader's part left as a placeholder."""
    return f"{base_url.rstrip('/')}/r/{placeholder(FIELD, html=html)}/{token}"


def pixel_tag(base_url: str) -> str:
    """The open-tracking image (the reader's part left as a placeholder)."""
    src = f"{base_url.rstrip('/')}/o/{placeholder(FIELD, html=True)}"
    return (
        f'<img src="{src}" width="1" height="1" alt="" '
        'style="display:block;width:1px;height:1px;border:0;margin:0;padding:0">'
    )


def track_html(html: str, urls: Mapping[str, str], pixel: str | None = None) -> str:
    """``html`` with each ``href`` to a URL of ``urls`` pointing at its tracked link
    instead, and ``pixel`` (if any) before ``</body>``."""
    if urls:
        targets: dict[str, str] = {}
        for url, tracked in urls.items():
            targets[str(escape(url))] = tracked
            targets[url] = tracked

        def swap(match: re.Match[str]) -> str:
            found = targets.get(match.group(2))
            if found is None:
                return match.group(0)
            return f"{match.group(1)}{escape(found)}{match.group(3)}"

        html = _HREF.sub(swap, html)
    if pixel:
        end = html.rfind("</body>")
        html = html[:end] + pixel + html[end:] if end >= 0 else html + pixel
    return html


_HREF = re.compile(r"""(\bhref\s*=\s*")([^"]*)(")""", re.IGNORECASE)


def track_text(text: str, urls: Mapping[str, str]) -> str:
    """``text`` with each URL of ``urls`` standing on its own (between spaces or line
    ends) replaced by its tracked link."""
    if not urls:
        return text

    def swap(match: re.Match[str]) -> str:
        return urls.get(match.group(0), match.group(0))

    return _BARE_URL.sub(swap, text)


_BARE_URL = re.compile(r"(?<!\S)https?://\S+")


# ---------------------------------------------------------------------------
# Recording


@dataclass(frozen=True)
class LinkTarget:
    edition_id: int
    url: str


class _LinkCache:
    """Link id → (edition, URL): rows never change, so a click reads each once."""

    def __init__(self, size: int = 4096) -> None:
        self._items: dict[int, LinkTarget] = {}
        self._size = size
        self._lock = threading.Lock()

    def cached(self, link_id: int) -> LinkTarget | None:
        """The link if it was read before (no database work)."""
        return self._items.get(link_id)

    def get(self, session: Session, link_id: int) -> LinkTarget | None:
        found = self._items.get(link_id)
        if found is not None:
            return found
        row = session.execute(
            select(EditionLink.edition_id, EditionLink.url).where(EditionLink.id == link_id)
        ).first()
        if row is None:
            return None
        target = LinkTarget(row[0], row[1])
        with self._lock:
            if len(self._items) >= self._size:
                self._items.clear()
            self._items[link_id] = target
        return target


LINKS = _LinkCache()


def link_target(session: Session, link_id: int) -> LinkTarget | None:
    return LINKS.get(session, link_id)


def record_hit(
    session: Session,
    kind: str,
    edition_id: int,
    subscriber_id: int,
    link_id: int | None = None,
    at: datetime | None = None,
) -> bool:
    """Store one click or open, in one ``INSERT … SELECT``: nothing is stored for a
    reader who opted out of tracking or was erased since.  Returns whether it was."""
    table = cast(Table, Hit.__table__)
    who = select(
        literal(edition_id),
        Subscriber.id,
        literal(link_id, table.c.link_id.type),
        literal(kind),
        literal(at or utcnow(), table.c.at.type),
    ).where(Subscriber.id == subscriber_id, Subscriber.no_tracking == false())
    result = cast(
        CursorResult[Any],
        session.execute(
            table.insert().from_select(
                ["edition_id", "subscriber_id", "link_id", "kind", "at"], who
            )
        ),
    )
    return bool(result.rowcount)


@dataclass(frozen=True)
class PendingHit:
    """A click or open not written yet."""

    kind: str
    edition_id: int
    subscriber_id: int
    link_id: int | None
    at: datetime


def record_hits(session: Session, hits: Sequence[PendingHit]) -> int:
    """Store many clicks and opens at once (three statements whatever their number),
    skipping readers who opted out of tracking or were erased, and editions deleted, since
    (as :func:`record_hit` does).  Returns how many were stored."""
    if not hits:
        return 0
    readers = {h.subscriber_id for h in hits}
    editions = {h.edition_id for h in hits}
    trackable = set(
        session.scalars(
            select(Subscriber.id).where(
                Subscriber.id.in_(readers), Subscriber.no_tracking == false()
            )
        )
    )
    alive = set(session.scalars(select(Edition.id).where(Edition.id.in_(editions))))
    rows = [
        {
            "edition_id": h.edition_id,
            "subscriber_id": h.subscriber_id,
            "link_id": h.link_id,
            "kind": h.kind,
            "at": h.at,
        }
        for h in hits
        if h.subscriber_id in trackable and h.edition_id in alive
    ]
    if rows:
        session.execute(insert(Hit), rows)
    return len(rows)


class HitRecorder:
    """Clicks and opens queued in memory and written in batches by a thread of its own.

    :meth:`add` never touches the database: a burst of clicks costs the readers no
    waiting, and the database one transaction per batch instead of one per click.  The
    thread writes every ``interval`` seconds, or at once when :attr:`batch` hits are
    waiting.  :meth:`close` (the web app's shutdown) writes everything still queued.  A
    write that fails (the database away or busy beyond its timeout) is retried with the
    next batch; only :attr:`limit` hits are kept meanwhile, the oldest dropped and logged.
    """

    #: Hits that make the thread write before its interval is up.
    batch = 500
    #: Hits kept while the database cannot be written.
    limit = 200_000

    def __init__(
        self,
        session: Callable[[], AbstractContextManager[Session]],
        interval: float,
    ) -> None:
        self._session = session
        self.interval = interval
        self._pending: list[PendingHit] = []
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        #: Hits written so far, and dropped (the queue full while the database was away).
        self.written = 0
        self.dropped = 0

    def add(
        self, kind: str, edition_id: int, subscriber_id: int, link_id: int | None = None
    ) -> None:
        hit = PendingHit(kind, edition_id, subscriber_id, link_id, utcnow())
        with self._lock:
            if self._closed:
                closed = True
            else:
                closed = False
                self._pending.append(hit)
                over = len(self._pending) - self.limit
                if over > 0:
                    del self._pending[:over]
                    self.dropped += over
                    log.error("%d clicks or opens dropped: the database is not writable", over)
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="digest-hits", daemon=True
                    )
                    self._thread.start()
                if len(self._pending) >= self.batch:
                    self._wake.set()
        if closed:  # after close (a request finishing late): written at once
            self._write([hit])

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def flush(self) -> int:
        """Write every queued hit now; returns how many were stored."""
        with self._flushing:
            with self._lock:
                hits, self._pending = self._pending, []
            if not hits:
                return 0
            try:
                return self._write(hits)
            except Exception:
                with self._lock:  # kept for the next try, oldest first
                    self._pending[:0] = hits
                raise

    def _write(self, hits: Sequence[PendingHit]) -> int:
        stored = 0
        for start in range(0, len(hits), 5_000):
            with self._session() as session:
                stored += record_hits(session, hits[start : start + 5_000])
        self.written += stored
        return stored

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            with self._lock:
                if self._closed:
                    return
            try:
                self.flush()
            except Exception as exc:
                log.warning("clicks and opens not written yet (will retry): %s", exc)
                time.sleep(min(self.interval, 1.0))

    def close(self) -> int:
        """Stop the thread and write what is queued (a process ending gracefully)."""
        with self._lock:
            self._closed = True
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join()
        try:
            return self.flush()
        except Exception as exc:
            lost = self.pending
            log.error("%d clicks or opens not written at shutdown: %s", lost, exc)
            return 0


# ---------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class LinkClicks:
    link_id: int
    url: str
    title: str
    section: str
    clicks: int
    readers: int


@dataclass(frozen=True)
class SectionClicks:
    section: str
    clicks: int
    readers: int


@dataclass
class EditionTracking:
    """Clicks and opens digest recorded for one edition."""

    clicks: int = 0
    #: Readers who clicked at least once.
    clickers: int = 0
    opens: int = 0
    #: Readers whose mail loaded the pixel at least once (an estimate, see the README).
    openers: int = 0
    links: list[LinkClicks] | None = None
    sections: list[SectionClicks] | None = None


def edition_tracking(session: Session, edition_id: int) -> EditionTracking:
    """Clicks per link (most clicked first) and per section, and opens, of an edition."""
    out = EditionTracking(links=[], sections=[])
    totals = session.execute(
        select(Hit.kind, func.count(), func.count(func.distinct(Hit.subscriber_id)))
        .where(Hit.edition_id == edition_id)
        .group_by(Hit.kind)
    ).all()
    for kind, n, readers in totals:
        if kind == CLICK:
            out.clicks, out.clickers = n, readers
        elif kind == OPEN:
            out.opens, out.openers = n, readers
    rows = session.execute(
        select(
            EditionLink.id,
            EditionLink.url,
            EditionLink.title,
            EditionLink.section,
            func.count(),
            func.count(func.distinct(Hit.subscriber_id)),
        )
        .join(Hit, Hit.link_id == EditionLink.id)
        .where(EditionLink.edition_id == edition_id, Hit.kind == CLICK)
        .group_by(EditionLink.id, EditionLink.url, EditionLink.title, EditionLink.section)
        .order_by(func.count().desc(), EditionLink.id)
    ).all()
    links = [LinkClicks(i, u, t, s, n, r) for i, u, t, s, n, r in rows]
    section_rows = session.execute(
        select(EditionLink.section, func.count(), func.count(func.distinct(Hit.subscriber_id)))
        .join(Hit, Hit.link_id == EditionLink.id)
        .where(EditionLink.edition_id == edition_id, Hit.kind == CLICK)
        .group_by(EditionLink.section)
        .order_by(func.count().desc(), EditionLink.section)
    ).all()
    out.links = links
    out.sections = [SectionClicks(s, n, r) for s, n, r in section_rows]
    return out


__all__ = [
    "CLICK",
    "FIELD",
    "OPEN",
    "PIXEL",
    "BadTrackingToken",
    "EditionTracking",
    "HitRecorder",
    "LinkClicks",
    "LinkTarget",
    "PendingHit",
    "SectionClicks",
    "click_url",
    "edition_tracking",
    "link_target",
    "link_token",
    "links_for",
    "pixel_tag",
    "read_link",
    "read_reader",
    "reader_token",
    "record_hit",
    "record_hits",
    "track_html",
    "track_text",
]

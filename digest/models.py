"""The pipeline's tables: sources, articles, editions, variants, the delivery ledger, events,
tracked links and their hits.

They share ``subscribers.db.Base`` so one schema (and one Alembic history)
covers both packages.
"""

from __future__ import annotations

import enum
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Enum,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from subscribers.db import Base, JSONType, UTCDateTime, utcnow
from subscribers.models import Subscriber


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(
        cls,
        name=name,
        native_enum=False,
        length=20,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


class Source(Base):
    """A feed or article page, with what conditional GET needs to remember."""

    __tablename__ = "source"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: URL, or absolute file path for local sources.
    url: Mapped[str] = mapped_column(String(2048), unique=True)
    kind: Mapped[str] = mapped_column(String(10), default="auto")
    etag: Mapped[str | None] = mapped_column(String(512))
    last_modified: Mapped[str | None] = mapped_column(String(100))
    last_fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Article(Base):
    __tablename__ = "article"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    canonical_url: Mapped[str] = mapped_column(String(2048), unique=True)
    guid: Mapped[str | None] = mapped_column(String(2048), index=True)
    title: Mapped[str] = mapped_column(Text)
    summary_html: Mapped[str] = mapped_column(Text, default="")
    summary_text: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str] = mapped_column(String(300), default="")
    #: Category labels as normalised through the configured aliases.
    categories: Mapped[list[str]] = mapped_column(JSONType, default=list)
    image_url: Mapped[str | None] = mapped_column(String(2048))
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    #: True when the source gave no date and ``published_at`` is the first-seen time.
    date_estimated: Mapped[bool] = mapped_column(Boolean, default=False)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Hash of the stored fields: a re-ingest that changes nothing writes nothing.
    content_hash: Mapped[str] = mapped_column(String(64))
    #: SHA-256 of the raw feed entry that gave the stored fields (before cleaning), or
    #: None: a re-ingest finds an entry with the same raw hash unchanged without cleaning
    #: it again (see digest.ingest.store).
    raw_hash: Mapped[str | None] = mapped_column(String(64))
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The source that first stored the article: only its changes update it.
    source_id: Mapped[int | None] = mapped_column(ForeignKey("source.id", ondelete="SET NULL"))
    #: Site and normalised title, hashed: another feed's copy of the article under a
    #: different URL is found by it (see digest.ingest.store).  None for a generic title.
    title_key: Mapped[str | None] = mapped_column(String(40), index=True)

    source: Mapped[Source | None] = relationship()
    #: Every source the article was seen in (its owner among them).
    sources: Mapped[list[Source]] = relationship(secondary="article_source")


class ArticleSource(Base):
    """An article seen in a source.  A newsletter's articles are those seen in one of
    its sources, so an article two feeds share belongs to both feeds' newsletters."""

    __tablename__ = "article_source"

    article_id: Mapped[int] = mapped_column(
        ForeignKey("article.id", ondelete="CASCADE"), primary_key=True
    )
    source_id: Mapped[int] = mapped_column(
        ForeignKey("source.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EditionStatus(enum.StrEnum):
    #: Prepared for an editor: its contents (articles, order, intro, subject) can change.
    DRAFT = "draft"
    #: Approved: contents frozen; goes out at its send time (``send_at``, or the next run).
    APPROVED = "approved"
    PLANNED = "planned"
    SENDING = "sending"
    PAUSED = "paused"
    SENT = "sent"
    SKIPPED = "skipped"
    #: Cancelled by an editor: what had not gone out never will.
    CANCELLED = "cancelled"


def new_message_nonce() -> str:
    """A fresh random part for an edition's Message-IDs: 96 bits as 24 hex digits."""
    return secrets.token_hex(12)


class Edition(Base):
    """One newsletter for one period; unique, so no run can make it twice."""

    __tablename__ = "edition"
    __table_args__ = (UniqueConstraint("newsletter", "period"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    newsletter: Mapped[str] = mapped_column(String(100))
    #: e.g. ``2026-W48`` for an ISO week, ``2026-11-20..2026-11-26`` for a day window.
    period: Mapped[str] = mapped_column(String(40))
    period_start: Mapped[datetime] = mapped_column(UTCDateTime)
    period_end: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[EditionStatus] = mapped_column(
        _enum(EditionStatus, "edition_status"), default=EditionStatus.PLANNED
    )
    subject: Mapped[str] = mapped_column(Text, default="")
    #: Article ids by section (``{"sections": [[name, [id, …]], …]}``), frozen when the
    #: edition is created (or, for a draft, when it is approved); a draft's editing adds
    #: ``intro`` (Markdown), ``subject``, ``top`` (an article id) and ``excluded`` (ids).
    contents: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    #: When an editor approved the draft, and who (the sign-in's account, or the CLI user).
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    approved_by: Mapped[str | None] = mapped_column(String(320))
    #: An approved edition goes out at this time (set from the desk; None: the next
    #: scheduled run, or at once when that run has passed).
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Random, set when the row is made: with a delivery's id it makes that delivery's
    #: Message-ID (``digest.delivery.message.message_id``), the same on every retry and
    #: never one a fresh install, a staging copy or a restored backup sent before.
    message_nonce: Mapped[str] = mapped_column(String(32), default=new_message_nonce)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    variants: Mapped[list[Variant]] = relationship(
        back_populates="edition", cascade="all, delete-orphan"
    )


class EditionAction(Base):
    """What an editor did to an edition (who, when, what), for its page and `editions show`."""

    __tablename__ = "edition_action"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    edition_id: Mapped[int] = mapped_column(
        ForeignKey("edition.id", ondelete="CASCADE"), index=True
    )
    #: Who: the web sign-in's account, ``cli:USER``, or ``scheduler``.
    actor: Mapped[str] = mapped_column(String(320))
    #: What, as a verb: prepare, note, exclude, include, move, top, subject, approve, …
    action: Mapped[str] = mapped_column(String(30))
    #: The details in words ("moved 'Title' to 1 in Policy").
    detail: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


#: The audience name of a send to the whole list (a segment's is its name).
WHOLE_LIST = "*"


class EditionAudience(Base):
    """An audience an edition's ledger was written for: the whole list (``*``) or a
    segment.  Each is planned once; the unique constraint makes a second plan fail."""

    __tablename__ = "edition_audience"
    __table_args__ = (UniqueConstraint("edition_id", "audience"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    edition_id: Mapped[int] = mapped_column(ForeignKey("edition.id", ondelete="CASCADE"))
    audience: Mapped[str] = mapped_column(String(100))
    planned_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Variant(Base):
    """One rendered body for one distinct set of sections."""

    __tablename__ = "variant"
    __table_args__ = (UniqueConstraint("edition_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    edition_id: Mapped[int] = mapped_column(ForeignKey("edition.id", ondelete="CASCADE"))
    #: Short stable name for the section set, used in file names and web links.
    key: Mapped[str] = mapped_column(String(64))
    sections: Mapped[list[str]] = mapped_column(JSONType, default=list)
    subject: Mapped[str] = mapped_column(Text, default="")
    preheader: Mapped[str] = mapped_column(Text, default="")
    html: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    edition: Mapped[Edition] = relationship(back_populates="variants")


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"
    UNCERTAIN = "uncertain"


class BatchStatus(enum.StrEnum):
    PENDING = "pending"
    #: Claimed by a sender (``claimed_by``) until ``lease_until``.
    SENDING = "sending"
    DONE = "done"


class DeliveryBatch(Base):
    """A group of deliveries sharing a variant, posted to the provider together."""

    __tablename__ = "delivery_batch"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    edition_id: Mapped[int] = mapped_column(
        ForeignKey("edition.id", ondelete="CASCADE"), index=True
    )
    variant_id: Mapped[int] = mapped_column(ForeignKey("variant.id", ondelete="CASCADE"))
    status: Mapped[BatchStatus] = mapped_column(
        _enum(BatchStatus, "batch_status"), default=BatchStatus.PENDING, index=True
    )
    #: Earliest time this batch may be sent (local-time waves).
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Delivery(Base):
    """The ledger: one row per (edition, subscriber), written before anything is sent."""

    __tablename__ = "delivery"
    # No index covers ``status``: it changes twice per delivery as it is sent, and an
    # index on it made every such update rewrite every index entry of the row (on
    # PostgreSQL a non-HOT update).  Per-edition counts use the unique index's
    # ``edition_id`` prefix.  On PostgreSQL the table keeps a quarter of each page
    # free (fillfactor 75, migration 0002) so those updates stay on the page (HOT).
    __table_args__ = (UniqueConstraint("edition_id", "subscriber_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    edition_id: Mapped[int] = mapped_column(ForeignKey("edition.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey(Subscriber.id, ondelete="SET NULL"), index=True
    )
    #: The address it went to (kept for the record; cleared on erasure).
    email: Mapped[str | None] = mapped_column(String(320))
    variant_id: Mapped[int | None] = mapped_column(ForeignKey("variant.id", ondelete="SET NULL"))
    batch_id: Mapped[int | None] = mapped_column(
        ForeignKey("delivery_batch.id", ondelete="SET NULL"), index=True
    )
    status: Mapped[DeliveryStatus] = mapped_column(
        _enum(DeliveryStatus, "delivery_status"), default=DeliveryStatus.PENDING
    )
    reason: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(300))
    provider_id: Mapped[str | None] = mapped_column(String(300))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Event(Base):
    """A normalised provider event (delivered, bounce, open, click, …)."""

    __tablename__ = "event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    provider: Mapped[str] = mapped_column(String(20))
    #: The provider's id for the event (``sg_event_id``): makes webhooks idempotent.
    provider_event_id: Mapped[str] = mapped_column(String(200), unique=True)
    type: Mapped[str] = mapped_column(String(30), index=True)
    email: Mapped[str | None] = mapped_column(String(320))
    delivery_id: Mapped[int | None] = mapped_column(
        ForeignKey("delivery.id", ondelete="SET NULL"), index=True
    )
    edition_id: Mapped[int | None] = mapped_column(
        ForeignKey("edition.id", ondelete="SET NULL"), index=True
    )
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EditionLink(Base):
    """A link of an edition that tracked mail sends through ``/r/…`` (see
    :mod:`digest.tracking`): the redirect's token carries this row's id, never the URL,
    so it leads only to links the edition holds."""

    __tablename__ = "edition_link"
    __table_args__ = (UniqueConstraint("edition_id", "url_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    edition_id: Mapped[int] = mapped_column(ForeignKey("edition.id", ondelete="CASCADE"))
    #: SHA-256 (hex) of the URL: the key (a URL may be longer than an index allows).
    url_hash: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(Text)
    #: The article and section it belongs to (for the per-article and per-section counts).
    article_id: Mapped[int | None] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(Text, default="")
    section: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Hit(Base):
    """A click through a tracked link (``link_id`` set) or an open (the pixel, no link):
    one INSERT each, nothing updated, so a burst of clicks costs little."""

    __tablename__ = "hit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    edition_id: Mapped[int] = mapped_column(
        ForeignKey("edition.id", ondelete="CASCADE"), index=True
    )
    #: Erasing the reader deletes their hits.
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey(Subscriber.id, ondelete="CASCADE"), index=True
    )
    link_id: Mapped[int | None] = mapped_column(ForeignKey("edition_link.id", ondelete="CASCADE"))
    #: ``click`` or ``open``.
    kind: Mapped[str] = mapped_column(String(10))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RunOutcome(enum.StrEnum):
    """What became of a scheduled run (stored as these strings)."""

    #: In progress, held by ``SchedulerRun.owner``.
    RUNNING = "running"
    SENT = "sent"
    #: No new articles, nobody to send to, or already delivered.
    SKIPPED = "skipped"
    #: Due while no scheduler ran (or beyond the grace time): recorded, not sent late.
    MISSED = "missed"
    #: SIGTERM/SIGINT mid-run; taken up again at the next start.
    STOPPED = "stopped"
    #: The scheduler running it died; taken up again at the next start.
    INTERRUPTED = "interrupted"
    #: Too many delivery failures; `digest send` resumes it once the cause is fixed.
    PAUSED = "paused"
    #: An error (in ``detail``).
    FAILED = "failed"
    #: Approval required and the edition was not approved: held until an editor approves.
    HELD = "held"


class SchedulerRun(Base):
    """What each scheduled run did (or why it did not), for `digest schedule list`."""

    __tablename__ = "scheduler_run"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    newsletter: Mapped[str] = mapped_column(String(100), index=True)
    scheduled_for: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[RunOutcome] = mapped_column(_enum(RunOutcome, "run_outcome"))
    #: Who runs it (``host:pid:token``, see :func:`digest.delivery.ledger.owner_id`)
    #: while it is running; kept afterwards for the record.
    owner: Mapped[str | None] = mapped_column(String(200))
    detail: Mapped[str] = mapped_column(Text, default="")


class Account(Base):
    """A person who signs in to the web app (see :mod:`digest.accounts`): an email
    address, a role (``editor`` or ``admin``) and an argon2id hash of the password."""

    __tablename__ = "web_account"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: The address signed in with, lower-cased; also the key in ``web_session.account``.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    #: argon2id, in the PHC string format (salt and parameters included).
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebSession(Base):
    """A sign-in to the web app, revocable: the browser's signed cookie holds a random
    token, this table only its SHA-256 (see :mod:`digest.signins`)."""

    __tablename__ = "web_session"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: SHA-256 (hex) of the token in the cookie: a copied database opens no session.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: Who signed in: ``admin`` (``DIGEST_ADMIN_PASSWORD``) until per-person accounts
    #: exist; then the account's key (its email address).
    account: Mapped[str] = mapped_column(String(320), index=True)
    #: A fingerprint of the credential signed in with: once the password changes, the
    #: session no longer counts.
    credential: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: When it was signed out (this browser, everywhere, or a password change).
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The client's address and browser at sign-in, for a list of one's sessions.
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str] = mapped_column(String(300), default="")


class RateBudget(Base):
    """A provider account's shared rate: the time its next message may go (a virtual
    schedule, GCRA), moved forward atomically by each sender that takes a chunk of it
    (see :mod:`digest.delivery.throttle`)."""

    __tablename__ = "rate_budget"

    #: The account (:attr:`digest.delivery.base.AccountLimit.key`), never its secret.
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    #: Messages per second (the last rate a sender used, for display).
    rate: Mapped[float] = mapped_column(Float)
    #: Seconds since the epoch (the database's clock on PostgreSQL) when the next
    #: message not yet reserved may go.
    next_at: Mapped[float] = mapped_column(Float)
    #: Messages reserved through it so far.
    taken: Mapped[int] = mapped_column(BigInteger, default=0)


class WorkerState(enum.StrEnum):
    RUNNING = "running"
    #: SIGTERM received: finishing the post in hand, then releasing its batches.
    DRAINING = "draining"
    STOPPED = "stopped"


class WorkerProcess(Base):
    """A `digest worker` process, registered while it runs (see :mod:`digest.workers`).
    One whose heartbeat stopped is shown as lost; its batches are taken over after
    their lease."""

    __tablename__ = "worker_process"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: Its claims' owner prefix (``host:pid:token``): its batches are claimed as
    #: ``NAME:thread``.
    name: Mapped[str] = mapped_column(String(200), unique=True)
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    backend: Mapped[str] = mapped_column(String(50), default="")
    state: Mapped[WorkerState] = mapped_column(
        _enum(WorkerState, "worker_state"), default=WorkerState.RUNNING
    )
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Messages it has sent (updated with each heartbeat).
    sent: Mapped[int] = mapped_column(Integer, default=0)

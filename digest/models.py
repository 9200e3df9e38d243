"""The pipeline's tables: sources, articles, editions, variants, the delivery ledger, events.

They share ``subscribers.db.Base`` so one schema (and one Alembic history)
covers both packages.
"""

from __future__ import annotations

import enum
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Enum,
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
    PLANNED = "planned"
    SENDING = "sending"
    PAUSED = "paused"
    SENT = "sent"
    SKIPPED = "skipped"


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
    #: edition is created.
    contents: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    #: Random, set when the row is made: with a delivery's id it makes that delivery's
    #: Message-ID (``digest.delivery.message.message_id``), the same on every retry and
    #: never one a fresh install, a staging copy or a restored backup sent before.
    message_nonce: Mapped[str] = mapped_column(String(32), default=new_message_nonce)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    variants: Mapped[list[Variant]] = relationship(
        back_populates="edition", cascade="all, delete-orphan"
    )


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

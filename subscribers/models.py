"""Subscribers, lists, memberships, segments and suppressions."""

from __future__ import annotations

import enum
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
from sqlalchemy.sql.expression import false

from subscribers.db import Base, JSONType, UTCDateTime, utcnow


class Status(enum.StrEnum):
    """Where a subscriber (or one membership) stands."""

    PENDING = "pending"
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


class ConsentMethod(enum.StrEnum):
    IMPORT = "import"
    FORM = "form"
    ADMIN = "admin"


class ConsentSource(enum.StrEnum):
    """Who or what caused a consent change: the consent log's ``source``
    (see :mod:`subscribers.consent` for who may cause which change)."""

    #: The public sign-up form (anyone may type any address into it).
    FORM = "form"
    #: The reader followed their own confirm link (double opt-in).
    CONFIRM = "confirm"
    #: RFC 8058 one-click unsubscribe, posted by the reader's mail client.
    ONE_CLICK = "one-click"
    #: The reader pressed the button on the unsubscribe page.
    UNSUBSCRIBE_PAGE = "unsubscribe-page"
    #: The reader's preferences page.
    PREFERENCES = "preferences"
    #: A CSV import (the admin stating that the people in it agreed).
    IMPORT = "import"
    #: An admin, on the command line or in the admin console.
    ADMIN = "admin"
    #: A provider event: bounce, spam report, unsubscribe.
    WEBHOOK = "webhook"
    #: A bounce or a spam complaint (feedback report) received by mail (``digest inbound``).
    INBOUND = "inbound"
    #: The reader mailed the ``List-Unsubscribe`` mailto address (with their signed token).
    MAILTO = "mailto"
    #: The JSON API.
    API = "api"
    #: The state found when the consent log began (upgrade 0004): history before it
    #: was not recorded.
    MIGRATION = "migration"


class SuppressionReason(enum.StrEnum):
    HARD_BOUNCE = "hard_bounce"
    #: Repeated soft bounces (``DIGEST_SOFT_BOUNCE_LIMIT`` within ``DIGEST_SOFT_BOUNCE_DAYS``).
    SOFT_BOUNCE = "soft_bounce"
    SPAM_REPORT = "spam_report"
    MANUAL = "manual"
    ERASED = "erased"
    UNSUBSCRIBED = "unsubscribed"


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # Stored as plain strings (no native ENUM type): adding a value never needs
    # an ALTER TYPE on PostgreSQL.
    return Enum(
        cls,
        name=name,
        native_enum=False,
        length=20,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


class Subscriber(Base):
    __tablename__ = "subscriber"
    # Ids are never reused (SQLite would reuse a deleted row's id): an erased person's
    # old links and late provider events must not reach whoever signs up next.
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: The address as validated and normalised by email-validator.
    email: Mapped[str | None] = mapped_column(String(320))
    #: Lower-cased address: the case-insensitive uniqueness key.
    email_key: Mapped[str | None] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[Status] = mapped_column(_enum(Status, "subscriber_status"), index=True)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    #: Chosen categories; empty means all.
    categories: Mapped[list[str]] = mapped_column(JSONType, default=list)
    timezone: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Mail is paused (by the reader) until this moment; None: not paused.
    paused_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consent_method: Mapped[ConsentMethod | None] = mapped_column(
        _enum(ConsentMethod, "consent_method")
    )
    consent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consent_ip: Mapped[str | None] = mapped_column(String(45))
    #: The reader asked, on their preferences page, not to be tracked: their links go
    #: straight to the article and their mail carries no open pixel.  Not a consent
    #: status (it changes nothing about whether they get mail).
    no_tracking: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    memberships: Mapped[list[Membership]] = relationship(
        back_populates="subscriber", cascade="all, delete-orphan"
    )

    def __repr__(self) -> str:
        return f"<Subscriber {self.id} {self.email} {self.status}>"


class MailingList(Base):
    __tablename__ = "mailing_list"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    double_opt_in: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    memberships: Mapped[list[Membership]] = relationship(
        back_populates="mailing_list", cascade="all, delete-orphan"
    )
    segments: Mapped[list[Segment]] = relationship(
        back_populates="mailing_list", cascade="all, delete-orphan"
    )


class Membership(Base):
    __tablename__ = "membership"

    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscriber.id", ondelete="CASCADE"), primary_key=True
    )
    list_id: Mapped[int] = mapped_column(
        ForeignKey("mailing_list.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    status: Mapped[Status] = mapped_column(_enum(Status, "membership_status"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    subscriber: Mapped[Subscriber] = relationship(back_populates="memberships")
    mailing_list: Mapped[MailingList] = relationship(back_populates="memberships")


class Segment(Base):
    __tablename__ = "segment"
    __table_args__ = (UniqueConstraint("list_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("mailing_list.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    #: The rule as data (see subscribers.segments); never evaluated as code.
    rule: Mapped[dict[str, Any]] = mapped_column(JSONType)
    #: Categories every reader in this segment gets (empty: their own choice).
    categories: Mapped[list[str]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    mailing_list: Mapped[MailingList] = relationship(back_populates="segments")


class ConsentEvent(Base):
    """One line of the consent log: a reader's (``list_id`` None) or a membership's
    status went ``from_status`` → ``to_status`` (None: no record / not on the list).

    Written only by :mod:`subscribers.consent`.  A line whose two statuses are equal
    records a request, not a change: on a list, someone asked for a confirmation email
    to come back (the form, or an admin), which only the reader's confirmation can act
    on; on the reader (no list), an admin lifted their suppression (``detail`` says why).
    Erasing a reader deletes their lines with them.
    """

    __tablename__ = "consent_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscriber.id", ondelete="CASCADE"), index=True
    )
    #: The list of a membership change (None: the reader's own status); kept as a
    #: name too, so the line still reads when the list is deleted.
    list_id: Mapped[int | None] = mapped_column(ForeignKey("mailing_list.id", ondelete="SET NULL"))
    list_name: Mapped[str | None] = mapped_column(String(100))
    from_status: Mapped[Status | None] = mapped_column(_enum(Status, "consent_from_status"))
    to_status: Mapped[Status | None] = mapped_column(_enum(Status, "consent_to_status"))
    source: Mapped[ConsentSource] = mapped_column(_enum(ConsentSource, "consent_source"))
    #: Who, for web and admin actions: the client's IP address, or the admin.
    actor: Mapped[str | None] = mapped_column(String(200))
    #: A short note: the evidence (a provider's bounce reason, the import file's line).
    detail: Mapped[str] = mapped_column(Text, default="")


class Suppression(Base):
    """An address never to be mailed, matched by the hash of its normalised form."""

    __tablename__ = "suppression"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: The address key (lower-cased, normalised), kept for bounces and reports so admins
    #: can read them and the recipients query can join on it; None once erased.
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    reason: Mapped[SuppressionReason] = mapped_column(
        _enum(SuppressionReason, "suppression_reason")
    )
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

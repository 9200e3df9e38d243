"""consent log: every change of a reader's or a membership's status

A new table, ``consent_event``: one line per change (when, reader, list, from → to,
source, the IP address or admin, a short detail), written by
``subscribers.consent``.  Existing readers and memberships get one line each, from
nothing to their current status, with source ``migration``: what happened before
was not recorded.  Downgrading drops the table and its history.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 23:38:46
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import subscribers.db

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

STATUSES = ("pending", "active", "unsubscribed", "bounced", "complained")
SOURCES = (
    "form",
    "confirm",
    "one-click",
    "unsubscribe-page",
    "preferences",
    "import",
    "admin",
    "webhook",
    "api",
    "migration",
)
DETAIL = "status when the consent log began; earlier changes were not recorded"
COLUMNS = "at, subscriber_id, list_id, list_name, from_status, to_status, source, actor, detail"


def upgrade() -> None:
    op.create_table(
        "consent_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", subscribers.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("list_id", sa.Integer(), nullable=True),
        sa.Column("list_name", sa.String(length=100), nullable=True),
        sa.Column(
            "from_status",
            sa.Enum(*STATUSES, name="consent_from_status", native_enum=False, length=20),
            nullable=True,
        ),
        sa.Column(
            "to_status",
            sa.Enum(*STATUSES, name="consent_to_status", native_enum=False, length=20),
            nullable=True,
        ),
        sa.Column(
            "source",
            sa.Enum(*SOURCES, name="consent_source", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("actor", sa.String(length=200), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["list_id"],
            ["mailing_list.id"],
            name=op.f("fk_consent_event_list_id_mailing_list"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscriber.id"],
            name=op.f("fk_consent_event_subscriber_id_subscriber"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_event")),
    )
    with op.batch_alter_table("consent_event", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_consent_event_subscriber_id"), ["subscriber_id"], unique=False
        )
    # Where each reader and membership stands now, as the log's first line.
    op.execute(
        sa.text(
            f"""
            INSERT INTO consent_event ({COLUMNS})
            SELECT CASE
                     WHEN s.status = 'unsubscribed' THEN COALESCE(s.unsubscribed_at, s.created_at)
                     WHEN s.status IN ('bounced', 'complained') THEN COALESCE(
                       (SELECT x.created_at FROM suppression x WHERE x.email = s.email_key),
                       s.created_at)
                     ELSE COALESCE(s.confirmed_at, s.consent_at, s.created_at)
                   END,
                   s.id, NULL, NULL, NULL, s.status, 'migration', NULL, :detail
            FROM subscriber s ORDER BY s.id
            """
        ).bindparams(detail=DETAIL)
    )
    op.execute(
        sa.text(
            f"""
            INSERT INTO consent_event ({COLUMNS})
            SELECT m.updated_at, m.subscriber_id, m.list_id, l.name, NULL, m.status,
                   'migration', NULL, :detail
            FROM membership m JOIN mailing_list l ON l.id = m.list_id
            ORDER BY m.subscriber_id, l.name
            """
        ).bindparams(detail=DETAIL)
    )


def downgrade() -> None:
    with op.batch_alter_table("consent_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_event_subscriber_id"))
    op.drop_table("consent_event")

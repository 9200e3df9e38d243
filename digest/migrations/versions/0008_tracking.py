"""tracked links and hits, and readers who opt out of tracking

Two new tables for the engagement digest records itself, whatever the delivery backend:
``edition_link`` holds each link of an edition that tracked mail sends through the
``/r/…`` redirect (the token carries the row's id, never the URL), and ``hit`` one row
per click through such a link or per open (the pixel).  ``subscriber.no_tracking``
(false for everyone) says a reader asked not to be tracked.  No data moves; downgrading
drops the tables (and the clicks and opens recorded) and the column.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 02:48:45
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import subscribers.db

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "edition_link",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("edition_id", sa.Integer(), nullable=False),
        sa.Column("url_hash", sa.String(length=64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("section", sa.String(length=200), nullable=False),
        sa.Column("created_at", subscribers.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["edition_id"],
            ["edition.id"],
            name=op.f("fk_edition_link_edition_id_edition"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_edition_link")),
        sa.UniqueConstraint(
            "edition_id", "url_hash", name=op.f("uq_edition_link_edition_id_url_hash")
        ),
    )
    op.create_table(
        "hit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("edition_id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=True),
        sa.Column("link_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("at", subscribers.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["edition_id"], ["edition.id"], name=op.f("fk_hit_edition_id_edition"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["link_id"],
            ["edition_link.id"],
            name=op.f("fk_hit_link_id_edition_link"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscriber.id"],
            name=op.f("fk_hit_subscriber_id_subscriber"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hit")),
    )
    op.create_index(op.f("ix_hit_edition_id"), "hit", ["edition_id"], unique=False)
    op.create_index(op.f("ix_hit_subscriber_id"), "hit", ["subscriber_id"], unique=False)
    # A plain ADD COLUMN, never a batch (SQLite would copy the table, and dropping the
    # old one would cascade to every reader's memberships and consent log).
    op.add_column(
        "subscriber",
        sa.Column("no_tracking", sa.Boolean(), server_default=sa.false(), nullable=False),
    )


def downgrade() -> None:
    op.drop_column("subscriber", "no_tracking")  # SQLite 3.35+ drops a column in place
    op.drop_index(op.f("ix_hit_subscriber_id"), table_name="hit")
    op.drop_index(op.f("ix_hit_edition_id"), table_name="hit")
    op.drop_table("hit")
    op.drop_table("edition_link")

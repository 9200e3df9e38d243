"""editor's desk: drafts, approvals and each edition's action log

An edition now has a life before it is sent: ``draft`` (its contents change as editors
write an intro, exclude, move, retitle), ``approved`` (frozen, waiting for its time),
then ``planned``, ``sending``, ``sent`` as before, or ``cancelled``.  The status column
is a plain string (no database enum), so the new values need no change to it.  New:
who approved an edition and when (``approved_at``, ``approved_by``), the time it was
scheduled for from the desk (``send_at``), and ``edition_action``: one row per thing
an editor did (who, when, what).  A scheduled run held waiting for approval records
the outcome ``held``.

Downgrading drops the log and the columns; editions still ``draft``, ``approved`` or
``cancelled`` become ``skipped`` (the older code would otherwise not know them, and
must not send a draft nobody approved), and ``held`` runs become ``skipped``.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 02:52:05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import subscribers.db

revision = "0009"
# The lead re-chains revisions when merging branches.
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "edition_action",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("edition_id", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=320), nullable=False),
        sa.Column("action", sa.String(length=30), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("at", subscribers.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["edition_id"],
            ["edition.id"],
            name=op.f("fk_edition_action_edition_id_edition"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_edition_action")),
    )
    op.create_index(
        op.f("ix_edition_action_edition_id"), "edition_action", ["edition_id"], unique=False
    )
    # Added in place (nullable), never in batch mode: on SQLite a rebuilt edition table
    # would take, by ON DELETE CASCADE, every delivery of the ledger with it.
    op.add_column(
        "edition",
        sa.Column("approved_at", subscribers.db.UTCDateTime(timezone=True), nullable=True),
    )
    op.add_column("edition", sa.Column("approved_by", sa.String(length=320), nullable=True))
    op.add_column(
        "edition", sa.Column("send_at", subscribers.db.UTCDateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.execute(
        "UPDATE edition SET status = 'skipped' "
        "WHERE status IN ('draft', 'approved', 'cancelled')"
    )
    op.execute("UPDATE scheduler_run SET outcome = 'skipped' WHERE outcome = 'held'")
    # In place on SQLite too (ALTER TABLE DROP COLUMN, SQLite 3.35+), for the same reason.
    for column in ("send_at", "approved_by", "approved_at"):
        op.drop_column("edition", column)
    op.drop_index(op.f("ix_edition_action_edition_id"), table_name="edition_action")
    op.drop_table("edition_action")

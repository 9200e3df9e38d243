"""ledger: delivery status updates in place

Every delivery's status changes as it is sent.  The index on (edition_id, status)
made each of those updates rewrite all of the row's index entries; it goes (the
unique (edition_id, subscriber_id) index serves per-edition queries).  On
PostgreSQL the table also keeps a quarter of each page free, so the updates can
stay on their page as heap-only tuples (HOT) and touch no index at all.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 16:26:41
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_delivery_edition_status", table_name="delivery")
    if op.get_bind().dialect.name == "postgresql":
        # New and rewritten pages only: existing rows move as they are updated.
        op.execute("ALTER TABLE delivery SET (fillfactor = 75)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE delivery RESET (fillfactor)")
    op.create_index("ix_delivery_edition_status", "delivery", ["edition_id", "status"])

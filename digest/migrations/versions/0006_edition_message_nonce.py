"""edition: a random Message-ID part per edition

Message-IDs were ``<newsletter.edition_id.subscriber_id@domain>``: a fresh install,
a staging copy or a restored backup sent ids a mailbox had seen before, and Gmail
drops such messages.  Each edition gets a random ``message_nonce``; a delivery's
Message-ID is ``<nonce.delivery_id@domain>``.  Existing editions get one each, so
what they still have to send (or resend) gets new, unique ids.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 00:10:00
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # On SQLite the column is added in place, NOT NULL with an empty default (all SQLite
    # allows): rebuilding the table in batch mode would drop the old one, and with it,
    # by ON DELETE CASCADE, every delivery of the ledger.
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.add_column(
        "edition",
        sa.Column(
            "message_nonce",
            sa.String(length=32),
            nullable=not sqlite,
            server_default="" if sqlite else None,
        ),
    )
    edition = sa.table("edition", sa.column("id", sa.Integer), sa.column("message_nonce"))
    bind = op.get_bind()
    for (edition_id,) in bind.execute(sa.select(edition.c.id)).all():
        bind.execute(
            edition.update()
            .where(edition.c.id == edition_id)
            .values(message_nonce=secrets.token_hex(12))
        )
    if not sqlite:
        op.alter_column("edition", "message_nonce", existing_type=sa.String(32), nullable=False)


def downgrade() -> None:
    # In place on SQLite too (ALTER TABLE DROP COLUMN, SQLite 3.35+), for the same reason.
    op.drop_column("edition", "message_nonce")

"""article.raw_hash: a digest of the entry as its feed gave it, before cleaning

A re-ingest used to clean every entry again (sanitise its HTML, extract its text, pick
its picture) only to find the result unchanged.  ``article.raw_hash`` remembers a
SHA-256 of the raw feed entry (with everything its cleaning depends on) that produced
the stored fields: an entry whose raw hash matches its article's is unchanged without
being cleaned again.  Existing articles start with none (NULL): their next ingest
cleans them as before and records it.  Downgrading drops the column.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 06:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
# The lead re-chains revisions when merging branches.
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("article", schema=None) as batch_op:
        batch_op.add_column(sa.Column("raw_hash", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("article", schema=None) as batch_op:
        batch_op.drop_column("raw_hash")

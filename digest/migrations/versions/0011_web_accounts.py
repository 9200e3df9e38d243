"""web_account: per-person accounts with roles

Until now one password (``DIGEST_ADMIN_PASSWORD``) opened the whole console.  A new
table, ``web_account``, holds one row per person: the email address they sign in with,
their role (``editor`` or ``admin``) and the argon2id hash of their password.  Sign-ins
stay in ``web_session`` (its ``account`` column names the account's email address).
No data moves: the admin password keeps signing in as the bootstrap admin until the
first admin account exists.  Downgrading drops the table (and with it every account).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 03:00:51
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import subscribers.db

revision = "0011"
# The lead re-chains revisions when merging branches.
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "web_account",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("created_at", subscribers.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "password_changed_at", subscribers.db.UTCDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_account")),
        sa.UniqueConstraint("email", name=op.f("uq_web_account_email")),
    )


def downgrade() -> None:
    op.drop_table("web_account")

"""web_session: sign-ins to the web app, revocable on the server

Until now a sign-in was only a signed cookie, valid for 12 hours whatever happened:
signing out forgot it in that browser, but a copy of the cookie still worked.  A new
table, ``web_session``, holds one row per sign-in (the SHA-256 of the cookie's random
token, the account, a fingerprint of the credential used, when it was made, last seen,
expires and was revoked); every request checks it, and signing out, signing out
everywhere and changing the password revoke rows.  No data moves: sessions made
before the upgrade are not in the table, so everyone signs in again once.
Downgrading drops the table (and with it every sign-in).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 00:58:41
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import subscribers.db

revision = "0007"
# The lead re-chains revisions when merging branches (the brief names "0002"; this
# branch's head is 0004, and two heads would stop every upgrade).
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "web_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("account", sa.String(length=320), nullable=False),
        sa.Column("credential", sa.String(length=64), nullable=False),
        sa.Column("created_at", subscribers.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", subscribers.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", subscribers.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", subscribers.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=300), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_session")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_web_session_token_hash")),
    )
    op.create_index(op.f("ix_web_session_account"), "web_session", ["account"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_web_session_account"), table_name="web_session")
    op.drop_table("web_session")

"""rate_budget and worker_process: one rate per provider account, and the workers seen

Two new tables, no data moved.  ``rate_budget`` holds, per provider account (its key
names the account, never its secret), the time its next message may go: every process
sending through that account takes its messages from it, so workers on many machines
keep to ``DIGEST_SMTP_RATE`` / ``DIGEST_SENDGRID_RATE`` together.  ``worker_process``
registers each `digest worker` (host, pid, start, last heartbeat, state, messages
sent) for `digest workers list` and the admin console.  Downgrading drops both.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 02:49:21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import subscribers.db

revision = "0010"
# The lead re-chains revisions when merging branches.
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_budget",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("rate", sa.Float(), nullable=False),
        sa.Column("next_at", sa.Float(), nullable=False),
        sa.Column("taken", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_rate_budget")),
    )
    op.create_table(
        "worker_process",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("host", sa.String(length=200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("backend", sa.String(length=50), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "running",
                "draining",
                "stopped",
                name="worker_state",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("started_at", subscribers.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", subscribers.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", subscribers.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_worker_process")),
        sa.UniqueConstraint("name", name=op.f("uq_worker_process_name")),
    )


def downgrade() -> None:
    op.drop_table("worker_process")
    op.drop_table("rate_budget")

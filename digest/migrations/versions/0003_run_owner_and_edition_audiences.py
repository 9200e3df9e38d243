"""scheduler_run.owner and edition_audience: state no longer parsed out of text

Two things were kept inside other values and read back out of them:

* who runs a scheduled run was written into ``scheduler_run.detail`` as
  ``running on HOST:PID:TOKEN`` and parsed back: it gets a column, ``owner``;
* the audiences an edition's ledger was written for were a list inside the
  ``edition.contents`` JSON (``"audiences": ["*", "health"]``): they become rows
  of ``edition_audience`` (one per edition and audience, unique).

The data moves both ways: upgrading copies each running run's owner out of its
detail and each edition's audiences out of its contents (and removes them
there); downgrading puts them back.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 23:40:49
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

import subscribers.db

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_OWNER_PREFIX = "running on "

_edition = sa.table(
    "edition",
    sa.column("id", sa.Integer()),
    sa.column("contents", subscribers.db.JSONType),
    sa.column("created_at", subscribers.db.UTCDateTime(timezone=True)),
)
_audience = sa.table(
    "edition_audience",
    sa.column("id", sa.Integer()),
    sa.column("edition_id", sa.Integer()),
    sa.column("audience", sa.String(100)),
    sa.column("planned_at", subscribers.db.UTCDateTime(timezone=True)),
)
_run = sa.table(
    "scheduler_run",
    sa.column("id", sa.Integer()),
    sa.column("outcome", sa.String(20)),
    sa.column("owner", sa.String(200)),
    sa.column("detail", sa.Text()),
)


def upgrade() -> None:
    op.create_table(
        "edition_audience",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("edition_id", sa.Integer(), nullable=False),
        sa.Column("audience", sa.String(length=100), nullable=False),
        sa.Column("planned_at", subscribers.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["edition_id"],
            ["edition.id"],
            name=op.f("fk_edition_audience_edition_id_edition"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_edition_audience")),
        sa.UniqueConstraint(
            "edition_id", "audience", name=op.f("uq_edition_audience_edition_id_audience")
        ),
    )
    with op.batch_alter_table("scheduler_run", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner", sa.String(length=200), nullable=True))

    conn = op.get_bind()
    for edition_id, contents, created_at in conn.execute(
        sa.select(_edition.c.id, _edition.c.contents, _edition.c.created_at)
    ).all():
        if not isinstance(contents, dict) or "audiences" not in contents:
            continue
        names = list(dict.fromkeys(str(a) for a in contents.get("audiences") or []))
        if names:
            conn.execute(
                _audience.insert(),
                [
                    {"edition_id": edition_id, "audience": a, "planned_at": created_at}
                    for a in names
                ],
            )
        rest = {k: v for k, v in contents.items() if k != "audiences"}
        conn.execute(_edition.update().where(_edition.c.id == edition_id).values(contents=rest))

    for run_id, detail in conn.execute(
        sa.select(_run.c.id, _run.c.detail).where(_run.c.outcome == "running")
    ).all():
        if detail and detail.startswith(_OWNER_PREFIX):
            owner = detail[len(_OWNER_PREFIX) :]
            conn.execute(
                _run.update()
                .where(_run.c.id == run_id)
                .values(owner=owner[:200], detail="in progress")
            )


def downgrade() -> None:
    conn = op.get_bind()
    for run_id, owner in conn.execute(
        sa.select(_run.c.id, _run.c.owner).where(
            _run.c.outcome == "running", _run.c.owner.is_not(None)
        )
    ).all():
        conn.execute(
            _run.update().where(_run.c.id == run_id).values(detail=f"{_OWNER_PREFIX}{owner}")
        )

    planned: dict[int, list[str]] = {}
    for edition_id, name in conn.execute(
        sa.select(_audience.c.edition_id, _audience.c.audience).order_by(_audience.c.id)
    ).all():
        planned.setdefault(edition_id, []).append(name)
    for edition_id, contents in conn.execute(sa.select(_edition.c.id, _edition.c.contents)).all():
        restored: dict[str, Any] = dict(contents) if isinstance(contents, dict) else {}
        restored["audiences"] = planned.get(edition_id, [])
        conn.execute(_edition.update().where(_edition.c.id == edition_id).values(contents=restored))

    with op.batch_alter_table("scheduler_run", schema=None) as batch_op:
        batch_op.drop_column("owner")
    op.drop_table("edition_audience")

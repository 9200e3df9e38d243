"""Alembic environment: runs on the connection digest.db hands it (never a URL of its own)."""

from __future__ import annotations

from alembic import context

import digest.models  # noqa: F401  (registers every table on the metadata)
from subscribers.db import Base

target_metadata = Base.metadata
connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only via `alembic` on the command line
    raise SystemExit("run migrations with `digest init`, which passes the connection")

context.configure(
    connection=connection,
    target_metadata=target_metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()

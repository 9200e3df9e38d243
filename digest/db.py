"""Engine, sessions and schema migrations (Alembic), for SQLite and PostgreSQL alike."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

import digest.models  # noqa: F401  (registers the pipeline's tables on Base)
from digest.errors import ConfigError, DatabaseError, SchemaOutOfDate
from subscribers.db import Base

if TYPE_CHECKING:  # alembic loads when the schema is checked, not with this module
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
_PG_LOCK_ID = 0x6469_6765  # "dige": serialises concurrent upgrades on PostgreSQL


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url`` with the settings each backend needs."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(
            f"DIGEST_DATABASE_URL: {url!r} is not a database URL; "
            "use e.g. sqlite:///digest.db or postgresql+psycopg://user@host/db"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {}).setdefault("timeout", 30)
    else:
        kwargs.setdefault("pool_pre_ping", True)
    try:
        engine = create_engine(parsed, **kwargs)
    except (NoSuchModuleError, ModuleNotFoundError) as exc:
        raise ConfigError(
            f"DIGEST_DATABASE_URL: no driver for {parsed.drivername!r} ({exc}); "
            "for PostgreSQL install digest[postgres] and use postgresql+psycopg://"
        ) from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own transaction handling is switched off so that every
    # transaction starts with BEGIN IMMEDIATE (below): concurrent writers then
    # queue on busy_timeout instead of failing with "database is locked" when a
    # read transaction tries to upgrade to a write.
    dbapi_connection.isolation_level = None
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


@cache
def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


@contextmanager
def _quiet_check() -> Iterator[None]:
    """Alembic logs "Context impl …" at INFO each time it looks at a schema: every command
    does, and at INFO (digest inbound, the scheduler, workers) each one printed those lines.
    A real upgrade still logs its steps."""
    logger = logging.getLogger("alembic.runtime.migration")
    level = logger.level
    if not logger.isEnabledFor(logging.DEBUG):
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with _connect(engine) as conn, _quiet_check():
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Create or upgrade the schema to head; returns (before, after).  Idempotent."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    with _connect(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_ID})
            conn.commit()
        try:
            with _quiet_check():
                before = MigrationContext.configure(conn).get_current_revision()
            if before != head_revision():
                cfg = _alembic_config()
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                conn.commit()
        finally:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_ID})
                conn.commit()
    return before, head_revision()


def ensure_schema(engine: Engine, *, auto_upgrade: bool = True) -> None:
    """Make sure the schema is current: upgrade it, or say to run ``digest init``."""
    current = current_revision(engine)
    if current == head_revision():
        return
    if auto_upgrade:
        upgrade(engine)
        return
    raise SchemaOutOfDate(
        f"the database schema is at {current or 'nothing'}, this version needs "
        f"{head_revision()}; run `digest init` to create or upgrade it"
    )


@contextmanager
def _connect(engine: Engine) -> Iterator[Any]:
    try:
        conn = engine.connect()
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseError(
            f"cannot open the database {engine.url.render_as_string(hide_password=True)}: "
            f"{reason}; check DIGEST_DATABASE_URL"
        ) from None
    with conn:
        yield conn


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


__all__ = [
    "Base",
    "current_revision",
    "ensure_schema",
    "head_revision",
    "make_engine",
    "session_factory",
    "upgrade",
]

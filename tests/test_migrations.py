"""One schema for SQLite and PostgreSQL: the migrations build exactly what the models say."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from digest import db
from subscribers.db import Base

#: Tables other libraries own (APScheduler's job store creates its own).
FOREIGN_TABLES = {"apscheduler_jobs"}


def _include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    return not (type_ == "table" and name in FOREIGN_TABLES)


def test_migrations_match_models(engine: Engine) -> None:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": _include}
        )
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == [], f"models and migrations differ; run scripts/new_migration.py: {diff}"


def test_upgrade_is_idempotent_and_at_head(engine: Engine) -> None:
    assert db.current_revision(engine) == db.head_revision()
    assert db.upgrade(engine) == (db.head_revision(), db.head_revision())
    tables = set(inspect(engine).get_table_names())
    assert {"article", "edition", "delivery", "subscriber", "suppression"} <= tables


def test_0002_upgrades_a_database_with_a_ledger_and_back(db_url: str) -> None:
    """A database made by 0001, with an edition and deliveries in it, goes to head
    (the status index gone; on PostgreSQL the ledger keeps room for in-place
    updates), down again and back up, its rows untouched."""
    from alembic import command
    from sqlalchemy import text

    eng = db.make_engine(db_url)
    cfg = db._alembic_config()
    try:
        with eng.connect() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0001")
            conn.commit()
        with eng.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO edition (id, newsletter, period, period_start, period_end, "
                    "status, subject, contents, created_at, updated_at) VALUES (1, 'weekly', "
                    "'2026-W47', :t, :t, 'sending', 's', '{}', :t, :t)"
                ),
                {"t": "2026-11-23 08:00:00+00:00"},
            )
            conn.execute(
                text(
                    "INSERT INTO delivery (edition_id, email, status, attempts, created_at, "
                    "updated_at) VALUES (1, 'a@example.org', 'pending', 0, :t, :t)"
                ),
                {"t": "2026-11-23 08:00:00+00:00"},
            )

        def indexes() -> set[str]:
            return {i["name"] for i in inspect(eng).get_indexes("delivery") if i["name"]}

        assert "ix_delivery_edition_status" in indexes()
        assert db.upgrade(eng) == ("0001", db.head_revision())
        assert "ix_delivery_edition_status" not in indexes()
        with eng.connect() as conn:
            assert conn.execute(text("SELECT email, status FROM delivery")).all() == [
                ("a@example.org", "pending")
            ]
            if conn.dialect.name == "postgresql":
                options = conn.execute(
                    text("SELECT reloptions FROM pg_class WHERE oid = 'delivery'::regclass")
                ).scalar()
                assert options == ["fillfactor=75"]
        with eng.connect() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0001")
            conn.commit()
        assert "ix_delivery_edition_status" in indexes()
        assert db.upgrade(eng) == ("0001", db.head_revision())
        with eng.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM delivery")).scalar() == 1
    finally:
        eng.dispose()


def test_0006_gives_every_edition_a_message_nonce_and_back(db_url: str) -> None:
    """A database at 0002 with two editions and a delivery goes to 0006: each edition
    gets its own random nonce, the ledger untouched (on SQLite the column is added in
    place: rebuilding the table would cascade-delete the deliveries); down to 0002
    and up again gives new nonces, the rows still there."""
    from alembic import command
    from sqlalchemy import text

    eng = db.make_engine(db_url)
    cfg = db._alembic_config()

    def migrate(step: Any, revision: str) -> None:
        with eng.connect() as conn:
            cfg.attributes["connection"] = conn
            step(cfg, revision)
            conn.commit()

    def nonces() -> list[str]:
        with eng.connect() as conn:
            return list(
                conn.execute(text("SELECT message_nonce FROM edition ORDER BY id")).scalars()
            )

    def deliveries() -> list[Any]:
        with eng.connect() as conn:
            return list(conn.execute(text("SELECT edition_id, email FROM delivery")).all())

    try:
        migrate(command.upgrade, "0002")
        with eng.begin() as conn:
            for edition_id, period in ((1, "2026-W47"), (2, "2026-W48")):
                conn.execute(
                    text(
                        "INSERT INTO edition (id, newsletter, period, period_start, period_end, "
                        "status, subject, contents, created_at, updated_at) VALUES (:id, "
                        "'weekly', :p, :t, :t, 'sending', 's', '{}', :t, :t)"
                    ),
                    {"id": edition_id, "p": period, "t": "2026-11-23 08:00:00+00:00"},
                )
            conn.execute(
                text(
                    "INSERT INTO delivery (edition_id, email, status, attempts, created_at, "
                    "updated_at) VALUES (1, 'a@example.org', 'pending', 0, :t, :t)"
                ),
                {"t": "2026-11-23 08:00:00+00:00"},
            )
        migrate(command.upgrade, "0006")
        first = nonces()
        assert len(first) == 2 and first[0] != first[1]
        assert all(len(n) == 24 and int(n, 16) >= 0 for n in first)
        assert deliveries() == [(1, "a@example.org")]
        edition = {c["name"]: c for c in inspect(eng).get_columns("edition")}
        assert edition["message_nonce"]["nullable"] is False

        migrate(command.downgrade, "0002")
        assert "message_nonce" not in {c["name"] for c in inspect(eng).get_columns("edition")}
        assert deliveries() == [(1, "a@example.org")]
        migrate(command.upgrade, "0006")
        again = nonces()
        assert len(set(again)) == 2 and not set(again) & set(first)
        assert deliveries() == [(1, "a@example.org")]
    finally:
        eng.dispose()

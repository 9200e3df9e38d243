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


def test_0005_records_each_articles_source_and_title_key_and_back(db_url: str) -> None:
    """A database at 0002 with sources and articles goes to head: every article's
    owner is copied into article_source and its title key computed; down again
    (the table and column go, the articles stay) and back up."""
    from alembic import command
    from sqlalchemy import text

    from digest.ingest.clean import title_key

    eng = db.make_engine(db_url)
    cfg = db._alembic_config()
    t = "2026-11-23 08:00:00+00:00"
    try:
        with eng.connect() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0002")
            conn.commit()
        with eng.begin() as conn:
            for sid, url in ((1, "https://a.example.org/feed"), (2, "/srv/feeds/b.xml")):
                conn.execute(
                    text(
                        "INSERT INTO source (id, url, kind, created_at) VALUES (:i, :u, 'rss', :t)"
                    ),
                    {"i": sid, "u": url, "t": t},
                )
            for aid, sid, title in (
                (1, 1, "Councils publish digital plans"),
                (2, 2, "Q&amp;A: ‘Data’ standards"),
                (3, None, "Orphan"),
            ):
                conn.execute(
                    text(
                        "INSERT INTO article (id, canonical_url, title, summary_html, "
                        "summary_text, author, categories, published_at, date_estimated, "
                        "first_seen_at, updated_at, content_hash, pinned, source_id) VALUES "
                        "(:i, :u, :title, '', '', '', '[]', :t, false, :t, :t, 'h', false, :s)"
                    ),
                    {"i": aid, "u": f"https://www.a.example.org/{aid}", "title": title, "t": t,
                     "s": sid},
                )  # fmt: skip

        def tables() -> set[str]:
            return set(inspect(eng).get_table_names())

        assert "article_source" not in tables()
        assert db.upgrade(eng) == ("0002", db.head_revision())
        with eng.connect() as conn:
            pairs = conn.execute(
                text("SELECT article_id, source_id FROM article_source ORDER BY article_id")
            ).all()
            assert [tuple(p) for p in pairs] == [(1, 1), (2, 2)]
            keys = dict(conn.execute(text("SELECT id, title_key FROM article")).all())
        assert keys[1] == title_key("Councils publish digital plans", "https://a.example.org/1")
        assert keys[2] == title_key("Q&A: 'data' standards", "https://a.example.org/2")
        assert keys[3] is None  # too short to tell articles apart
        with eng.connect() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0002")
            conn.commit()
        assert "article_source" not in tables()
        assert "title_key" not in {c["name"] for c in inspect(eng).get_columns("article")}
        with eng.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM article")).scalar() == 3
        assert db.upgrade(eng) == ("0002", db.head_revision())
        with eng.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM article_source")).scalar() == 2
    finally:
        eng.dispose()

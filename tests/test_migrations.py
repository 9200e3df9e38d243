"""One schema for SQLite and PostgreSQL: the migrations build exactly what the models say."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from digest import db
from subscribers.db import Base

#: Tables other libraries own (APScheduler's job store creates its own).
FOREIGN_TABLES = {"apscheduler_jobs"}


def _migrator(eng: Engine) -> Callable[[Any, str], None]:
    """``migrate(command.upgrade, "0007")``: one Alembic step on ``eng``, committed."""
    cfg = db._alembic_config()

    def migrate(step: Any, revision: str) -> None:
        with eng.connect() as conn:
            cfg.attributes["connection"] = conn
            step(cfg, revision)
            conn.commit()

    return migrate


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


def test_checking_a_current_schema_logs_nothing(engine: Engine, caplog: Any) -> None:
    """Every command checks the schema; at INFO (digest inbound, the scheduler, workers)
    that check printed alembic's "Context impl SQLiteImpl." lines each time."""
    db.upgrade(engine)
    with caplog.at_level(logging.INFO):
        db.ensure_schema(engine)
        db.upgrade(engine)
    assert [r.getMessage() for r in caplog.records if r.name.startswith("alembic")] == []


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


def test_0003_moves_run_owners_and_audiences_out_of_text_and_back(db_url: str) -> None:
    """A database at 0002 holding editions (audiences in their contents JSON) and
    scheduler runs (the owner in a running run's detail) goes to 0003: owners become
    ``scheduler_run.owner``, audiences rows of ``edition_audience``; down to 0002 again
    puts both back where they were, and up again moves them once more."""
    import json

    from alembic import command
    from sqlalchemy import text

    eng = db.make_engine(db_url)

    migrate = _migrator(eng)

    def contents() -> dict[int, Any]:
        with eng.connect() as conn:
            rows = conn.execute(text("SELECT id, contents FROM edition ORDER BY id")).all()
        return {i: c if isinstance(c, dict) else json.loads(c) for i, c in rows}

    def runs() -> list[tuple[Any, ...]]:
        with eng.connect() as conn:
            return [tuple(r) for r in conn.execute(text(_RUNS)).all()]

    sections = [["Policy", [1, 2]], ["Data", [3]]]
    try:
        migrate(command.upgrade, "0002")
        with eng.begin() as conn:
            for edition_id, period, audiences in (
                (1, "2026-W46", ["*", "health"]),
                (2, "2026-W47", []),
            ):
                conn.execute(
                    text(
                        "INSERT INTO edition (id, newsletter, period, period_start, period_end, "
                        "status, subject, contents, created_at, updated_at) VALUES (:id, "
                        "'weekly', :period, :t, :t, 'sent', 's', :contents, :t, :t)"
                    ),
                    {
                        "id": edition_id,
                        "period": period,
                        "t": "2026-11-23 08:00:00+00:00",
                        "contents": json.dumps({"sections": sections, "audiences": audiences}),
                    },
                )
            for run_id, outcome, detail in (
                (1, "sent", "edition 1 (2026-W46): 3 sent now (3 in all)"),
                (2, "running", "running on host-a:4242:0123456789ab"),
            ):
                conn.execute(
                    text(
                        "INSERT INTO scheduler_run (id, newsletter, scheduled_for, outcome, "
                        "detail) VALUES (:id, 'weekly', :t, :outcome, :detail)"
                    ),
                    {
                        "id": run_id,
                        "t": "2026-11-23 08:00:00+00:00",
                        "outcome": outcome,
                        "detail": detail,
                    },
                )

        migrate(command.upgrade, "0003")
        assert contents() == {1: {"sections": sections}, 2: {"sections": sections}}
        with eng.connect() as conn:
            planned = conn.execute(
                text("SELECT edition_id, audience FROM edition_audience ORDER BY id")
            ).all()
        assert [tuple(r) for r in planned] == [(1, "*"), (1, "health")]
        assert runs() == [
            (1, "sent", None, "edition 1 (2026-W46): 3 sent now (3 in all)"),
            (2, "running", "host-a:4242:0123456789ab", "in progress"),
        ]

        migrate(command.downgrade, "0002")
        assert contents() == {
            1: {"sections": sections, "audiences": ["*", "health"]},
            2: {"sections": sections, "audiences": []},
        }
        with eng.connect() as conn:
            assert conn.execute(
                text("SELECT id, outcome, detail FROM scheduler_run ORDER BY id")
            ).all() == [
                (1, "sent", "edition 1 (2026-W46): 3 sent now (3 in all)"),
                (2, "running", "running on host-a:4242:0123456789ab"),
            ]
        assert "edition_audience" not in inspect(eng).get_table_names()
        assert "owner" not in {c["name"] for c in inspect(eng).get_columns("scheduler_run")}

        migrate(command.upgrade, "head")
        assert runs()[1] == (2, "running", "host-a:4242:0123456789ab", "in progress")
        with eng.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM edition_audience")).scalar() == 2
    finally:
        eng.dispose()


_RUNS = "SELECT id, outcome, owner, detail FROM scheduler_run ORDER BY id"


def test_0004_starts_the_consent_log_from_where_everyone_stands_and_back(db_url: str) -> None:
    """A database made by 0002 with readers in it goes to head: each reader and each
    membership gets one line (nothing → its status, source "migration") that replays
    to their status; down again drops the log, the readers untouched; and up again."""
    from alembic import command
    from sqlalchemy import text

    from subscribers import consent
    from subscribers.models import Status

    eng = db.make_engine(db_url)
    cfg = db._alembic_config()
    t = "2026-11-20 08:00:00+00:00"
    try:
        with eng.connect() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0002")
            conn.commit()
        with eng.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO mailing_list (id, name, description, double_opt_in, created_at) "
                    "VALUES (1, 'weekly', '', true, :t)"
                ),
                {"t": t},
            )
            for sid, status, member in [
                (1, "active", "active"),
                (2, "unsubscribed", "unsubscribed"),
            ]:
                conn.execute(
                    text(
                        "INSERT INTO subscriber (id, email, email_key, name, status, attributes, "
                        "categories, created_at, unsubscribed_at) VALUES (:id, :e, :e, '', :s, "
                        "'{}', '[]', :t, :u)"
                    ),
                    {
                        "id": sid,
                        "e": f"r{sid}@example.org",
                        "s": status,
                        "t": t,
                        "u": t if status == "unsubscribed" else None,
                    },
                )
                conn.execute(
                    text(
                        "INSERT INTO membership (subscriber_id, list_id, status, created_at, "
                        "updated_at) VALUES (:id, 1, :s, :t, :t)"
                    ),
                    {"id": sid, "s": member, "t": t},
                )
        assert db.upgrade(eng) == ("0002", db.head_revision())
        with db.session_factory(eng)() as session:
            for sid, status in [(1, Status.ACTIVE), (2, Status.UNSUBSCRIBED)]:
                lines = consent.history(session, sid)
                assert [(ln.list_name, ln.from_status, ln.to_status) for ln in lines] == [
                    (None, None, status),
                    ("weekly", None, status),
                ]
                assert {ln.source.value for ln in lines} == {"migration"}
                replayed = consent.replay(lines)
                assert (replayed.reader, replayed.memberships, replayed.problems) == (
                    status,
                    {"weekly": status},
                    [],
                )
            left = consent.left_on(session, [2])
            assert f"{left[2]:%Y-%m-%d}" == "2026-11-20"  # "unsubscribed on 2026-11-20"
        with eng.connect() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0002")
            conn.commit()
        assert "consent_event" not in inspect(eng).get_table_names()
        with eng.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM subscriber")).scalar() == 2
        assert db.upgrade(eng) == ("0002", db.head_revision())
        assert "consent_event" in inspect(eng).get_table_names()
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


def test_0006_gives_every_edition_a_message_nonce_and_back(db_url: str) -> None:
    """A database at 0002 with two editions and a delivery goes to 0006: each edition
    gets its own random nonce, the ledger untouched (on SQLite the column is added in
    place: rebuilding the table would cascade-delete the deliveries); down to 0002
    and up again gives new nonces, the rows still there."""
    from alembic import command
    from sqlalchemy import text

    eng = db.make_engine(db_url)

    migrate = _migrator(eng)

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


def test_0007_adds_revocable_sign_ins_and_back(db_url: str) -> None:
    """A database at 0004 with readers goes to head: ``web_session`` exists and takes a
    sign-in; down to 0004 drops it (the readers untouched), and up again."""
    from datetime import UTC, datetime, timedelta

    from alembic import command
    from sqlalchemy import text

    from digest import signins

    eng = db.make_engine(db_url)

    migrate = _migrator(eng)

    try:
        migrate(command.upgrade, "0004")
        with eng.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO subscriber (id, email, email_key, name, status, attributes, "
                    "categories, created_at) VALUES (1, 'a@example.org', 'a@example.org', '', "
                    "'active', '{}', '[]', :t)"
                ),
                {"t": "2026-11-20 08:00:00+00:00"},
            )
        assert "web_session" not in inspect(eng).get_table_names()
        migrate(command.upgrade, "0007")
        assert "web_session" in inspect(eng).get_table_names()
        now = datetime(2026, 11, 23, 8, tzinfo=UTC)
        with db.session_factory(eng)() as session:
            token = signins.start(session, "admin", "fp", lifetime=timedelta(hours=1), now=now)
            session.commit()
            assert signins.find(session, token, "fp", now=now) is not None
        migrate(command.downgrade, "0004")
        assert "web_session" not in inspect(eng).get_table_names()
        with eng.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM subscriber")).scalar() == 1
        migrate(command.upgrade, "head")
        with db.session_factory(eng)() as session:
            assert signins.find(session, token, "fp", now=now) is None  # everyone signs in anew
    finally:
        eng.dispose()


def test_0009_adds_drafts_approvals_and_the_action_log_and_back(db_url: str) -> None:
    """A database at 0007 with an edition going out and its ledger goes to 0009: the
    edition keeps its deliveries (the columns are added in place), takes an approval
    and logs actions; down to 0007, drafts, approved and cancelled editions become
    skipped and held runs skipped (the older code must not send a draft), the log goes,
    the ledger stays; and up again."""
    from alembic import command
    from sqlalchemy import text

    eng = db.make_engine(db_url)
    t = "2026-11-23 08:00:00+00:00"

    migrate = _migrator(eng)

    def rows(sql: str) -> list[Any]:
        with eng.connect() as conn:
            return list(conn.execute(text(sql)).all())

    try:
        migrate(command.upgrade, "0007")
        with eng.begin() as conn:
            for edition_id, period, status in ((1, "2026-W46", "sending"), (2, "2026-W47", "sent")):
                conn.execute(
                    text(
                        "INSERT INTO edition (id, newsletter, period, period_start, period_end, "
                        "status, subject, contents, message_nonce, created_at, updated_at) "
                        "VALUES (:id, 'weekly', :p, :t, :t, :s, 's', '{}', 'n', :t, :t)"
                    ),
                    {"id": edition_id, "p": period, "s": status, "t": t},
                )
            conn.execute(
                text(
                    "INSERT INTO delivery (edition_id, email, status, attempts, created_at, "
                    "updated_at) VALUES (1, 'a@example.org', 'pending', 0, :t, :t)"
                ),
                {"t": t},
            )
        migrate(command.upgrade, "0009")
        assert rows("SELECT edition_id, email FROM delivery") == [(1, "a@example.org")]
        with eng.begin() as conn:
            conn.execute(
                text(
                    "UPDATE edition SET status = 'draft', approved_by = 'ann', approved_at = :t "
                    "WHERE id = 2"
                ),
                {"t": t},
            )
            conn.execute(
                text(
                    "INSERT INTO edition_action (edition_id, actor, action, detail, at) "
                    "VALUES (2, 'ann', 'note', 'intro set', :t)"
                ),
                {"t": t},
            )
            conn.execute(
                text(
                    "INSERT INTO scheduler_run (newsletter, scheduled_for, outcome, detail) "
                    "VALUES ('weekly', :t, 'held', 'held for approval')"
                ),
                {"t": t},
            )
        migrate(command.downgrade, "0007")
        assert "edition_action" not in inspect(eng).get_table_names()
        columns = {c["name"] for c in inspect(eng).get_columns("edition")}
        assert not columns & {"approved_at", "approved_by", "send_at"}
        assert rows("SELECT id, status FROM edition ORDER BY id") == [
            (1, "sending"),
            (2, "skipped"),
        ]
        assert rows("SELECT outcome FROM scheduler_run") == [("skipped",)]
        assert rows("SELECT edition_id, email FROM delivery") == [(1, "a@example.org")]
        migrate(command.upgrade, "head")
        assert "edition_action" in inspect(eng).get_table_names()
        assert rows("SELECT edition_id, email FROM delivery") == [(1, "a@example.org")]
    finally:
        eng.dispose()


def test_0012_adds_raw_hashes_to_articles_and_back(db_url: str) -> None:
    """A database at 0011 with an article goes to 0012: the article keeps its fields and
    has no raw hash yet (its next ingest compares it field by field, as before); down
    to 0011 the column goes and the article stays; and up again."""
    from alembic import command
    from sqlalchemy import text

    eng = db.make_engine(db_url)
    t = "2026-11-23 08:00:00+00:00"

    migrate = _migrator(eng)

    def columns() -> set[str]:
        return {c["name"] for c in inspect(eng).get_columns("article")}

    try:
        migrate(command.upgrade, "0011")
        with eng.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO article (id, canonical_url, title, summary_html, summary_text, "
                    "author, categories, published_at, date_estimated, first_seen_at, "
                    "updated_at, content_hash, pinned) VALUES (1, 'https://a.example.org/1', "
                    "'Plan', '', '', '', '[]', :t, false, :t, :t, 'h', false)"
                ),
                {"t": t},
            )
        assert "raw_hash" not in columns()
        migrate(command.upgrade, "0012")
        with eng.connect() as conn:
            row = conn.execute(text("SELECT title, content_hash, raw_hash FROM article")).one()
        assert tuple(row) == ("Plan", "h", None)
        with eng.begin() as conn:
            conn.execute(text("UPDATE article SET raw_hash = :h"), {"h": "a" * 64})
        migrate(command.downgrade, "0011")
        assert "raw_hash" not in columns()
        with eng.connect() as conn:
            assert conn.execute(text("SELECT title FROM article")).scalar_one() == "Plan"
        migrate(command.upgrade, "0012")
        assert "raw_hash" in columns()
    finally:
        eng.dispose()

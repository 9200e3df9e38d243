"""articles remember every source they were seen in; a title key finds other feeds' copies

An article belongs to a newsletter when it came from one of the newsletter's
sources, and one article can come from several (a site's RSS and JSON feeds,
two newsletters' overlapping sources).  ``article_source`` records each pair;
it starts with every article's current owner (``article.source_id``).

``article.title_key`` is a SHA-1 of an article's site (host without ``www.``)
and normalised title, so another feed's copy of the article under a slightly
different URL is found with one indexed lookup.  Existing rows get theirs here,
computed exactly as ``digest.ingest.clean.title_key`` did when this revision
was written (a frozen copy: later changes to that function must not change
what this migration does).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 10:00:00
"""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata
from urllib.parse import urlsplit

import sqlalchemy as sa
from alembic import op

import subscribers.db

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_BATCH = 1000
_TITLE_DROP = re.compile(r"[^\w\s]+")


def _title_key(title: str, url: str) -> str | None:
    text = unicodedata.normalize("NFKC", html.unescape(title or "")).casefold()
    text = " ".join(_TITLE_DROP.sub(" ", text).split())
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:
        return None
    site = host[4:] if host.startswith("www.") else host
    if not site or len(text) < 8 or text == "untitled":
        return None
    return hashlib.sha1(f"{site}\n{text}".encode(), usedforsecurity=False).hexdigest()


def upgrade() -> None:
    op.create_table(
        "article_source",
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("first_seen_at", subscribers.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["article_id"],
            ["article.id"],
            name=op.f("fk_article_source_article_id_article"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["source.id"],
            name=op.f("fk_article_source_source_id_source"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("article_id", "source_id", name=op.f("pk_article_source")),
    )
    with op.batch_alter_table("article_source", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_article_source_source_id"), ["source_id"], unique=False)
    with op.batch_alter_table("article", schema=None) as batch_op:
        batch_op.add_column(sa.Column("title_key", sa.String(length=40), nullable=True))
        batch_op.create_index(batch_op.f("ix_article_title_key"), ["title_key"], unique=False)

    conn = op.get_bind()
    conn.execute(
        sa.text(
            "INSERT INTO article_source (article_id, source_id, first_seen_at) "
            "SELECT id, source_id, first_seen_at FROM article WHERE source_id IS NOT NULL"
        )
    )
    article = sa.table(
        "article",
        sa.column("id", sa.Integer()),
        sa.column("title", sa.Text()),
        sa.column("canonical_url", sa.String()),
        sa.column("title_key", sa.String()),
    )
    last = 0
    while True:
        rows = conn.execute(
            sa.select(article.c.id, article.c.title, article.c.canonical_url)
            .where(article.c.id > last)
            .order_by(article.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            break
        keys = [
            {"row_id": row.id, "key": key}
            for row in rows
            if (key := _title_key(row.title, row.canonical_url)) is not None
        ]
        if keys:
            conn.execute(
                article.update()
                .where(article.c.id == sa.bindparam("row_id"))
                .values(title_key=sa.bindparam("key")),
                keys,
            )
        last = rows[-1].id


def downgrade() -> None:
    with op.batch_alter_table("article", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_article_title_key"))
        batch_op.drop_column("title_key")
    with op.batch_alter_table("article_source", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_article_source_source_id"))
    op.drop_table("article_source")

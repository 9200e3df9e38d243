"""A draft edition's contents, and the record of what editors did to an edition.

An edition of a newsletter with ``approval = "required"`` (or one an editor prepared
with `digest editions prepare`) starts as a *draft*: its ``contents`` (the article ids
by section, see :func:`digest.editions.freeze`) can still change.  Editors write an
intro (Markdown), exclude and re-include articles, move one within its section or make
it the top story, and change the subject; approving freezes all of it.  Every change
is a row of ``edition_action`` (who, when, what).

Everything here works inside the caller's session; :mod:`digest.desk` wraps it for
the command line and the web.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.collect import Period, collect_period, section_of
from digest.config import NewsletterConfig
from digest.errors import DigestError, NotFound
from digest.ingest.clean import canonical_url, url_variants
from digest.models import Article, Edition, EditionAction, EditionStatus
from digest.templating.notes import MAX_NOTE_CHARS
from subscribers.db import utcnow

#: The longest subject line an editor may set.
MAX_SUBJECT_CHARS = 200


class NotADraft(DigestError):
    """The edition's contents are frozen (approved, sending, sent …)."""

    exit_code = 1


class BadEdit(DigestError):
    """An edit that cannot be made (a position out of range, an empty subject …)."""

    exit_code = 2


def record(session: Session, edition_id: int, actor: str, action: str, detail: str = "") -> None:
    """Write one line of the edition's action log."""
    session.add(
        EditionAction(
            edition_id=edition_id,
            actor=actor[:320],
            action=action[:30],
            detail=detail[:2000],
            at=utcnow(),
        )
    )


def actions(session: Session, edition_id: int) -> Sequence[EditionAction]:
    """The edition's action log, oldest first."""
    return session.scalars(
        select(EditionAction)
        .where(EditionAction.edition_id == edition_id)
        .order_by(EditionAction.at, EditionAction.id)
    ).all()


def describe_edition(edition: Edition) -> str:
    return f"edition {edition.id} ({edition.newsletter} {edition.period})"


def require_draft(edition: Edition) -> None:
    if edition.status != EditionStatus.DRAFT:
        raise NotADraft(
            f"{describe_edition(edition)} is {edition.status}, not a draft: its contents are "
            "frozen once it is approved"
        )


def _contents(edition: Edition) -> dict[str, Any]:
    """A copy to change and assign back (the JSON column sees only a new value)."""
    return copy.deepcopy(dict(edition.contents or {}))


def _sections(contents: dict[str, Any]) -> list[list[Any]]:
    sections: list[list[Any]] = contents.setdefault("sections", [])
    return sections


def _excluded(contents: dict[str, Any]) -> list[list[Any]]:
    excluded: list[list[Any]] = contents.setdefault("excluded", [])
    return excluded


def article_ids(edition: Edition) -> list[int]:
    """The ids of the articles in the edition, in order."""
    return [i for _, ids in (edition.contents or {}).get("sections", []) for i in ids]


def excluded_ids(edition: Edition) -> list[int]:
    return [int(row[0]) for row in (edition.contents or {}).get("excluded", [])]


def find_article(session: Session, edition: Edition, ref: str) -> Article:
    """An article of the edition (in it or excluded from it) by URL or id."""
    ref = ref.strip()
    known = [*article_ids(edition), *excluded_ids(edition)]
    article = None
    if ref.isdigit() and len(ref) < 12:
        article = session.get(Article, int(ref))
    elif known:
        # The URL as the editor has it: copied from the email (the newsletter's UTM
        # parameters), the address bar or the feed; matched as ingest matches articles.
        spellings = [
            ref,
            *url_variants(canonical_url(ref)),
            *url_variants(canonical_url(ref, keep_fragment=True)),
        ]
        found = session.scalars(
            select(Article).where(Article.id.in_(known), Article.canonical_url.in_(spellings))
        ).all()
        article = min(found, key=lambda a: spellings.index(a.canonical_url), default=None)
    if article is None or article.id not in known:
        raise NotFound(
            f"{ref[:200]!r} is not an article of {describe_edition(edition)}; give its URL or id "
            f"as `digest editions show {edition.id}` lists them"
        )
    return article


def _title(article: Article) -> str:
    title = " ".join(article.title.split())
    return title if len(title) <= 80 else title[:79] + "…"


def set_intro(session: Session, edition: Edition, markdown: str, actor: str) -> None:
    """The editor's intro (Markdown; empty removes it)."""
    require_draft(edition)
    text = (markdown or "").replace("\r\n", "\n").strip()
    if len(text) > MAX_NOTE_CHARS:
        raise BadEdit(f"the intro is {len(text)} characters long; keep it under {MAX_NOTE_CHARS}")
    contents = _contents(edition)
    if (contents.get("intro") or "") == text:
        return
    contents["intro"] = text
    edition.contents = contents
    words = len(text.split())
    said = f"intro set ({words} words)" if text else "intro removed"
    record(session, edition.id, actor, "note", said)


def set_subject(session: Session, edition: Edition, subject: str, actor: str) -> None:
    """The subject line (empty: the template's again)."""
    require_draft(edition)
    text = " ".join((subject or "").split())
    if len(text) > MAX_SUBJECT_CHARS:
        raise BadEdit(
            f"the subject is {len(text)} characters long; keep it under {MAX_SUBJECT_CHARS}"
        )
    contents = _contents(edition)
    if (contents.get("subject") or "") == text:
        return
    contents["subject"] = text
    edition.contents = contents
    edition.subject = text
    record(session, edition.id, actor, "subject", f"subject: {text}" if text else "subject reset")


def exclude(session: Session, edition: Edition, ref: str, actor: str) -> Article:
    """Take an article out of the draft (it can be included again)."""
    require_draft(edition)
    article = find_article(session, edition, ref)
    contents = _contents(edition)
    for name, ids in _sections(contents):
        if article.id in ids:
            index = ids.index(article.id)
            ids.remove(article.id)
            _excluded(contents).append([article.id, name, index])
            break
    else:
        raise BadEdit(f"{_title(article)!r} is excluded from {describe_edition(edition)} already")
    if not article_ids_of(contents):
        raise BadEdit(
            f"{_title(article)!r} is the last article of {describe_edition(edition)}; an edition "
            "needs at least one (cancel it instead)"
        )
    if contents.get("top") == article.id:
        contents.pop("top")
    edition.contents = contents
    record(session, edition.id, actor, "exclude", f"excluded {_title(article)!r}")
    return article


def article_ids_of(contents: dict[str, Any]) -> list[int]:
    return [i for _, ids in contents.get("sections", []) for i in ids]


def include(
    session: Session, edition: Edition, ref: str, actor: str, newsletter: NewsletterConfig
) -> Article:
    """Put an excluded article back where it was in its section."""
    require_draft(edition)
    article = find_article(session, edition, ref)
    contents = _contents(edition)
    excluded = _excluded(contents)
    row = next((r for r in excluded if int(r[0]) == article.id), None)
    if row is None:
        raise BadEdit(f"{_title(article)!r} is in {describe_edition(edition)} already")
    excluded.remove(row)
    _insert(contents, newsletter, article, str(row[1]), int(row[2]))
    edition.contents = contents
    record(session, edition.id, actor, "include", f"included {_title(article)!r} again")
    return article


def _insert(
    contents: dict[str, Any],
    newsletter: NewsletterConfig,
    article: Article,
    section: str,
    index: int | None = None,
) -> None:
    sections = _sections(contents)
    for name, ids in sections:
        if name == section:
            ids.insert(len(ids) if index is None else min(index, len(ids)), article.id)
            return
    # the section is new to this edition: placed in the newsletter's category order
    order = [*newsletter.category_names, newsletter.other_category or ""]
    rank = order.index(section) if section in order else len(order)
    position = sum(1 for name, _ in sections if (order.index(name) if name in order else 99) < rank)
    sections.insert(position, [section, [article.id]])


def move(
    session: Session,
    edition: Edition,
    ref: str,
    actor: str,
    *,
    to: int | None = None,
    top: bool = False,
) -> Article:
    """Move an article to position ``to`` (1-based) in its section, and/or make it the
    top story (``top``: the first thing readers see)."""
    require_draft(edition)
    if to is None and not top:
        raise BadEdit("say where to: --to N (a position in its section) or --top")
    article = find_article(session, edition, ref)
    contents = _contents(edition)
    found = next((ids for _, ids in _sections(contents) if article.id in ids), None)
    if found is None:
        raise BadEdit(
            f"{_title(article)!r} is excluded from {describe_edition(edition)}; include it first"
        )
    name = next(n for n, ids in _sections(contents) if ids is found)
    done = []
    if to is not None:
        if not 1 <= to <= len(found):
            raise BadEdit(
                f"position {to} is out of range: {name} has {len(found)} articles "
                f"(1 to {len(found)})"
            )
        found.remove(article.id)
        found.insert(to - 1, article.id)
        contents["ordered"] = True
        done.append(f"moved {_title(article)!r} to {to} in {name}")
    if top:
        contents["top"] = article.id
        done.append(f"made {_title(article)!r} the top story")
    edition.contents = contents
    record(session, edition.id, actor, "top" if top and to is None else "move", "; ".join(done))
    return article


def offered(session: Session, newsletter: NewsletterConfig, edition: Edition) -> list[Article]:
    """Articles of the edition's period that arrived after it was prepared and are neither
    in it nor excluded from it: offered to the editor, never added silently."""
    period = Period(edition.period, edition.period_start, edition.period_end)
    known = {*article_ids(edition), *excluded_ids(edition), *_declined(edition)}
    now = collect_period(session, newsletter, period)
    return [a for a in now.articles if a.id not in known and a.first_seen_at >= edition.created_at]


def _declined(edition: Edition) -> list[int]:
    return [int(i) for i in (edition.contents or {}).get("declined", [])]


def add_offered(
    session: Session, newsletter: NewsletterConfig, edition: Edition, actor: str
) -> list[Article]:
    """Add the offered articles to the draft, each at the end of its section."""
    require_draft(edition)
    new = offered(session, newsletter, edition)
    if not new:
        return []
    contents = _contents(edition)
    for article in new:
        section = section_of(article, newsletter)
        if section is not None:
            _insert(contents, newsletter, article, section)
    edition.contents = contents
    titles = ", ".join(repr(_title(a)) for a in new[:5]) + (" …" if len(new) > 5 else "")
    record(session, edition.id, actor, "add", f"added {len(new)} new article(s): {titles}")
    return new


def decline_offered(
    session: Session, newsletter: NewsletterConfig, edition: Edition, actor: str
) -> int:
    """Stop offering the articles offered now."""
    require_draft(edition)
    new = offered(session, newsletter, edition)
    if not new:
        return 0
    contents = _contents(edition)
    contents["declined"] = [*_declined(edition), *(a.id for a in new)]
    edition.contents = contents
    record(session, edition.id, actor, "decline", f"left out {len(new)} new article(s)")
    return len(new)


def approve(
    session: Session, edition: Edition, actor: str, *, send_at: datetime | None = None
) -> None:
    """Freeze the draft: from now on it is sent as it is."""
    require_draft(edition)
    if not article_ids(edition):
        raise BadEdit(f"{describe_edition(edition)} has no articles; nothing to approve")
    edition.status = EditionStatus.APPROVED
    edition.approved_at = utcnow()
    edition.approved_by = actor[:320]
    edition.send_at = send_at
    when = f"; to go out at {send_at:%Y-%m-%d %H:%M} UTC" if send_at else ""
    record(session, edition.id, actor, "approve", f"approved{when}")


@dataclass(frozen=True)
class Entry:
    """One line of an action log, ready to show."""

    at: datetime
    actor: str
    action: str
    detail: str


def log_entries(session: Session, edition_id: int) -> list[Entry]:
    return [Entry(a.at, a.actor, a.action, a.detail) for a in actions(session, edition_id)]


__all__ = [
    "MAX_SUBJECT_CHARS",
    "BadEdit",
    "Entry",
    "NotADraft",
    "actions",
    "add_offered",
    "approve",
    "article_ids",
    "decline_offered",
    "exclude",
    "excluded_ids",
    "find_article",
    "include",
    "log_entries",
    "move",
    "offered",
    "record",
    "require_draft",
    "set_intro",
    "set_subject",
]

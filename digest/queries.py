"""Read-only domain queries shared by the CLI, the web pages, the API and the facade.

Each question is answered once here, so every place that lists editions lists them
in the same order (:data:`EDITION_ORDER`: newest period first, then the newest
row), and a segment rule is counted the same way on the admin page, in the JSON API
and from Python.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.models import Edition, EditionStatus, SchedulerRun
from subscribers import segments as subscribers_segments
from subscribers import service

#: The one order editions are listed in: newest period first, then the newest row
#: (the id breaks ties between newsletters sharing a period).
EDITION_ORDER = (Edition.period_start.desc(), Edition.id.desc())


def list_editions(
    session: Session,
    newsletter: str | None = None,
    *,
    statuses: Collection[EditionStatus] | None = None,
    limit: int | None = None,
) -> Sequence[Edition]:
    """Editions, newest period first; of one newsletter, in some statuses, at most ``limit``."""
    stmt = select(Edition).order_by(*EDITION_ORDER)
    if newsletter:
        stmt = stmt.where(Edition.newsletter == newsletter)
    if statuses is not None:
        stmt = stmt.where(Edition.status.in_(list(statuses)))
    if limit is not None:
        stmt = stmt.limit(limit)
    return session.scalars(stmt).all()


@dataclass(frozen=True)
class RuleCount:
    """How many of a list's recipients, and of all its members, a segment rule matches."""

    recipients: int
    members: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def rule_count(session: Session, list_name: str, rule: dict[str, Any]) -> RuleCount:
    """Count ``rule`` on ``list_name`` (raises SubscribersError for a bad rule or list)."""
    condition = subscribers_segments.compile_rule(rule)
    return RuleCount(
        recipients=service.count(session, service.recipients(session, list_name).where(condition)),
        members=service.count(session, service.members(session, list_name).where(condition)),
    )


def last_runs(session: Session) -> dict[str, SchedulerRun]:
    """The latest scheduled run of each newsletter (by scheduled time)."""
    latest: dict[str, SchedulerRun] = {}
    rows = session.scalars(
        select(SchedulerRun).order_by(SchedulerRun.scheduled_for, SchedulerRun.id)
    )
    for run in rows:
        latest[run.newsletter] = run
    return latest


__all__ = ["EDITION_ORDER", "RuleCount", "last_runs", "list_editions", "rule_count"]

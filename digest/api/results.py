"""What the :class:`~digest.api.Digest` methods return: plain, typed, detached data.

Each result is a frozen dataclass read out of the database inside the method's own
transaction, so it stays valid after the session is gone; ``to_dict()`` gives the
JSON-ready form the CLI's ``--json`` prints.  Results the library already had
(:class:`~digest.ingest.IngestReport`, :class:`~digest.collect.Collection`,
:class:`~digest.sender.SendResult`, :class:`~digest.stats.EditionStats`,
:class:`~subscribers.io.ImportReport`, …) are returned as they are.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the templates' machinery loads only when something is composed
    from digest.collect import Collection
    from digest.compose import RenderedVariant
    from digest.editions import PeriodChoice


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@dataclass(frozen=True)
class Composition:
    """An edition rendered for a look before sending (``digest compose``)."""

    choice: PeriodChoice
    collection: Collection
    #: Rendered variants by key: the full edition ("all") first, then one per distinct
    #: set of sections readers chose.
    variants: dict[str, RenderedVariant]
    #: How many readers get each variant (by key).
    readers: dict[str, int] = field(default_factory=dict)
    #: Readers who chose only sections with no articles this period (they get nothing).
    skipped: int = 0


@dataclass(frozen=True)
class EditionDetail:
    """One edition with its ledger counts, reasons and uncertain readers
    (``digest editions show``)."""

    id: int
    newsletter: str
    period: str
    status: str
    subject: str
    created_at: datetime
    counts: dict[str, int]
    failed_reasons: dict[str, int]
    skipped_reasons: dict[str, int]
    #: Up to 200 addresses whose message may or may not have gone out (None: erased).
    uncertain: list[str | None]
    #: Deliveries per variant key ("None": readers planned with no variant, skipped).
    variants: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        return data


@dataclass(frozen=True)
class ListInfo:
    """A mailing list with its members counted by status, its segments and the
    newsletters mailing it."""

    name: str
    description: str
    double_opt_in: bool
    created_at: datetime
    #: Members by membership status (``active``, ``pending``, ``unsubscribed``, …; every
    #: status, zero included).
    counts: dict[str, int]
    #: Who a send to the whole list would reach now (active, not suppressed, not paused).
    recipients: int
    segments: list[str]
    newsletters: list[str]
    #: The categories its readers may choose from (those of the newsletters mailing it;
    #: None when none of them configures categories: any choice is accepted).
    categories: list[str] | None

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "created_at": _iso(self.created_at), "total": self.total}


@dataclass(frozen=True)
class SubscriberRow:
    """One member of a list (or one person) as searches show them."""

    id: int
    email: str
    name: str
    #: The person's own status when it is not active (bounced, …), else their status on
    #: the list (:func:`subscribers.service.shown_status`).
    status: str
    categories: list[str]
    attributes: dict[str, str]
    #: When they joined the list (when the person was added, for a search of everyone).
    joined_at: datetime
    #: When the person was added.
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("created_at")  # what `digest subscribers list --json` has always shown
        return {**data, "joined_at": self.joined_at.isoformat()}


@dataclass(frozen=True)
class SubscriberPage:
    """A page of a search: the rows shown and how many match in all."""

    total: int
    rows: list[SubscriberRow]


@dataclass(frozen=True)
class Suppressed:
    """Why an address is on the suppression list, and since when."""

    reason: str
    since: datetime
    detail: str


@dataclass(frozen=True)
class Person:
    """Everything the subscribers tables hold about one subscriber (``digest subscribers
    show``): ``record`` is :func:`subscribers.privacy.describe`'s JSON-ready document."""

    id: int
    email: str | None
    name: str
    status: str
    record: dict[str, Any]
    suppression: Suppressed | None = None

    def to_dict(self) -> dict[str, Any]:
        entry = self.suppression
        return {
            **self.record,
            "suppressed": entry.reason if entry else None,
            "suppression": (
                {"reason": entry.reason, "since": entry.since, "detail": entry.detail}
                if entry
                else None
            ),
        }


@dataclass(frozen=True)
class Erasure:
    """What forgetting one person erased."""

    email: str
    #: The erased subscriber row's id (None: no subscriber had the address).
    subscriber_id: int | None
    memberships: int
    #: Delivery and event records whose address was cleared.
    records_cleared: int


@dataclass(frozen=True)
class SegmentInfo:
    """A saved segment of a list, its rule and how many it matches now."""

    list_name: str
    name: str
    rule: dict[str, Any]
    categories: list[str]
    created_at: datetime
    #: Recipients and members (any status) the rule matches now; None with ``problem``
    #: for a rule saved before rules were bounded, which no longer compiles.
    recipients: int | None
    members: int | None
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["list"] = data.pop("list_name")
        data["created_at"] = self.created_at.isoformat()
        return data


@dataclass(frozen=True)
class LastRun:
    """A newsletter's latest scheduled run."""

    scheduled_for: datetime
    outcome: str
    owner: str | None
    detail: str
    finished_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "scheduled_for": self.scheduled_for.isoformat(),
            "outcome": self.outcome,
            "owner": self.owner,
            "detail": self.detail,
            "finished_at": _iso(self.finished_at),
        }


@dataclass(frozen=True)
class Waiting:
    """Deliveries of an edition held for a later wave (readers' local time)."""

    edition_id: int
    deliveries: int
    next_wave: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "edition_id": self.edition_id,
            "deliveries": self.deliveries,
            "next_wave": _iso(self.next_wave),
        }


@dataclass(frozen=True)
class ScheduleInfo:
    """A newsletter's schedule: its rule, the next fire times and its last run."""

    newsletter: str
    schedule: str
    timezone: str
    local_time: bool
    #: The next fire times, in the newsletter's timezone.
    next: list[datetime]
    last_run: LastRun | None
    waiting: list[Waiting] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "newsletter": self.newsletter,
            "schedule": self.schedule,
            "timezone": self.timezone,
            "local_time": self.local_time,
            "next": [
                {"local": t.isoformat(), "utc": t.astimezone(UTC).isoformat()} for t in self.next
            ],
            "last_run": self.last_run.to_dict() if self.last_run else None,
        }
        if self.waiting:
            data["waiting"] = [w.to_dict() for w in self.waiting]
        return data


__all__ = [
    "Composition",
    "EditionDetail",
    "Erasure",
    "LastRun",
    "ListInfo",
    "Person",
    "ScheduleInfo",
    "SegmentInfo",
    "SubscriberPage",
    "SubscriberRow",
    "Suppressed",
    "Waiting",
]

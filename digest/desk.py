"""The editor's desk: prepare, edit, approve, send, pause, resume and cancel editions.

One function per thing an editor does; `digest editions …` and the admin's edition
pages both call these, so the command line and the browser behave alike.  Each takes
the ``actor`` (who does it: a web sign-in's account, ``cli:USER``, ``scheduler``)
and records the action in the edition's log (:mod:`digest.drafts`).

An edition's life: ``draft → approved → planned → sending → sent`` (plus ``paused``,
``cancelled``, ``skipped``).  A draft's contents (articles, order, intro, subject)
change until it is approved; then they are frozen.  An approved edition goes out at
its newsletter's next scheduled run, at the time it was scheduled for (``send_at``),
or at once (:func:`send`) — and at once on approval when its scheduled run has
already been held waiting for it (:func:`approve` says so: ``due``).
"""

from __future__ import annotations

import getpass
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from digest import drafts
from digest.app import App
from digest.collect import Period, period_for, section_of
from digest.config import NewsletterConfig
from digest.delivery import ledger
from digest.delivery.ledger import DeliveryCounts
from digest.delivery.registry import BackendChoice
from digest.editions import (
    PeriodChoice,
    Purpose,
    choose_period,
    get_or_create_edition,
    order_problem,
    period_days,
    require_edition,
)
from digest.errors import DigestError, NotFound
from digest.models import (
    Article,
    BatchStatus,
    Delivery,
    DeliveryBatch,
    DeliveryStatus,
    Edition,
    EditionStatus,
    RunOutcome,
    SchedulerRun,
)
from digest.plan import audience_name, count_audience
from digest.sender import Sender, SendOutcome, SendResult
from digest.sendtest import CopiesSent, send_test
from subscribers.db import utcnow

log = logging.getLogger(__name__)

#: Statuses from which an edition can still be cancelled.
CANCELLABLE = frozenset(
    {
        EditionStatus.DRAFT,
        EditionStatus.APPROVED,
        EditionStatus.PLANNED,
        EditionStatus.SENDING,
        EditionStatus.PAUSED,
    }
)


class DeskError(DigestError):
    """An action the edition's state does not allow (e.g. sending a draft)."""

    exit_code = 1


def cli_actor() -> str:
    """Who acts from the command line: ``cli:`` and the operating-system user."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name (a container without passwd entry)
        return "cli"


# ---------------------------------------------------------------------------
# Looking at an edition


@dataclass(frozen=True)
class ArticleLine:
    id: int
    title: str
    url: str
    published: datetime
    section: str
    #: 1-based, in its section (0 for excluded and offered articles).
    position: int = 0
    top: bool = False


@dataclass
class EditionView:
    """An edition as the desk shows it."""

    id: int
    newsletter: str
    title: str
    period: str
    days: str
    status: str
    subject: str
    intro: str
    list_name: str
    approval: str
    created_at: datetime
    approved_at: datetime | None
    approved_by: str | None
    send_at: datetime | None
    sections: list[tuple[str, list[ArticleLine]]] = field(default_factory=list)
    excluded: list[ArticleLine] = field(default_factory=list)
    offered: list[ArticleLine] = field(default_factory=list)
    log: list[drafts.Entry] = field(default_factory=list)
    counts: DeliveryCounts = field(default_factory=DeliveryCounts)
    #: Why a scheduled run is waiting for this edition (approval required), if one is.
    held: str | None = None
    #: ``now`` or ``next``: when an approval after a held run sends it.
    late_approval: str = "now"

    @property
    def is_draft(self) -> bool:
        return self.status == EditionStatus.DRAFT.value

    @property
    def articles(self) -> int:
        return sum(len(lines) for _, lines in self.sections)

    def to_dict(self) -> dict[str, Any]:
        def line(a: ArticleLine) -> dict[str, Any]:
            return {
                "id": a.id,
                "title": a.title,
                "url": a.url,
                "section": a.section,
                "position": a.position,
                "top": a.top,
            }

        return {
            "id": self.id,
            "newsletter": self.newsletter,
            "period": self.period,
            "status": self.status,
            "subject": self.subject,
            "intro": self.intro,
            "approved_at": self.approved_at.isoformat() if self.approved_at else None,
            "approved_by": self.approved_by,
            "send_at": self.send_at.isoformat() if self.send_at else None,
            "sections": [{"name": n, "articles": [line(a) for a in ls]} for n, ls in self.sections],
            "excluded": [line(a) for a in self.excluded],
            "offered": [line(a) for a in self.offered],
            "counts": self.counts.to_dict(),
            "held": self.held,
            "log": [
                {"at": e.at.isoformat(), "actor": e.actor, "action": e.action, "detail": e.detail}
                for e in self.log
            ],
        }


def _line(a: Article, section: str, position: int = 0, top: bool = False) -> ArticleLine:
    return ArticleLine(
        a.id, " ".join(a.title.split()), a.canonical_url, a.published_at, section, position, top
    )


def newsletter_of(app: App, ref: str | int) -> NewsletterConfig:
    """The newsletter an edition belongs to (its time zone reads the editor's times)."""
    with app.transaction() as s:
        return _newsletter(app, require_edition(s, str(ref)))


def _newsletter(app: App, edition: Edition) -> NewsletterConfig:
    found = app.config.newsletters.get(edition.newsletter)
    if found is None:
        raise NotFound(
            f"edition {edition.id} belongs to {edition.newsletter!r}, which is no longer in "
            f"{app.config.path}"
        )
    return found


def view(app: App, ref: str | int) -> EditionView:
    """Everything the desk shows about an edition (by id or NEWSLETTER/PERIOD)."""
    with app.transaction() as s:
        edition = require_edition(s, str(ref))
        nl = _newsletter(app, edition)
        return _view(s, app, nl, edition)


def _view(s: Session, app: App, nl: NewsletterConfig, edition: Edition) -> EditionView:
    contents = edition.contents or {}
    ids = [*drafts.article_ids(edition), *drafts.excluded_ids(edition)]
    by_id = {a.id: a for a in s.scalars(select(Article).where(Article.id.in_(ids)))}
    top = contents.get("top")
    sections = [
        (
            name,
            [
                _line(by_id[i], name, n, i == top)
                for n, i in enumerate((i for i in members if i in by_id), 1)
            ],
        )
        for name, members in contents.get("sections", [])
    ]
    excluded = [
        _line(by_id[int(row[0])], str(row[1]))
        for row in contents.get("excluded", [])
        if int(row[0]) in by_id
    ]
    offered = (
        [_line(a, section_of(a, nl) or "") for a in drafts.offered(s, nl, edition)]
        if edition.status == EditionStatus.DRAFT
        else []
    )
    period = Period(edition.period, edition.period_start, edition.period_end)
    return EditionView(
        id=edition.id,
        newsletter=nl.name,
        title=nl.title,
        period=edition.period,
        days=period_days(nl, period),
        status=edition.status.value,
        subject=str(contents.get("subject") or "") or edition.subject,
        intro=str(contents.get("intro") or ""),
        list_name=nl.list_name,
        approval=nl.approval,
        created_at=edition.created_at,
        approved_at=edition.approved_at,
        approved_by=edition.approved_by,
        send_at=edition.send_at,
        sections=[(n, lines) for n, lines in sections if lines],
        excluded=excluded,
        offered=offered,
        log=drafts.log_entries(s, edition.id),
        counts=DeliveryCounts.of(ledger.edition_tally(s, edition.id).statuses),
        held=_held_detail(s, nl, edition),
        late_approval=nl.late_approval,
    )


def _held_runs(s: Session, nl: NewsletterConfig, edition: Edition) -> list[SchedulerRun]:
    """The scheduled runs of the edition's period that were held waiting for approval."""
    runs = s.scalars(
        select(SchedulerRun).where(
            SchedulerRun.newsletter == nl.name, SchedulerRun.outcome == RunOutcome.HELD
        )
    ).all()
    return [r for r in runs if period_for(nl, r.scheduled_for).key == edition.period]


def _held_detail(s: Session, nl: NewsletterConfig, edition: Edition) -> str | None:
    held = _held_runs(s, nl, edition)
    if not held:
        return None
    return f"the run due {held[-1].scheduled_for:%Y-%m-%d %H:%M} UTC was held for approval"


# ---------------------------------------------------------------------------
# Preparing and editing a draft


@dataclass(frozen=True)
class Prepared:
    edition_id: int
    created: bool
    status: str
    choice: PeriodChoice


def prepare(
    app: App, newsletter: str, *, as_of: datetime | None = None, actor: str, why: str = ""
) -> Prepared:
    """The draft of the edition the next scheduled run will send (or the one before
    ``as_of``): made from the period's articles if it does not exist yet."""
    nl = app.config.newsletter(newsletter)
    choice = choose_period(nl, as_of=as_of, purpose=Purpose.PREVIEW, given_as="given with --as-of")
    edition, created = get_or_create_edition(app, nl, choice.period, EditionStatus.DRAFT)
    if edition is None:
        raise NotFound(
            f"{nl.name} {choice.period.key} ({choice.days}) has no articles yet; nothing to "
            "prepare (run `digest ingest` first)"
        )
    if created:
        with app.transaction() as s:
            drafts.record(s, edition.id, actor, "prepare", why or "draft prepared")
    return Prepared(edition.id, created, edition.status.value, choice)


def _edit(app: App, ref: str | int, work: Any) -> Any:
    with app.transaction() as s:
        edition = require_edition(s, str(ref))
        nl = _newsletter(app, edition)
        return work(s, nl, edition)


def note(app: App, ref: str | int, markdown: str, *, actor: str) -> None:
    _edit(app, ref, lambda s, nl, e: drafts.set_intro(s, e, markdown, actor))


def subject(app: App, ref: str | int, text: str, *, actor: str) -> None:
    _edit(app, ref, lambda s, nl, e: drafts.set_subject(s, e, text, actor))


def exclude(app: App, ref: str | int, article: str, *, actor: str) -> str:
    return str(_edit(app, ref, lambda s, nl, e: drafts.exclude(s, e, article, actor).title))


def include(app: App, ref: str | int, article: str, *, actor: str) -> str:
    return str(_edit(app, ref, lambda s, nl, e: drafts.include(s, e, article, actor, nl).title))


def move(
    app: App, ref: str | int, article: str, *, actor: str, to: int | None = None, top: bool = False
) -> str:
    return str(
        _edit(app, ref, lambda s, nl, e: drafts.move(s, e, article, actor, to=to, top=top).title)
    )


def add_new(app: App, ref: str | int, *, actor: str) -> int:
    return len(_edit(app, ref, lambda s, nl, e: drafts.add_offered(s, nl, e, actor)))


def decline_new(app: App, ref: str | int, *, actor: str) -> int:
    return int(_edit(app, ref, lambda s, nl, e: drafts.decline_offered(s, nl, e, actor)))


# ---------------------------------------------------------------------------
# Approving and sending


@dataclass(frozen=True)
class Approval:
    edition_id: int
    #: True when the edition should go out now: its scheduled run was held waiting for
    #: this approval (and ``late_approval = "now"``), or its time (``send_at``) has passed.
    due: bool
    send_at: datetime | None


def _future(send_at: datetime, e: Edition, nl: NewsletterConfig) -> None:
    """A send time must be ahead: one in the past (a mistyped year) would send at once."""
    if send_at <= utcnow():
        local = send_at.astimezone(nl.zone)
        raise DeskError(
            f"the send time {local:%Y-%m-%d %H:%M} ({nl.timezone}) has passed; give a later "
            f"one, or send {drafts.describe_edition(e)} now with `digest editions send {e.id}`"
        )


def approve(app: App, ref: str | int, *, actor: str, send_at: datetime | None = None) -> Approval:
    """Freeze the draft; ``send_at`` schedules it for a time (else the next run)."""
    if send_at is not None and send_at.tzinfo is None:
        raise ValueError("send_at must be timezone-aware")

    def work(s: Session, nl: NewsletterConfig, e: Edition) -> Approval:
        if send_at is not None:
            _future(send_at, e, nl)
        drafts.approve(s, e, actor, send_at=send_at)
        held = bool(_held_runs(s, nl, e)) and nl.late_approval == "now"
        due = (send_at is None and held) or (send_at is not None and send_at <= utcnow())
        return Approval(e.id, due, send_at)

    return _edit(app, ref, work)


def schedule(app: App, ref: str | int, send_at: datetime, *, actor: str) -> None:
    """Set (or change) the time an approved edition goes out."""

    def work(s: Session, nl: NewsletterConfig, e: Edition) -> None:
        if e.status != EditionStatus.APPROVED:
            raise DeskError(
                f"{drafts.describe_edition(e)} is {e.status}; only an approved edition waits "
                "for a send time"
            )
        _future(send_at, e, nl)
        e.send_at = send_at
        drafts.record(s, e.id, actor, "schedule", f"to go out at {send_at:%Y-%m-%d %H:%M} UTC")

    _edit(app, ref, work)


@dataclass(frozen=True)
class Confirmation:
    """What a send would do, named before anything is sent."""

    edition_id: int
    newsletter: str
    period: str
    list_name: str
    #: The segment, or None for the whole list.
    segment: str | None
    readers: int
    skipped: int
    #: Why it would be refused (editions go out in period order), or None.
    refusal: str | None
    status: str


def confirmation(app: App, ref: str | int, segment: str | None = None) -> Confirmation:
    """The list, the segment and the number of readers a send would go to, and whether
    the older-edition rule refuses it."""
    with app.transaction() as s:
        edition = require_edition(s, str(ref))
        nl = _newsletter(app, edition)
        period = Period(edition.period, edition.period_start, edition.period_end)
        problem = order_problem(s, nl, period, audience_name(segment))
        status = edition.status.value
        edition_id = edition.id
    counted = count_audience(app, nl, period, segment)
    readers = sum(counted.variants.values()) if counted else 0
    skipped = sum(counted.skipped_reasons.values()) if counted else 0
    return Confirmation(
        edition_id,
        nl.name,
        period.key,
        nl.list_name,
        segment,
        readers,
        skipped,
        str(problem) if problem else None,
        status,
    )


def _sender(app: App, sender: Sender | None, backend: str | BackendChoice | None) -> Sender:
    return sender if sender is not None else Sender(app, backend)


def send(
    app: App,
    ref: str | int,
    *,
    actor: str,
    segment: str | None = None,
    sender: Sender | None = None,
    backend: str | BackendChoice | None = None,
    enqueue: bool = False,
) -> SendResult:
    """Send an approved edition now (or resume one going out; with ``enqueue``, only plan
    it: `digest worker` processes send it).  A draft must be approved first; a newer
    edition already going out refuses it (editions go out in order)."""
    with app.transaction() as s:
        edition = require_edition(s, str(ref))
        nl = _newsletter(app, edition)
        if edition.status == EditionStatus.DRAFT:
            raise DeskError(
                f"{drafts.describe_edition(edition)} is a draft; approve it first "
                f"(digest editions approve {edition.id})"
            )
        if edition.status in (EditionStatus.CANCELLED, EditionStatus.SKIPPED):
            raise DeskError(f"{drafts.describe_edition(edition)} is {edition.status}; not sent")
        drafts.record(
            s,
            edition.id,
            actor,
            "send",
            f"send started (to {nl.list_name}" + (f", segment {segment})" if segment else ")"),
        )
        key, edition_id = edition.period, edition.id
    choice = choose_period(nl, period=key, purpose=Purpose.SEND)
    result = _sender(app, sender, backend).send(
        nl.name, period=choice, segment=segment, enqueue=enqueue
    )
    with app.transaction() as s:
        drafts.record(s, edition_id, actor, "sent", _summary(result))
        if result.outcome not in (SendOutcome.OUT_OF_ORDER, SendOutcome.HELD):
            current = s.get(Edition, edition_id)
            assert current is not None
            approver = current.approved_by or "an editor"
            for run in _held_runs(s, nl, current):
                run.outcome = RunOutcome.SENT
                run.detail = f"held for approval; sent after {approver} approved it: " + _summary(
                    result
                )
                run.finished_at = utcnow()
    return result


def _summary(result: SendResult) -> str:
    c = result.counts
    match result.outcome:
        case SendOutcome.OUT_OF_ORDER:
            return f"refused: {result.refusal}"
        case SendOutcome.HELD:
            return "held: not approved"
        case SendOutcome.PAUSED:
            return f"paused: {result.pause_reason} ({c.sent} sent)"
        case _:
            return (
                f"{result.outcome}: {c.sent} sent, {c.failed} failed, {c.uncertain} uncertain, "
                f"{c.skipped} skipped, {c.outstanding} pending"
            )


def pause(app: App, ref: str | int, *, actor: str) -> None:
    """Stop an edition going out after the batch in hand (resume picks it up)."""

    def work(s: Session, nl: NewsletterConfig, e: Edition) -> None:
        if e.status not in (EditionStatus.PLANNED, EditionStatus.SENDING):
            raise DeskError(
                f"{drafts.describe_edition(e)} is {e.status}; only an edition going out can be "
                "paused"
            )
        e.status = EditionStatus.PAUSED
        drafts.record(s, e.id, actor, "pause", "paused")

    _edit(app, ref, work)


def resume(
    app: App,
    ref: str | int,
    *,
    actor: str,
    sender: Sender | None = None,
    backend: str | BackendChoice | None = None,
    deliver: bool = True,
) -> int:
    """Set a paused edition going again; with ``deliver``, send the rest now (returns how
    many went out); else the scheduler's sweep or `digest worker` sends them."""

    def work(s: Session, nl: NewsletterConfig, e: Edition) -> int:
        if e.status != EditionStatus.PAUSED:
            raise DeskError(
                f"{drafts.describe_edition(e)} is {e.status}; only a paused edition can be resumed"
            )
        e.status = EditionStatus.SENDING
        drafts.record(s, e.id, actor, "resume", "resumed")
        return e.id

    edition_id = int(_edit(app, ref, work))
    if not deliver:
        return 0
    done = _sender(app, sender, backend).deliver(edition_id, resume=True)
    return done.sent


def cancel(app: App, ref: str | int, *, actor: str) -> int:
    """Cancel an edition: what has not gone out never will (its pending deliveries are
    skipped).  Returns how many were skipped."""

    def work(s: Session, nl: NewsletterConfig, e: Edition) -> int:
        if e.status not in CANCELLABLE:
            raise DeskError(f"{drafts.describe_edition(e)} is {e.status}; it cannot be cancelled")
        e.status = EditionStatus.CANCELLED
        reason = f"edition cancelled by {actor}"[:2000]
        skipped = s.execute(
            update(Delivery)
            .where(Delivery.edition_id == e.id, Delivery.status == DeliveryStatus.PENDING)
            .values(status=DeliveryStatus.SKIPPED, reason=reason, updated_at=utcnow())
        )
        s.execute(
            update(DeliveryBatch)
            .where(DeliveryBatch.edition_id == e.id, DeliveryBatch.status == BatchStatus.PENDING)
            .values(status=BatchStatus.DONE)
        )
        count = int(getattr(skipped, "rowcount", 0) or 0)
        drafts.record(s, e.id, actor, "cancel", f"cancelled; {count} pending deliveries skipped")
        return count

    return int(_edit(app, ref, work))


def test_copy(
    app: App,
    ref: str | int,
    addresses: list[str],
    *,
    actor: str,
    backend: str | BackendChoice | None = None,
    variant: str = "all",
    notice: str | None = None,
    sections: list[str] | None = None,
) -> CopiesSent:
    """A marked test copy of the edition as it is now (a draft with its edits): the
    variant named (``all``, a section, a stored variant's key) or with ``sections``."""
    with app.transaction() as s:
        edition = require_edition(s, str(ref))
        nl = _newsletter(app, edition)
        as_of = edition.period_end
        edition_id = edition.id
    sent = send_test(
        app,
        nl,
        addresses,
        as_of,
        variant=variant,
        backend=backend,
        notice=notice,
        sections=sections,
    )
    with app.transaction() as s:
        drafts.record(s, edition_id, actor, "test", sent.summary())
    return sent


def notify_editors(
    app: App, edition_id: int, *, backend: str | BackendChoice | None = None
) -> CopiesSent | None:
    """Tell the editors (``DIGEST_EDITORS``) a draft is ready: a test copy of it headed by
    a link to its page on the desk.  None when no editors are set."""
    editors = list(app.settings.editors)
    if not editors:
        log.warning(
            "edition %s is a draft waiting for approval, but DIGEST_EDITORS is empty: "
            "nobody was told",
            edition_id,
        )
        return None
    link = f"{app.settings.base_url.rstrip('/')}/admin/editions/{edition_id}"
    notice = f"This draft waits for your approval. Edit and approve it on the editor's desk: {link}"
    return test_copy(app, edition_id, editors, actor="scheduler", backend=backend, notice=notice)


# ---------------------------------------------------------------------------
# Progress


@dataclass(frozen=True)
class ProgressSnapshot:
    edition_id: int
    status: str
    counts: DeliveryCounts

    @property
    def done(self) -> int:
        c = self.counts
        return c.sent + c.failed + c.skipped + c.uncertain

    def to_dict(self) -> dict[str, Any]:
        c = self.counts
        return {
            "edition": self.edition_id,
            "status": self.status,
            "total": c.total,
            "sent": c.sent,
            "failed": c.failed,
            "uncertain": c.uncertain,
            "skipped": c.skipped,
            "pending": c.outstanding,
        }


@dataclass(frozen=True)
class Pulse:
    """What a watching page needs to notice a change: the send's numbers, and how long
    the action log is (cheap to read twice a second, unlike :func:`view`)."""

    snapshot: ProgressSnapshot
    actions: int
    last_action: datetime | None

    @property
    def stamp(self) -> str:
        last = self.last_action.isoformat() if self.last_action else ""
        return f"{self.snapshot.status}|{self.actions}|{last}"


def pulse(app: App, edition_id: int) -> Pulse:
    from sqlalchemy import func

    from digest.models import EditionAction

    snapshot = progress(app, edition_id)
    with app.sessions() as s:
        count, last = s.execute(
            select(func.count(EditionAction.id), func.max(EditionAction.at)).where(
                EditionAction.edition_id == edition_id
            )
        ).one()
    return Pulse(snapshot, int(count or 0), last)


def progress(app: App, edition_id: int) -> ProgressSnapshot:
    with app.sessions() as s:
        edition = s.get(Edition, edition_id)
        if edition is None:
            raise NotFound(f"no edition with id {edition_id}")
        counts = DeliveryCounts.of(ledger.edition_tally(s, edition_id).statuses)
        return ProgressSnapshot(edition_id, edition.status.value, counts)


# ---------------------------------------------------------------------------
# What the scheduler asks


def due_approved(app: App, now: datetime | None = None, *, slot_of: str | None = None) -> list[int]:
    """Approved editions that should go out now, oldest period first: their time
    (``send_at``) has come, or their scheduled run was held waiting for the approval
    (with ``late_approval = "now"``; ``slot_of``: a scheduled run of that newsletter is
    starting, so its held editions are due whatever ``late_approval`` says)."""
    now = now or utcnow()
    out: list[int] = []
    with app.sessions() as s:
        query = select(Edition).where(Edition.status == EditionStatus.APPROVED)
        if slot_of is not None:
            query = query.where(Edition.newsletter == slot_of)
        for edition in s.scalars(query.order_by(Edition.period_end, Edition.id)):
            nl = app.config.newsletters.get(edition.newsletter)
            if nl is None:
                continue
            if edition.send_at is not None:
                if edition.send_at <= now:
                    out.append(edition.id)
            elif (slot_of is not None or nl.late_approval == "now") and _held_runs(s, nl, edition):
                out.append(edition.id)
    return out


__all__ = [
    "Approval",
    "ArticleLine",
    "Confirmation",
    "DeskError",
    "EditionView",
    "Prepared",
    "ProgressSnapshot",
    "add_new",
    "approve",
    "cancel",
    "cli_actor",
    "confirmation",
    "decline_new",
    "due_approved",
    "exclude",
    "include",
    "move",
    "note",
    "notify_editors",
    "pause",
    "prepare",
    "progress",
    "pulse",
    "resume",
    "schedule",
    "send",
    "subject",
    "test_copy",
    "view",
]

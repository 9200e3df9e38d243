"""CSV import and export of a list's subscribers, with a row-by-row report.

Import format:

* UTF-8, with or without a byte-order mark; comma, semicolon or tab separated (guessed
  from the header row); quoted cells may hold separators and line breaks.
* A header row with ``email`` (required) and optionally ``name``, ``categories``
  (several separated by ``;`` or ``|`` inside the cell) and ``timezone`` (an IANA
  name such as ``Europe/London``).  Header names ignore case.  Every other column is
  an attribute (``sector``, ``region``, …) that segments can select on.
* An empty cell changes nothing: it never clears what is stored.
* A leading ``'`` that protects a formula-like cell (see export) is removed again.

Each data row ends up *imported* (new on the list), *updated* (on the list, something
changed), *unchanged*, or *rejected* with its line number and reason: invalid address,
duplicate in the file, suppressed, unsubscribed/bounced/complained before (an import
never subscribes anyone again: only the reader can, by confirming), unknown category,
bad timezone.  Imports are the admin asserting consent: rows become active at once
(pending members become active too) with consent method ``import``, also on double
opt-in lists.  Every status change goes through :mod:`subscribers.consent` (in bulk)
and is in the consent log.

Everything happens in the caller's transaction: bulk queries in chunks, no per-row
round trips, nothing written on a dry run.

Export writes the list's recipients (active, not suppressed, optionally one segment)
in the same format, so it imports back exactly.  Cells starting with ``=``, ``+``,
``-``, ``@``, tab or carriage return get a leading ``'`` so spreadsheets do not run
them as formulas (OWASP "CSV injection").
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from subscribers import consent
from subscribers.consent import bulk
from subscribers.db import in_values, utcnow
from subscribers.errors import (
    CsvError,
    InvalidAddress,
    InvalidName,
    InvalidTimezone,
    SubscribersError,
    UnknownCategory,
)
from subscribers.lists import get_list
from subscribers.models import (
    ConsentSource,
    MailingList,
    Membership,
    Status,
    Subscriber,
    SuppressionReason,
)
from subscribers.service import recipients
from subscribers.suppression import suppressed_hashes
from subscribers.validate import (
    check_attr_name,
    check_timezone,
    clean_categories,
    clean_name,
    email_hash,
    normalise,
)

CHUNK = 5000
FIXED = ("email", "name", "categories", "timezone")
_ALIASES = {"e-mail": "email", "email address": "email", "email_address": "email"}
_CATEGORY_SPLIT = re.compile(r"[;|]")
_FORMULA = re.compile(r"'*[=+\-@\t\r]")
_PROTECTED = re.compile(r"'+[=+\-@\t\r]")

IMPORTED, UPDATED, UNCHANGED, REJECTED = "imported", "updated", "unchanged", "rejected"

Progress = Callable[[int, int], None]


@dataclass(slots=True)
class RowResult:
    line: int
    email: str
    outcome: str
    reason: str = ""


@dataclass
class ImportReport:
    """The outcome of every data row, in file order."""

    list_name: str
    dry_run: bool = False
    rows: list[RowResult] = field(default_factory=list)
    attributes: list[str] = field(default_factory=list)

    def _n(self, outcome: str) -> int:
        return sum(1 for r in self.rows if r.outcome == outcome)

    @property
    def imported(self) -> int:
        return self._n(IMPORTED)

    @property
    def updated(self) -> int:
        return self._n(UPDATED)

    @property
    def unchanged(self) -> int:
        return self._n(UNCHANGED)

    @property
    def rejected(self) -> list[RowResult]:
        return [r for r in self.rows if r.outcome == REJECTED]

    def counts(self) -> dict[str, int]:
        out = {IMPORTED: 0, UPDATED: 0, UNCHANGED: 0, REJECTED: 0}
        for r in self.rows:
            out[r.outcome] += 1
        return out

    def write_csv(self, target: Path | str | IO[str]) -> None:
        """The report as CSV: ``line,email,outcome,reason``, one row per data row."""
        if isinstance(target, str | Path):
            with Path(target).open("w", encoding="utf-8", newline="") as fh:
                self.write_csv(fh)
            return
        writer = csv.writer(target)
        writer.writerow(["line", "email", "outcome", "reason"])
        for r in self.rows:
            writer.writerow([r.line, neutralise(r.email), r.outcome, neutralise(r.reason)])


# ---------------------------------------------------------------------------
# Cells


def neutralise(value: str) -> str:
    """Protect a cell against spreadsheet formula injection with a leading ``'``.

    Cells already starting with quotes before a trigger get one more, so that
    :func:`unprotect` gives back exactly the original text."""
    return "'" + value if _FORMULA.match(value) else value


def unprotect(value: str) -> str:
    """Undo :func:`neutralise`."""
    return value[1:] if _PROTECTED.match(value) else value


# ---------------------------------------------------------------------------
# Reading


@dataclass(slots=True)
class _Row:
    line: int
    email: str  # as in the file (for the report)
    address: str  # normalised
    key: str
    name: str | None
    categories: list[str] | None
    timezone: str | None
    attributes: dict[str, str]


def _decode(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise CsvError(
            f"{source}: line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); "
            "save the file as UTF-8 (in Excel: 'CSV UTF-8')"
        ) from None


def _sniff_delimiter(text: str) -> str:
    counts = {",": 0, ";": 0, "\t": 0}
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in "\r\n":
            break
        elif not quoted and ch in counts:
            counts[ch] += 1
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _header(cells: list[str], source: str) -> list[str]:
    names: list[str] = []
    for i, raw in enumerate(cells, start=1):
        cell = unprotect(raw.strip())
        low = " ".join(cell.lower().split())
        low = _ALIASES.get(low, low)
        if low in FIXED:
            name = low
        else:
            if not cell:
                raise CsvError(f"{source}: line 1: column {i} has no name; name it or delete it")
            try:
                name = check_attr_name(cell)
            except InvalidName as exc:
                raise CsvError(f"{source}: line 1: column {i}: {exc}") from None
        if name in names:
            raise CsvError(f"{source}: line 1: column {name!r} appears twice")
        names.append(name)
    if "email" not in names:
        found = ", ".join(repr(n) for n in names) or "nothing"
        raise CsvError(
            f"{source}: line 1: no 'email' column (the header has {found}); "
            "the first row must name the columns, one of them 'email'"
        )
    return names


def read_csv(
    data: bytes, *, source: str = "<csv>"
) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header names and the data rows (with the line each starts on) of a CSV file."""
    text = _decode(data, source)
    if not text.strip():
        raise CsvError(f"{source}: the file is empty; it needs a header row with 'email'")
    reader = csv.reader(
        io.StringIO(text, newline=""), delimiter=_sniff_delimiter(text), strict=True
    )
    try:
        header = _header(next(reader), source)
        rows: list[tuple[int, list[str]]] = []
        while True:
            start = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                break
            if any(c.strip() for c in cells):
                rows.append((start, cells))
    except csv.Error as exc:
        raise CsvError(f"{source}: line {reader.line_num}: {exc}") from None
    return header, rows


def _cell(raw: str) -> str:
    value = raw.strip()
    return unprotect(value) if value[:1] == "'" else value


def _parse_row(
    line: int,
    cells: list[str],
    header: list[str],
    known: Collection[str] | None,
    everything: Collection[str] | None,
) -> _Row | str:
    """A validated row, or the reason it is rejected."""
    if len(cells) > len(header):
        extra = [c for c in cells[len(header) :] if c.strip()]
        if extra:
            return f"{len(cells)} cells but the header has {len(header)} columns"
    values = dict(zip(header, map(_cell, cells), strict=False))
    raw_email = values.get("email", "")
    if not raw_email:
        return "invalid address: the email cell is empty"
    try:
        address = normalise(raw_email)
    except InvalidAddress as exc:
        return f"invalid address: {str(exc).split(': ', 1)[-1]}"
    categories = None
    if values.get("categories"):
        try:
            categories = clean_categories(
                _CATEGORY_SPLIT.split(values["categories"]), known, everything=everything
            )
        except UnknownCategory as exc:
            return str(exc)
    timezone = values.get("timezone") or None
    if timezone:
        try:
            check_timezone(timezone)
        except InvalidTimezone:
            return f"bad timezone {timezone!r}: use an IANA name such as 'Europe/London'"
    try:
        name = clean_name(values.get("name")) or None
    except InvalidName as exc:
        return f"bad name: {exc}"
    attributes = {n: v for n, v in values.items() if n not in FIXED and v}
    return _Row(
        line=line,
        email=raw_email,
        address=address,
        key=address.lower(),
        name=name,
        categories=categories,
        timezone=timezone,
        attributes=attributes,
    )


# ---------------------------------------------------------------------------
# Importing


def import_csv(
    session: Session,
    source: Path | str | bytes | IO[bytes],
    list_name: str,
    *,
    known_categories: Collection[str] | None = None,
    everything: Collection[str] | None = None,
    dry_run: bool = False,
    consent_ip: str | None = None,
    actor: str | None = None,
    progress: Progress | None = None,
    name: str | None = None,
) -> ImportReport:
    """Import a CSV file into ``list_name`` and report on every row (see module docs).

    ``known_categories`` is the set a ``categories`` cell may use (None: any); a cell
    naming all of ``everything`` (the sections readers are offered) means every section
    (see :func:`~subscribers.validate.clean_categories`).  ``consent_ip`` is recorded
    as new readers' consent IP; the consent log names ``actor`` (default: that IP).
    ``progress(done, total)`` is called as rows are processed; ``name`` is how messages
    and the log call the file (default: its path).  Nothing is committed here, and with
    ``dry_run`` nothing is written at all.
    """
    data, label = _read_source(source)
    label = name or label
    by = consent.By(ConsentSource.IMPORT, actor or consent_ip, f"CSV import {label}")
    header, raw_rows = read_csv(data, source=label)
    mlist = get_list(session, list_name)
    report = ImportReport(list_name, dry_run, attributes=[h for h in header if h not in FIXED])
    total = len(raw_rows)
    if progress:
        progress(0, total)
    seen: dict[str, int] = {}
    pending: list[_Row] = []
    done = 0
    now = utcnow()
    results: dict[int, RowResult] = {}

    def flush(chunk: list[_Row]) -> None:
        _import_chunk(
            session,
            mlist,
            chunk,
            results,
            now,
            by,
            consent_ip,
            dry_run,
            known_categories,
            everything,
        )

    try:
        for line, cells in raw_rows:
            parsed = _parse_row(line, cells, header, known_categories, everything)
            if isinstance(parsed, str):
                email = cells[header.index("email")] if header.index("email") < len(cells) else ""
                results[line] = RowResult(line, email.strip(), REJECTED, parsed)
            elif parsed.key in seen:
                results[line] = RowResult(
                    line,
                    parsed.email,
                    REJECTED,
                    f"duplicate in the file (see line {seen[parsed.key]})",
                )
            else:
                seen[parsed.key] = line
                pending.append(parsed)
            if len(pending) >= CHUNK:
                flush(pending)
                pending = []
            done += 1
            if progress and done % 1000 == 0:
                progress(done, total)
        if pending:
            flush(pending)
    except IntegrityError:
        raise SubscribersError(
            f"{label}: another process added some of these subscribers during the import; "
            "nothing was imported, run the import again"
        ) from None
    if progress:
        progress(total, total)
    session.expire_all()  # the bulk writes bypassed any Subscriber objects already loaded
    report.rows = [results[line] for line, _ in raw_rows]
    return report


def _read_source(source: Path | str | bytes | IO[bytes]) -> tuple[bytes, str]:
    if isinstance(source, bytes):
        return source, "<csv>"
    if isinstance(source, str | Path):
        path = Path(source)
        try:
            return path.read_bytes(), str(path)
        except FileNotFoundError:
            raise CsvError(f"{path}: file not found") from None
        except IsADirectoryError:
            raise CsvError(f"{path}: is a folder, not a CSV file") from None
    return source.read(), getattr(source, "name", "<csv>")


_GONE_WHAT = {
    Status.UNSUBSCRIBED: "unsubscribed",
    Status.BOUNCED: "bounced (the address did not accept mail)",
    Status.COMPLAINED: "reported our mail as spam",
}
_ONLY_THE_READER = "only the reader can resubscribe by confirming"
_SUPPRESSED_REASON = {
    SuppressionReason.ERASED: "suppressed: the person asked to be erased",
}


def _choice(
    old: Sequence[str] | None,
    new: list[str],
    known: Collection[str] | None,
    everything: Collection[str] | None,
) -> list[str]:
    """A reader's sections after an import that chose ``new`` among ``known`` (the
    sections of the list's newsletters): their choice among other lists' sections stays.
    ``new`` empty means all of this list's: spelt out when other choices stay, since an
    empty choice would mean every section of every list."""
    if known is None:
        return new
    ours = set(known)
    kept = [c for c in old or () if c not in ours]
    if not kept:
        return new
    return [*kept, *(new or list(everything if everything is not None else known))]


def _import_chunk(
    session: Session,
    mlist: MailingList,
    rows: Sequence[_Row],
    results: dict[int, RowResult],
    now: datetime,
    by: consent.By,
    consent_ip: str | None,
    dry_run: bool,
    known: Collection[str] | None = None,
    everything: Collection[str] | None = None,
) -> None:
    hashes = {row.key: email_hash(row.key) for row in rows}
    blocked = suppressed_hashes(session, hashes.values())
    # Core columns (not ORM attributes): plain rows, no ORM loading overhead.
    existing = {
        r.email_key: r
        for r in session.execute(
            select(
                _SUB.c.id,
                _SUB.c.email_key,
                _SUB.c.name,
                _SUB.c.status,
                _SUB.c.attributes,
                _SUB.c.categories,
                _SUB.c.timezone,
                _SUB.c.unsubscribed_at,
                # A correlated lookup (primary-key probe per row) rather than a join: the
                # planner cannot misjudge it when the statistics lag behind the import.
                select(_MEM.c.status)
                .where(_MEM.c.subscriber_id == _SUB.c.id, _MEM.c.list_id == mlist.id)
                .scalar_subquery()
                .label("member_status"),
                select(_MEM.c.updated_at)
                .where(_MEM.c.subscriber_id == _SUB.c.id, _MEM.c.list_id == mlist.id)
                .scalar_subquery()
                .label("member_updated_at"),
            ).where(in_values(session, _SUB.c.email_key, list(hashes)))
        )
    }
    plan = bulk.Admissions()
    profile_updates: list[dict[str, Any]] = []
    gone: list[tuple[_Row, Any]] = []
    for row in rows:
        reason = blocked.get(hashes[row.key])
        if reason is not None:
            why = _SUPPRESSED_REASON.get(reason, f"suppressed ({reason.value})")
            results[row.line] = RowResult(row.line, row.email, REJECTED, why)
            continue
        old = existing.get(row.key)
        if old is None:
            plan.new.append(
                bulk.NewReader(
                    row.address,
                    row.key,
                    row.name or "",
                    row.attributes,
                    row.categories or [],
                    row.timezone,
                )
            )
            results[row.line] = RowResult(row.line, row.email, IMPORTED)
            continue
        status = Status(old.status)
        member_status = Status(old.member_status) if old.member_status else None
        if status in consent.GONE or member_status is Status.UNSUBSCRIBED:
            gone.append((row, old))
            continue
        values = {
            "id": old.id,
            "name": row.name if row.name is not None else old.name,
            "categories": (
                _choice(old.categories, row.categories, known, everything)
                if row.categories is not None
                else old.categories
            ),
            "timezone": row.timezone if row.timezone is not None else old.timezone,
            "attributes": {**(old.attributes or {}), **row.attributes},
        }
        changed = (
            values["name"] != old.name
            or values["categories"] != (old.categories or [])
            or values["timezone"] != old.timezone
            or values["attributes"] != (old.attributes or {})
        )
        if changed:
            profile_updates.append(values)
        if status is Status.PENDING:
            plan.activate.append(old.id)
        if member_status is None:
            plan.join.append(old.id)
            outcome = IMPORTED
        elif member_status is Status.PENDING:
            plan.confirm.append(old.id)
            outcome = UPDATED
        else:
            outcome = UPDATED if changed or status is Status.PENDING else UNCHANGED
        results[row.line] = RowResult(row.line, row.email, outcome)
    _reject_gone(session, mlist, gone, results)
    if dry_run:
        return
    bulk.admit(session, mlist, plan, by, now, consent_ip)
    if profile_updates:
        session.execute(
            update(_SUB)
            .where(_SUB.c.id == bindparam("_id"))
            .values(
                name=bindparam("_name"),
                categories=bindparam("_categories", type_=_SUB.c.categories.type),
                timezone=bindparam("_timezone"),
                attributes=bindparam("_attributes", type_=_SUB.c.attributes.type),
            ),
            [{f"_{k}": v for k, v in values.items()} for values in profile_updates],
        )


def _reject_gone(
    session: Session,
    mlist: MailingList,
    gone: Sequence[tuple[_Row, Any]],
    results: dict[int, RowResult],
) -> None:
    """Rows of people who left: rejected, saying when (from the consent log, one query)."""
    if not gone:
        return
    when = consent.left_on(session, [old.id for _, old in gone], mlist)
    for row, old in gone:
        status = Status(old.status)
        on_list = status not in consent.GONE
        what = f"{_GONE_WHAT[status]}" if not on_list else "unsubscribed from this list"
        at = when.get(old.id) or (old.member_updated_at if on_list else old.unsubscribed_at)
        date = f" on {at:%Y-%m-%d}" if at else ""
        why = f"{what}{date}; {_ONLY_THE_READER}"
        results[row.line] = RowResult(row.line, row.email, REJECTED, why)


_SUB = cast(Table, Subscriber.__table__)
_MEM = cast(Table, Membership.__table__)


# ---------------------------------------------------------------------------
# Exporting


def export_csv(
    session: Session, out: IO[str], list_name: str, *, segment: str | None = None
) -> int:
    """Write the recipients of ``list_name`` (and ``segment``) as CSV to ``out`` (opened
    with ``newline=""``); returns the number of subscribers written.  Streams: memory
    stays flat however long the list."""
    return export_selection(session, out, recipients(session, list_name, segment))


def export_selection(session: Session, out: IO[str], stmt: Any) -> int:
    """Write the subscribers ``stmt`` selects (its first entity is the
    :class:`Subscriber`, e.g. :func:`subscribers.service.search`) as CSV that imports
    back: email, name, categories, timezone and one column per attribute, every cell
    neutralised (:func:`neutralise`).  Returns how many were written."""
    keys: set[str] = set()
    for attrs in session.scalars(
        stmt.with_only_columns(Subscriber.attributes).execution_options(yield_per=5000)
    ):
        keys.update(attrs or {})
    extra = sorted(keys)
    writer = csv.writer(out)
    writer.writerow([*FIXED, *extra])
    written = 0
    for sub in _stream(session, stmt):
        if not sub.email:  # erased: nothing to export
            continue
        attrs = sub.attributes or {}
        cells = [
            sub.email or "",
            sub.name or "",
            ";".join(sub.categories or []),
            sub.timezone or "",
            *(str(attrs.get(k, "")) for k in extra),
        ]
        writer.writerow([neutralise(c) for c in cells])
        written += 1
    return written


def _stream(session: Session, stmt: Any) -> Iterator[Subscriber]:
    for sub in session.scalars(stmt.execution_options(yield_per=2000)):
        yield sub
        session.expunge(sub)


__all__ = [
    "ImportReport",
    "RowResult",
    "export_csv",
    "export_selection",
    "import_csv",
    "neutralise",
    "read_csv",
    "unprotect",
]

"""CSV import and export: formats, the row report, idempotence, consent and suppression."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from subscribers import lists, privacy, segments, service
from subscribers.errors import CsvError, SubscribersError
from subscribers.io import export_csv, import_csv, neutralise, unprotect
from subscribers.models import ConsentMethod, Membership, Status, Subscriber, SuppressionReason

DATA = Path(__file__).parent / "data" / "subscribers"
KNOWN = ["Data and security", "Change Management", "Adult Social Care"]


@pytest.fixture
def weekly(session: Session) -> Session:
    lists.create_list(session, "weekly")
    lists.create_list(session, "copy")
    session.commit()
    return session


def people(session: Session) -> dict[str, Subscriber]:
    return {s.email_key: s for s in session.scalars(select(Subscriber))}


def outcomes(report: Any) -> list[tuple[int, str, str]]:
    return [(r.line, r.outcome, r.reason) for r in report.rows]


def snapshot(session: Session) -> list[Any]:
    subs = session.execute(
        select(
            Subscriber.email,
            Subscriber.name,
            Subscriber.status,
            Subscriber.attributes,
            Subscriber.categories,
            Subscriber.timezone,
            Subscriber.consent_at,
        ).order_by(Subscriber.id)
    ).all()
    mems = session.execute(
        select(
            Membership.subscriber_id, Membership.list_id, Membership.status, Membership.updated_at
        ).order_by(Membership.subscriber_id, Membership.list_id)
    ).all()
    return [*map(tuple, subs), *map(tuple, mems)]


def test_bom_and_comma(weekly: Session) -> None:
    report = import_csv(weekly, DATA / "bom_comma.csv", "weekly", known_categories=KNOWN)
    weekly.commit()
    assert report.counts() == {"imported": 2, "updated": 0, "unchanged": 0, "rejected": 0}
    assert report.attributes == ["sector"]
    ada = people(weekly)["ada@example.org"]
    assert ada.name == "Ada Lovelace"
    assert ada.categories == ["Data and security"]
    assert ada.timezone == "Europe/London"
    assert ada.attributes == {"sector": "health"}
    assert ada.status is Status.ACTIVE
    assert ada.consent_method is ConsentMethod.IMPORT and ada.consent_at is not None
    assert ada.confirmed_at is None and ada.unsubscribed_at is None
    bob = people(weekly)["bob@example.org"]
    assert bob.categories == [] and bob.timezone is None


def test_semicolons_pipes_and_header_case(weekly: Session) -> None:
    report = import_csv(weekly, DATA / "semicolon.csv", "weekly", known_categories=KNOWN)
    weekly.commit()
    assert report.counts()["imported"] == 2
    ada = people(weekly)["ada@example.org"]
    assert ada.name == "Lovelace; Ada"
    assert ada.categories == ["Data and security", "Change Management"]
    assert ada.attributes == {"Region": "north"}


def test_quoted_commas_and_newlines_keep_line_numbers(weekly: Session) -> None:
    report = import_csv(weekly, DATA / "quoted.csv", "weekly")
    weekly.commit()
    assert outcomes(report) == [
        (2, "imported", ""),
        (4, "imported", ""),
        (5, "rejected", "invalid address: An email address must have an @-sign."),
        (6, "imported", ""),
    ]
    found = people(weekly)
    assert found["ada@example.org"].name == "Lovelace, Ada"
    assert found["ada@example.org"].attributes == {"notes": "line one\nline two"}
    assert found["bob@example.org"].name == 'Bob "The Builder"'
    assert found["carl@example.org"].attributes == {"notes": "a, b\nc"}


def test_rejections_are_reported_with_line_and_reason(weekly: Session) -> None:
    text = (
        "email,name,categories,timezone\n"
        "good@example.org,Good,,\n"
        "bad@,Bad,,\n"
        ",Empty,,\n"
        "GOOD@example.org,Dup,,\n"
        "cat@example.org,Cat,Cooking,\n"
        "tz@example.org,Tz,,Mars/Base\n"
        "\n"
        "wide@example.org,W,,,extra\n"
        "short@example.org\n"
    )
    report = import_csv(weekly, text.encode(), "weekly", known_categories=KNOWN)
    assert outcomes(report) == [
        (2, "imported", ""),
        (3, "rejected", "invalid address: There must be something after the @-sign."),
        (4, "rejected", "invalid address: the email cell is empty"),
        (5, "rejected", "duplicate in the file (see line 2)"),
        (
            6,
            "rejected",
            "unknown category 'Cooking' (categories: Data and security, "
            "Change Management, Adult Social Care)",
        ),
        (7, "rejected", "bad timezone 'Mars/Base': use an IANA name such as 'Europe/London'"),
        (9, "rejected", "5 cells but the header has 4 columns"),
        (10, "imported", ""),
    ]
    assert [r.email for r in report.rejected][:2] == ["bad@", ""]
    out = io.StringIO()
    report.write_csv(out)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows[0] == ["line", "email", "outcome", "reason"]
    assert rows[4] == ["5", "GOOD@example.org", "rejected", "duplicate in the file (see line 2)"]
    # Without known categories any category is accepted.
    weekly.rollback()
    loose = import_csv(weekly, text.encode(), "weekly")
    assert (6, "imported", "") in outcomes(loose)


def test_reimport_changes_nothing(weekly: Session) -> None:
    import_csv(weekly, DATA / "quoted.csv", "weekly")
    weekly.commit()
    before = snapshot(weekly)
    again = import_csv(weekly, DATA / "quoted.csv", "weekly")
    weekly.commit()
    assert again.counts() == {"imported": 0, "updated": 0, "unchanged": 3, "rejected": 1}
    assert snapshot(weekly) == before


def test_updates_merge_and_empty_cells_change_nothing(weekly: Session) -> None:
    import_csv(weekly, b"email,name,sector,region\na@example.org,Ann,health,north\n", "weekly")
    report = import_csv(weekly, b"email,name,sector,role\na@example.org,,education,cio\n", "weekly")
    weekly.commit()
    assert outcomes(report) == [(2, "updated", "")]
    ann = people(weekly)["a@example.org"]
    assert ann.name == "Ann"
    assert ann.attributes == {"sector": "education", "region": "north", "role": "cio"}


def test_existing_subscriber_joins_and_pending_becomes_active(weekly: Session) -> None:
    service.add_subscriber(weekly, "other@example.org", "copy")
    service.add_subscriber(weekly, "pend@example.org", "weekly", method=ConsentMethod.FORM)
    weekly.commit()
    report = import_csv(weekly, b"email\nother@example.org\npend@example.org\n", "weekly")
    weekly.commit()
    assert outcomes(report) == [(2, "imported", ""), (3, "updated", "")]
    assert service.count(weekly, service.recipients(weekly, "weekly")) == 2
    # The original form consent is kept as the record.
    assert people(weekly)["pend@example.org"].consent_method is ConsentMethod.FORM


def test_an_import_changes_only_the_choice_of_its_own_lists_sections(weekly: Session) -> None:
    """A reader of two newsletters chose sections of each: importing one list's file
    changes their choice among that list's sections and keeps the other's."""
    sport = ["Football", "Rowing"]
    import_csv(
        weekly, b"email,categories\nada@example.org,Football\n", "copy", known_categories=sport
    )
    import_csv(
        weekly,
        b"email,categories\nada@example.org,Data and security\n",
        "weekly",
        known_categories=KNOWN,
    )
    weekly.commit()
    assert people(weekly)["ada@example.org"].categories == ["Football", "Data and security"]
    report = import_csv(
        weekly, b"email,categories\nada@example.org,Rowing\n", "copy", known_categories=sport
    )
    weekly.commit()
    assert outcomes(report) == [(2, "updated", "")]
    assert people(weekly)["ada@example.org"].categories == ["Data and security", "Rowing"]
    # every section of one list: all of that list's, the other's choice kept
    import_csv(
        weekly,
        b"email,categories\nada@example.org,Football;Rowing\n",
        "copy",
        known_categories=sport,
    )
    weekly.commit()
    assert people(weekly)["ada@example.org"].categories == [
        "Data and security",
        "Football",
        "Rowing",
    ]


def test_suppression_and_unsubscribes_win_over_import(weekly: Session) -> None:
    service.suppress(weekly, "bounced@example.org", SuppressionReason.HARD_BOUNCE)
    service.add_subscriber(weekly, "spam@example.org", "copy")
    service.suppress(weekly, "spam@example.org", SuppressionReason.SPAM_REPORT)
    left = service.add_subscriber(weekly, "left@example.org", "weekly").subscriber
    service.unsubscribe(weekly, left.id)
    gone = service.add_subscriber(weekly, "listonly@example.org", "weekly").subscriber
    service.add_subscriber(weekly, "listonly@example.org", "copy")
    service.unsubscribe(weekly, gone.id, "weekly")
    privacy.forget(weekly, "erased@example.org")
    weekly.commit()
    before = snapshot(weekly)
    text = (
        "email,name\nBounced@example.org,B\nspam@example.org,S\nleft@example.org,L\n"
        "listonly@example.org,O\nerased@example.org,E\n"
    )
    report = import_csv(weekly, text.encode(), "weekly")
    weekly.commit()
    left_day = f"{left.unsubscribed_at:%Y-%m-%d}"
    list_id = lists.get_list(weekly, "weekly").id
    list_day = f"{weekly.get(Membership, (gone.id, list_id)).updated_at:%Y-%m-%d}"  # type: ignore[union-attr]
    assert outcomes(report) == [
        (2, "rejected", "suppressed (hard_bounce)"),
        (3, "rejected", "suppressed (spam_report)"),
        (
            4,
            "rejected",
            f"unsubscribed on {left_day}; only the reader can resubscribe by confirming",
        ),
        (
            5,
            "rejected",
            f"unsubscribed from this list on {list_day}; only the reader can resubscribe by "
            "confirming",
        ),
        (6, "rejected", "suppressed: the person asked to be erased"),
    ]
    assert snapshot(weekly) == before


def test_dry_run_writes_nothing(weekly: Session) -> None:
    service.add_subscriber(weekly, "old@example.org", "weekly", name="Old")
    weekly.commit()
    before = snapshot(weekly)
    text = b"email,name\nold@example.org,New name\nnew@example.org,New\n"
    report = import_csv(weekly, text, "weekly", dry_run=True)
    weekly.commit()
    assert report.dry_run
    assert outcomes(report) == [(2, "updated", ""), (3, "imported", "")]
    assert snapshot(weekly) == before


def test_a_failure_part_way_leaves_the_list_as_it_was(engine: Any) -> None:
    from digest import db

    sessions = db.session_factory(engine)
    with sessions() as s, s.begin():
        lists.create_list(s, "weekly")
    rows = "\n".join(f"p{i}@example.org,P{i}" for i in range(12_000))
    seen: list[int] = []

    def explode(done: int, total: int) -> None:
        if done >= 6000:
            # The first chunk is already written inside the transaction …
            seen.append(s.scalar(select(func.count()).select_from(Subscriber)) or 0)
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"), sessions() as s, s.begin():
        import_csv(s, f"email,name\n{rows}\n".encode(), "weekly", progress=explode)
    assert seen and seen[0] >= 5000
    with sessions() as s:  # … and rolled back with everything else.
        assert s.scalar(select(func.count()).select_from(Subscriber)) == 0
        assert s.scalar(select(func.count()).select_from(Membership)) == 0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the file is empty"),
        (b"name,sector\nAda,health\n", "no 'email' column \\(the header has 'name', 'sector'\\)"),
        (b"email,name,Name\n", "column 'name' appears twice"),
        (b"email,,x\n", "column 2 has no name"),
        (b'email,se"ctor\n', "column 2: .* is not an attribute name"),
        (b"email,name\nada@example.org,Andr\xe9\n", "line 2: not UTF-8 text \\(byte 0xe9\\)"),
        (b'email,name\nada@example.org,"unclosed\n', "unexpected end of data"),
    ],
)
def test_unreadable_files_fail_as_a_whole(weekly: Session, data: bytes, message: str) -> None:
    with pytest.raises(CsvError, match=message):
        import_csv(weekly, data, "weekly")
    assert weekly.scalar(select(func.count()).select_from(Subscriber)) == 0


def test_missing_file(weekly: Session, tmp_path: Path) -> None:
    with pytest.raises(CsvError, match="file not found"):
        import_csv(weekly, tmp_path / "nope.csv", "weekly")


def test_hundred_thousand_rows(weekly: Session) -> None:
    lines = ["email,name,sector,region,categories"]
    cats = "Data and security|Adult Social Care"
    lines += [
        f"user{i}@example.org,User {i},sector{i % 7},region{i % 5},{cats}" for i in range(100_000)
    ]
    lines += ["user5@EXAMPLE.org,dup,,,", "broken@,x,,,"]
    calls: list[tuple[int, int]] = []
    report = import_csv(
        weekly,
        ("\n".join(lines) + "\n").encode(),
        "weekly",
        known_categories=KNOWN,
        progress=lambda done, total: calls.append((done, total)),
    )
    weekly.commit()
    counts = report.counts()
    assert counts == {"imported": 100_000, "updated": 0, "unchanged": 0, "rejected": 2}
    assert calls[0] == (0, 100_002) and calls[-1] == (100_002, 100_002)
    assert service.count(weekly, service.recipients(weekly, "weekly")) == 100_000
    sample = service.find_subscriber(weekly, "user99999@example.org")
    assert sample is not None
    assert sample.attributes == {"sector": "sector4", "region": "region4"}
    assert sample.categories == ["Data and security", "Adult Social Care"]
    segments.create_segment(weekly, "weekly", "s3", {"attr": "sector", "equals": "sector3"})
    assert service.count(weekly, service.recipients(weekly, "weekly", "s3")) == 14_286


# ---------------------------------------------------------------------------
# Export


@pytest.mark.parametrize(
    ("cell", "protected"),
    [
        ("=1+1", "'=1+1"),
        ("+44 20", "'+44 20"),
        ("-minus", "'-minus"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tTab", "'\tTab"),
        ("\rCR", "'\rCR"),
        ("'=quoted", "''=quoted"),
        ("'plain", "'plain"),
        ("plain", "plain"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_neutralise_round_trips(cell: str, protected: str) -> None:
    assert neutralise(cell) == protected
    assert unprotect(neutralise(cell)) == cell


def test_formula_cells_are_neutralised_and_round_trip(weekly: Session) -> None:
    report = import_csv(weekly, DATA / "formula.csv", "weekly")
    weekly.commit()
    assert report.counts()["imported"] == 3
    found = people(weekly)
    assert found["ada@example.org"].name == '=HYPERLINK("http://evil.example","click")'
    assert found["carl@example.org"].name == "=already protected"  # protective quote removed
    out = io.StringIO()
    assert export_csv(weekly, out, "weekly") == 3
    exported = out.getvalue()
    rows = list(csv.reader(io.StringIO(exported)))
    assert rows[0] == ["email", "name", "categories", "timezone", "company"]
    for row in rows[1:]:
        for cell in row:
            assert not cell or cell[0] not in "=+-@\t\r", row
    assert rows[1][1] == '\'=HYPERLINK("http://evil.example","click")'
    assert rows[1][4] == "'+44 20 7946 0000"
    # The export imports back exactly: into another list, then exported again.
    back = import_csv(weekly, exported.encode(), "copy")
    weekly.commit()
    assert back.counts() == {"imported": 3, "updated": 0, "unchanged": 0, "rejected": 0}
    again = io.StringIO()
    export_csv(weekly, again, "copy")
    assert again.getvalue() == exported
    assert import_csv(weekly, exported.encode(), "weekly").counts()["unchanged"] == 3


def test_export_round_trip_of_every_field(weekly: Session) -> None:
    for path in ("bom_comma.csv", "semicolon.csv", "quoted.csv"):
        import_csv(weekly, DATA / path, "weekly")
    service.add_subscriber(
        weekly,
        "tz@example.org",
        "weekly",
        timezone="America/New_York",
        categories=["A", "B"],
        attributes={"x": "-1"},
    )
    service.add_subscriber(weekly, "p@example.org", "weekly", method=ConsentMethod.FORM)
    weekly.commit()
    out = io.StringIO()
    written = export_csv(weekly, out, "weekly")
    assert written == 4  # the pending member is not exported
    report = import_csv(weekly, out.getvalue().encode(), "copy")
    weekly.commit()
    assert report.counts()["imported"] == 4
    copy = {s.email_key for s in weekly.scalars(service.recipients(weekly, "copy"))}
    orig = {s.email_key for s in weekly.scalars(service.recipients(weekly, "weekly"))}
    assert copy == orig


def test_export_one_segment(weekly: Session) -> None:
    import_csv(weekly, b"email,sector\na@example.org,health\nb@example.org,edu\n", "weekly")
    segments.create_segment(weekly, "weekly", "health", {"attr": "sector", "equals": "health"})
    weekly.commit()
    out = io.StringIO()
    assert export_csv(weekly, out, "weekly", segment="health") == 1
    assert out.getvalue().splitlines() == [
        "email,name,categories,timezone,sector",
        "a@example.org,,,,health",
    ]


def test_import_into_a_missing_list(weekly: Session) -> None:
    with pytest.raises(SubscribersError, match="no list called 'nope'"):
        import_csv(weekly, b"email\na@example.org\n", "nope")

"""Segment rules: data compiled to SQL, every operator on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from subscribers import lists, segments
from subscribers.errors import AlreadyExists, InvalidName, InvalidRule, NotFound, UnknownCategory
from subscribers.models import Status, Subscriber
from subscribers.segments import compile_rule, normalise_rule

DATA = Path(__file__).parent / "data" / "subscribers"


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


PEOPLE: list[dict[str, Any]] = [
    {
        "email": "ada@example.org",
        "attributes": {
            "sector": "health",
            "region": "north",
            "employees": "50",
            "role": "Chief Information Officer (CIO)",
            "city": "Île-de-France",
            "job title": "CIO",
        },
        "categories": ["Data and security"],
        "created_at": _at("2026-01-15T10:00:00"),
        "status": Status.ACTIVE,
    },
    {
        "email": "bob@example.org",
        "attributes": {"sector": "education", "region": "south", "role": "Intern"},
        "categories": [],
        "created_at": _at("2025-12-31T23:59:59"),
        "status": Status.ACTIVE,
    },
    {
        "email": "cat@example.org",
        "attributes": {"sector": "Health", "region": "north"},
        "categories": ["Change Management"],
        "created_at": _at("2026-06-30T12:00:00"),
        "status": Status.PENDING,
    },
    {
        "email": "dan@example.org",
        "attributes": {},
        "categories": ["Data and security", "Change Management"],
        "created_at": _at("2026-07-01T00:00:00"),
        "status": Status.UNSUBSCRIBED,
    },
    {
        "email": "eve@example.org",
        "attributes": {"sector": "", "note": "50% off_now"},
        "categories": ["Adult Social Care"],
        "created_at": _at("2026-03-01T00:00:00"),
        "status": Status.BOUNCED,
    },
]


@pytest.fixture
def people(session: Session) -> Session:
    for person in PEOPLE:
        session.add(Subscriber(email_key=person["email"], **person))
    session.commit()
    return session


def matching(session: Session, rule: dict[str, Any]) -> set[str]:
    names = session.scalars(select(Subscriber.email).where(compile_rule(rule)))
    return {str(n).split("@")[0] for n in names}


CASES: list[tuple[str, dict[str, Any], set[str]]] = [
    ("equals", {"attr": "sector", "equals": "health"}, {"ada"}),
    ("equals is exact", {"attr": "sector", "equals": "Health"}, {"cat"}),
    ("equals a number", {"attr": "employees", "equals": 50}, {"ada"}),
    ("equals non-ASCII", {"attr": "city", "equals": "Île-de-France"}, {"ada"}),
    ("contains non-ASCII", {"attr": "city", "contains": "de-fr"}, {"ada"}),
    ("name with a space", {"attr": "job title", "equals": "CIO"}, {"ada"}),
    ("in", {"attr": "region", "in": ["north", "east"]}, {"ada", "cat"}),
    ("contains ignores case", {"attr": "role", "contains": "cio"}, {"ada"}),
    ("contains INTERN", {"attr": "role", "contains": "INTERN"}, {"bob"}),
    ("contains escapes %", {"attr": "note", "contains": "50%"}, {"eve"}),
    ("contains % literally", {"attr": "role", "contains": "%"}, set()),
    ("contains _ literally", {"attr": "note", "contains": "f_n"}, {"eve"}),
    ("exists", {"attr": "sector", "exists": True}, {"ada", "bob", "cat"}),
    ("not exists (missing or empty)", {"attr": "sector", "exists": False}, {"dan", "eve"}),
    ("category, empty choice = all", {"category": "Data and security"}, {"ada", "bob", "dan"}),
    ("category", {"category": "Change Management"}, {"bob", "cat", "dan"}),
    ("category nobody chose", {"category": "Cooking"}, {"bob"}),
    ("status", {"status": "pending"}, {"cat"}),
    ("status list", {"status": ["bounced", "unsubscribed"]}, {"dan", "eve"}),
    (
        "signed up after (inclusive day)",
        {"signed_up": {"after": "2026-01-15"}},
        {"ada", "cat", "dan", "eve"},
    ),
    (
        "signed up before (inclusive day)",
        {"signed_up": {"before": "2026-06-30"}},
        {"ada", "bob", "cat", "eve"},
    ),
    (
        "signed up between",
        {"signed_up": {"after": "2026-01-01", "before": "2026-06-30"}},
        {"ada", "cat", "eve"},
    ),
    (
        "signed up after an instant",
        {"signed_up": {"after": "2025-12-31T23:59:59+00:00"}},
        {"ada", "bob", "cat", "dan", "eve"},
    ),
    (
        "signed up before an instant (offset)",
        {"signed_up": {"before": "2026-01-01T00:59:59+01:00"}},
        {"bob"},
    ),
    (
        "not is the exact complement",
        {"not": {"attr": "sector", "equals": "health"}},
        {"bob", "cat", "dan", "eve"},
    ),
    ("all", {"all": [{"attr": "region", "equals": "north"}, {"status": "active"}]}, {"ada"}),
    (
        "any",
        {"any": [{"attr": "role", "contains": "intern"}, {"status": "bounced"}]},
        {"bob", "eve"},
    ),
    (
        "nested",
        {
            "all": [
                {"any": [{"category": "Change Management"}, {"attr": "region", "equals": "north"}]},
                {"not": {"status": ["unsubscribed", "bounced"]}},
            ]
        },
        {"ada", "bob", "cat"},
    ),
]


@pytest.mark.parametrize(("rule", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_operator(people: Session, rule: dict[str, Any], expected: set[str]) -> None:
    assert matching(people, rule) == expected


def test_not_of_every_leaf_is_its_complement(people: Session) -> None:
    everyone = {p["email"].split("@")[0] for p in PEOPLE}
    for _, rule, expected in CASES:
        assert matching(people, {"not": rule}) == everyone - expected, rule


BAD: list[tuple[Any, str]] = [
    ([], "rule: must be an object"),
    ({}, "rule: empty object"),
    ({"attr": "sector", "equal": "x"}, "rule: unknown key 'equal'; did you mean 'equals'"),
    ({"attr": "sector"}, "attribute 'sector' needs one of equals, in, contains, exists"),
    ({"attr": "sector", "equals": "a", "in": ["b"]}, "has equals and in"),
    ({"equals": "x"}, "needs an 'attr'"),
    ({"all": []}, r"rule\.all: must be a non-empty list"),
    (
        {"all": [{"attr": "a", "equals": "x"}, {"any": [{"bogus": 1}]}]},
        r"rule\.all\[1\]\.any\[0\]: unknown key 'bogus'",
    ),
    ({"all": [{"not": {"attr": "a", "in": []}}]}, r"rule\.all\[0\]\.not\.in: must be a non-empty"),
    ({"attr": 'se"ctor', "equals": "x"}, r"rule\.attr: .* is not an attribute name"),
    ({"attr": "région", "equals": "x"}, "ASCII letters"),
    ({"attr": "sector", "equals": None}, r"rule\.equals: must be text or a number, not null"),
    ({"attr": "sector", "equals": True}, "not true/false"),
    ({"attr": "sector", "in": ["a", ["b"]]}, r"rule\.in\[1\]: must be text or a number"),
    ({"attr": "sector", "contains": ""}, "must be non-empty text"),
    ({"attr": "sector", "exists": "yes"}, "must be true or false"),
    ({"category": ""}, r"rule\.category: must be a category name"),
    ({"status": "gone"}, "'gone' is not a status; use one of pending, active"),
    ({"signed_up": "2026"}, r"rule\.signed_up: must be an object with 'after'"),
    ({"signed_up": {"after": "yesterday"}}, r"rule\.signed_up\.after: 'yesterday' is not a date"),
    ({"signed_up": {"since": "2026-01-01"}}, "unknown key 'since'"),
    ({"signed_up": {"after": "2026-02-01", "before": "2026-01-01"}}, "later than 'before'"),
    ({"category": "x", "status": "active"}, "one object holds 'category' and 'status'"),
    ({"category": "x", "equals": "y"}, "'equals' only goes with 'attr'"),
    ({"not": {"not": {"not": "x"}}}, r"rule\.not\.not\.not: must be an object"),
]


@pytest.mark.parametrize(("rule", "message"), BAD)
def test_mistakes_name_the_path(rule: Any, message: str) -> None:
    with pytest.raises(InvalidRule, match=message):
        compile_rule(rule)


def test_deep_nesting_is_refused() -> None:
    rule: dict[str, Any] = {"attr": "a", "equals": "x"}
    for _ in range(40):
        rule = {"not": rule}
    with pytest.raises(InvalidRule, match="deeper than"):
        compile_rule(rule)


def test_rules_are_data_never_code(people: Session) -> None:
    # Would-be injections are just values compared as text.
    evil = "x' OR '1'='1"
    assert matching(people, {"attr": "sector", "equals": evil}) == set()
    assert matching(people, {"attr": "sector", "contains": "') OR 1=1 --"}) == set()
    assert matching(people, {"category": '"] OR 1=1 --'}) == {"bob"}


def test_normalised_rule_is_json_safe() -> None:
    from datetime import date

    rule = normalise_rule(
        {
            "all": [
                {"attr": "n", "in": [1, 2.0, "3"]},
                {"signed_up": {"after": date(2026, 1, 1), "before": datetime(2026, 2, 1, 9, 30)}},
            ]
        }
    )
    assert rule == {
        "all": [
            {"attr": "n", "in": ["1", "2", "3"]},
            {"signed_up": {"after": "2026-01-01", "before": "2026-02-01T09:30:00+00:00"}},
        ]
    }


def test_rule_files_json_and_toml() -> None:
    assert segments.load_rule_file(DATA / "rule.toml") == {
        "all": [
            {"attr": "sector", "in": ["health", "social care"]},
            {"attr": "region", "equals": "north"},
            {"not": {"attr": "role", "contains": "intern"}},
        ]
    }
    assert segments.load_rule_file(DATA / "rule.json")["any"][0] == {
        "category": "Data and security"
    }
    with pytest.raises(InvalidRule, match="file not found"):
        segments.load_rule_file(DATA / "missing.json")
    assert segments.parse_rule_text('attr = "a"\nexists = true') == {"attr": "a", "exists": True}
    with pytest.raises(InvalidRule, match="not valid JSON"):
        segments.parse_rule_text("{attr: sector}")


def test_saved_segments(session: Session) -> None:
    lists.create_list(session, "weekly")
    lists.create_list(session, "other")
    known = ["Data and security", "Change Management"]
    seg = segments.create_segment(
        session,
        "weekly",
        "security",
        {"any": [{"category": "data AND security"}, {"attr": "role", "contains": "cio"}]},
        categories=["change management"],
        known_categories=known,
    )
    session.commit()
    assert seg.rule == {
        "any": [{"category": "Data and security"}, {"attr": "role", "contains": "cio"}]
    }
    assert seg.categories == ["Change Management"]
    assert segments.get_segment(session, "weekly", "security").id == seg.id
    with pytest.raises(AlreadyExists, match="already has a segment called 'security'"):
        segments.create_segment(session, "weekly", "security", {"status": "active"})
    with pytest.raises(UnknownCategory, match="'Cooking'"):
        segments.create_segment(
            session, "weekly", "x", {"category": "Cooking"}, known_categories=known
        )
    with pytest.raises(InvalidName):
        segments.create_segment(session, "weekly", "no spaces", {"status": "active"})
    with pytest.raises(NotFound, match=r"no segment called 'nope' \(segments: security\)"):
        segments.get_segment(session, "weekly", "nope")
    with pytest.raises(NotFound, match=r"segments: none yet"):
        segments.get_segment(session, "other", "security")
    with pytest.raises(NotFound, match="no list called 'missing'"):
        segments.get_segment(session, "missing", "security")
    assert segments.find_segment_lists(session, "security") == ["weekly"]
    segments.delete_segment(session, "weekly", "security")
    session.commit()
    assert segments.list_segments(session) == []


# ---------------------------------------------------------------------------
# Bounds: a rule that is accepted runs on both databases; one that would not is refused
# where it is read, with a message that says the limit.

LEAVES: list[dict[str, Any]] = [
    {"attr": "sector", "equals": "health"},
    {"attr": "role", "contains": "cio"},
    {"category": "Data and security"},
    {"signed_up": {"after": "2026-01-01", "before": "2026-12-31"}},
    {"attr": "region", "in": ["north", "south"]},
    {"status": ["active", "pending"]},
    {"attr": "note", "exists": False},
]


def _leaf(i: int) -> dict[str, Any]:
    return LEAVES[i % len(LEAVES)]


def _deepest() -> dict[str, Any]:
    """all/any/not nested as deep as allowed, holding as many conditions as allowed."""
    levels = segments.MAX_DEPTH // 3
    node: dict[str, Any] = {"all": [_leaf(i) for i in range(segments.MAX_CONDITIONS - 2 * levels)]}
    for level in range(levels):
        node = {"all": [_leaf(level), {"any": [{"not": node}, _leaf(level + 1)]}]}
    return node


def test_the_largest_rules_allowed_run_on_the_database(people: Session) -> None:
    most = segments.MAX_CONDITIONS
    rules = [
        {"all": [{"attr": "sector", "equals": str(i)} for i in range(most)]},
        {"any": [_leaf(i) for i in range(most)]},
        {"not": {"all": [{"not": _leaf(i)} for i in range(most)]}},
        _deepest(),
        {"any": [{"attr": "sector", "in": [f"v{i}-{j}" for j in range(100)]} for i in range(10)]},
        {"signed_up": {"after": "1900-01-01", "before": "2999-12-31"}},
    ]
    for rule in rules:
        assert isinstance(matching(people, rule), set)  # the database runs it


BOUNDS: list[tuple[Any, str]] = [
    # SQLite: "Expression tree is too large (maximum depth 1000)" once stored
    (
        {"all": [{"attr": "sector", "equals": str(i)} for i in range(995)]},
        r"rule\.all: a rule may hold at most 200 conditions",
    ),
    (
        {"any": [{"all": [_leaf(j) for j in range(100)]} for _ in range(3)]},
        r"rule\.any\[2\]\.all\[0\]: a rule may hold at most 200 conditions",
    ),
    (
        {"any": [{"attr": "a", "in": [str(j) for j in range(600)]} for _ in range(2)]},
        r"rule\.any\[1\]\.in: a rule may list at most 1000 values",
    ),
    # OverflowError before: the day after 9999-12-31 is not a date
    (
        {"signed_up": {"before": "9999-12-31"}},
        r"rule\.signed_up\.before: 9999-12-31 is out of range; use a date from 1900-01-01 "
        r"to 2999-12-31",
    ),
    ({"signed_up": {"after": "0001-01-01T00:00+14:00"}}, "0001-01-01 is out of range"),
]


@pytest.mark.parametrize(("rule", "message"), BOUNDS)
def test_rules_beyond_the_bounds_are_refused_where_they_are_read(rule: Any, message: str) -> None:
    with pytest.raises(InvalidRule, match=message):
        normalise_rule(rule)


@pytest.mark.parametrize(
    "text",
    [
        "[" * 20_000,  # JSON: RecursionError before
        '{"all": ' * 5_000,
        "a = " + "[" * 5_000,  # TOML
        "a = " + "{b = " * 3_000,
    ],
)
def test_deeply_nested_rule_text_is_refused_clearly(text: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidRule, match=r"rule: nests far too deeply; .* at most 32 levels"):
        segments.parse_rule_text(text, source="rule")
    path = tmp_path / ("rule.toml" if text.startswith("a") else "rule.json")
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InvalidRule, match="nests far too deeply"):
        segments.load_rule_file(path)

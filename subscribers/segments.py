"""Segments: named rules over one list, kept as data and compiled to SQL filters.

A rule is a JSON (or TOML) object; it is never evaluated as code.  Grammar::

    rule      := combinator | condition
    combinator:= {"all": [rule, ...]}      every sub-rule matches (AND)
               | {"any": [rule, ...]}      at least one matches (OR)
               | {"not": rule}             the sub-rule does not match
    condition := {"attr": NAME, "equals": VALUE}        attribute equals VALUE
               | {"attr": NAME, "in": [VALUE, ...]}     attribute is one of the VALUEs
               | {"attr": NAME, "contains": TEXT}       substring, case-insensitive
               | {"attr": NAME, "exists": true|false}   attribute set (non-empty) or not
               | {"category": NAME}                     subscriber gets this category
               | {"status": STATUS | [STATUS, ...]}     the subscriber's own status
               | {"signed_up": {"after": DATE, "before": DATE}}   either bound optional

Semantics, the same on SQLite and PostgreSQL:

* Attributes are text (imports and the CLI store them as strings); ``equals`` and
  ``in`` compare exactly, and a number in the rule is compared as its text (``5`` is
  ``"5"``).  ``contains`` ignores case (ASCII letters on SQLite).  A subscriber
  without the attribute matches no comparison, so ``{"not": {"attr": "sector",
  "equals": "health"}}`` includes people with no sector at all.
* ``category``: the subscriber chose that category, **or chose none**: an empty
  choice means "all categories", so such a subscriber receives it too.
* ``status`` is the subscriber's own status (pending, active, unsubscribed,
  bounced, complained); list membership is handled by the query using the rule.
* ``signed_up`` bounds ``Subscriber.created_at``.  A date (``2026-01-01``) is a whole
  UTC day and both bounds include their day; an ISO datetime is an exact instant
  (``after`` ≤ created ≤ ``before``), read as UTC when it has no offset.

Rules are bounded where they are read, so that no rule can fail in the database: at
most :data:`MAX_DEPTH` levels of all/any/not, :data:`MAX_CONDITIONS` conditions and
:data:`MAX_VALUES` values (all ``in`` lists together), and dates from
:data:`FIRST_DAY` to :data:`LAST_DAY`.

Mistakes raise :class:`~subscribers.errors.InvalidRule` naming the path in the
rule, e.g. ``rule.all[1].attr: ...``.
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Boolean, ColumnElement, Integer, String, and_, delete, literal, not_, or_
from sqlalchemy import select as sql_select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from subscribers.errors import (
    AlreadyExists,
    InvalidName,
    InvalidRule,
    NotFound,
)
from subscribers.lists import get_list
from subscribers.models import MailingList, Segment, Status, Subscriber
from subscribers.validate import ATTR_NAME, clean_categories

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
#: Levels of all/any/not a rule may nest.
MAX_DEPTH = 32
#: Conditions (attr, category, status, signed_up) in one rule.  SQLite refuses
#: expressions nested about 1,000 deep, and a list of conditions nests one level each.
MAX_CONDITIONS = 200
#: Values in all of a rule's ``in`` lists together (each is one query parameter).
MAX_VALUES = 1000
#: The dates a ``signed_up`` bound may name (whole days, UTC).
FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(2999, 12, 31)

_COMBINATORS = ("all", "any", "not")
_ATTR_OPS = ("equals", "in", "contains", "exists")
_LEAVES = ("attr", "category", "status", "signed_up")
_ALL_KEYS = (*_COMBINATORS, *_LEAVES, *_ATTR_OPS)


# ---------------------------------------------------------------------------
# Dialect-specific pieces: JSON arrays differ between SQLite and PostgreSQL.


class json_array_has(FunctionElement[bool]):
    """``array`` (a JSON array of strings) contains the string ``value``."""

    type = Boolean()
    inherit_cache = True
    name = "json_array_has"


class json_array_length(FunctionElement[int]):
    type = Integer()
    inherit_cache = True
    name = "json_array_length"


@compiles(json_array_has, "sqlite")
def _has_sqlite(element: json_array_has, compiler: SQLCompiler, **kw: Any) -> str:
    array, value = (compiler.process(c, **kw) for c in element.clauses)
    return f"EXISTS (SELECT 1 FROM json_each({array}) WHERE json_each.value = {value})"


@compiles(json_array_has, "postgresql")
def _has_pg(element: json_array_has, compiler: SQLCompiler, **kw: Any) -> str:
    array, value = (compiler.process(c, **kw) for c in element.clauses)
    return f"({array} @> jsonb_build_array(CAST({value} AS TEXT)))"


@compiles(json_array_length, "sqlite")
def _len_sqlite(element: json_array_length, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json_array_length({compiler.process(element.clauses, **kw)})"


@compiles(json_array_length, "postgresql")
def _len_pg(element: json_array_length, compiler: SQLCompiler, **kw: Any) -> str:
    return f"jsonb_array_length({compiler.process(element.clauses, **kw)})"


# ---------------------------------------------------------------------------
# Validation and normalisation (rule → canonical JSON-safe data)


def normalise_rule(rule: Any) -> dict[str, Any]:
    """The canonical, JSON-serialisable form of ``rule`` (dates as ISO strings, numbers
    as text); :class:`InvalidRule` naming the path on any mistake."""
    if not isinstance(rule, Mapping):
        raise InvalidRule(
            f'rule: must be an object like {{"attr": "sector", "equals": "health"}}, '
            f"not {type(rule).__name__}"
        )
    return _norm(rule, "rule", 0, _Budget())


class _Budget:
    """What a rule has used so far of :data:`MAX_CONDITIONS` and :data:`MAX_VALUES`."""

    def __init__(self) -> None:
        self.conditions = 0
        self.values = 0

    def condition(self, path: str) -> None:
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise InvalidRule(self.too_many(path))

    @staticmethod
    def too_many(path: str) -> str:
        return (
            f"{path}: a rule may hold at most {MAX_CONDITIONS} conditions; list many "
            'values in one condition with "in", or split the segment'
        )

    def take_values(self, count: int, path: str) -> None:
        self.values += count
        if self.values > MAX_VALUES:
            raise InvalidRule(
                f"{path}: a rule may list at most {MAX_VALUES} values in all its 'in' lists"
            )


def _norm(node: Any, path: str, depth: int, budget: _Budget) -> dict[str, Any]:
    if depth > MAX_DEPTH:
        raise InvalidRule(f"{path}: rules nest deeper than {MAX_DEPTH} levels")
    if not isinstance(node, Mapping):
        raise InvalidRule(
            f"{path}: must be an object (a condition or all/any/not), not {_kind(node)}"
        )
    keys = list(node)
    if not keys:
        raise InvalidRule(
            f"{path}: empty object; write a condition such as "
            '{"attr": "sector", "equals": "health"}'
        )
    for key in keys:
        if key not in _ALL_KEYS:
            raise InvalidRule(f"{path}: unknown key {key!r}{_did_you_mean(str(key))}")
    kind = [k for k in keys if k in (*_COMBINATORS, *_LEAVES)]
    if len(kind) != 1:
        if not kind:
            raise InvalidRule(f"{path}: {', '.join(map(repr, keys))} needs an 'attr' to apply to")
        raise InvalidRule(
            f"{path}: one object holds {' and '.join(map(repr, kind))}; "
            'combine conditions with {"all": [...]} or {"any": [...]}'
        )
    head = kind[0]
    if head != "attr":
        extra = [k for k in keys if k != head]
        if extra:
            raise InvalidRule(f"{path}: {extra[0]!r} only goes with 'attr'")
    here = f"{path}.{head}"
    value = node[head]
    if head in ("all", "any"):
        if not isinstance(value, list) or not value:
            raise InvalidRule(f"{here}: must be a non-empty list of rules")
        if len(value) > MAX_CONDITIONS:  # refused before walking a huge list
            raise InvalidRule(budget.too_many(here))
        return {
            head: [_norm(sub, f"{here}[{i}]", depth + 1, budget) for i, sub in enumerate(value)]
        }
    if head == "not":
        return {"not": _norm(value, here, depth + 1, budget)}
    budget.condition(path)
    if head == "attr":
        return _norm_attr(node, path, budget)
    if head == "category":
        if not isinstance(value, str) or not value.strip():
            raise InvalidRule(f"{here}: must be a category name (text)")
        return {"category": value.strip()}
    if head == "status":
        items = value if isinstance(value, list) else [value]
        if not items:
            raise InvalidRule(f"{here}: must name at least one status")
        names = [s.value for s in Status]
        out = []
        for item in items:
            if item not in names:
                raise InvalidRule(
                    f"{here}: {item!r} is not a status; use one of {', '.join(names)}"
                )
            out.append(item)
        return {"status": out[0] if not isinstance(value, list) else out}
    return {"signed_up": _norm_dates(value, here)}


def _norm_attr(node: Mapping[str, Any], path: str, budget: _Budget) -> dict[str, Any]:
    name = node["attr"]
    if not isinstance(name, str) or not ATTR_NAME.fullmatch(name):
        raise InvalidRule(
            f"{path}.attr: {name!r} is not an attribute name; use ASCII letters, "
            "digits, spaces, '_', '.' and '-'"
        )
    ops = [k for k in node if k in _ATTR_OPS]
    if len(ops) != 1:
        if not ops:
            raise InvalidRule(f"{path}: attribute {name!r} needs one of {', '.join(_ATTR_OPS)}")
        raise InvalidRule(
            f"{path}: attribute {name!r} has {' and '.join(ops)}; use one per condition "
            "and combine them with all/any"
        )
    op = ops[0]
    value = node[op]
    here = f"{path}.{op}"
    if op == "equals":
        return {"attr": name, "equals": _scalar(value, here)}
    if op == "in":
        if not isinstance(value, list) or not value:
            raise InvalidRule(f"{here}: must be a non-empty list of values")
        budget.take_values(len(value), here)
        return {"attr": name, "in": [_scalar(v, f"{here}[{i}]") for i, v in enumerate(value)]}
    if op == "contains":
        if not isinstance(value, str) or not value:
            raise InvalidRule(f"{here}: must be non-empty text")
        return {"attr": name, "contains": value}
    if not isinstance(value, bool):
        raise InvalidRule(f"{here}: must be true or false")
    return {"attr": name, "exists": value}


def _scalar(value: Any, path: str) -> str:
    if isinstance(value, bool) or value is None or not isinstance(value, str | int | float):
        raise InvalidRule(f"{path}: must be text or a number, not {_kind(value)}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _norm_dates(value: Any, path: str) -> dict[str, str]:
    if not isinstance(value, Mapping) or not value:
        raise InvalidRule(
            f"{path}: must be an object with 'after' and/or 'before', "
            'e.g. {"after": "2026-01-01"}'
        )
    out: dict[str, str] = {}
    for key, raw in value.items():
        if key not in ("after", "before"):
            raise InvalidRule(f"{path}: unknown key {key!r}; use 'after' and/or 'before'")
        out[key] = _iso(raw, f"{path}.{key}")
    if "after" in out and "before" in out:
        lo, hi = _bound(out["after"], "after"), _bound(out["before"], "before")
        if lo > hi:
            raise InvalidRule(
                f"{path}: 'after' ({out['after']}) is later than 'before' ({out['before']})"
            )
    return out


def _iso(raw: Any, path: str) -> str:
    value: date | datetime | None = raw if isinstance(raw, date) else None
    if isinstance(raw, str):
        text = raw.strip()
        try:
            value = date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
        except ValueError:
            value = None
    if value is None:
        raise InvalidRule(
            f"{path}: {raw!r} is not a date; use YYYY-MM-DD or an ISO datetime "
            "like 2026-01-01T09:00+00:00"
        )
    day = value.date() if isinstance(value, datetime) else value
    if not FIRST_DAY <= day <= LAST_DAY:
        raise InvalidRule(
            f"{path}: {day.isoformat()} is out of range; use a date from "
            f"{FIRST_DAY.isoformat()} to {LAST_DAY.isoformat()} (leave the bound out "
            "for no limit)"
        )
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    return value.isoformat()


def _bound(text: str, side: str) -> datetime:
    if len(text) == 10:
        day = date.fromisoformat(text)
        if side == "before":
            day += timedelta(days=1)
        return datetime.combine(day, time(0), tzinfo=UTC)
    return datetime.fromisoformat(text)


def _kind(value: Any) -> str:
    return {
        type(None): "null",
        bool: "true/false",
        list: "a list",
        dict: "an object",
        str: "text",
    }.get(type(value), type(value).__name__)


def _did_you_mean(key: str) -> str:
    close = difflib.get_close_matches(key, _ALL_KEYS, n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; use one of {', '.join(_ALL_KEYS)}"


# ---------------------------------------------------------------------------
# Compilation (canonical rule → SQLAlchemy filter over Subscriber)


def compile_rule(rule: Mapping[str, Any]) -> ColumnElement[bool]:
    """A SQL filter over :class:`Subscriber` for ``rule``; :class:`InvalidRule` on mistakes.

    Every condition is NULL-safe (true or false, never unknown), so ``not`` means
    exactly the complement.
    """
    return _compile(normalise_rule(rule))


def _compile(node: Mapping[str, Any]) -> ColumnElement[bool]:
    if "all" in node:
        return and_(*(_compile(sub) for sub in node["all"]))
    if "any" in node:
        return or_(*(_compile(sub) for sub in node["any"]))
    if "not" in node:
        return not_(_compile(node["not"]))
    if "attr" in node:
        text = Subscriber.attributes[node["attr"]].as_string()
        present = text.is_not(None)
        if "equals" in node:
            return and_(present, text == node["equals"])
        if "in" in node:
            return and_(present, text.in_(node["in"]))
        if "contains" in node:
            return and_(present, text.icontains(node["contains"], autoescape=True))
        has_value = and_(present, text != "")
        return has_value if node["exists"] else not_(has_value)
    if "category" in node:
        value = literal(node["category"], String())
        return or_(
            json_array_length(Subscriber.categories) == 0,
            json_array_has(Subscriber.categories, value),
        )
    if "status" in node:
        wanted = node["status"] if isinstance(node["status"], list) else [node["status"]]
        return Subscriber.status.in_([Status(s) for s in wanted])
    dates = node["signed_up"]
    conds = []
    if "after" in dates:
        conds.append(Subscriber.created_at >= _bound(dates["after"], "after"))
    if "before" in dates:
        bound = _bound(dates["before"], "before")
        if len(dates["before"]) == 10:
            conds.append(Subscriber.created_at < bound)
        else:
            conds.append(Subscriber.created_at <= bound)
    return and_(*conds)


def rule_categories(rule: Mapping[str, Any]) -> set[str]:
    """Every category a (canonical) rule mentions."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            if "category" in node:
                found.add(node["category"])
            for key in ("all", "any"):
                for sub in node.get(key, []):
                    walk(sub)
            if "not" in node:
                walk(node["not"])

    walk(rule)
    return found


# ---------------------------------------------------------------------------
# Reading rules from text and files


def parse_rule_text(text: str, *, source: str = "--rule") -> dict[str, Any]:
    """A rule from JSON text (or TOML text, when it is not JSON)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as json_exc:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            raise InvalidRule(
                f"{source}: not valid JSON ({json_exc.msg} at line {json_exc.lineno} "
                f"column {json_exc.colno}); write e.g. "
                '\'{"attr": "sector", "equals": "health"}\''
            ) from None
        except RecursionError:
            raise InvalidRule(_too_deep(source)) from None
    except RecursionError:
        raise InvalidRule(_too_deep(source)) from None
    return normalise_rule(data)


def _too_deep(source: str) -> str:
    return f"{source}: nests far too deeply; a rule may nest at most {MAX_DEPTH} levels"


def load_rule_file(path: Path | str) -> dict[str, Any]:
    """A rule from a ``.json`` or ``.toml`` file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidRule(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise InvalidRule(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        if path.suffix.lower() == ".toml":
            try:
                data: Any = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise InvalidRule(f"{path}: not valid TOML: {exc}") from None
        else:
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InvalidRule(
                    f"{path}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
                ) from None
    except RecursionError:
        raise InvalidRule(_too_deep(str(path))) from None
    try:
        return normalise_rule(data)
    except InvalidRule as exc:
        raise InvalidRule(f"{path}: {exc}") from None


# ---------------------------------------------------------------------------
# Stored segments


def check_segment_name(name: str) -> str:
    if not _NAME.fullmatch(name or ""):
        raise InvalidName(
            f"{name!r} is not a segment name; use letters, digits, '.', '-' and '_' "
            "(up to 100, starting with a letter or digit)"
        )
    return name


def create_segment(
    session: Session,
    list_name: str,
    name: str,
    rule: Mapping[str, Any],
    *,
    categories: Sequence[str] = (),
    known_categories: Sequence[str] | None = None,
) -> Segment:
    """Save a segment of ``list_name``.  With ``known_categories`` (the categories of the
    newsletters using the list), unknown category names are refused."""
    check_segment_name(name)
    canonical = normalise_rule(rule)
    mlist = get_list(session, list_name)
    chosen = clean_categories(categories, known_categories)
    if known_categories is not None:
        canonical = _canonical_categories(canonical, known_categories)
    exists = session.scalars(
        sql_select(Segment).where(Segment.list_id == mlist.id, Segment.name == name)
    ).first()
    if exists is not None:
        raise AlreadyExists(
            f"list {list_name!r} already has a segment called {name!r}; delete it first "
            f"(`digest segments delete {name} --list {list_name}`) or pick another name"
        )
    segment = Segment(list_id=mlist.id, name=name, rule=canonical, categories=chosen)
    session.add(segment)
    session.flush()
    return segment


def _canonical_categories(node: Any, known: Sequence[str]) -> Any:
    """The rule with each category condition spelt as the configured category is."""
    if isinstance(node, Mapping):
        if "category" in node:
            return {"category": clean_categories([node["category"]], known)[0]}
        return {key: _canonical_categories(value, known) for key, value in node.items()}
    if isinstance(node, list):
        return [_canonical_categories(value, known) for value in node]
    return node


def get_segment(session: Session, list_name: str, name: str) -> Segment:
    """The segment ``name`` of ``list_name``; :class:`NotFound` lists the segments there are."""
    mlist = get_list(session, list_name)
    segment = session.scalars(
        sql_select(Segment).where(Segment.list_id == mlist.id, Segment.name == name)
    ).first()
    if segment is None:
        names = session.scalars(
            sql_select(Segment.name).where(Segment.list_id == mlist.id).order_by(Segment.name)
        ).all()
        known = ", ".join(names) if names else "none yet"
        raise NotFound(
            f"list {list_name!r} has no segment called {name!r} (segments: {known}); "
            f"create one with `digest segments create {name} --list {list_name} --rule '…'`"
        )
    return segment


def find_segment_lists(session: Session, name: str) -> list[str]:
    """Names of the lists that have a segment called ``name``."""
    return list(
        session.scalars(
            sql_select(MailingList.name)
            .join(Segment, Segment.list_id == MailingList.id)
            .where(Segment.name == name)
            .order_by(MailingList.name)
        )
    )


def list_segments(session: Session, list_name: str | None = None) -> list[Segment]:
    stmt = sql_select(Segment).join(MailingList).order_by(MailingList.name, Segment.name)
    if list_name is not None:
        stmt = stmt.where(Segment.list_id == get_list(session, list_name).id)
    return list(session.scalars(stmt))


def delete_segment(session: Session, list_name: str, name: str) -> None:
    segment = get_segment(session, list_name, name)
    session.execute(delete(Segment).where(Segment.id == segment.id))
    session.expunge(segment)


__all__ = [
    "compile_rule",
    "create_segment",
    "delete_segment",
    "find_segment_lists",
    "get_segment",
    "list_segments",
    "load_rule_file",
    "normalise_rule",
    "parse_rule_text",
    "rule_categories",
]

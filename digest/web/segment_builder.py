"""The admin's visual segment builder: rows of conditions turned into the same rule data
``digest segments create --rule`` takes (see :mod:`subscribers.segments`).

A builder is a way to combine its rows (``all``, ``any`` or ``none``: not any) and up to
:data:`MAX_ROWS` rows, each a condition, optionally negated:

* ``attr``: an attribute ``name`` with ``op`` ``equals``, ``in`` (values separated by
  commas), ``contains``, ``exists`` or ``missing`` (``exists: false``);
* ``category``: the reader gets the category named in ``value``;
* ``status``: the reader's own status, one or several separated by commas;
* ``signed_up``: the sign-up date ``after`` and/or ``before`` (whole days, both included).

:func:`build_rule` gives the rule (normalised by :func:`subscribers.segments.normalise_rule`,
as the CLI stores it); empty rows are skipped; a half-filled row is an error naming it.
The same rows come from a plain form (:func:`rows_from_form`, no JavaScript needed) or
from the JSON the page's script sends (``POST /api/segments/build``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import FormData

from subscribers.errors import InvalidRule
from subscribers.segments import normalise_rule

#: Rows a builder may have.
MAX_ROWS = 20
#: Rows shown on an empty form (a "More conditions" button adds more).
FIRST_ROWS = 3
KINDS = ("attr", "category", "status", "signed_up")
ATTR_OPS = ("equals", "in", "contains", "exists", "missing")
MATCHES = ("all", "any", "none")


@dataclass
class Row:
    """One condition of the builder, as the form holds it (all text)."""

    kind: str = ""
    name: str = ""
    op: str = "equals"
    value: str = ""
    after: str = ""
    before: str = ""
    negate: bool = False

    @property
    def empty(self) -> bool:
        return not self.kind


def rows_from_form(form: FormData) -> tuple[str, list[Row]]:
    """The builder's ``match`` and rows from the segment page's form (fields
    ``match``, ``c{i}_kind``, ``c{i}_name``, ``c{i}_op``, ``c{i}_value``, ``c{i}_after``,
    ``c{i}_before``, ``c{i}_not``)."""

    def get(name: str, limit: int = 1000) -> str:
        value = form.get(name)
        return value.strip()[:limit] if isinstance(value, str) else ""

    rows = []
    for i in range(MAX_ROWS):
        prefix = f"c{i}_"
        if not any(key.startswith(prefix) for key in form):
            continue
        rows.append(
            Row(
                kind=get(prefix + "kind", 20),
                name=get(prefix + "name", 100),
                op=get(prefix + "op", 20) or "equals",
                value=get(prefix + "value", 10_000),
                after=get(prefix + "after", 40),
                before=get(prefix + "before", 40),
                negate=form.get(prefix + "not") == "on",
            )
        )
    return get("match", 10) or "all", rows


def rows_from_json(data: Mapping[str, Any]) -> tuple[str, list[Row]]:
    """The same from the script's JSON: ``{"match": ..., "conditions": [{...}, ...]}``."""
    conditions = data.get("conditions")
    if not isinstance(conditions, list) or len(conditions) > MAX_ROWS:
        raise InvalidRule(f"conditions: send a list of at most {MAX_ROWS} conditions")
    rows = []
    for i, item in enumerate(conditions):
        if not isinstance(item, Mapping):
            raise InvalidRule(f"conditions[{i}]: must be an object")

        def text(key: str, limit: int = 1000, item: Mapping[str, Any] = item) -> str:
            value = item.get(key, "")
            return value.strip()[:limit] if isinstance(value, str) else ""

        rows.append(
            Row(
                kind=text("kind", 20),
                name=text("name", 100),
                op=text("op", 20) or "equals",
                value=text("value", 10_000),
                after=text("after", 40),
                before=text("before", 40),
                negate=item.get("not") is True,
            )
        )
    match = data.get("match", "all")
    return (match if isinstance(match, str) else ""), rows


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _condition(row: Row, where: str) -> dict[str, Any]:
    if row.kind == "attr":
        if not row.name:
            raise InvalidRule(f"{where}: name the attribute")
        if row.op not in ATTR_OPS:
            raise InvalidRule(f"{where}: {row.op!r} is not one of {', '.join(ATTR_OPS)}")
        if row.op in ("exists", "missing"):
            return {"attr": row.name, "exists": row.op == "exists"}
        if row.op == "in":
            values = _split(row.value)
            if not values:
                raise InvalidRule(f"{where}: write the values, separated by commas")
            return {"attr": row.name, "in": values}
        if not row.value:
            raise InvalidRule(f"{where}: write the value to compare {row.name!r} with")
        return {"attr": row.name, row.op: row.value}
    if row.kind == "category":
        if not row.value:
            raise InvalidRule(f"{where}: choose the category")
        return {"category": row.value}
    if row.kind == "status":
        statuses = _split(row.value)
        if not statuses:
            raise InvalidRule(f"{where}: choose a status")
        return {"status": statuses[0] if len(statuses) == 1 else statuses}
    if row.kind == "signed_up":
        bounds = {k: v for k, v in (("after", row.after), ("before", row.before)) if v}
        if not bounds:
            raise InvalidRule(f"{where}: give a date after or before (or both)")
        return {"signed_up": bounds}
    raise InvalidRule(f"{where}: {row.kind!r} is not one of {', '.join(KINDS)}")


def build_rule(match: str, rows: Sequence[Row]) -> dict[str, Any]:
    """The rule the rows make, normalised as the CLI stores it."""
    if match not in MATCHES:
        raise InvalidRule(f"match: {match!r} is not one of {', '.join(MATCHES)}")
    conditions = []
    for number, row in enumerate(rows, 1):
        if row.empty:
            continue
        condition = _condition(row, f"condition {number}")
        conditions.append({"not": condition} if row.negate else condition)
    if not conditions:
        raise InvalidRule("add at least one condition to the builder")
    rule: dict[str, Any]
    if len(conditions) == 1 and match != "none":
        rule = conditions[0]
    elif match == "none":
        rule = {"not": {"any": conditions}}
    else:
        rule = {match: conditions}
    return normalise_rule(rule)


def padded(rows: list[Row], more: int = 0) -> list[Row]:
    """The rows to show: those given, then empty ones (at least FIRST_ROWS in all)."""
    wanted = min(MAX_ROWS, max(FIRST_ROWS, len(rows) + 1) + more)
    return [*rows[:MAX_ROWS], *(Row() for _ in range(wanted - len(rows)))][:MAX_ROWS]


__all__ = [
    "ATTR_OPS",
    "KINDS",
    "MATCHES",
    "MAX_ROWS",
    "Row",
    "build_rule",
    "padded",
    "rows_from_form",
    "rows_from_json",
]

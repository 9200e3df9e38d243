"""Domain queries asked in one place (issue 12 §1): editions are listed in one order
everywhere, and a segment rule is counted the same way on every page, on both databases.
"""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from digest.models import Edition, EditionStatus
from digest.queries import RuleCount, list_editions, rule_count
from subscribers.errors import SubscribersError
from tests.support.web import client_for, sign_in, web_world
from tests.support.world import World, add_readers

ROOT = Path(__file__).resolve().parent.parent
#: The places that list editions; each asks :func:`digest.queries.list_editions`
#: (directly, or through :meth:`digest.api.Digest.editions`).
LISTERS = (
    "digest/web/admin.py",
    "digest/web/api.py",
    "digest/web/editor.py",
    "digest/web/archive.py",
    "digest/cli/editions.py",
)
MONDAY = datetime(2026, 11, 2, tzinfo=UTC)


def add_editions(world: World) -> None:
    """weekly W45, W47 and (made last, so newest by creation) W46; daily W46."""
    with world.app.transaction() as s:
        for newsletter, week, status in (
            ("weekly", 45, EditionStatus.SENT),
            ("weekly", 47, EditionStatus.SENDING),
            ("weekly", 46, EditionStatus.SENT),
            ("daily", 46, EditionStatus.PLANNED),
        ):
            start = MONDAY + timedelta(weeks=week - 45)
            s.add(
                Edition(
                    newsletter=newsletter,
                    period=f"2026-W{week}",
                    period_start=start,
                    period_end=start + timedelta(days=7),
                    status=status,
                )
            )


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> World:
    return web_world(db_url, tmp_path)


def names(editions: list[Edition] | tuple[Edition, ...]) -> list[str]:
    return [f"{e.newsletter} {e.period}" for e in editions]


def test_editions_are_listed_newest_period_first(world: World) -> None:
    add_editions(world)
    with world.app.transaction() as s:
        assert names(list(list_editions(s))) == [
            "weekly 2026-W47",
            "daily 2026-W46",  # made after weekly W46: the id breaks the tie
            "weekly 2026-W46",
            "weekly 2026-W45",
        ]
        assert names(list(list_editions(s, "weekly", limit=2))) == [
            "weekly 2026-W47",
            "weekly 2026-W46",
        ]
        sent = list_editions(s, "weekly", statuses=[EditionStatus.SENT])
        assert names(list(sent)) == ["weekly 2026-W46", "weekly 2026-W45"]
        assert list(list_editions(s, "monthly")) == []


def test_the_admin_page_and_the_api_list_editions_in_period_order(world: World) -> None:
    """Before, the admin page and the API listed by creation time: a late-made older
    edition came first."""
    add_editions(world)
    with client_for(world) as client:
        sign_in(client)
        api = client.get("/api/editions", params={"newsletter": "weekly"})
        page = client.get("/admin/editions")
    assert [e["period"] for e in api.json()] == ["2026-W47", "2026-W46", "2026-W45"]
    shown = [page.text.index(f"weekly {p}<") for p in ("2026-W47", "2026-W46", "2026-W45")]
    assert shown == sorted(shown)


def test_a_rule_is_counted_on_recipients_and_members(world: World) -> None:
    add_readers(world.app, 3)
    with world.app.transaction() as s:
        assert rule_count(s, "weekly", {"attr": "sector", "equals": "health"}) == RuleCount(0, 0)
        everyone = rule_count(s, "weekly", {"not": {"attr": "sector", "equals": "health"}})
        assert everyone.to_dict() == {"recipients": 3, "members": 3}
        with pytest.raises(SubscribersError):
            rule_count(s, "nowhere", {"attr": "sector", "equals": "health"})


@pytest.mark.parametrize("path", LISTERS)
def test_no_page_writes_its_own_edition_listing(path: str) -> None:
    """``select(Edition)`` with an order belongs in digest.queries, nowhere else."""
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "select":
            args = [getattr(a, "id", None) for a in node.args]
            assert args != ["Edition"], f"{path}:{node.lineno} lists editions itself"
    text = (ROOT / path).read_text(encoding="utf-8")
    assert re.search(r"list_editions\(|digest\.editions,|\bd\.editions\(", text), path

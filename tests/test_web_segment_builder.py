"""The admin's visual segment builder (both databases): its rows write the same rule data
`digest segments create --rule` stores, without JavaScript (a plain form) and through
the JSON endpoint the page's script uses, with the live count; half-filled rows are
named in the error; the raw JSON stays available."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from digest.cli import cli
from digest.web.segment_builder import Row, build_rule
from subscribers.errors import InvalidRule
from subscribers.lists import get_list
from subscribers.models import Segment, Subscriber
from subscribers.segments import normalise_rule
from subscribers.service import add_subscriber
from tests.support import web as support
from tests.support.web import client_for, csrf_of, page_csrf, sign_in, web_world
from tests.support.world import World

sqlite_template = support.sqlite_template
fast_db_url = support.fast_db_url
fast_sqlite_url = support.fast_sqlite_url

#: all of: sector is health, gets Data, not unsubscribed, signed up in 2026
ROWS = {
    "match": "all",
    "c0_kind": "attr",
    "c0_name": "sector",
    "c0_op": "equals",
    "c0_value": "health",
    "c1_kind": "category",
    "c1_value": "Data",
    "c2_kind": "status",
    "c2_value": "unsubscribed",
    "c2_not": "on",
    "c3_kind": "signed_up",
    "c3_after": "2026-01-01",
    "c3_before": "2026-12-31",
    "c4_kind": "",
}
SAME_JSON = json.dumps(
    {
        "all": [
            {"attr": "sector", "equals": "health"},
            {"category": "Data"},
            {"not": {"status": "unsubscribed"}},
            {"signed_up": {"after": "2026-01-01", "before": "2026-12-31"}},
        ]
    }
)


@pytest.fixture
def world(fast_db_url: str, tmp_path: Path) -> World:
    world = web_world(fast_db_url, tmp_path)
    with world.app.transaction() as s:
        for i, sector in enumerate(["health", "health", "transport"]):
            added = add_subscriber(s, f"r{i}@example.net", "weekly", attributes={"sector": sector})
            s.get(Subscriber, added.subscriber.id).created_at = datetime(  # type: ignore[union-attr]
                2026, 3, 1, tzinfo=UTC
            )
    return world


def rule_of(world: World, name: str) -> dict[str, Any]:
    with world.app.transaction() as s:
        mlist = get_list(s, "weekly")
        return dict(
            s.scalars(
                select(Segment.rule).where(Segment.list_id == mlist.id, Segment.name == name)
            ).one()
        )


def test_the_plain_form_writes_the_rule_the_cli_stores(world: World) -> None:
    with client_for(world) as client:
        sign_in(client)
        token = page_csrf(client, "/admin/segments")
        built = client.post(
            "/admin/segments",
            data={
                "csrf": token,
                "list": "weekly",
                "name": "",
                "rule": "",
                "action": "build",
                **ROWS,
            },
        )
        assert built.status_code == 200, built.text
        textarea = re.search(r'<textarea id="seg-rule"[^>]*>(.*?)</textarea>', built.text, re.S)
        assert textarea
        assert json.loads(html.unescape(textarea.group(1))) == normalise_rule(json.loads(SAME_JSON))
        assert "2 recipients match" in built.text  # the two in health
        assert 'value="sector"' in built.text  # the rows come back filled in
        saved = client.post(
            "/admin/segments",
            data={
                "csrf": token,
                "list": "weekly",
                "name": "web",
                "rule": "",
                "action": "save",
                **ROWS,
            },
        )
        assert saved.status_code == 303, saved.text
    result = CliRunner().invoke(
        cli,
        ["segments", "create", "cli", "--list", "weekly", "--rule", SAME_JSON],
        obj=world.app,
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert rule_of(world, "web") == rule_of(world, "cli")


def test_more_conditions_and_half_filled_rows(world: World) -> None:
    with client_for(world) as client:
        sign_in(client)
        token = page_csrf(client, "/admin/segments")
        first = client.get("/admin/segments").text
        assert 'name="c2_kind"' in first and 'name="c3_kind"' not in first
        more = client.post(
            "/admin/segments", data={"csrf": token, "list": "weekly", "action": "more"}
        )
        assert more.status_code == 200 and 'name="c5_kind"' in more.text
        half = client.post(
            "/admin/segments",
            data={
                "csrf": token,
                "list": "weekly",
                "action": "build",
                "c0_kind": "attr",
                "c0_name": "sector",
            },
        )
        assert half.status_code == 400
        assert "condition 1: write the value to compare &#39;sector&#39; with" in half.text
        raw = client.post(
            "/admin/segments",
            data={
                "csrf": token,
                "list": "weekly",
                "action": "count",
                "rule": '{"attr": "sector", "equals": "transport"}',
                "c0_kind": "attr",
                "c0_name": "ignored",
                "c0_value": "x",
            },
        )
        assert raw.status_code == 200 and "1 recipients match" in raw.text  # the JSON wins


def test_the_json_endpoint_builds_and_counts(world: World) -> None:
    with client_for(world) as client:
        sign_in(client)
        token = csrf_of(client.get("/admin/segments").text)
        body = {
            "list": "weekly",
            "match": "any",
            "conditions": [
                {"kind": "attr", "name": "sector", "op": "in", "value": "health, transport"},
                {"kind": "category", "value": "Data", "not": True},
            ],
        }
        answer = client.post("/api/segments/build", json=body, headers={"X-CSRF-Token": token})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {
            "rule": normalise_rule(
                {
                    "any": [
                        {"attr": "sector", "in": ["health", "transport"]},
                        {"not": {"category": "Data"}},
                    ]
                }
            ),
            "recipients": 3,
            "members": 3,
        }
        bad = client.post(
            "/api/segments/build",
            json={"list": "weekly", "conditions": [{"kind": "status"}]},
            headers={"X-CSRF-Token": token},
        )
        assert bad.status_code == 400 and bad.json()["error"] == "condition 1: choose a status"
        no_token = client.post("/api/segments/build", json=body)
        assert no_token.status_code == 403


def test_build_rule() -> None:
    assert build_rule("all", [Row("category", value="Data")]) == {"category": "Data"}
    assert build_rule("none", [Row("attr", "sector", "exists")]) == normalise_rule(
        {"not": {"any": [{"attr": "sector", "exists": True}]}}
    )
    assert build_rule(
        "all", [Row("attr", "x", "missing"), Row("status", value="active, pending")]
    ) == (
        normalise_rule({"all": [{"attr": "x", "exists": False}, {"status": ["active", "pending"]}]})
    )
    with pytest.raises(InvalidRule, match="add at least one condition"):
        build_rule("all", [Row()])
    with pytest.raises(InvalidRule, match="status"):
        build_rule("all", [Row("status", value="sleeping")])
    with pytest.raises(InvalidRule, match="match: 'some'"):
        build_rule("some", [Row("category", value="Data")])

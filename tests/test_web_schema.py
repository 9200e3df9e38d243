"""The JSON endpoints' OpenAPI schema (served to signed-in admins only), fuzzed with
schemathesis in-process (ASGI), signed in as an admin with the session's CSRF token and
anonymously: no request may get a 500, every answer must match the schema (status code,
content type, body), and schema-invalid requests must be refused.  Examples are bounded
so this runs in seconds."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance
from starlette.testclient import TestClient

from digest.web import create_app
from digest.web.security import CSRF_HEADER
from subscribers.segments import create_segment
from subscribers.service import add_subscriber
from tests.support import web as support
from tests.support.web import page_csrf, sign_in, web_world
from tests.support.world import add_readers, send

#: Generated requests per operation: enough to reach the edge cases, quick enough to run always.
EXAMPLES = 25

sqlite_template = support.sqlite_template
fast_db_url = support.fast_db_url
fast_sqlite_url = support.fast_sqlite_url


@dataclass
class SignedIn:
    web: FastAPI
    cookie: str
    token: str


@pytest.fixture
def signed_in(fast_db_url: str, tmp_path: Path) -> Iterator[SignedIn]:
    """The app on a world with readers, a segment and a sent edition; an admin session."""
    world = web_world(fast_db_url, tmp_path)
    add_readers(world.app, 3)
    with world.app.transaction() as s:
        add_subscriber(s, "x@example.org", "weekly", attributes={"sector": "health"})
        create_segment(s, "weekly", "health", {"attr": "sector", "equals": "health"})
    send(world.app, backend="outbox")
    web = create_app(world.app, open_preview=True)
    with TestClient(web, base_url="https://testserver", follow_redirects=False) as client:
        sign_in(client)
        token = page_csrf(client, "/admin")
        cookie = client.cookies["digest_session"]
    yield SignedIn(web, cookie, token)


def test_the_schema_is_for_signed_in_admins_and_lists_the_json_endpoints(
    fast_sqlite_url: str, tmp_path: Path
) -> None:
    web = create_app(web_world(fast_sqlite_url, tmp_path).app)
    with TestClient(web, base_url="https://testserver", follow_redirects=False) as client:
        anonymous = client.get("/api/openapi.json")
        sign_in(client)
        schema = client.get("/api/openapi.json")
    # before: anyone could read the admin API's map
    assert anonymous.status_code == 401 and anonymous.json() == {
        "error": "Sign in to see this page."
    }
    assert schema.status_code == 200
    assert set(schema.json()["paths"]) == {
        "/api/health",
        "/api/newsletters",
        "/api/preview",
        "/api/lists",
        "/api/subscribers",
        "/api/segments/count",
        "/api/editions",
        "/api/editions/{edition_id}",
    }
    count = schema.json()["paths"]["/api/segments/count"]["post"]
    assert count["requestBody"]["required"] is True
    assert {"400", "401", "403", "413", "415"} <= set(count["responses"])


def on_the_list(case: schemathesis.Case) -> schemathesis.Case:
    """Point generated rule counts at the world's list, so the rules reach the database."""
    if isinstance(case.body, dict) and "list" in case.body:
        case.body["list"] = "weekly"
    return case


def _fuzz(web: FastAPI, admin: str, auth: dict[str, dict[str, str]], examples: int) -> None:
    """Every operation, a bounded number of generated requests each, made with ``auth``
    (schemathesis's pytest plugin does not run on this pytest, so Hypothesis drives its
    strategies).  The schema itself is read with the ``admin`` session cookie."""
    cookie = {"Cookie": f"digest_session={admin}"}
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", web, headers=cookie)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 8
    for operation in operations:

        @given(case=operation.as_strategy().map(on_the_list))
        @settings(
            max_examples=examples,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            # Every default check except "schema-valid input is accepted": a rule or a
            # date can match the schema and still be refused with a clear 400.
            case.call_and_validate(**auth, excluded_checks=[positive_data_acceptance])

        check()


def test_no_request_gets_a_server_error(signed_in: SignedIn) -> None:
    auth = {
        "headers": {CSRF_HEADER: signed_in.token},
        "cookies": {"digest_session": signed_in.cookie},
    }
    # The credentials the fuzzing uses do sign in (a 401 is a valid answer too, so a
    # broken sign-in would otherwise let every operation "pass" without reaching it).
    with TestClient(signed_in.web, base_url="https://testserver") as client:
        assert client.get("/api/lists").status_code == 401
        client.cookies.set("digest_session", signed_in.cookie)
        assert client.get("/api/lists", headers=auth["headers"]).status_code == 200
    _fuzz(signed_in.web, signed_in.cookie, auth, EXAMPLES)  # as the admin
    _fuzz(signed_in.web, signed_in.cookie, {}, EXAMPLES // 5)  # as anyone: 401s, no 500

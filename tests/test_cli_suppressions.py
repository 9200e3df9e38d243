"""`digest suppressions list|lift` end to end through the CLI, on both databases."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner, Result

from digest import db
from digest.cli import cli
from subscribers import privacy, service
from subscribers.consent import By
from subscribers.lists import create_list
from subscribers.models import ConsentSource, Status, SuppressionReason


@pytest.fixture
def env(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DIGEST_DATABASE_URL", db_url)
    engine = db.make_engine(db_url)
    db.upgrade(engine)
    with db.session_factory(engine)() as s, s.begin():
        create_list(s, "weekly")
        service.add_subscriber(s, "ada@example.org", "weekly")
        service.add_subscriber(s, "cy@example.net", "weekly")
        service.suppress(
            s,
            "ada@example.org",
            SuppressionReason.HARD_BOUNCE,
            "hard bounce 5.1.1 smtp; 550 5.1.1 User unknown",
            by=By(ConsentSource.INBOUND, "digest inbound (lmtp)"),
        )
        service.suppress(s, "bob@example.org", SuppressionReason.SPAM_REPORT, "abuse")
        privacy.forget(s, "cy@example.net")
    engine.dispose()
    return db_url


def run(*args: str, code: int = 0, input: str | None = None) -> Result:
    result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)
    assert result.exit_code == code, (result.output, result.stderr)
    return result


def _reader(url: str, email: str) -> dict[str, object]:
    engine = db.make_engine(url)
    try:
        with db.session_factory(engine)() as s:
            found = service.find_subscriber(s, email)
            assert found is not None
            return privacy.describe(s, found)
    finally:
        engine.dispose()


def test_list_and_search(env: str) -> None:
    out = run("suppressions", "list").output
    assert "ada@example.org" in out and "hard_bounce" in out and "5.1.1" in out
    assert "(erased)" in out and out.rstrip().endswith("3 suppressed addresses")
    out = run("suppressions", "list", "--reason", "spam_report").output
    assert "bob@example.org" in out and "ada@" not in out
    data = json.loads(run("suppressions", "list", "--search", "5.1.1", "--json").output)
    assert data["total"] == 1
    (entry,) = data["entries"]
    assert (entry["email"], entry["reason"], entry["status"]) == (
        "ada@example.org",
        "hard_bounce",
        "bounced",
    )
    assert run("suppressions", "list", "--search", "cy@example.net").output.count("(erased)") == 1


def test_lift_asks_then_notes_it_and_the_reader_stays_bounced(env: str) -> None:
    refused = run("suppressions", "lift", "ada@example.org", input="n\n", code=1)
    assert "Lift the suppression of ada@example.org (hard_bounce since" in refused.output
    assert "ada@example.org" in run("suppressions", "list").output
    done = run("suppressions", "lift", "ada@example.org", "--why", "mailbox fixed", input="y\n")
    assert "ada@example.org: suppression lifted (hard_bounce since" in done.output
    assert "Next: they stay bounced and get no mail until they confirm" in done.output
    assert "--resubscribe" in done.output
    who = _reader(env, "ada@example.org")
    assert who["status"] == Status.BOUNCED.value
    line = who["consent_log"][-1]  # type: ignore[index]
    assert line["note"] and line["actor"].startswith("command line")
    assert "mailbox fixed" in line["detail"]
    assert "ada@" not in run("suppressions", "list").output


def test_lift_erased_and_unknown(env: str) -> None:
    out = run("suppressions", "lift", "cy@example.net", "--yes").output
    assert "was erased on request (only its hash is kept)" in out
    assert "no reader has this address" in out
    missing = run("suppressions", "lift", "nobody@example.org", "--yes", code=1)
    assert "nobody@example.org is not on the suppression list" in missing.output
    assert "Traceback" not in missing.output

"""`digest lists|subscribers|segments …` end to end through the CLI, on both databases."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from digest import db
from digest.cli import cli, lists, segments, subscribers
from digest.models import Delivery, Edition, Event
from subscribers.models import Membership, Subscriber, Suppression

DATA = Path(__file__).parent / "data" / "subscribers"


@pytest.fixture
def env(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DIGEST_DATABASE_URL", db_url)
    return db_url


def run(*args: str, code: int = 0, input: str | None = None) -> Result:
    result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)
    assert result.exit_code == code, (result.output, result.stderr)
    return result


def count(url: str, model: type) -> int:
    engine = db.make_engine(url)
    try:
        with db.session_factory(engine)() as s:
            return int(s.scalar(select(func.count()).select_from(model)) or 0)
    finally:
        engine.dispose()


def test_every_command_has_help_with_an_example() -> None:
    groups = [*lists.COMMANDS, *subscribers.COMMANDS, *segments.COMMANDS]
    assert [g.name for g in groups] == ["lists", "subscribers", "segments"]
    for group in groups:
        assert isinstance(group, click.Group)
        assert "Example:" in (group.help or ""), group.name
        for name, command in group.commands.items():
            assert "Example:" in (command.help or ""), f"{group.name} {name}"
            result = run(group.name or "", name, "--help")
            assert "Example:" in result.output


def test_lists(env: str) -> None:
    assert (
        "Created list weekly (double opt-in)"
        in run("lists", "create", "weekly", "--description", "The week").output
    )
    run("lists", "create", "news", "--single-opt-in")
    dup = run("lists", "create", "weekly", code=1)
    assert dup.stderr.strip() == ("error: a list called 'weekly' exists already; pick another name")
    listed = json.loads(run("lists", "list", "--json").output)
    assert [(r["name"], r["double_opt_in"]) for r in listed] == [("news", False), ("weekly", True)]
    assert "weekly" in run("lists", "list").output
    shown = json.loads(run("lists", "show", "weekly", "--json").output)
    assert shown["newsletters"] == ["weekly"]  # the bundled sample mails list "weekly"
    assert "Data and security" in shown["categories"]
    assert "Newsletters: weekly" in run("lists", "show", "weekly").output
    missing = run("lists", "show", "nope", code=1)
    assert "no list called 'nope' (lists: news, weekly)" in missing.stderr
    run("lists", "delete", "news", input="n\n", code=1)  # declined: aborted
    assert "Deleted list news" in run("lists", "delete", "news", "--yes").output
    assert [r["name"] for r in json.loads(run("lists", "list", "--json").output)] == ["weekly"]


def test_subscriber_lifecycle(env: str) -> None:
    run("lists", "create", "weekly")
    added = run(
        "subscribers",
        "add",
        "Ada@Example.org",
        "--list",
        "weekly",
        "--name",
        "Ada",
        "--categories",
        "data and security, change management",
        "--attr",
        "sector=health",
        "--attr",
        "region=north",
        "--timezone",
        "Europe/London",
    )
    assert added.output.strip() == "Added Ada@example.org to weekly (active)"
    again = run("subscribers", "add", "ada@example.org", "--list", "weekly")
    assert "nothing changed" in again.output
    bad_attr = run(
        "subscribers", "add", "b@example.org", "--list", "weekly", "--attr", "oops", code=2
    )
    assert "KEY=VALUE" in bad_attr.output + bad_attr.stderr
    unknown = run(
        "subscribers", "add", "b@example.org", "--list", "weekly", "--categories", "Cooking", code=2
    )
    assert "unknown category 'Cooking'" in unknown.stderr
    invalid = run("subscribers", "add", "b@", "--list", "weekly", code=1)
    assert invalid.stderr.startswith("error: 'b@' is not a valid email address")
    assert len(invalid.stderr.strip().splitlines()) == 1

    shown = json.loads(run("subscribers", "show", "ADA@example.org", "--json").output)
    assert shown["categories"] == ["Data and security", "Change Management"]
    assert shown["attributes"] == {"sector": "health", "region": "north"}
    assert shown["consent"]["method"] == "admin"
    assert shown["memberships"][0]["list"] == "weekly"
    text = run("subscribers", "show", "ada@example.org").output
    assert "Consent: admin" in text and "sector=health" in text

    run("subscribers", "add", "bob@example.org", "--list", "weekly")
    rows = json.loads(run("subscribers", "list", "--list", "weekly", "--json").output)
    assert [r["email"] for r in rows] == ["Ada@example.org", "bob@example.org"]
    assert "2 subscribers" in run("subscribers", "list", "--list", "weekly").output
    assert "showing 1" in run("subscribers", "list", "--list", "weekly", "--limit", "1").output

    out = run("subscribers", "unsubscribe", "bob@example.org", "--list", "weekly").output
    assert out.strip() == "Unsubscribed bob@example.org from weekly"
    unsub = json.loads(
        run("subscribers", "list", "--list", "weekly", "--status", "unsubscribed", "--json").output
    )
    assert [r["email"] for r in unsub] == ["bob@example.org"]
    refused = run("subscribers", "add", "bob@example.org", "--list", "weekly", code=1)
    assert "only the reader can resubscribe by confirming" in refused.stderr
    assert "--resubscribe" in refused.stderr
    # --resubscribe asks them to confirm; an admin cannot make them active again
    asked = run("subscribers", "add", "bob@example.org", "--list", "weekly", "--resubscribe")
    assert "only they can come back: a confirmation email" in asked.output
    assert "once they follow its link" in asked.output
    assert "unsubscribed" in run("subscribers", "show", "bob@example.org").output
    confirmations = list(Path("outbox").rglob("*.eml"))
    assert len(confirmations) == 1 and "bob@example.org" in confirmations[0].read_text()

    run("lists", "create", "other")
    not_member = run("subscribers", "unsubscribe", "bob@example.org", "--list", "other", code=1)
    assert "is not on list 'other'" in not_member.stderr
    kept = run("subscribers", "remove", "bob@example.org", "--list", "weekly", code=1)
    assert "that record stays so that no import adds them again" in kept.stderr
    assert "Removed" in run("subscribers", "remove", "Ada@example.org", "--list", "weekly").output
    run("subscribers", "remove", "ada@example.org", "--list", "weekly", code=1)
    run("subscribers", "show", "nobody@example.org", code=1)


def test_import_export_round_trip(env: str, tmp_path: Path) -> None:
    run("lists", "create", "weekly")
    run("lists", "create", "copy")
    source = tmp_path / "people.csv"
    source.write_bytes(
        "\ufeffemail;name;categories;sector\n"
        'ada@example.org;"Lovelace; Ada";Data and security|Change Management;health\n'
        "bob@example.org;=cmd|' /C calc'!A0;;education\n"
        "bad@;X;;\n"
        "ADA@example.org;dup;;\n"
        "cat@example.org;Cat;Cooking;\n".encode()
    )
    dry = run("subscribers", "import", str(source), "--list", "weekly", "--dry-run")
    assert "Dry run, nothing changed; would have imported 2" in dry.output
    assert count(env, Subscriber) == 0

    report = tmp_path / "report.csv"
    done = run("subscribers", "import", str(source), "--list", "weekly", "--report", str(report))
    assert "imported 2, updated 0, unchanged 0, rejected 3" in done.output
    assert "duplicate in the file (see line 2)" in done.output
    rows = list(csv.DictReader(io.StringIO(report.read_text(encoding="utf-8"))))
    assert [(r["line"], r["outcome"]) for r in rows] == [
        ("2", "imported"),
        ("3", "imported"),
        ("4", "rejected"),
        ("5", "rejected"),
        ("6", "rejected"),
    ]
    assert "unknown category 'Cooking'" in rows[4]["reason"]
    again = run("subscribers", "import", str(source), "--list", "weekly")
    assert "imported 0, updated 0, unchanged 2, rejected 3" in again.output

    exported = tmp_path / "export.csv"
    assert (
        "Exported 2 subscribers"
        in run("subscribers", "export", "--list", "weekly", "--out", str(exported)).output
    )
    text = exported.read_text(encoding="utf-8")
    assert "'=cmd|' /C calc'!A0" in text  # neutralised
    stdout = run("subscribers", "export", "--list", "weekly").output
    assert stdout.replace("\r\n", "\n") == text.replace("\r\n", "\n")

    back = run("subscribers", "import", str(exported), "--list", "copy")
    assert "imported 2, updated 0, unchanged 0, rejected 0" in back.output
    copy = tmp_path / "copy.csv"
    run("subscribers", "export", "--list", "copy", "--out", str(copy))
    assert copy.read_bytes() == exported.read_bytes()
    bob = json.loads(run("subscribers", "show", "bob@example.org", "--json").output)
    assert bob["name"] == "=cmd|' /C calc'!A0"

    broken = tmp_path / "broken.csv"
    broken.write_text("name\nx\n")
    failed = run("subscribers", "import", str(broken), "--list", "weekly", code=2)
    assert "no 'email' column" in failed.stderr


def test_segments(env: str) -> None:
    run("lists", "create", "weekly")
    run("lists", "create", "other")
    for email, sector, region in [
        ("a@example.org", "health", "north"),
        ("b@example.org", "health", "south"),
        ("c@example.org", "education", "north"),
    ]:
        run(
            "subscribers",
            "add",
            email,
            "--list",
            "weekly",
            "--attr",
            f"sector={sector}",
            "--attr",
            f"region={region}",
            "--attr",
            "role=manager",
        )
    created = run(
        "segments",
        "create",
        "health",
        "--list",
        "weekly",
        "--rule",
        '{"attr": "sector", "equals": "health"}',
        "--categories",
        "data and security",
    )
    assert created.output.strip() == (
        "Created segment health on weekly: 2 recipients now; readers get Data and security"
    )
    toml = run(
        "segments", "create", "north-health", "--list", "weekly", "--file", str(DATA / "rule.toml")
    )
    assert "1 recipients now" in toml.output
    run("segments", "create", "health", "--list", "other", "--rule", '{"status": "active"}')

    shown = json.loads(run("segments", "show", "health", "--list", "weekly", "--json").output)
    assert (shown["recipients"], shown["categories"]) == (2, ["Data and security"])
    assert "Recipients now: 1" in run("segments", "show", "north-health").output
    run("subscribers", "unsubscribe", "a@example.org")
    assert "Recipients now: 1" in run("segments", "show", "health", "--list", "weekly").output
    ambiguous = run("segments", "show", "health", code=2)
    assert "exists on lists other, weekly; say which with --list" in ambiguous.stderr
    listed = json.loads(run("segments", "list", "--list", "weekly", "--json").output)
    assert [s["name"] for s in listed] == ["health", "north-health"]
    assert "north-health" in run("segments", "list").output

    members = json.loads(
        run("subscribers", "list", "--list", "weekly", "--segment", "health", "--json").output
    )
    assert [m["email"] for m in members] == ["a@example.org", "b@example.org"]
    out = run("subscribers", "export", "--list", "weekly", "--segment", "health").output
    assert [r["email"] for r in csv.DictReader(io.StringIO(out))] == ["b@example.org"]

    bad = run("segments", "create", "x", "--list", "weekly", "--rule", '{"attr": "s"}', code=2)
    assert bad.stderr.strip() == (
        "error: rule: attribute 's' needs one of equals, in, contains, exists"
    )
    both = run("segments", "create", "x", "--list", "weekly", code=2)
    assert "either --rule" in both.stderr + both.output
    unknown = run(
        "segments", "create", "x", "--list", "weekly", "--rule", '{"category": "Cooking"}', code=2
    )
    assert "unknown category 'Cooking'" in unknown.stderr
    dup = run(
        "segments", "create", "health", "--list", "weekly", "--rule", '{"status": "active"}', code=1
    )
    assert "already has a segment called 'health'" in dup.stderr

    assert (
        "Deleted segment north-health from weekly"
        in run("segments", "delete", "north-health").output
    )
    missing = run("segments", "delete", "north-health", "--list", "weekly", code=1)
    assert "segments: health" in missing.stderr


def test_forget_and_export_personal(env: str, tmp_path: Path) -> None:
    run("lists", "create", "weekly")
    run("subscribers", "add", "ada@example.org", "--list", "weekly", "--name", "Ada")
    engine = db.make_engine(env)
    now = datetime(2026, 11, 23, 8, tzinfo=UTC)
    with db.session_factory(engine)() as s, s.begin():
        sub_id = s.scalar(select(Subscriber.id))
        edition = Edition(newsletter="weekly", period="2026-W48", period_start=now, period_end=now)
        s.add(edition)
        s.flush()
        delivery = Delivery(edition_id=edition.id, subscriber_id=sub_id, email="ada@example.org")
        s.add(delivery)
        s.flush()
        s.add(
            Event(
                provider="sendgrid",
                provider_event_id="ev1",
                type="open",
                email="Ada@Example.org",
                delivery_id=delivery.id,
                occurred_at=now,
                payload={"email": "ada@example.org", "ip": "192.0.2.1"},
            )
        )
    engine.dispose()

    personal = json.loads(run("subscribers", "export-personal", "ADA@example.org").output)
    assert personal["subscriber"]["name"] == "Ada"
    assert personal["deliveries"][0]["period"] == "2026-W48"
    assert personal["events"][0]["payload"]["ip"] == "192.0.2.1"
    out = tmp_path / "ada.json"
    run("subscribers", "export-personal", "ada@example.org", "--out", str(out))
    assert json.loads(out.read_text())["subscriber"]["email"] == "ada@example.org"

    run("subscribers", "forget", "ada@example.org", input="n\n", code=1)
    assert count(env, Subscriber) == 1
    done = run("subscribers", "forget", "ada@example.org", input="y\n")
    assert "Erased ada@example.org: subscriber record, 1 memberships, 2 delivery/event" in (
        done.output
    )
    assert count(env, Subscriber) == 0 and count(env, Membership) == 0
    assert count(env, Suppression) == 1 and count(env, Delivery) == 1
    engine = db.make_engine(env)
    with db.session_factory(engine)() as s:
        dump = json.dumps(
            [
                list(map(str, row))
                for t in ("delivery", "event", "suppression")
                for row in s.execute(select(Suppression.metadata.tables[t])).all()
            ]
        )
    engine.dispose()
    assert "ada" not in dump.lower() and "192.0.2.1" not in dump

    after = json.loads(run("subscribers", "export-personal", "ada@example.org").output)
    assert after["subscriber"] is None and after["deliveries"] == [] and after["events"] == []
    assert after["suppression"]["reason"] == "erased"
    source = tmp_path / "again.csv"
    source.write_text("email\nada@example.org\n")
    reimport = run("subscribers", "import", str(source), "--list", "weekly")
    assert "suppressed: the person asked to be erased" in reimport.output


SECTIONS_CONFIG = """
[newsletters.weekly]
title = "The Weekly"
list = "weekly"
sender = "The Weekly <news@example.org>"
[[newsletters.weekly.categories]]
name = "Science"
[[newsletters.weekly.categories]]
name = "Culture"
[[newsletters.weekly.categories]]
name = "Local"
"""


def test_importing_every_section_means_everything(
    env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`Science;Culture;Local` on import is what ticking all three on the preferences
    page stores: everything (the "Other" section included), not three sections."""
    config = tmp_path / "digest.toml"
    config.write_text(SECTIONS_CONFIG)
    monkeypatch.setenv("DIGEST_CONFIG", str(config))
    run("lists", "create", "weekly")
    source = tmp_path / "people.csv"
    source.write_text(
        "email,categories\nall@example.org,Science;Culture;Local\n"
        "some@example.org,Science;Other\nplus@example.org,science;culture;local;other\n"
    )
    run("subscribers", "import", str(source), "--list", "weekly")
    run(
        "subscribers",
        "add",
        "cli@example.org",
        "--list",
        "weekly",
        "--categories",
        "Science,Culture,Local",
    )

    def sections(email: str) -> list[str]:
        return json.loads(run("subscribers", "show", email, "--json").output)["categories"]

    assert sections("all@example.org") == []
    assert sections("plus@example.org") == []
    assert sections("cli@example.org") == []
    assert sections("some@example.org") == ["Science", "Other"]


def test_export_personal_and_show_include_the_consent_log(env: str) -> None:
    run("lists", "create", "weekly")
    run("subscribers", "add", "ann@example.org", "--list", "weekly")
    run("subscribers", "unsubscribe", "ann@example.org", "--reason", "asked by phone")
    data = json.loads(run("subscribers", "export-personal", "ann@example.org").output)
    lines = [
        (line["list"], line["from"], line["to"], line["source"], line["detail"])
        for line in data["subscriber"]["consent_log"]
    ]
    assert lines == [
        (None, None, "active", "admin", ""),
        ("weekly", None, "active", "admin", ""),
        ("weekly", "active", "unsubscribed", "admin", "asked by phone"),
        (None, "active", "unsubscribed", "admin", "asked by phone"),
    ]
    assert all(
        line["actor"].startswith("command line") for line in data["subscriber"]["consent_log"]
    )
    shown = run("subscribers", "show", "ann@example.org").output
    assert "Consent log" in shown and "active → unsubscribed" in shown
    run("subscribers", "forget", "ann@example.org", "--yes")
    after = json.loads(run("subscribers", "export-personal", "ann@example.org").output)
    assert after["subscriber"] is None and after["suppression"]["reason"] == "erased"

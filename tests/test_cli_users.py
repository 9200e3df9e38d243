"""`digest users add|list|remove|passwd` end to end through the CLI, on both databases."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from digest import accounts, db, signins
from digest.models import Account

PW = "a long enough password"


@pytest.fixture
def env(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DIGEST_DATABASE_URL", db_url)
    engine = db.make_engine(db_url)
    db.upgrade(engine)
    engine.dispose()
    return db_url


def run(*args: str, code: int = 0, input: str | None = None) -> Result:
    from digest.cli import cli

    result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)
    assert result.exit_code == code, (result.output, result.stderr)
    return result


def stored(url: str, email: str) -> Account | None:
    engine = db.make_engine(url)
    try:
        with db.session_factory(engine)() as s:
            found = accounts.get(s, email)
            if found is not None:
                s.expunge(found)
            return found
    finally:
        engine.dispose()


def test_add_list_passwd_remove(env: str, tmp_path: Path) -> None:
    out = run("users", "add", "Ada@Example.org", "--role", "admin", input=f"{PW}\n{PW}\n")
    assert "Added ada@example.org (admin)." in out.output
    first = stored(env, "ada@example.org")
    assert first is not None and first.role == "admin"
    assert first.password_hash.startswith("$argon2id$") and PW not in first.password_hash

    pw_file = tmp_path / "pw.txt"
    pw_file.write_text("editor password here\n", encoding="utf-8")
    run("users", "add", "grace@example.org", "--role", "editor", "--password-file", str(pw_file))

    listed = json.loads(run("users", "list", "--json").output)
    assert [(r["email"], r["role"], r["signed_in"]) for r in listed] == [
        ("ada@example.org", "admin", 0),
        ("grace@example.org", "editor", 0),
    ]
    table = run("users", "list").output
    assert "grace@example.org" in table and "editor" in table

    # A sign-in of grace's, then a new password: it is signed out.
    engine = db.make_engine(env)
    with db.session_factory(engine)() as s, s.begin():
        grace = accounts.get(s, "grace@example.org")
        assert grace is not None
        token = signins.start(
            s, grace.email, accounts.credential(grace), lifetime=timedelta(hours=1)
        )
    new_pw = tmp_path / "new.txt"
    new_pw.write_text("another good password\n", encoding="utf-8")
    out = run("users", "passwd", "grace@example.org", "--password-file", str(new_pw))
    assert "signed out" in out.output
    with db.session_factory(engine)() as s:
        assert accounts.find_signin(s, token, None) is None
        assert accounts.verify(s, "grace@example.org", "another good password") is not None
        assert accounts.verify(s, "grace@example.org", "editor password here") is None
    engine.dispose()

    out = run("users", "remove", "ada@example.org")
    assert "No admin account is left" in out.output
    assert stored(env, "ada@example.org") is None


def test_mistakes_are_one_clear_line(env: str, tmp_path: Path) -> None:
    short = run(
        "users", "add", "ada@example.org", "--role", "admin", input="short\nshort\n", code=1
    )
    assert "too short" in short.stderr and "Traceback" not in short.output
    assert stored(env, "ada@example.org") is None  # nothing half-written
    bad = run("users", "add", "not-an-address", "--role", "admin", input=f"{PW}\n{PW}\n", code=1)
    assert "is not an email address" in bad.stderr
    role = run("users", "add", "ada@example.org", "--role", "owner", code=2)
    assert "owner" in role.output + role.stderr
    run("users", "add", "ada@example.org", "--role", "admin", input=f"{PW}\n{PW}\n")
    again = run(
        "users", "add", "ADA@example.org", "--role", "editor", input=f"{PW}\n{PW}\n", code=1
    )
    assert "has an account already" in again.stderr
    missing = run("users", "passwd", "who@example.org", code=1)
    assert "no account for 'who@example.org'" in missing.stderr
    gone = run("users", "remove", "who@example.org", code=1)
    assert "digest users list" in gone.stderr
    empty = tmp_path / "empty.txt"
    empty.write_text("\n", encoding="utf-8")
    blank = run("users", "passwd", "ada@example.org", "--password-file", str(empty), code=1)
    assert "is empty" in blank.stderr

"""`digest ingest`: the summary table, --json, error lines and exit codes."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from digest import db
from digest.cli import cli
from digest.config import SAMPLE_CONFIG
from digest.models import Article

DATA = Path(__file__).parent / "data" / "ingest"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sqlite_url: str) -> Path:
    """A digest.toml in the working directory with two good sources and one bad one."""
    shutil.copy(DATA / "rss20.xml", tmp_path / "news.xml")
    shutil.copy(DATA / "jsonfeed11.json", tmp_path / "community.json")
    (tmp_path / "broken.xml").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(32))
    (tmp_path / "digest.toml").write_text(
        '[newsletters.weekly]\ntitle = "Weekly"\nlist = "weekly"\n'
        'sender = "news@example.org"\n'
        'sources = ["news.xml", "community.json", "broken.xml"]\n'
    )
    monkeypatch.setenv("DIGEST_DATABASE_URL", sqlite_url)
    return tmp_path


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, ["ingest", *args], catch_exceptions=False)


def count_articles(url: str) -> int:
    engine = db.make_engine(url)
    try:
        with db.session_factory(engine)() as s:
            return s.scalar(select(func.count()).select_from(Article)) or 0
    finally:
        engine.dispose()


def test_table_and_one_error_line_per_failed_source(env: Path, sqlite_url: str) -> None:
    result = invoke()
    assert result.exit_code == 0
    out = result.stdout
    assert "Source" in out and "Unchanged" in out and "Merged" in out and "Skipped" in out
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines() if "│" in line}
    cells = {name: [c for c in cols if c != "│"] for name, cols in lines.items()}
    assert cells["news.xml"] == ["rss", "3", "0", "0", "0", "0"]
    assert cells["community.json"] == ["jsonfeed", "2", "0", "0", "0", "2"]
    assert cells["broken.xml"] == ["failed", "–", "–", "–", "–", "–"]
    assert "3 sources: 5 new, 0 updated, 0 unchanged, 0 merged, 2 skipped, 1 failed" in out
    # Each skipped entry is named, with why.
    assert [line for line in out.splitlines() if line.startswith("community.json: ")] == [
        "community.json: skipped “No link at all”: no usable http(s) link: "
        "it has no url or external_url",
        "community.json: skipped “item 4”: item 4 is not a JSON object",
    ]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: {env / 'broken.xml'}: not a feed or article page: looks like a PNG image"
    ]
    assert not [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert "Traceback" not in result.output
    assert count_articles(sqlite_url) == 5


def test_second_run_counts_unchanged(env: Path) -> None:
    invoke()
    result = invoke("news.xml")
    assert result.exit_code == 0
    assert "1 source: 0 new, 0 updated, 3 unchanged, 0 merged, 0 skipped, 0 failed" in result.stdout


def test_json_report(env: Path) -> None:
    result = invoke("--json")
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["totals"] == {
        "sources": 3,
        "new": 5,
        "updated": 0,
        "unchanged": 0,
        "merged": 0,
        "skipped": 2,
        "errors": 1,
    }
    by_ref = {Path(s["ref"]).name: s for s in report["sources"]}
    assert by_ref["news.xml"] == {
        "ref": str(env / "news.xml"),
        "kind": "rss",
        "new": 3,
        "updated": 0,
        "unchanged": 0,
        "merged": 0,
        "skipped": 0,
        "error": None,
        "not_modified": False,
        "warnings": [],
        "dropped": [],
        "refused": False,
        "feeds": [],
        "newsletters": ["weekly"],
    }
    assert by_ref["community.json"]["dropped"][0] == {
        "action": "skipped",
        "reason": "no usable http(s) link: it has no url or external_url",
        "title": "No link at all",
        "url": None,
        "guid": "n-3",
    }
    assert by_ref["broken.xml"]["error"].endswith("looks like a PNG image")


def test_exit_code_1_when_every_source_fails(env: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dead = f"http://127.0.0.1:{port}/feed.xml"
    result = invoke("broken.xml", dead)
    assert result.exit_code == 1
    assert "2 sources: 0 new, 0 updated, 0 unchanged, 0 merged, 0 skipped, 2 failed" in (
        result.stdout
    )
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2
    assert errors[1].startswith(f"error: {dead}: cannot connect")
    assert invoke("--json", "broken.xml").exit_code == 1


def test_no_sources_is_success(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sqlite_url: str
) -> None:
    (tmp_path / "digest.toml").write_text(
        '[newsletters.x]\ntitle = "X"\nlist = "x"\nsender = "a@example.org"\n'
    )
    monkeypatch.setenv("DIGEST_DATABASE_URL", sqlite_url)
    result = invoke()
    assert result.exit_code == 0
    assert "No sources" in result.stdout
    assert json.loads(invoke("--json").stdout) == {
        "ok": True,
        "totals": {
            "sources": 0,
            "new": 0,
            "updated": 0,
            "unchanged": 0,
            "merged": 0,
            "skipped": 0,
            "errors": 0,
        },
        "sources": [],
    }


def test_bundled_sample_is_the_default(monkeypatch: pytest.MonkeyPatch, sqlite_url: str) -> None:
    if not SAMPLE_CONFIG.exists():
        pytest.skip("the bundled sample publication is not in this tree")
    monkeypatch.setenv("DIGEST_DATABASE_URL", sqlite_url)  # no ./digest.toml: the sample
    result = invoke()
    assert result.exit_code == 0, result.output
    assert "feeds/news.rss" in result.stdout
    assert "0 failed" in result.stdout
    assert count_articles(sqlite_url) >= 40


def test_help_has_an_example() -> None:
    result = CliRunner().invoke(cli, ["ingest", "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.stdout and "--json" in result.stdout

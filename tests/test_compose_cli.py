"""`digest compose`: files on disk, the table, reader variants, warnings, the sample."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from digest import db
from digest.cli import cli
from digest.compose import variant_key
from digest.personalize import unfilled
from subscribers.lists import create_list
from subscribers.segments import create_segment
from subscribers.service import add_subscriber
from tests.data.compose import factory as f

CONFIG = """
[newsletters.weekly]
title = "The Civic Week"
description = "You receive this because you subscribed to The Civic Week."
list = "weekly"
sender = "The Civic Week <news@civic.example>"
timezone = "Europe/London"
max_per_category = 10
postal_address = "Civic Media Ltd, 1 Example Street, London"
sources = ["https://news.civic.example/feed.xml"]
{categories}
"""


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sqlite_url: str) -> Path:
    """A digest.toml in the working folder and a migrated SQLite database with 20 articles."""
    cats = "".join(f'[[newsletters.weekly.categories]]\nname = "{c}"\n' for c in f.CATEGORIES)
    (tmp_path / "digest.toml").write_text(CONFIG.format(categories=cats))
    monkeypatch.setenv("DIGEST_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("DIGEST_BASE_URL", "https://civic.example")
    engine = db.make_engine(sqlite_url)
    db.upgrade(engine)
    with db.session_factory(engine)() as session:
        session.add_all(f.from_feed(f.articles(20)))
        session.commit()
    engine.dispose()
    return tmp_path


def _session(url: str):  # type: ignore[no-untyped-def]
    engine = db.make_engine(url)
    return engine, db.session_factory(engine)()


def test_compose_writes_the_full_edition_with_preview_values(site: Path) -> None:
    result = run("compose", "weekly", "--as-of", "2026-11-23")
    assert result.exit_code == 0, result.output
    out = site / "out" / "weekly-2026-W47"
    assert sorted(p.name for p in out.iterdir()) == ["all.html", "all.txt"]
    html = (out / "all.html").read_text()
    text = (out / "all.txt").read_text()
    assert unfilled(html) == [] and unfilled(text) == []
    assert "Hi Reader," in html and "Hi Reader," in text
    assert 'href="https://civic.example/u/preview"' in html
    assert "https://civic.example/e/weekly/2026-W47/all" in text
    for word in ("Variant", "Sections", "Articles", "HTML KB", "Text KB", "all", "20"):
        assert word in result.output
    assert "Wrote 1 variant(s) to out/weekly-2026-W47/" in result.output


def test_compose_writes_one_variant_per_distinct_reader_choice(site: Path, sqlite_url: str) -> None:
    engine, session = _session(sqlite_url)
    with session, session.begin():
        create_list(session, "weekly")
        add_subscriber(session, "a@example.net", "weekly", name="A")
        add_subscriber(session, "b@example.net", "weekly", categories=["Policy", "Workforce"])
        add_subscriber(session, "c@example.net", "weekly", categories=["Workforce", "Policy"])
        add_subscriber(session, "d@example.net", "weekly", categories=["Social care"])
        add_subscriber(session, "e@example.net", "weekly", categories=["Housing"])
    engine.dispose()
    result = run("compose", "weekly", "--as-of", "2026-11-23", "--out", "preview", "--keep-mjml")
    assert result.exit_code == 0, result.output
    everything = list(f.CATEGORIES)
    two = variant_key(["Policy", "Workforce"], everything)
    care = variant_key(["Social care"], everything)
    names = sorted(p.name for p in (site / "preview").iterdir())
    assert names == sorted(
        f"{k}.{ext}" for k in ("all", two, care) for ext in ("html", "txt", "mjml")
    )
    two_text = (site / "preview" / f"{two}.txt").read_text()
    assert "POLICY" in two_text and "WORKFORCE" in two_text
    assert "SOCIAL CARE" not in two_text and "DATA AND SECURITY" not in two_text
    assert "<mjml" in (site / "preview" / "all.mjml").read_text()
    assert "Policy, Workforce" in result.output
    assert "1 reader(s) chose only categories with no articles this period." in result.output
    assert "Wrote 3 variant(s)" in result.output


def test_compose_for_a_segment_with_fixed_categories(site: Path, sqlite_url: str) -> None:
    engine, session = _session(sqlite_url)
    with session, session.begin():
        create_list(session, "weekly")
        add_subscriber(session, "a@example.net", "weekly", categories=["Policy"])
        create_segment(
            session, "weekly", "carers", {"status": "active"}, categories=["Social care"]
        )
    engine.dispose()
    result = run("compose", "weekly", "--as-of", "2026-11-23", "--segment", "carers")
    assert result.exit_code == 0, result.output
    out = site / "out" / "weekly-2026-W47"
    care = variant_key(["Social care"], list(f.CATEGORIES))
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["all.html", "all.txt", f"{care}.html", f"{care}.txt"]
    )


def test_unknown_segment_is_one_clear_error(site: Path, sqlite_url: str) -> None:
    engine, session = _session(sqlite_url)
    with session, session.begin():
        create_list(session, "weekly")
    engine.dispose()
    result = run("compose", "weekly", "--as-of", "2026-11-23", "--segment", "nobody")
    assert result.exit_code == 1
    assert "error: list 'weekly' has no segment called 'nobody'" in result.output
    assert "Traceback" not in result.output
    assert not (site / "out").exists()


def test_empty_period_writes_nothing(site: Path) -> None:
    result = run("compose", "weekly", "--as-of", "2026-12-21")
    assert result.exit_code == 0
    assert "No new articles this period" in result.output
    assert not (site / "out").exists()


def test_broken_template_is_one_line_and_writes_nothing(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    override = site / "mytemplates" / "partials"
    override.mkdir(parents=True)
    (override / "masthead.mjml.j2").write_text("<mj-section>\n{{ newsletter.title }\n")
    monkeypatch.setenv("DIGEST_TEMPLATES", str(site / "mytemplates"))
    result = run("compose", "weekly", "--as-of", "2026-11-23")
    assert result.exit_code == 1
    assert "partials/masthead.mjml.j2, line 2" in result.output
    assert not (site / "out").exists()


def test_compose_warns_above_90_kb(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    override = site / "mytemplates" / "partials"
    override.mkdir(parents=True)
    (override / "footer.mjml.j2").write_text(
        "<mj-section><mj-column><mj-text>"
        + "Padding the footer. " * 5000
        + '<a href="{{ recipient.unsubscribe_url }}">Unsubscribe</a>'
        + "</mj-text></mj-column></mj-section>"
    )
    monkeypatch.setenv("DIGEST_TEMPLATES", str(site / "mytemplates"))
    result = run("compose", "weekly", "--as-of", "2026-11-23")
    assert result.exit_code == 0
    assert "warning: out/weekly-2026-W47/all.html is" in result.output
    assert "Gmail clips" in result.output


def test_html_mrml_cannot_read_is_one_error_quoting_it(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MRML renders the whole document, the HTML inside mj-text included: HTML it cannot
    read stops compose with the broken HTML quoted, and nothing is written."""
    override = site / "mytemplates" / "partials"
    override.mkdir(parents=True)
    (override / "footer.mjml.j2").write_text(
        "<mj-section><mj-column><mj-text><p>Thanks for reading<b></p>"
        '<a href="{{ recipient.unsubscribe_url }}">Unsubscribe</a>'
        "</mj-text></mj-column></mj-section>"
    )
    monkeypatch.setenv("DIGEST_TEMPLATES", str(site / "mytemplates"))
    result = run("compose", "weekly", "--as-of", "2026-11-23")
    assert result.exit_code == 1
    assert result.stdout.startswith("period: 2026-W47 (Mon 16 Nov – Sun 22 Nov): the week before")
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: digest.mjml.j2: the HTML inside an mj-text is not valid (")
    assert "'<p>Thanks for reading<b></p><a href=" in line
    assert line.endswith(
        "close its tags and comments, quote its attributes and write a bare < as &lt;"
    )
    assert not (site / "out").exists()


def test_a_locale_with_no_interface_translation_is_one_warning_line(site: Path) -> None:
    config = site / "digest.toml"
    config.write_text(config.read_text().replace('timezone = "', 'locale = "sk_SK"\ntimezone = "'))
    result = run("compose", "weekly", "--as-of", "2026-11-23")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == (
        "warning: digest.toml: newsletters.weekly.locale: no interface translation for "
        "'sk_SK' (translations: de, en, es, fr, nl); dates are in Slovak, interface words "
        "in English"
    )
    html = (site / "out" / "weekly-2026-W47" / "all.html").read_text()
    assert '<html lang="sk-SK"' in html and ">Unsubscribe</a>" in html


def test_compose_the_sample_edition(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_DATABASE_URL", f"sqlite:///{tmp_path / 'sample.db'}")
    assert run("ingest").exit_code == 0
    result = run("compose", "weekly", "--as-of", "2026-11-23")
    assert result.exit_code == 0, result.output
    out = tmp_path / "out" / "weekly-2026-W47"
    html = (out / "all.html").read_text()
    text = (out / "all.txt").read_text()
    assert len(html.encode()) < 80 * 1024
    assert "Public Sector Digital — The Week" in html
    assert "GOV.UK One Login to be mandatory for new central government services" in text
    assert "Public Sector Digital Ltd, 1 Example Street, London EC1A 1AA" in text
    # W48's item stays out; the week's undated-category item lands in Other
    assert "Councils to receive £45m for cyber resilience" not in text
    assert "OTHER" in text

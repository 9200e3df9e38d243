"""The week's collection: periods in the newsletter's timezone, grouping and ordering."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session

from digest.cli import cli
from digest.collect import collect, period_for
from digest.config import NewsletterConfig
from digest.models import Article, Source

LONDON = ZoneInfo("Europe/London")
FEED = "https://example.org/feed.xml"


def newsletter(**kw: object) -> NewsletterConfig:
    base: dict[str, object] = {
        "name": "weekly",
        "title": "Weekly",
        "list": "weekly",
        "sender": "news@example.org",
        "timezone": "Europe/London",
        "categories": [
            {"name": "Digital Transformation"},
            {"name": "Data and security", "aliases": ["Cyber"]},
            {"name": "Adult Social Care"},
        ],
        "max_per_category": 3,
        "sources": [FEED],
    }
    base.update(kw)
    return NewsletterConfig(**base)  # type: ignore[arg-type]


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=LONDON)  # type: ignore[misc]


# ---------------------------------------------------------------------------
# Periods


def test_iso_week_before_the_send_date() -> None:
    p = period_for(newsletter(), local(2026, 11, 23, 8, 0))
    assert p.key == "2026-W47"
    assert p.start == local(2026, 11, 16).astimezone(UTC)
    assert p.end == local(2026, 11, 23).astimezone(UTC)
    # any day of the following week gives the same period
    assert period_for(newsletter(), local(2026, 11, 29, 23, 59)).key == "2026-W47"
    assert period_for(newsletter(), local(2026, 11, 30, 0, 0)).key == "2026-W48"


def test_sunday_2330_london_belongs_to_its_week_in_winter_and_summer() -> None:
    nl = newsletter()
    for sunday in (local(2026, 11, 22, 23, 30), local(2026, 7, 12, 23, 30)):
        p = period_for(nl, sunday + timedelta(days=1))
        assert p.start <= sunday.astimezone(UTC) < p.end
        # in summer 23:30 BST is 22:30 UTC, still inside; 00:10 Monday is the next week
        monday = sunday + timedelta(minutes=40)
        assert not p.start <= monday.astimezone(UTC) < p.end


@pytest.mark.parametrize(
    ("send", "key", "hours"),
    [
        (local(2026, 3, 30, 8), "2026-W13", 167),  # clocks went forward on Sunday 29 March
        (local(2026, 10, 26, 8), "2026-W43", 169),  # clocks went back on Sunday 25 October
    ],
)
def test_weeks_of_the_dst_changes_run_midnight_to_midnight(
    send: datetime, key: str, hours: int
) -> None:
    p = period_for(newsletter(), send)
    assert p.key == key
    assert (p.end - p.start) == timedelta(hours=hours)
    assert p.start.astimezone(LONDON).hour == 0 and p.end.astimezone(LONDON).hour == 0


def test_day_window() -> None:
    p = period_for(newsletter(window="7d"), local(2026, 11, 27, 9))
    assert p.key == "2026-11-20..2026-11-26"
    assert p.start == local(2026, 11, 20).astimezone(UTC)
    assert p.end == local(2026, 11, 27).astimezone(UTC)


def test_naive_as_of_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        period_for(newsletter(), datetime(2026, 11, 23))


# ---------------------------------------------------------------------------
# Grouping


def source(session: Session, url: str = FEED) -> Source:
    found = session.query(Source).filter_by(url=url).one_or_none()
    if found is None:
        found = Source(url=url, kind="rss")
        session.add(found)
    return found


def add(
    session: Session,
    n: int,
    cats: list[str],
    when: datetime,
    *,
    pinned: bool = False,
    feeds: tuple[str, ...] = (FEED,),
) -> None:
    """An article seen in ``feeds`` (the first one owns it)."""
    seen = [source(session, url) for url in feeds]
    session.add(
        Article(
            canonical_url=f"https://example.org/{n}",
            title=f"Story {n}",
            categories=cats,
            published_at=when,
            content_hash=str(n),
            pinned=pinned,
            source=seen[0] if seen else None,
            sources=seen,
        )
    )


def test_grouped_in_order_pinned_first_newest_first_capped(session: Session) -> None:
    day = local(2026, 11, 17, 9)
    add(session, 1, ["Adult Social Care"], day)
    add(session, 2, ["Digital Transformation"], day + timedelta(hours=1))
    add(session, 3, ["Digital Transformation"], day + timedelta(hours=2))
    add(session, 4, ["Digital Transformation"], day + timedelta(hours=3))
    add(session, 5, ["Digital Transformation"], day + timedelta(hours=4))
    add(session, 6, ["Digital Transformation"], day - timedelta(hours=5), pinned=True)
    add(session, 7, ["cyber", "Digital Transformation"], day)  # alias, first known category
    add(session, 8, ["Events"], day)  # unknown: Other
    add(session, 9, [], day)  # none: Other
    add(session, 10, ["Digital Transformation"], local(2026, 11, 23, 0, 10))  # next week
    add(session, 11, ["Digital Transformation"], local(2026, 11, 15, 23, 59))  # week before
    session.commit()

    result = collect(session, newsletter(), local(2026, 11, 23, 8))
    got = [(s.name, [a.title for a in s.articles]) for s in result.sections]
    assert got == [
        ("Digital Transformation", ["Story 6", "Story 5", "Story 4"]),
        ("Data and security", ["Story 7"]),
        ("Adult Social Care", ["Story 1"]),
        ("Other", ["Story 9", "Story 8"]),
    ]
    assert result.total == 7 and not result.is_empty


def test_unknown_categories_can_be_left_out(session: Session) -> None:
    add(session, 1, ["Events"], local(2026, 11, 17, 9))
    add(session, 2, ["Adult Social Care"], local(2026, 11, 17, 9))
    session.commit()
    result = collect(session, newsletter(other_category=""), local(2026, 11, 23, 8))
    assert [s.name for s in result.sections] == ["Adult Social Care"]


def test_empty_period(session: Session) -> None:
    result = collect(session, newsletter(), local(2026, 11, 23, 8))
    assert result.is_empty and result.sections == []


# ---------------------------------------------------------------------------
# CLI, on the bundled sample


def test_collect_cli_on_the_sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_DATABASE_URL", f"sqlite:///{tmp_path / 'd.db'}")
    runner = CliRunner()
    assert runner.invoke(cli, ["ingest"]).exit_code == 0
    text = runner.invoke(cli, ["collect", "weekly", "--as-of", "2026-11-23"])
    assert text.exit_code == 0, text.output
    assert "2026-W47" in text.output and "Digital Transformation" in text.output
    data = json.loads(
        runner.invoke(cli, ["collect", "weekly", "--as-of", "2026-11-23", "--json"]).stdout
    )
    names = [s["name"] for s in data["sections"]]
    assert names[:5] == [
        "Digital Transformation",
        "Data and security",
        "Digital Customer Service",
        "Adult Social Care",
        "Change Management",
    ]
    assert all(len(s["articles"]) <= 6 for s in data["sections"])
    titles = [a["title"] for s in data["sections"] for a in s["articles"]]
    assert any(t.startswith("GOV.UK One Login") for t in titles)  # Sunday 23:30
    assert not any("£45m" in t for t in titles)  # Monday 00:10 belongs to the next week
    assert data["first_day"] == "2026-11-16" and data["last_day"] == "2026-11-22"
    empty = runner.invoke(cli, ["collect", "weekly", "--as-of", "2027-06-01"])
    assert empty.exit_code == 0 and "No new articles this period." in empty.output


def test_pin_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_DATABASE_URL", f"sqlite:///{tmp_path / 'd.db'}")
    runner = CliRunner()
    runner.invoke(cli, ["ingest"])
    data = json.loads(
        runner.invoke(cli, ["collect", "weekly", "--as-of", "2026-11-23", "--json"]).stdout
    )
    last = data["sections"][0]["articles"][-1]
    pinned = runner.invoke(cli, ["pin", last["url"] + "?utm_source=x#top"])
    assert pinned.exit_code == 0 and pinned.output.startswith("Pinned: ")
    data = json.loads(
        runner.invoke(cli, ["collect", "weekly", "--as-of", "2026-11-23", "--json"]).stdout
    )
    assert data["sections"][0]["articles"][0]["url"] == last["url"]
    missing = runner.invoke(cli, ["pin", "https://example.org/nothing"])
    assert missing.exit_code == 1 and "run `digest ingest` first" in missing.output


# ---------------------------------------------------------------------------
# Each newsletter collects only its own sources (issue 13.1)

A, B, C = (f"https://{x}.example.org/feed.xml" for x in "abc")


def test_each_newsletter_collects_only_its_own_sources(session: Session) -> None:
    day = local(2026, 11, 17, 9)
    add(session, 1, ["Adult Social Care"], day, feeds=(A,))
    add(session, 2, ["Adult Social Care"], day, feeds=(B,))
    add(session, 3, ["Adult Social Care"], day, feeds=(C,))
    add(session, 4, ["Adult Social Care"], day, feeds=(B, C))  # one article, two feeds
    add(session, 5, ["Adult Social Care"], day, feeds=("/srv/adhoc/page.html",))  # in none
    add(session, 6, ["Adult Social Care"], day, feeds=())  # no source at all
    session.commit()

    def titles(**kw: object) -> list[str]:
        result = collect(session, newsletter(**kw), local(2026, 11, 23, 8))
        return sorted(a.title for a in result.articles)

    assert titles(sources=[A, B]) == ["Story 1", "Story 2", "Story 4"]
    assert titles(sources=[C]) == ["Story 3", "Story 4"]  # disjoint from [A, B]…
    assert titles(sources=[B, C]) == ["Story 2", "Story 3", "Story 4"]  # …overlapping both
    assert titles(sources=[]) == []  # no sources, no articles: not everyone else's
    assert titles(sources=["https://d.example.org/never-ingested.xml"]) == []


def test_two_newsletters_from_one_config_after_a_real_ingest(
    engine: object, tmp_path: Path
) -> None:
    """Two newsletters of one digest.toml, one shared feed: each edition has its own
    feeds' articles and the shared one's, never the other newsletter's."""
    from digest import db
    from digest.config import Settings, load_config
    from digest.ingest import ingest

    def rss(name: str, slugs: list[str]) -> None:
        items = "".join(
            f"<item><title>{name} {slug}</title><link>https://{name}.example.org/{slug}</link>"
            f"<pubDate>Tue, 17 Nov 2026 09:00:00 +0000</pubDate></item>"
            for slug in slugs
        )
        (tmp_path / "feeds").mkdir(exist_ok=True)
        (tmp_path / "feeds" / f"{name}.xml").write_text(
            f'<?xml version="1.0"?><rss version="2.0"><channel><title>{name}</title>'
            f"{items}</channel></rss>"
        )

    rss("health", ["nhs-app", "gp-booking"])
    rss("councils", ["bins", "parking"])
    rss("shared", ["budget"])
    (tmp_path / "digest.toml").write_text(
        "[newsletters.health]\ntitle = 'Health'\nlist = 'health'\nsender = 'a@example.org'\n"
        "sources = ['feeds/health.xml', 'feeds/shared.xml']\n"
        "[newsletters.councils]\ntitle = 'Councils'\nlist = 'councils'\n"
        "sender = 'a@example.org'\nsources = ['feeds/councils.xml', 'feeds/shared.xml']\n"
    )
    config = load_config(tmp_path / "digest.toml")
    sessions = db.session_factory(engine)  # type: ignore[arg-type]
    report = ingest(sessions, config, Settings())
    assert report.ok and report.totals["new"] == 5
    with sessions() as s:
        got = {
            name: sorted(a.title for a in collect(s, nl, local(2026, 11, 23, 8)).articles)
            for name, nl in config.newsletters.items()
        }
    assert got == {
        "health": ["health gp-booking", "health nhs-app", "shared budget"],
        "councils": ["councils bins", "councils parking", "shared budget"],
    }


def test_collect_keeps_titles_readable_at_80_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Long author lists are cut with "…" before the title column is squeezed."""
    from digest import db
    from digest.cli._common import console

    url = f"sqlite:///{tmp_path / 'd.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    authors = "Aleksandra Wiśniewska-Kowalczyk, Bartholomew Featherstonehaugh, Chidinma Okonkwo"
    titles = [
        "Councils publish digital plans after a year of consultation with residents",
        "NHS app adds repeat prescriptions for carers",
    ]
    with db.session_factory(engine)() as s:
        for n, title in enumerate(titles):
            add(s, n, ["Adult Social Care"], local(2026, 11, 17, 9 + n))
            s.flush()
            s.query(Article).filter_by(canonical_url=f"https://example.org/{n}").update(
                {"title": title, "author": authors}
            )
        s.commit()
    engine.dispose()
    (tmp_path / "digest.toml").write_text(
        '[newsletters.weekly]\ntitle = "Weekly"\nlist = "weekly"\nsender = "a@example.org"\n'
        f'sources = ["{FEED}"]\n'
    )
    monkeypatch.setenv("DIGEST_DATABASE_URL", url)
    monkeypatch.setattr(console, "width", 80)
    result = CliRunner().invoke(cli, ["collect", "weekly", "--as-of", "2026-11-23"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    title_cells = [line.split("│")[1].strip() for line in lines if line.count("│") == 2]
    shown = " ".join(" ".join(title_cells).split())
    for title in titles:
        assert title in shown  # whole words, folded over a line or two at most
    assert len(title_cells) <= 5  # (today: one or two letters a line, a dozen lines each)
    assert "Aleksandra Wiśniewska…" in result.output or "Aleksandra" in result.output
    assert "Chidinma Okonkwo" not in result.output  # the authors were cut, not the titles


def test_pin_finds_a_post_by_its_fragment_and_says_where_it_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    data = Path(__file__).parent / "data" / "ingest"
    shutil.copy(data / "liveblog-fragments.rss", tmp_path / "briefs.rss")
    shutil.copy(data / "rss10.rdf", tmp_path / "elsewhere.rdf")
    (tmp_path / "digest.toml").write_text(
        '[newsletters.briefs]\ntitle = "Briefs"\nlist = "briefs"\nsender = "a@example.org"\n'
        'sources = ["briefs.rss"]\n'
    )
    monkeypatch.setenv("DIGEST_DATABASE_URL", f"sqlite:///{tmp_path / 'd.db'}")
    runner = CliRunner()
    assert runner.invoke(cli, ["ingest"]).exit_code == 0
    assert runner.invoke(cli, ["ingest", "elsewhere.rdf"]).exit_code == 0
    pinned = runner.invoke(cli, ["pin", "http://briefs.civictech.example/2026/11/24#brief-4417"])
    assert pinned.exit_code == 0, pinned.output
    assert pinned.stdout == "Pinned: GDS publishes its 2027 roadmap\nIn: briefs\n"
    adhoc = runner.invoke(cli, ["pin", "https://news.example.org/2026/11/change-fatigue"])
    assert adhoc.exit_code == 0, adhoc.output
    assert "no edition shows it" in adhoc.stderr

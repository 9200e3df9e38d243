"""Composer: variants, the HTML and text bodies, their quality bars and their safety."""

from __future__ import annotations

import re
from datetime import timedelta
from html.parser import HTMLParser
from itertools import pairwise
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from digest.collect import collect
from digest.compose import (
    HTML_WARN_BYTES,
    Composer,
    RenderedVariant,
    sections_for,
    variant_key,
)
from digest.config import Settings
from digest.errors import TemplateError
from digest.personalize import personalize, placeholder, preview_fields, unfilled
from digest.templating import TEXT_WIDTH
from tests.data.compose import factory as f

SETTINGS = Settings(base_url="https://civic.example")
W47 = "16\u2009–\u200922 November 2026"  # CLDR en_GB: thin spaces around the dash


def compose(arts, nl=None, sections=None, settings=SETTINGS) -> RenderedVariant:
    nl = nl or f.newsletter()
    return Composer(settings, nl).render(f.collection(arts, nl), sections)


class Page(HTMLParser):
    """What the quality bars look at: tags with attributes, and where styles sit."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.stack: list[str] = []
        self.styles_outside_head = 0
        self.title = ""
        self._in_title = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "style" and "head" not in self.stack:
            self.styles_outside_head += 1
        if tag == "title":
            self._in_title = True
        if tag not in {"meta", "img", "br", "link", "hr", "input"}:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in self.stack:
            while self.stack and self.stack.pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for t, attrs in self.tags if t == tag]


# ---------------------------------------------------------------------------
# Variants


def test_variant_key_is_all_for_the_full_edition_and_stable_otherwise() -> None:
    everything = ["Policy", "Data and security", "Other"]
    assert variant_key(everything, everything) == "all"
    assert variant_key(["Other", "Policy", "Data and security"], everything) == "all"
    key = variant_key(["Policy", "Other"], everything)
    assert key == variant_key(["Other", "Policy"], everything)
    assert key == variant_key(["Other", "Policy", "Not this week"], everything)
    assert key != variant_key(["Policy"], everything)
    assert re.fullmatch(r"[a-z0-9-]{1,32}", key)


def test_sections_for_follows_segment_then_reader_then_everything() -> None:
    nl = f.newsletter(
        categories=[{"name": "Policy", "aliases": ["Government"]}, {"name": "Data and security"}]
    )
    arts = [f.article(1, "Policy"), f.article(2, "Data & Security"), f.article(3, None)]
    col = f.collection(arts, nl)
    assert [s.name for s in col.sections] == ["Policy", "Data and security", "Other"]
    assert sections_for(col, []) == ("Policy", "Data and security", "Other")
    assert sections_for(col, ["data and security", "government"]) == (
        "Policy",
        "Data and security",
    )
    assert sections_for(col, ["Policy"], ["Other"]) == ("Other",)
    assert sections_for(col, ["Housing"]) == ()


def test_render_all_renders_once_per_distinct_variant() -> None:
    col = f.collection(f.articles(15))
    composer = Composer(SETTINGS, col.newsletter)
    everything = [s.name for s in col.sections]
    sets = [
        everything,
        ["Policy", "Workforce"],
        ["Workforce", "Policy"],
        ["Policy", "Workforce", "Housing"],
        list(reversed(everything)),
        ["Social care"],
        [],
        ["Social care"],
    ]
    variants = composer.render_all(col, sets)
    assert composer.renders == 3
    assert set(variants) == {
        "all",
        variant_key(["Policy", "Workforce"], everything),
        variant_key(["Social care"], everything),
    }
    two = variants[variant_key(["Policy", "Workforce"], everything)]
    assert two.sections == ("Policy", "Workforce")
    composer.render(col)
    assert composer.renders == 4


def test_reader_with_two_categories_gets_only_those_two() -> None:
    arts = f.articles(20)
    col = f.collection(arts)
    chosen = sections_for(col, ["Workforce", "data and security"])
    variant = Composer(SETTINGS, col.newsletter).render(col, chosen)
    assert variant.sections == ("Data and security", "Workforce")
    for art in arts:
        wanted = art.categories[0] in {"Workforce", "Data and security"}
        assert (art.title in variant.text) is wanted, art.title
        assert (art.canonical_url in variant.html) is wanted, art.title
    assert "Policy" not in variant.text
    assert "In this issue" in variant.html
    assert "Data and security · Workforce" in variant.html


def test_render_of_nothing_is_refused() -> None:
    col = f.collection(f.articles(3, ["Policy"]))
    with pytest.raises(ValueError, match="nothing to render"):
        Composer(SETTINGS, col.newsletter).render(col, ["Workforce"])


# ---------------------------------------------------------------------------
# Content


def test_subject_preheader_and_top_story_come_from_the_first_section() -> None:
    arts = f.articles(10)
    variant = compose(arts)
    policy = [a for a in arts if a.categories == ["Policy"]]
    newest = max(policy, key=lambda a: a.published_at)
    assert variant.subject == f"The Civic Week: {newest.title}"
    assert variant.preheader.startswith(newest.title)
    assert variant.preheader in variant.html
    # lifted out of its section: shown once in each body
    assert variant.text.count(newest.title) == 1
    assert variant.html.count(f">{newest.title}</a>") == 1


def test_a_pinned_article_is_the_top_story() -> None:
    arts = f.articles(10)
    pinned = arts[-1]
    pinned.pinned = True
    variant = compose(arts)
    assert variant.subject.endswith(pinned.title)
    assert variant.text.index(pinned.title) < variant.text.index(pinned.categories[0].upper())


def test_links_carry_utm_but_reader_links_do_not() -> None:
    arts = f.articles(5)
    variant = compose(
        arts, f.newsletter(utm={"utm_source": "civic", "utm_campaign": "{newsletter}-{period}"})
    )
    url = f"{arts[0].canonical_url}?utm_source=civic&amp;utm_campaign=weekly-2026-W47"
    assert f'href="{url}"' in variant.html
    assert arts[0].canonical_url + "?utm_source=civic&utm_campaign=weekly-2026-W47" in variant.text
    for name in ("unsubscribe_url", "preferences_url", "web_url"):
        assert f'href="{placeholder(name, html=True)}"' in variant.html
    assert not re.search(r"~~[^\"]*utm_", variant.html)


def test_summaries_are_trimmed_at_a_sentence_near_240_characters() -> None:
    arts = f.articles(3)
    variant = compose(arts)
    first = arts[0].summary_text.split(". ")
    kept = ". ".join(first[:3]) + "."
    assert kept in variant.html
    assert first[3] not in variant.html


def test_footer_says_why_where_and_how_to_leave() -> None:
    variant = compose(f.articles(4))
    for body in (variant.html, variant.text):
        assert "You receive this because you subscribed to The Civic Week." in body
        assert "Civic Media Ltd, 1 Example Street, London EC1A 1AA" in body
    for name in ("unsubscribe_url", "preferences_url"):
        assert placeholder(name, html=False) in variant.text
    assert "Unsubscribe</a>" in variant.html
    assert "Manage preferences</a>" in variant.html


def test_dates_use_babel_in_the_newsletters_locale() -> None:
    arts = f.articles(5)
    en = compose(arts)
    assert W47 in en.html
    assert W47 in en.text
    assert "16 Nov" in en.text
    de = compose(arts, f.newsletter(locale="de_DE"))
    assert '<html lang="de-DE"' in de.html
    assert "16.–22. November 2026" in de.html
    assert "16. Nov." in de.text
    assert "Abbestellen" in de.html and "Hallo" in de.text


@pytest.mark.parametrize(
    ("window", "locale", "said"),
    [
        ("week", "en_GB", "here is what happened this week."),
        ("1d", "en_GB", "here is what happened yesterday."),
        ("7d", "en_GB", "here is what happened in the last 7 days."),
        ("999d", "en_GB", "here is what happened in the last 999 days."),
        ("week", "de_DE", "das war diese Woche wichtig."),
        ("1d", "de_DE", "das war gestern wichtig."),
        ("999d", "de_DE", "das war in den letzten 999 Tagen wichtig."),
        ("30d", "fr_FR", "voici l’essentiel des 30 derniers jours."),
    ],
)
def test_the_intro_is_worded_for_the_window(window: str, locale: str, said: str) -> None:
    variant = compose(f.articles(3), f.newsletter(window=window, locale=locale))
    name = placeholder("first_name", html=False)
    assert f", {said}" in variant.html
    assert f"{name}, {said}\n" in variant.text
    if window != "week":
        assert "this week" not in variant.text and "diese Woche" not in variant.text


def _articles_dated(*days: tuple[int, int, int]) -> list:
    from datetime import UTC, datetime

    return [
        f.article(n, "Policy", when=datetime(*day, 9, 0, tzinfo=UTC), image=False)
        for n, day in enumerate(days, start=1)
    ]


def test_dates_carry_the_year_when_the_period_is_longer_than_a_year() -> None:
    arts = _articles_dated((2025, 3, 4), (2026, 11, 20))
    variant = compose(arts, f.newsletter(window="999d"))  # 2024-02-28 to 2026-11-22
    assert "28 February 2024 – 22 November 2026" in variant.text
    assert "4 Mar 2025" in variant.text and "20 Nov 2026" in variant.text
    de = compose(arts, f.newsletter(window="999d", locale="de_DE"))
    assert "4. März 2025" in de.text and "20. Nov. 2026" in de.text


def test_dates_carry_the_year_when_the_period_crosses_new_year() -> None:
    from dataclasses import replace
    from datetime import UTC, datetime

    from digest.collect import period_for

    nl = f.newsletter()
    arts = _articles_dated((2026, 12, 30), (2027, 1, 2))
    new_year = replace(
        f.collection(arts, nl), period=period_for(nl, datetime(2027, 1, 4, tzinfo=UTC))
    )
    variant = Composer(SETTINGS, nl).render(new_year)
    assert "28 December 2026 – 3 January 2027" in variant.text
    assert "30 Dec 2026" in variant.text and "2 Jan 2027" in variant.text
    # within one year, the day and month say it all
    same_year = compose(_articles_dated((2026, 11, 17)))
    assert "17 Nov" in same_year.text and "17 Nov 2026" not in same_year.text


def test_empty_author_and_missing_image_render_cleanly() -> None:
    arts = [f.article(1, "Policy", author="", image=False, summary_text="")]
    variant = compose(arts)
    assert "By " not in variant.text
    assert "<img" not in variant.html


# ---------------------------------------------------------------------------
# Quality bars


def test_forty_article_digest_is_under_80_kb(tmp_path: Path) -> None:
    arts = f.articles(40)
    nl = f.newsletter()
    col = f.collection(arts, nl)
    assert col.total == 40
    variant = Composer(SETTINGS, nl).render(col)
    size = len(variant.html.encode("utf-8"))
    (tmp_path / "forty.html").write_text(variant.html, encoding="utf-8")
    print(f"40-article digest: HTML {size / 1024:.1f} KB, text {variant.text_bytes / 1024:.1f} KB")
    assert size < 80 * 1024
    assert size < HTML_WARN_BYTES
    assert all(a.title in variant.text for a in arts)


def test_html_is_self_contained_and_accessible() -> None:
    variant = compose(f.articles(12))
    page = Page(variant.html)
    html = page.all("html")
    assert html and html[0].get("lang") == "en-GB"
    assert page.title.strip() == variant.subject
    images = page.all("img")
    assert len(images) >= 6
    for img in images:
        assert img.get("alt") is not None, img  # decorative ones say so: alt=""
        assert (img.get("width") or "").isdigit(), img
        assert (img.get("height") or "").isdigit(), img
        assert int(img["width"] or 0) <= 600
        assert (img.get("src") or "").startswith("https://")
    assert not page.all("script")
    assert not [link for link in page.all("link") if link.get("rel") == "stylesheet"]
    assert "@import" not in variant.html
    assert page.styles_outside_head == 0
    assert "max-width:600px" in variant.html
    assert 'name="color-scheme"' in variant.html
    assert "prefers-color-scheme: dark" in variant.html


def _headings(html: str) -> list[tuple[str, str]]:
    found = re.findall(r"<(h[1-6])\b[^>]*>(.*?)</\1\s*>", html, re.S)
    return [(tag, " ".join(re.sub(r"<[^>]+>", "", text).split())) for tag, text in found]


def test_headings_outline_the_email_for_screen_readers() -> None:
    """The title is the one h1; the top story's headline and each section are h2s; each
    article is an h3 under its section; no level is skipped."""
    arts = f.articles(12)
    variant = compose(arts)
    heads = _headings(variant.html.replace("&amp;", "&"))
    assert heads[0] == ("h1", "The Civic Week")
    assert [t for t, _ in heads].count("h1") == 1
    top = variant.subject.removeprefix("The Civic Week: ")
    assert heads[1] == ("h2", top)
    sections = [text for tag, text in heads[2:] if tag == "h2"]
    assert [s.casefold() for s in sections] == [c.casefold() for c in f.CATEGORIES]
    articles = [text for tag, text in heads if tag == "h3"]
    assert sorted(articles) == sorted(a.title for a in arts if a.title != top)
    levels = [int(tag[1]) for tag, _ in heads]
    assert all(b - a <= 1 for a, b in pairwise(levels))


def test_thumbnails_beside_their_headline_are_decorative() -> None:
    """With images off a headline is not read twice: images carry alt="" (the headline
    next to each says what it shows) and width and height to keep their space."""
    arts = f.articles(12)
    variant = compose(arts)
    images = Page(variant.html).all("img")
    assert len(images) == sum(1 for a in arts if a.image_url)
    for img in images:
        assert img.get("alt") == "", img
        assert img.get("width") and img.get("height"), img
    for art in arts:
        assert f'alt="{art.title}"' not in variant.html


def test_the_preheader_is_hidden_without_a_near_invisible_colour() -> None:
    """SpamAssassin scores text coloured like its background (HTML_FONT_LOW_CONTRAST),
    as MJML's mj-preview writes it; display:none hides it, mso-hide:all from Outlook."""
    variant = compose(f.articles(6))
    found = re.search(r'<div class="dg-preheader" style="([^"]*)">([^<]*)<', variant.html)
    assert found is not None
    style, text = found.groups()
    assert "display:none" in style and "mso-hide:all" in style and "overflow:hidden" in style
    assert "color" not in style and "font-size" not in style
    assert text.startswith(variant.preheader.replace("&", "&amp;")[:40])
    assert variant.html.count(variant.preheader.split(" · ")[0]) >= 2  # and the story itself


def test_the_text_footer_starts_with_a_signature_separator() -> None:
    """ "-- " (dash dash space) on its own line, which mail programs recognise."""
    variant = compose(f.articles(6))
    assert "\n-- \nYou receive this because" in variant.text
    assert "\n--\n" not in variant.text


def test_plain_text_has_every_title_and_url_and_wraps_at_78() -> None:
    arts = f.articles(18)
    arts[0].title = "A very long headline " * 8
    arts[1].canonical_url = "https://news.civic.example/" + "x" * 120
    variant = compose(arts)
    for art in arts:
        assert " ".join(art.title.split()).split()[-1] in variant.text
        assert art.canonical_url + "?utm_source=digest" in variant.text
    assert "A very long headline A very long" in variant.text  # wrapped, not cut
    for line in variant.text.splitlines():
        if len(line) > TEXT_WIDTH:
            assert re.fullmatch(r"\s*(https?://|~~digest\.text\.)\S+", line), line
    assert placeholder("unsubscribe_url", html=False) in variant.text
    assert "<" not in variant.text.replace("<-", "")


def test_placeholders_survive_rendering_and_fill_for_a_reader() -> None:
    variant = compose(f.articles(4))
    assert set(unfilled(variant.html)) == {
        placeholder(n, html=True)
        for n in ("first_name", "unsubscribe_url", "preferences_url", "web_url")
    }
    assert set(unfilled(variant.text)) == {
        placeholder(n, html=False)
        for n in ("first_name", "unsubscribe_url", "preferences_url", "web_url")
    }
    fields = preview_fields(SETTINGS, newsletter="weekly", period="2026-W47", variant_key="all")
    html = personalize(variant.html, fields, html=True)
    assert unfilled(html) == []
    assert 'href="https://civic.example/u/preview"' in html
    assert "Hi Reader," in personalize(variant.text, fields, html=False)


# ---------------------------------------------------------------------------
# Safety


class _Hrefs(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[tuple[str, str, str]] = []
        self.handlers: list[tuple[str, str]] = []
        self.tags: list[str] = []
        self.values: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            self.values.append(value or "")
            if name.startswith("on"):
                self.handlers.append((tag, name))
            if name in {"href", "src", "background", "action", "formaction", "xlink:href"}:
                self.urls.append((tag, name, value or ""))


def test_hostile_article_text_never_reaches_the_html_as_markup() -> None:
    hostile = f.hostile_articles()
    variant = compose([*hostile, *f.articles(3)])
    parser = _Hrefs()
    parser.feed(variant.html)
    assert "script" not in parser.tags
    assert "iframe" not in parser.tags and "svg" not in parser.tags
    body = variant.html[variant.html.index("<body") :]
    assert "<style" not in body.lower() and "<script" not in body.lower()
    assert Page(variant.html).styles_outside_head == 0
    assert not parser.handlers
    for tag, attr, url in parser.urls:
        assert url.startswith(("https://", "http://", "~~digest.html.")), (tag, attr, url)
        assert not re.search(r"[\s\"'<>]", url), (tag, attr, url)
    for value in parser.values:  # decoded attribute values: no script URL anywhere
        squashed = re.sub(r"\s", "", value).lower()
        assert not re.search(r"(javascript|vbscript|data):", squashed), value
    # The placeholder look-alikes in article text are neutralised: only the template's own remain.
    for body, html in ((variant.html, True), (variant.text, False)):
        found = unfilled(body)
        assert sorted(found) == sorted(
            placeholder(n, html=html)
            for n in ("first_name", "unsubscribe_url", "preferences_url", "web_url")
        )
    fields = preview_fields(SETTINGS, newsletter="weekly", period="2026-W47", variant_key="all")
    filled = personalize(variant.html, fields, html=True)
    assert filled.count("https://civic.example/u/preview") == 1


def test_hostile_text_is_shown_as_text() -> None:
    variant = compose(f.hostile_articles())
    assert "&lt;script&gt;alert(&#39;title&#39;)&lt;/script&gt;Budget" in variant.html
    assert "<script>alert('title')</script>Budget" in variant.text  # plain text: harmless
    assert "A plain, safe headline after all that" in variant.html
    # a non-http(s) article URL gets no link at all
    assert "A plain, safe headline after all that</a>" not in variant.html


# ---------------------------------------------------------------------------
# Templates: overrides and errors


def test_override_folder_with_one_partial_uses_builtins_for_the_rest(tmp_path: Path) -> None:
    partials = tmp_path / "partials"
    partials.mkdir()
    (partials / "footer.mjml.j2").write_text(
        "<mj-section><mj-column><mj-text>Sent by the override footer. "
        '<a href="{{ recipient.unsubscribe_url }}">Leave</a></mj-text></mj-column></mj-section>\n'
    )
    variant = compose(f.articles(6), settings=Settings(templates=tmp_path))
    assert "Sent by the override footer." in variant.html
    assert "Manage preferences" not in variant.html
    assert W47 in variant.html  # built-in masthead
    assert "Manage preferences" in variant.text  # built-in text footer


def test_override_can_extend_the_builtin_of_the_same_name(tmp_path: Path) -> None:
    (tmp_path / "digest.subject.txt.j2").write_text('{% extends "builtin/digest.subject.txt.j2" %}')
    (tmp_path / "digest.txt.j2").write_text('EXTRA HEADER\n{% include "builtin/digest.txt.j2" %}')
    variant = compose(f.articles(3), settings=Settings(templates=tmp_path))
    assert variant.subject.startswith("The Civic Week: ")
    assert variant.text.startswith("EXTRA HEADER\nThe Civic Week")


def test_theme_override_restyles(tmp_path: Path) -> None:
    partials = tmp_path / "partials"
    partials.mkdir()
    builtin = (Path(__file__).parent.parent / "templates" / "partials" / "theme.j2").read_text()
    (partials / "theme.j2").write_text(builtin.replace("#0a58a8", "#aa3300"))
    variant = compose(f.articles(3), settings=Settings(templates=tmp_path))
    assert "#aa3300" in variant.html and "#0a58a8" not in variant.html


def test_broken_override_names_the_template_and_line(tmp_path: Path) -> None:
    partials = tmp_path / "partials"
    partials.mkdir()
    (partials / "article.mjml.j2").write_text("<div>\n<h3>{{ article.title }</h3>\n</div>\n")
    with pytest.raises(TemplateError) as info:
        compose(f.articles(3), settings=Settings(templates=tmp_path))
    message = str(info.value)
    assert "partials/article.mjml.j2" in message
    assert "line 2" in message


def test_unknown_name_in_override_names_the_template_and_line(tmp_path: Path) -> None:
    (tmp_path / "digest.preheader.txt.j2").write_text("Top stories\n{{ headlines }}\n")
    with pytest.raises(TemplateError) as info:
        compose(f.articles(3), settings=Settings(templates=tmp_path))
    message = str(info.value)
    assert "digest.preheader.txt.j2, line 2" in message
    assert "'headlines' is undefined" in message


def test_invalid_mjml_from_an_override_is_a_template_error(tmp_path: Path) -> None:
    partials = tmp_path / "partials"
    partials.mkdir()
    (partials / "footer.mjml.j2").write_text("<mj-section><mj-column>\n")
    with pytest.raises(TemplateError, match=r"digest\.mjml\.j2: the rendered MJML is not valid"):
        compose(f.articles(3), settings=Settings(templates=tmp_path))


def test_missing_override_folder_is_a_config_error(tmp_path: Path) -> None:
    from digest.errors import ConfigError

    with pytest.raises(ConfigError, match="DIGEST_TEMPLATES"):
        Composer(Settings(templates=tmp_path / "nope"), f.newsletter())


# ---------------------------------------------------------------------------
# From the database (both backends)


def test_compose_what_collect_returns(session: Session) -> None:
    nl = f.newsletter(max_per_category=6)
    arts = f.articles(40)
    arts.append(f.article(99, "Policy", when=f.period().start - timedelta(days=1)))
    session.add_all(f.from_feed(arts))
    session.commit()
    col = collect(session, nl, f.AS_OF)
    assert col.total == 30
    composer = Composer(SETTINGS, nl)
    variants = composer.render_all(
        col, [[s.name for s in col.sections], sections_for(col, ["Policy", "Workforce"])]
    )
    assert composer.renders == 2
    full = variants["all"]
    for art in col.articles:
        assert art.title in full.text
    assert arts[-1].title not in full.text

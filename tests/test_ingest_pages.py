"""Article pages: JSON-LD, then OpenGraph, then plain meta tags."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest.errors import SourceError
from digest.ingest import parse_source
from digest.ingest.feeds import Entry
from digest.ingest.http import Fetched
from digest.ingest.pages import NotAnArticle

DATA = Path(__file__).parent / "data" / "ingest"
PAGE_URL = "https://news.example.org/2026/11/some-page"


def page(
    body: bytes | str, location: str = PAGE_URL, charset: str | None = None, expect: str = "page"
) -> Entry:
    """The article a page describes; as configured with kind = "page" unless ``expect``
    says otherwise (auto: only a page that says it is an article is one)."""
    data = body.encode() if isinstance(body, str) else body
    parsed = parse_source(Fetched(location=location, body=data, charset=charset), expect)
    assert parsed.kind == "page"
    [entry] = parsed.entries
    return entry


def fixture(name: str, location: str = PAGE_URL) -> Entry:
    return page((DATA / name).read_bytes(), location)


def test_json_ld_news_article_wins_over_opengraph() -> None:
    entry = fixture("page-jsonld.html")
    # Relative canonical resolved against the page; utm_* dropped.
    assert entry.url == "https://news.example.org/2026/11/tell-us-once"
    assert entry.title == "Council leaders back ‘tell us once’ data standard"
    assert entry.author == "Hannah Price"
    assert entry.published_at == datetime(2026, 11, 19, 16, 30, tzinfo=UTC)
    assert entry.categories == ["Data & Security"]
    assert entry.summary_text == "Leaders of 40 councils have signed up to a shared data standard."
    assert entry.summary_html == (
        "<p>Leaders of 40 councils have signed up to a shared data standard.</p>"
    )
    assert entry.image_url == "https://news.example.org/img/tell-us-once.jpg"


def test_json_ld_inside_graph_with_author_and_section_lists() -> None:
    entry = fixture("page-graph.html")
    assert entry.url == "https://news.example.org/2026/11/graph-article"
    assert entry.title == "Change leaders share what worked"
    assert entry.author == "Ade Bello, Ruth Mill"
    assert entry.categories == ["Change Management", "Digital Transformation"]
    assert entry.published_at == datetime(2026, 11, 20, tzinfo=UTC)
    assert entry.image_url == "https://news.example.org/img/a.jpg"


def test_json_ld_as_a_top_level_list() -> None:
    html = """<html><head><script type="application/ld+json">
    [{"@type": "Organization", "name": "Org"},
     {"@type": "BlogPosting", "headline": "A list of things", "author": "Kim Lee",
      "url": "https://blog.example.org/list", "datePublished": "2026-11-20T08:00:00-05:00"}]
    </script></head><body></body></html>"""
    entry = page(html, "/tmp/saved.html")  # a local file: the JSON-LD url is the address
    assert entry.url == "https://blog.example.org/list"
    assert entry.author == "Kim Lee"
    assert entry.published_at == datetime(2026, 11, 20, 13, 0, tzinfo=UTC)


def test_opengraph_when_there_is_no_json_ld() -> None:
    entry = fixture("page-og.html", "https://news.example.org/2026/11/chatbots?from=home")
    assert entry.url == "https://news.example.org/2026/11/chatbots"  # og:url, no fragment
    assert entry.title == "Chatbots answer half of council queries"
    assert entry.summary_text == (
        "Half of routine queries are now answered by chatbots & web forms."
    )
    assert entry.image_url == "https://news.example.org/img/chatbot.png"
    assert entry.published_at == datetime(2026, 11, 18, 9, 0, tzinfo=UTC)
    assert entry.categories == ["Digital Customer Service"]
    assert entry.author == "Jo Marsh"  # the profile-URL article:author is not a name


def test_plain_meta_tags_title_and_canonical() -> None:
    entry = fixture("page-meta.html", "/tmp/saved.html")
    assert entry.url == "https://news.example.org/2026/11/care-funding"
    assert entry.title == "Plain page about care funding"
    assert entry.summary_text == "A page with only classic meta tags."
    assert entry.author == "Chris Dale"
    assert entry.published_at is None
    assert entry.image_url is None


def test_a_fetched_page_without_canonical_uses_its_final_url() -> None:
    entry = fixture("page-nourl.html", "https://news.example.org/saved?utm_source=mail")
    assert entry.url == "https://news.example.org/saved"
    assert entry.title == "Saved page with no address"


def test_a_local_page_without_any_address_is_an_error() -> None:
    with pytest.raises(SourceError, match="does not say its own web address"):
        fixture("page-nourl.html", "/tmp/page-nourl.html")


def test_a_page_without_any_title_is_an_error() -> None:
    with pytest.raises(SourceError, match="no article title found"):
        page("<!DOCTYPE html><html><head></head><body><p>nothing</p></body></html>")


def test_hostile_metadata_is_neutralised() -> None:
    html = """<!DOCTYPE html><html><head>
    <title>Fine title</title>
    <link rel="canonical" href="javascript:alert(1)">
    <meta property="og:image" content="data:image/png;base64,AAAA">
    <meta name="twitter:image" content="https://news.example.org/img/ok.png">
    <meta property="og:description" content="<script>alert(1)</script>Text &lt;b&gt;bold&lt;/b&gt;">
    <script type="application/ld+json">{"@type": "NewsArticle",
      "headline": "<img src=x onerror=alert(1)>Real headline",
      "image": "javascript:alert(2)"}</script>
    </head><body onload="alert(1)"></body></html>"""
    entry = page(html)
    assert entry.url == PAGE_URL  # the javascript: canonical is ignored
    assert entry.title == "Real headline"
    assert entry.image_url == "https://news.example.org/img/ok.png"
    assert entry.summary_html == "<p>Text bold</p>"
    assert "alert" not in entry.summary_text


def test_page_charset_from_meta_and_misdeclared_bytes() -> None:
    latin = (
        (DATA / "page-meta.html")
        .read_text()
        .replace("Plain page about care funding", "Café funding")
    )
    assert page(latin.encode("latin-1"), "/tmp/p.html").title == "Café funding"
    # Declared iso-8859-1 in <meta>, but really UTF-8: read as UTF-8 with a warning.
    parsed = parse_source(Fetched(location="/tmp/p.html", body=latin.encode("utf-8")), "page")
    assert parsed.entries[0].title == "Café funding"
    assert parsed.warnings == [
        "encoding: declared iso-8859-1 but the bytes are UTF-8; read as UTF-8"
    ]


def test_broken_html_still_parses() -> None:
    html = (
        "<html><head><title>Unclosed <b>title</title><meta property='og:title' "
        "content='Broken markup survives'><meta name=author content=Anon></head><body><div><p>"
    )
    entry = page(html)
    assert entry.title == "Broken markup survives"
    assert entry.author == "Anon"


def test_base_href_is_used_for_relative_links() -> None:
    html = (
        '<html><head><base href="https://cdn.example.net/articles/">'
        '<link rel="canonical" href="story-1"><title>T</title>'
        '<meta property="og:image" content="img/1.png"></head></html>'
    )
    entry = page(html, "/tmp/saved.html")
    assert entry.url == "https://cdn.example.net/articles/story-1"
    assert entry.image_url == "https://cdn.example.net/articles/img/1.png"


@pytest.mark.parametrize(
    "junk",
    [
        "<a b='" * 60_000,  # unclosed attribute quotes: quadratic in html.parser alone
        "</titl" * 60_000,  # unfinished end tags inside <title>
        "<![" * 20_000,  # makes html.parser raise AssertionError
        "<!-- </]]>" * 30_000 + ">",
    ],
)
def test_pathological_markup_is_read_in_linear_time(junk: str) -> None:
    """The page goes through html5ever (nh3) before HTMLParser sees it: these finish at once."""
    html = '<!DOCTYPE html><meta property="og:title" content="Still found">' + junk
    assert page(html).title == "Still found"


# ---------------------------------------------------------------------------
# Pages that are not articles (issue 14.1)


def refused(name: str, location: str) -> NotAnArticle:
    with pytest.raises(NotAnArticle) as caught:
        parse_source(Fetched(location=location, body=(DATA / name).read_bytes()))
    return caught.value


def test_a_home_page_is_refused_and_its_feed_offered() -> None:
    error = refused("home.html", "https://www.northbridge-news.example/")
    # The site's posts feed first; its JSON Feed (a relative link) next; comments last.
    assert error.feeds == [
        "https://www.northbridge-news.example/feed/",
        "https://www.northbridge-news.example/feed/json/",
        "https://www.northbridge-news.example/comments/feed/",
    ]
    assert str(error) == (
        "not an article page: its og:type is 'website', so this looks like a home, section "
        "or channel page; use its feed instead: https://www.northbridge-news.example/feed/ "
        "(it also lists https://www.northbridge-news.example/feed/json/, "
        "https://www.northbridge-news.example/comments/feed/); or, if it is an article, "
        'pass --as-article (kind = "page" in digest.toml)'
    )


def test_a_channel_page_is_refused_and_its_feed_offered() -> None:
    error = refused("channel.html", "/tmp/saved/channel.html")
    assert error.feeds == [
        "https://videotube.example.com/feeds/videos.xml?channel_id=UCx9Qm2rVb3E1northbridge"
    ]
    assert "its og:type is 'profile'" in str(error)


def test_a_page_without_a_feed_says_so() -> None:
    html = "<!DOCTYPE html><html><head><title>About us</title></head><body></body></html>"
    with pytest.raises(NotAnArticle, match="use the site's RSS, Atom or JSON feed instead"):
        page(html, expect="auto")


def test_a_page_is_an_article_when_the_user_says_so() -> None:
    body = (DATA / "home.html").read_bytes()
    fetched = Fetched(location="https://www.northbridge-news.example/", body=body)
    for parsed in (parse_source(fetched, as_article=True), parse_source(fetched, "page")):
        [entry] = parsed.entries
        assert (entry.url, entry.title) == (
            "https://www.northbridge-news.example/",
            "Northbridge News",
        )


def test_og_type_article_alone_makes_an_article() -> None:
    entry = page(
        '<html><head><meta property="og:type" content="article">'
        '<meta property="og:title" content="A plain blog post"></head></html>',
        expect="auto",
    )
    assert entry.title == "A plain blog post"


def test_a_shift_jis_page_without_a_charset_is_decoded() -> None:
    parsed = parse_source(
        Fetched(location="/tmp/p.html", body=(DATA / "shift_jis-undeclared.html").read_bytes())
    )
    [entry] = parsed.entries
    assert entry.title == "都、新しいデジタル行政サービスを発表"
    assert entry.categories == ["行政"]
    assert parsed.warnings == [
        "encoding: no encoding declared but the bytes are not UTF-8; read as Shift_JIS"
    ]


def test_a_tracker_or_icon_as_og_image_is_no_thumbnail() -> None:
    html = (
        '<html><head><meta property="og:type" content="article"><title>T</title>'
        '<meta property="og:image" content="https://pixel.wp.com/g.gif?blog=1">'
        '<meta name="twitter:image" content="https://news.example.org/img/story.jpg"></head></html>'
    )
    assert page(html).image_url == "https://news.example.org/img/story.jpg"

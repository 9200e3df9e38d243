"""URLs, summary HTML, plain text, dates and decoding: what reaches the article store."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest.ingest.clean import (
    canonical_url,
    content_picture,
    decode_entities,
    decode_text,
    html_to_text,
    is_picture,
    parse_date,
    safe_url,
    sanitize_html,
    sanitized_to_text,
    text_to_html,
    title_key,
    unescape_markup,
    url_variants,
)

# ---------------------------------------------------------------------------
# canonical_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://Example.ORG/a/B", "https://example.org/a/B"),
        ("HTTPS://example.org", "https://example.org/"),
        ("https://example.org:443/x", "https://example.org/x"),
        ("http://example.org:80/x", "http://example.org/x"),
        ("http://example.org:8080/x", "http://example.org:8080/x"),
        ("https://example.org/a#section-2", "https://example.org/a"),
        ("https://example.org/a?utm_source=rss&utm_medium=feed", "https://example.org/a"),
        (
            "https://example.org/a?id=7&utm_campaign=x&b=two%20words&UTM_Term=y#top",
            "https://example.org/a?id=7&b=two%20words",
        ),
        ("https://example.org/a?z=1&a=2", "https://example.org/a?z=1&a=2"),
        ("  https://example.org/a \n", "https://example.org/a"),
    ],
)
def test_canonical_url(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


def test_canonical_url_resolves_relative_links_against_the_base() -> None:
    base = "https://feeds.example.org/news/feed.xml"
    assert canonical_url("/2026/story?utm_source=x", base) == "https://feeds.example.org/2026/story"
    assert canonical_url("story", base) == "https://feeds.example.org/news/story"
    assert canonical_url("//cdn.example.org/x", base) == "https://cdn.example.org/x"


def test_canonical_url_never_raises_on_garbage() -> None:
    assert canonical_url("http://[::1") == "http://[::1"
    assert canonical_url("not a url") == "not%20a%20url"


@given(
    st.from_regex(
        r"https?://[a-zA-Z0-9.-]{1,20}(/[a-zA-Z0-9._~%-]{0,10}){0,3}"
        r"(\?([a-z_]{1,6}=[a-z0-9]{0,4}&?){0,4})?(#[a-z]{0,5})?",
        fullmatch=True,
    )
)
def test_canonical_url_is_idempotent(url: str) -> None:
    once = canonical_url(url)
    assert canonical_url(once) == once
    assert "#" not in once
    assert "utm_" not in once


# ---------------------------------------------------------------------------
# safe_url


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        " JaVaScRiPt:alert(1)",
        "java\tscript:alert(1)",
        "java\nscript:alert(1)",
        "\x01javascript:alert(1)",
        "data:text/html;base64,PHNjcmlwdD4=",
        "vbscript:msgbox(1)",
        "file:///etc/passwd",
        "ftp://example.org/x",
        "mailto:a@example.org",
        "https://",
        "http://[::1",
        "",
        None,
    ],
)
def test_safe_url_rejects_everything_but_web_links(url: str | None) -> None:
    assert safe_url(url) is None
    assert safe_url(url, "https://example.org/feed") is None


def test_safe_url_resolves_relative_links_only_against_a_web_base() -> None:
    assert safe_url("/img/a.png", "https://example.org/feed.xml") == "https://example.org/img/a.png"
    assert safe_url("/img/a.png") is None
    assert safe_url("/img/a.png", "/home/me/feed.xml") is None
    assert safe_url("https://example.org/a?utm_source=x") == "https://example.org/a?utm_source=x"


@given(st.text(max_size=60), st.sampled_from([None, "https://example.org/dir/feed.xml"]))
def test_safe_url_only_ever_returns_http_links(url: str, base: str | None) -> None:
    result = safe_url(url, base)
    assert result is None or re.match(r"^https?://[^/\s]", result, re.I)


# ---------------------------------------------------------------------------
# sanitize_html


def test_sanitize_html_drops_scripts_styles_and_event_handlers() -> None:
    dirty = (
        '<p onclick="steal()" style="color:red" class="x">Hello <b onmouseover="x()">there</b></p>'
        "<script>alert(document.cookie)</script><style>body{display:none}</style>"
        '<img src="x" onerror="steal()"><iframe src="https://evil.example.net/"></iframe>'
        "<!-- a comment --><svg><script>alert(2)</script></svg>"
    )
    clean = sanitize_html(dirty)
    assert clean == "<p>Hello <b>there</b></p>"


def test_sanitize_html_makes_links_absolute_safe_and_noopener() -> None:
    html = (
        '<a href="/about">about</a> <a href="javascript:alert(1)">js</a> '
        '<a href="data:text/html,x">data</a> <a href="https://other.example.net/x" '
        'target="_blank" rel="opener">ext</a>'
    )
    clean = sanitize_html(html, "https://example.org/news/feed.xml")
    assert clean == (
        '<a href="https://example.org/about" rel="noopener">about</a> <a rel="noopener">js</a> '
        '<a rel="noopener">data</a> <a href="https://other.example.net/x" rel="noopener">ext</a>'
    )


def test_sanitize_html_drops_relative_links_without_a_base() -> None:
    assert sanitize_html('<a href="/about">about</a>') == '<a rel="noopener">about</a>'


def test_sanitize_html_keeps_the_allowlist() -> None:
    html = (
        "<blockquote><p><em>a</em> <strong>b</strong> <i>c</i> <b>d</b><br>e</p></blockquote>"
        "<ul><li>one</li></ul><ol><li>two</li></ol><h2>heading</h2><table><tr><td>cell</td></tr>"
        "</table>"
    )
    assert sanitize_html(html) == (
        "<blockquote><p><em>a</em> <strong>b</strong> <i>c</i> <b>d</b><br>e</p></blockquote>"
        "<ul><li>one</li></ul><ol><li>two</li></ol>headingcell"
    )


@given(
    st.lists(
        st.sampled_from(
            [
                "<script>",
                "</script>",
                "<style>",
                "<a href='javascript:x'>",
                '<a href="data:x">',
                "<p onclick='x'>",
                "<img src=x onerror=y>",
                "</p>",
                "text",
                "<b>",
                "&lt;script&gt;",
                "<a href=' java\tscript:x'>",
                "<iframe>",
                "<svg onload=x>",
                "\x00",
                "<!--",
                "-->",
            ]
        ),
        max_size=20,
    )
)
def test_sanitize_html_never_lets_active_content_through(parts: list[str]) -> None:
    clean = sanitize_html("".join(parts)).lower()
    assert "<script" not in clean
    assert "<style" not in clean
    assert "<img" not in clean and "<iframe" not in clean and "<svg" not in clean
    assert "javascript:" not in clean and "data:" not in clean
    assert not re.search(r"\son\w+\s*=", clean)
    assert "\x00" not in clean


# ---------------------------------------------------------------------------
# html_to_text and text_to_html


def test_html_to_text_decodes_entities_and_keeps_paragraphs() -> None:
    html = (
        "<p>Fish &amp; chips&nbsp;&#8212; &lsquo;quoted&rsquo;</p>\n\n"
        "<p>Second   paragraph\n spread over lines</p><ul><li>one</li><li>two</li></ul>"
        "<p>line<br>break</p><script>alert(1)</script><style>p{}</style>"
    )
    assert html_to_text(html) == (
        "Fish & chips — ‘quoted’\n\nSecond paragraph spread over lines\n\n"
        "- one\n- two\n\nline\nbreak"
    )


def test_html_to_text_of_plain_text_and_nothing() -> None:
    assert html_to_text("just  text") == "just text"
    assert html_to_text("") == ""


def test_text_to_html_escapes_and_makes_paragraphs() -> None:
    assert text_to_html("a < b\n\nsecond\nline") == "<p>a &lt; b</p><p>second line</p>"


# ---------------------------------------------------------------------------
# Dates


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-17T09:15:00Z", datetime(2026, 11, 17, 9, 15, tzinfo=UTC)),
        ("2026-11-17T10:15:00+01:00", datetime(2026, 11, 17, 9, 15, tzinfo=UTC)),
        ("2026-11-17T09:15:00", datetime(2026, 11, 17, 9, 15, tzinfo=UTC)),
        ("2026-11-17", datetime(2026, 11, 17, tzinfo=UTC)),
        ("Tue, 17 Nov 2026 09:15:00 GMT", datetime(2026, 11, 17, 9, 15, tzinfo=UTC)),
        ("Tue, 17 Nov 2026 04:15:00 -0500", datetime(2026, 11, 17, 9, 15, tzinfo=UTC)),
        ("next tuesday", None),
        ("", None),
        (None, None),
        (12345, None),
    ],
)
def test_parse_date(value: object, expected: datetime | None) -> None:
    parsed = parse_date(value)
    assert parsed == expected
    if parsed is not None:
        assert parsed.utcoffset() == timedelta(0)


def test_parse_date_is_aware_whatever_the_offset() -> None:
    parsed = parse_date("2026-03-29T01:30:00+05:45")
    assert parsed == datetime(2026, 3, 29, 1, 30, tzinfo=timezone(timedelta(hours=5, minutes=45)))
    assert parsed is not None and parsed.tzinfo is UTC


# ---------------------------------------------------------------------------
# Decoding


def test_decode_text_trusts_a_correct_declaration() -> None:
    assert decode_text("Café".encode("latin-1"), "iso-8859-1") == ("Café", None)
    assert decode_text("Café".encode(), "utf-8") == ("Café", None)
    assert decode_text(b"plain ascii", "latin-1") == ("plain ascii", None)


def test_decode_text_reads_utf8_declared_as_latin1_as_utf8() -> None:
    text, note = decode_text("Café — ‘quoted’".encode(), "ISO-8859-1")
    assert text == "Café — ‘quoted’"
    assert note == "declared ISO-8859-1 but the bytes are UTF-8; read as UTF-8"


def test_decode_text_reads_latin1_declared_as_utf8_as_windows_1252() -> None:
    text, note = decode_text("Café “smart” quotes".encode("cp1252"), "utf-8")
    assert text == "Café “smart” quotes"
    assert note == "declared UTF-8 but the bytes are not UTF-8; read as Windows-1252"


def test_decode_text_without_a_declaration() -> None:
    assert decode_text("Café".encode(), None) == ("Café", None)
    text, note = decode_text("Café".encode("latin-1"), None)
    assert text == "Café"
    assert note == "no encoding declared but the bytes are not UTF-8; read as Windows-1252"


def test_decode_text_honours_a_byte_order_mark_and_survives_unknown_names() -> None:
    assert decode_text("\ufeffCafé".encode("utf-16-le"), "latin-1") == ("Café", None)
    assert decode_text(b"\xef\xbb\xbfCaf\xc3\xa9", None) == ("Café", None)
    text, note = decode_text("Café".encode(), "klingon-8")
    assert text == "Café"
    assert note == "unknown encoding 'klingon-8'; read as utf-8"


def test_urls_lose_invisible_characters_and_encode_spaces() -> None:
    assert safe_url("https://example.org/a b\x00\ud800") == "https://example.org/a%20b"
    assert canonical_url("https://example.org/a b") == "https://example.org/a%20b"


def test_decode_text_refuses_a_utf16_claim_for_single_byte_text() -> None:
    text, note = decode_text(b"<rss>plain</rss>", "utf-16")
    assert text == "<rss>plain</rss>"
    assert note == "declared utf-16 but the bytes are not; read as utf-8"


def test_first_image_src() -> None:
    from digest.ingest.clean import first_image_src

    assert first_image_src('<p>x</p><img alt="" src="/a.png"><img src="/b.png">') == "/a.png"
    assert first_image_src("<p>no image</p>") is None
    assert first_image_src("<img src='x' " * 50_000 + ">") == "x"  # one huge tag


# ---------------------------------------------------------------------------
# What counts as the same article, and as a picture (issue 14)


def test_url_variants_are_scheme_www_and_trailing_slash() -> None:
    variants = url_variants("https://www.example.org/a/b/?x=1#p2")
    assert variants[0] == "https://www.example.org/a/b/?x=1#p2"
    assert set(variants) == {
        f"{scheme}://{host}/a/{path}?x=1#p2"
        for scheme in ("https", "http")
        for host in ("www.example.org", "example.org")
        for path in ("b/", "b")
    }
    assert url_variants("http://example.org/") == [
        "http://example.org/",
        "http://www.example.org/",
        "https://example.org/",
        "https://www.example.org/",
    ]
    assert url_variants("ftp://example.org/x") == ["ftp://example.org/x"]


def test_canonical_url_keeps_a_fragment_only_when_asked() -> None:
    url = "HTTPS://Example.org:443/2026/11/23?utm_source=x#brief-4"
    assert canonical_url(url) == "https://example.org/2026/11/23"
    assert canonical_url(url, keep_fragment=True) == "https://example.org/2026/11/23#brief-4"


def test_title_keys_fold_what_feeds_spell_differently() -> None:
    atom = title_key("Council&#8217;s new website: ‘Live’", "https://www.site.example/a/")
    assert atom == title_key("council's NEW website - 'live'", "http://site.example/?p=1")
    assert atom != title_key("Council's new website: 'Live'", "https://other.example/a")
    assert title_key("Untitled", "https://site.example/") is None
    assert title_key("News", "https://site.example/") is None  # too short to tell apart


@pytest.mark.parametrize(
    ("url", "width", "height", "picture"),
    [
        ("https://cdn.example.org/img/story.jpg", None, None, True),
        ("https://cdn.example.org/img/story.jpg", "1200", "630", True),
        ("https://cdn.example.org/img/story.jpg", "1", "1", False),
        ("https://cdn.example.org/img/icon.png", "48", None, False),
        ("https://cdn.example.org/img/icon.png", "99px", "300", False),
        ("https://pixel.wp.com/b.gif?host=x", None, None, False),
        ("https://stats.wordpress.com/b.gif", None, None, False),
        ("https://medium.com/_/stat?event=post.clientViewed", None, None, False),
        ("https://medium.com/_/img/story.jpg", None, None, True),
        ("http://feeds.feedburner.com/~r/Example/~4/abc", None, None, False),
        ("https://s.w.org/images/core/emoji/15.0.3/72x72/1f642.png", None, None, False),
        ("https://blog.example.org/wp-content/plugins/x/emoji/smile.png", None, None, False),
        ("https://blog.example.org/wp-includes/images/media/document.png", None, None, False),
        ("https://2.gravatar.com/avatar/9f4c?s=96", None, None, False),
        ("data:image/png;base64,AAAA", None, None, False),
    ],
)
def test_is_picture(url: str, width: str | None, height: str | None, picture: bool) -> None:
    assert is_picture(url, width, height) is picture


def test_content_picture_skips_trackers_icons_and_smilies() -> None:
    html = (
        '<p>Hi <img src="/emoji/1f642.png" class="wp-smiley" style="height: 1em">'
        '<img src="https://x.example/a.png" class="avatar avatar-96"></p>'
        '<img src="chart.png" style="width: 640px"><img src="https://pixel.wp.com/b.gif">'
    )
    assert content_picture(html, "https://blog.example.org/feed/") == (
        "https://blog.example.org/feed/chart.png"
    )
    assert content_picture('<img src="https://pixel.wp.com/b.gif" width="1" height="1">') is None


def test_unescape_markup_decodes_escaped_tags_once_and_leaves_mentions() -> None:
    assert unescape_markup('&lt;img src="a.png"&gt; text') == '<img src="a.png"> text'
    assert unescape_markup("&lt;p&gt;x&lt;/p&gt;") == "<p>x</p>"
    assert unescape_markup("use the &lt;table&gt; element") == "use the &lt;table&gt; element"
    assert unescape_markup("a &amp;lt;b") == "a &amp;lt;b"


def test_decode_entities_only_decodes_complete_references() -> None:
    assert decode_entities("Q&amp;A &#8216;x&#x2019; AT&T R&D &copy 5 &bogus;") == (
        "Q&A ‘x’ AT&T R&D &copy 5 &bogus;"
    )


def test_html_to_text_numbers_ordered_lists_and_nests() -> None:
    html = "<ol><li>one</li><li>two<ul><li>inner</li></ul></li></ol><ul><li>next list</li></ul>"
    assert html_to_text(html) == "1. one\n2. two\n  - inner\n\n- next list"


@pytest.mark.parametrize(
    "html",
    [
        "<p>One</p><p>Two &amp; three&nbsp;four</p>",
        "<ul><li>a<ul><li>b</li></ul></li><li>c<p>d</p></li></ul><ol><li>x</li><li>y</li></ol>",
        "<p>Line<br>break<br/>again</p><blockquote>Quote <em>it</em></blockquote>",
        "<a href='/x'><p>Block in a link</p></a><a>outer<a>inner</a></a>",
        "<p>Open <b>bold <i>both</p> after</b> tail",
        "<table><tr><td>cell</td><td>two</td></tr></table><div>div<h2>head</h2></div>",
        "text &lt;img src=x&gt; &#8217; &unknown; <script>bad()</script><style>x{}</style>",
        "<figure><img src='a.jpg'><figcaption>credit</figcaption></figure><p>after</p>",
        "<li>stray item</li><p><p>double</p>\u00a0<!-- c --><pre>  keep   me </pre>",
    ],
)
def test_text_of_sanitised_html_is_read_without_a_second_parse(html: str) -> None:
    """sanitize_html's output is html5ever's: reading its text directly gives exactly
    what html_to_text (which parses it once more) gives."""
    cleaned = sanitize_html(html, "https://a.example.org/")
    assert sanitized_to_text(cleaned) == html_to_text(cleaned)


_MARKUP = st.sampled_from(
    ["<p>", "</p>", "<ul>", "</ul>", "<ol>", "<li>", "</li>", "<br>", "<a href='/x'>", "</a>",
     "<b>", "</b>", "<blockquote>", "</blockquote>", "<div>", "</div>", "<table><tr><td>",
     "<script>", "</script>", "&amp;", "&nbsp;", "&lt;p&gt;", "<!--", "-->", " ", "\n"]
)  # fmt: skip


@given(st.lists(st.one_of(_MARKUP, st.text(max_size=8)), max_size=30))
def test_text_of_any_sanitised_html_needs_no_second_parse(pieces: list[str]) -> None:
    cleaned = sanitize_html("".join(pieces), "https://a.example.org/")
    assert sanitized_to_text(cleaned) == html_to_text(cleaned)

"""Feed formats, kind sniffing and hostile feeds, parsed from real bytes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest.errors import SourceError
from digest.ingest import parse_source
from digest.ingest.feeds import Parsed
from digest.ingest.http import Fetched

DATA = Path(__file__).parent / "data" / "ingest"
FEED_URL = "https://news.example.org/feeds/main.xml"


def load(name: str, location: str | None = None, charset: str | None = None) -> Fetched:
    path = DATA / name
    return Fetched(location=location or str(path), body=path.read_bytes(), charset=charset)


def parse(body: bytes, location: str = "/tmp/feed.xml", expect: str = "auto") -> Parsed:
    return parse_source(Fetched(location=location, body=body), expect)


def rss(items: str, *, decl: str = '<?xml version="1.0" encoding="utf-8"?>') -> str:
    return (
        f'{decl}<rss version="2.0"><channel><title>T</title>'
        f"<link>https://site.example.org/</link>{items}</channel></rss>"
    )


# ---------------------------------------------------------------------------
# Formats


def test_rss_091_with_netscape_doctype() -> None:
    parsed = parse_source(load("rss091.xml"))
    assert parsed.kind == "rss"
    [entry] = parsed.entries
    assert entry.url == "https://news.example.org/2026/11/councils-publish-digital-plans"
    assert entry.title == "Councils publish digital plans"
    assert entry.summary_text == "Most English councils now publish a digital strategy."
    assert entry.published_at is None


def test_rss_092_keeps_html_in_the_summary() -> None:
    [entry] = parse_source(load("rss092.xml")).entries
    assert (
        entry.summary_html == "<p>Twelve care providers are testing a <em>shared</em> record.</p>"
    )
    assert entry.summary_text == "Twelve care providers are testing a shared record."
    assert entry.categories == ["Adult Social Care"]


def test_rss_10_rdf_with_dublin_core() -> None:
    parsed = parse_source(load("rss10.rdf"))
    assert parsed.kind == "rss"
    [entry] = parsed.entries
    assert entry.title == "Change fatigue in the civil service"
    assert entry.author == "Priya Shah"
    assert entry.categories == ["Change Management"]
    assert entry.published_at == datetime(2026, 11, 17, 9, 30, tzinfo=UTC)


def test_rss_20_every_field() -> None:
    parsed = parse_source(load("rss20.xml", FEED_URL))
    assert parsed.kind == "rss"
    assert parsed.warnings == []
    first, second, undated = parsed.entries
    assert first.url == "https://news.example.org/2026/11/digital-government-slow?ref=home"
    assert first.guid == "tag:news.example.org,2026:article-101"
    assert first.title == "Progress on digital government ‘painfully slow’"
    assert first.summary_html == (
        "<p>A new report argues the digitisation of government is happening "
        "<strong>too slowly</strong>.</p><p>Read the "
        '<a href="https://news.example.org/reports/igov" rel="noopener">full report</a>.</p>'
    )
    assert first.summary_text == (
        "A new report argues the digitisation of government is happening too slowly."
        "\n\nRead the full report."
    )
    assert first.author == "Sam Jones"
    assert first.categories == ["Digital Transformation", "Data & Security"]
    assert first.image_url == "https://news.example.org/img/whitehall.jpg"
    assert first.published_at == datetime(2026, 11, 17, 9, 15, tzinfo=UTC)
    # A relative link and enclosure resolve against the feed's own URL.
    assert second.url == "https://news.example.org/2026/11/web-chat"
    assert second.image_url == "https://news.example.org/img/webchat.png"
    assert second.author == "Amira Okafor"
    assert second.published_at == datetime(2026, 11, 18, 14, 0, tzinfo=UTC)
    assert undated.published_at is None


def test_relative_links_in_a_local_feed_resolve_against_its_channel_link() -> None:
    body = rss("<item><title>x</title><link>/a/b?utm_medium=x</link></item>").encode()
    [entry] = parse(body).entries
    assert entry.url == "https://site.example.org/a/b"


def test_relative_links_resolve_against_the_feed_url_when_fetched() -> None:
    body = rss("<item><title>x</title><link>story.html</link></item>").encode()
    [entry] = parse(body, "https://cdn.example.net/feeds/news.xml").entries
    assert entry.url == "https://cdn.example.net/feeds/story.html"


def test_atom_10() -> None:
    parsed = parse_source(load("atom.xml"))
    assert parsed.kind == "atom"
    slow, backups = parsed.entries
    # Same article as in rss20.xml: host case, utm_* and fragment do not matter.
    assert slow.url == "https://news.example.org/2026/11/digital-government-slow?ref=home"
    assert slow.title == "Progress on digital government ‘painfully slow’"  # type="html"
    assert slow.published_at == datetime(2026, 11, 17, 9, 15, tzinfo=UTC)
    assert slow.categories == ["Digital Transformation"]  # label preferred over term
    assert backups.author == "Newsroom"  # inherited from the feed
    assert backups.published_at == datetime(2026, 11, 19, 8, 0, tzinfo=UTC)  # <updated>
    assert backups.summary_html == "<p>Test your restores, not just your backups.</p>"
    assert backups.image_url == "https://news.example.org/img/fire.jpg"  # first <img>


def test_json_feed_10() -> None:
    parsed = parse_source(load("jsonfeed10.json"))
    assert parsed.kind == "jsonfeed"
    [entry] = parsed.entries
    assert entry.guid == "7"
    assert entry.url == "https://community.example.org/notes/volunteer-drivers"
    assert entry.summary_html == (
        "<p>Volunteer drivers now cover 40 routes.</p><p>The scheme needs more help in winter.</p>"
    )
    assert entry.author == "Community desk"
    assert entry.categories == ["adult social care"]
    assert entry.image_url == "https://community.example.org/img/drivers.jpg"  # banner, resolved
    assert entry.published_at == datetime(2026, 11, 16, 12, 45, tzinfo=UTC)


def test_json_feed_11() -> None:
    parsed = parse_source(load("jsonfeed11.json"))
    one_login, linked = parsed.entries
    assert one_login.url == "https://community.example.org/notes/one-login"
    assert one_login.summary_text == "Residents will sign in once for bins, benefits and parking."
    assert one_login.author == "Lee Chen, Ola Berg"
    assert one_login.image_url == "https://community.example.org/img/login.png"
    # external_url when there is no url; content_html sanitised; title from the text.
    assert linked.url == "https://elsewhere.example.net/story"
    assert linked.summary_html == (
        '<p>A linked story <a rel="noopener">bad</a> '
        '<a href="https://community.example.org/about" rel="noopener">about</a></p>'
    )
    assert linked.title == "A linked story bad about"
    assert linked.author == "Community desk"
    # The item without any link and the item that is not an object are skipped, and said so.
    assert parsed.warnings == []
    assert [(d.action, d.title, d.reason) for d in parsed.dropped] == [
        ("skipped", "No link at all", "no usable http(s) link: it has no url or external_url"),
        ("skipped", "item 4", "item 4 is not a JSON object"),
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": {}}', '"items" must be a list'),
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": [', "truncated JSON"),
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": [}', "malformed JSON"),
        (b'{"name": "package.json"}', "JSON, but not a JSON Feed"),
        (b"[1, 2, 3]", "JSON, but not a JSON Feed"),
        (b"[" * 100_000 + b"]" * 100_000, "malformed JSON"),
    ],
)
def test_broken_json_feeds(body: bytes, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        parse(body)


def test_json_feed_field_types_are_checked() -> None:
    body = (
        b'{"version": "https://jsonfeed.org/version/1.1", "items": [{"id": ["x"], '
        b'"url": "https://a.example.org/1", "title": 5, "tags": 7, '
        b'"image": {"bad": 1}, "date_published": 20261118, "authors": "me", '
        b'"summary": "\\u0000nul\\u0007 and bell"}]}'
    )
    [entry] = parse(body).entries
    assert entry.guid is None
    assert entry.title == "nul and bell"
    assert entry.categories == []
    assert entry.image_url is None
    assert entry.published_at is None
    assert entry.author == ""
    assert "\x00" not in entry.summary_html + entry.summary_text


# ---------------------------------------------------------------------------
# Sniffing and kinds


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty"),
        (b"  \n\t ", "empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64), "looks like a PNG image"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "looks like a JPEG image"),
        (b"%PDF-1.7\n", "looks like a PDF document"),
        (bytes(range(256)) * 4, "binary data"),
        (b"Hello, this is just text.", "text starting 'Hello, this is just text.'"),
        (b'<?xml version="1.0"?><urlset><url/></urlset>', "root element is <urlset>"),
    ],
)
def test_things_that_are_not_feeds_or_pages(body: bytes, message: str) -> None:
    with pytest.raises(SourceError, match="^" + ("empty" if message == "empty" else "not a")) as e:
        parse(body)
    assert message in str(e.value)


def test_sniffing_looks_at_bytes_not_names() -> None:
    assert parse((DATA / "atom.xml").read_bytes(), "/tmp/feed.json").kind == "atom"
    body = (DATA / "jsonfeed11.json").read_bytes()
    assert parse(body, "https://x.example.org/feed.xml").kind == "jsonfeed"


def test_configured_kind_must_match() -> None:
    with pytest.raises(SourceError, match='kind = "page" but this is an RSS feed'):
        parse((DATA / "rss20.xml").read_bytes(), expect="page")
    with pytest.raises(SourceError, match='kind = "feed" but this is an HTML page'):
        parse((DATA / "page-og.html").read_bytes(), expect="feed")
    assert parse((DATA / "rss20.xml").read_bytes(), expect="feed").kind == "rss"


def test_utf16_feed_with_byte_order_mark() -> None:
    text = rss("<item><title>Café</title><link>https://a.example.org/c</link></item>")
    body = text.replace('encoding="utf-8"', 'encoding="utf-16"').encode("utf-16")
    [entry] = parse(body).entries
    assert entry.title == "Café"


# ---------------------------------------------------------------------------
# Hostile XML


@pytest.mark.parametrize("name", ["billion-laughs.xml", "xxe.xml"])
def test_entity_declarations_are_refused_before_parsing(name: str) -> None:
    with pytest.raises(SourceError, match=r"refused: the XML declares its own entities"):
        parse_source(load(name))


def test_entity_declarations_after_a_long_prolog_are_still_refused() -> None:
    body = (
        b'<?xml version="1.0"?>\n<!--' + b"x" * 10_000 + b"-->\n"
        b'<!DOCTYPE rss [<!ENTITY a "aaaa">]>\n'
        + rss("<item><title>&a;</title></item>", decl="").encode()
    )
    with pytest.raises(SourceError, match=r"^refused: the XML declares its own entities"):
        parse(body)


def test_truncated_feed_is_refused_whole() -> None:
    with pytest.raises(SourceError, match=r"truncated XML: .* before its closing </rss>"):
        parse_source(load("truncated.xml"))


def test_malformed_but_complete_feed_keeps_what_parsed() -> None:
    parsed = parse_source(load("malformed.xml"))
    [entry] = parsed.entries
    assert entry.title == "Fish & chips for the care home"
    assert parsed.warnings == [
        "malformed XML (not well-formed (invalid token) at line 7); "
        "kept the entries that could be read"
    ]


def test_malformed_feed_without_entries_is_an_error() -> None:
    with pytest.raises(SourceError, match=r"malformed XML: .*; no entries found"):
        parse_source(load("garbage.xml"))


def test_feed_with_no_items_is_fine() -> None:
    parsed = parse(rss("").encode())
    assert parsed.entries == []
    assert parsed.warnings == []


def test_script_style_handlers_and_bad_links_are_sanitised_away() -> None:
    parsed = parse_source(load("hostile-html.xml"))
    [entry] = parsed.entries  # the javascript: article link is skipped, and said so
    [skipped] = parsed.dropped
    assert (skipped.action, skipped.reason) == (
        "skipped",
        "no usable http(s) link: its link 'javascript:alert(1)' is not a web address",
    )
    assert entry.title == "Summary full of tricks"
    html = entry.summary_html
    for bad in ("<script", "<style", "onclick", "onmouseover", "onerror", "javascript:",
                "data:", "vbscript:", "<iframe", "<img", "style=", "evil.example.net"):  # fmt: skip
        assert bad not in html.lower(), bad
    assert (
        '<a href="https://hostile.example.org/safe/page" rel="noopener">relative link</a>' in html
    )
    assert html.startswith("<p>Hello <b>there</b></p>")
    assert "document.cookie" not in entry.summary_text
    assert entry.image_url == "https://hostile.example.org/x"  # javascript: media skipped


def test_utf8_bytes_declared_as_latin1_are_read_as_utf8() -> None:
    body = rss(
        "<item><title>Café — ‘quoted’</title><link>https://a.example.org/c</link></item>",
        decl='<?xml version="1.0" encoding="ISO-8859-1"?>',
    ).encode("utf-8")
    parsed = parse(body)
    assert parsed.entries[0].title == "Café — ‘quoted’"
    assert parsed.warnings == [
        "encoding: declared ISO-8859-1 but the bytes are UTF-8; read as UTF-8"
    ]


def test_latin1_bytes_declared_as_utf8_are_read_as_windows_1252() -> None:
    body = rss(
        "<item><title>Café “smart”</title><link>https://a.example.org/c</link></item>"
    ).encode("cp1252")
    parsed = parse(body)
    assert parsed.entries[0].title == "Café “smart”"
    assert parsed.warnings == [
        "encoding: declared UTF-8 but the bytes are not UTF-8; read as Windows-1252"
    ]


def test_missing_declaration() -> None:
    item = "<item><title>Café</title><link>https://a.example.org/c</link></item>"
    utf8 = parse(rss(item, decl="").encode("utf-8"))
    assert (utf8.entries[0].title, utf8.warnings) == ("Café", [])
    latin = parse(rss(item, decl="").encode("latin-1"))
    assert latin.entries[0].title == "Café"
    assert latin.warnings == [
        "encoding: no encoding declared but the bytes are not UTF-8; read as Windows-1252"
    ]


def test_http_charset_is_one_of_the_claims() -> None:
    item = "<item><title>Café</title><link>https://a.example.org/c</link></item>"
    body = rss(item, decl='<?xml version="1.0" encoding="utf-8"?>').encode("utf-8")
    parsed = parse_source(Fetched(location=FEED_URL, body=body, charset="iso-8859-1"))
    assert (parsed.entries[0].title, parsed.warnings) == ("Café", [])


def test_atom_xml_base_is_honoured_for_summary_links() -> None:
    body = b"""<?xml version="1.0" encoding="utf-8"?>
    <feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://site.example.org/blog/">
      <title>t</title><id>urn:x</id><updated>2026-11-18T00:00:00Z</updated>
      <entry xml:base="https://other.example.org/posts/">
        <title>x</title><id>urn:y</id><updated>2026-11-18T00:00:00Z</updated>
        <link href="one"/>
        <summary type="html">&lt;a href="two"&gt;two&lt;/a&gt;</summary>
      </entry>
    </feed>"""
    [entry] = parse(body, FEED_URL).entries
    assert entry.url == "https://other.example.org/posts/one"
    assert entry.summary_html == (
        '<a href="https://other.example.org/posts/two" rel="noopener">two</a>'
    )


def test_large_broken_xml_is_refused_rather_than_read_leniently() -> None:
    junk = "<p b='" * 200_000  # 1.2 MB of broken markup
    body = rss(f"<item><title>t &amp; t</title>{junk}<link>https://a.example.org/</link></item>")
    with pytest.raises(SourceError, match=r"too large to read leniently"):
        parse(body.encode())


# ---------------------------------------------------------------------------
# Real-world feeds (issue 14): nothing lost or merged silently


def test_fragment_urls_keep_posts_with_their_own_guids_apart() -> None:
    """A site publishing several posts a day on one page (``/2026/11/24/#brief-4418``,
    each with its own GUID) keeps one article per post, not one per day."""
    parsed = parse_source(load("liveblog-fragments.rss", "https://briefs.civictech.example/feed/"))
    assert parsed.dropped == []
    assert [
        e.url.removeprefix("https://briefs.civictech.example/2026/11/") for e in parsed.entries
    ] == [
        "24/#brief-4418",
        "24/#brief-4417",
        "24/#brief-4416",
        "23/#brief-4415",
        "23/#brief-4414",
        "23/#brief-4413",
        "22/weekend-reading/",  # a lone "#respond" still goes: it tells nothing apart
    ]


def test_sponsor_slots_sharing_a_link_are_merged_and_said_so() -> None:
    parsed = parse_source(load("sponsor-slots.rss"))
    assert [e.title for e in parsed.entries] == [
        "Councils told to publish their cloud exit plans",
        "Sponsored: Book your place at Local Gov Digital Live",
        "Wales pilots one login for benefits and council tax",
    ]
    [merged] = parsed.dropped
    assert merged.action == "merged"
    assert merged.title == "Partner content: Why councils are choosing Local Gov Digital Live"
    assert merged.guid == "localdigital-sponsor-20261118-b"
    assert merged.reason.startswith(
        "same link as “Sponsored: Book your place at Local Gov Digital Live”, which is kept"
    )


def test_an_empty_href_under_xml_base_is_no_link() -> None:
    """WordPress's ``<link href=""/>`` must not become the feed file's own URL: the entry
    falls back to its http(s) ``<id>``, or is skipped with its reason."""
    parsed = parse_source(
        load("wp-atom-empty-href.xml", "https://digitalcouncil.example.org/feed/atom/")
    )
    assert [e.url for e in parsed.entries] == [
        "https://digitalcouncil.example.org/?p=3021",
        "https://digitalcouncil.example.org/?p=3017",
        "https://digitalcouncil.example.org/2026/11/17/service-standard-assessments/",
    ]
    assert not any("wp-atom.php" in e.url for e in parsed.entries)
    [skipped] = parsed.dropped
    assert (skipped.action, skipped.title) == ("skipped", "Draft: our data strategy, for comment")
    assert skipped.reason == (
        "no usable http(s) link: it has no link and its id "
        "'tag:digitalcouncil.example.org,2026-11-18:/drafts/data-strategy' is not a web address"
    )


def test_an_entry_whose_only_link_is_a_pdf_is_an_article() -> None:
    parsed = parse_source(load("papers-pdf.atom"))
    assert parsed.dropped == []
    strategy, minutes = parsed.entries
    assert strategy.url == (
        "https://democracy.northbridge.example.gov.uk/documents/s41877/"
        "Digital%20strategy%202027-2030.pdf"
    )
    assert strategy.title == "Digital strategy 2027–2030: report to Cabinet"
    # With an HTML alternate as well, the HTML page is the article's link.
    assert (
        minutes.url == "https://democracy.northbridge.example.gov.uk/ieListDocuments.aspx?MId=9921"
    )


def test_json_feed_as_published_in_the_wild() -> None:
    """An http version URL, HTML entities in plain-text titles and summaries, and tags as
    one comma-separated string."""
    parsed = parse_source(load("jsonfeed-wild.json"))
    interview, rules = parsed.entries
    assert interview.title == "Q&A: the new digital minister on ‘boring’ technology"
    assert interview.categories == ["Interviews", "Digital Transformation", "Ministers"]
    assert interview.author == "Leah Cohen"
    assert (
        interview.image_url
        == "https://www.govwatch.example.com/wp-content/uploads/2026/11/minister.jpg"
    )
    assert rules.title == "Procurement rules & R&D: what changes in January"  # no entity: as is
    assert rules.summary_text == "Suppliers & buyers get six weeks to adjust."
    assert rules.summary_html == "<p>Suppliers &amp; buyers get six weeks to adjust.</p>"
    assert rules.categories == ["Procurement"]


def test_a_truncated_json_feed_says_truncated() -> None:
    with pytest.raises(SourceError) as caught:
        parse_source(load("jsonfeed-truncated.json"))
    message = str(caught.value)
    assert message.startswith("truncated JSON: the document ends before it is complete")
    assert "at at" not in message and "at line 17 column 18" in message


def test_a_json_error_in_the_middle_is_malformed_without_at_at() -> None:
    body = b'{"version": "https://jsonfeed.org/version/1.1", "items": [{"title": "a\nb"}]}'
    with pytest.raises(SourceError) as caught:
        parse(body)
    assert str(caught.value) == "malformed JSON: Invalid control character at line 1 column 71"


def test_an_rss_feed_with_an_xhtml_doctype_is_a_feed() -> None:
    parsed = parse_source(load("rss-xhtml-doctype.xml"))
    assert parsed.kind == "rss"
    assert [e.title for e in parsed.entries] == [
        "New defibrillator outside the village hall",
        "Minutes of the November meeting",
    ]


@pytest.mark.parametrize(
    ("name", "encoding", "title"),
    [
        ("koi8-r-undeclared.rss", "KOI8-R", "Мэрия запустила единое приложение для жителей"),
        ("euc-jp-undeclared.rss", "EUC-JP", "行政手続きのオンライン化を来年度から拡大"),
        ("windows-1255-undeclared.rss", "windows-1255", "העירייה השיקה אפליקציה חדשה לתושבים"),
    ],
)
def test_undeclared_legacy_encodings_are_detected(name: str, encoding: str, title: str) -> None:
    parsed = parse_source(load(name))
    assert parsed.entries[0].title == title
    assert parsed.warnings == [
        f"encoding: no encoding declared but the bytes are not UTF-8; read as {encoding}"
    ]


def test_a_latin_declaration_on_cyrillic_bytes_is_corrected() -> None:
    body = (
        (DATA / "koi8-r-undeclared.rss")
        .read_bytes()
        .replace(b'<?xml version="1.0"?>', b'<?xml version="1.0" encoding="ISO-8859-1"?>')
    )
    parsed = parse(body)
    assert parsed.entries[0].categories == ["Цифровые услуги"]
    assert parsed.warnings == [
        "encoding: declared ISO-8859-1 but the text is KOI8-R; read as KOI8-R"
    ]


# ---------------------------------------------------------------------------
# Thumbnails (issue 14.2): a picture of the article, never a tracker or an icon


def test_medium_tracking_pixels_are_not_thumbnails() -> None:
    with_figure, without = parse_source(load("medium.rss")).entries
    assert with_figure.image_url == (
        "https://cdn-images-1.medium.com/max/1024/1*q3C0fZ9pJd2YxH8kLmN1Qw.jpeg"
    )
    assert without.image_url is None  # only medium.com/_/stat?event=… in it
    assert with_figure.summary_text.startswith("Bereavement services")  # no photo caption


def test_wordpress_emoji_icons_pixels_and_avatars_are_not_thumbnails() -> None:
    chart, emoji_only, featured = parse_source(load("wordpress-com.rss")).entries
    # Skipped: the gravatar media:content, an emoji, a 48×64 file-type icon; then the chart.
    assert chart.image_url == (
        "https://libraryfutures.example.blog/wp-content/uploads/2026/11/loans-chart.png?w=1024"
    )
    assert emoji_only.image_url is None  # an emoji, pixel.wp.com and the gravatar: nothing
    # media:thumbnail first; the feedburner pixel in the description is never a candidate.
    assert featured.image_url == (
        "https://libraryfutures.example.blog/wp-content/uploads/2026/11/reading-group.jpg?w=300"
    )


def test_podcast_episode_art_and_show_note_lists() -> None:
    """Show notes keep their lists: <ul>/<ol> in the HTML, ``- ``/``1. `` lines in the text."""
    episode, older = parse_source(load("podcast.rss")).entries
    assert episode.image_url == "https://media.hostingco.example/shows/theservicedesk/ep41-1400.jpg"
    assert "<ul> <li>Why the paper form still matters</li>" in episode.summary_html
    assert "</li> </ol>" in episode.summary_html
    assert episode.summary_text == (
        "Aisha Bello led the redesign of Northbridge's council tax service. "
        "We talk about what changed.\n\n"
        "In this episode:\n\n"
        "- Why the paper form still matters\n"
        "- Testing with people who pay in cash\n"
        "- What the call centre noticed first\n\n"
        "Links:\n\n"
        "1. The new service\n"
        "2. The research write-up"
    )
    assert older.image_url is None  # no episode art; the audio enclosure is no picture


# ---------------------------------------------------------------------------
# Issue 13.6: what the reader sees comes from what the site published


def test_escaped_markup_in_an_atom_html_summary_is_decoded_once() -> None:
    """``&lt;img …&gt;`` escaped once too often used to show as literal ``<img src=…>``
    text in both the HTML and the text email."""
    panels, drafts, markup = parse_source(
        load("atom-escaped-summary.xml", "https://opengovlab.example.org/atom.xml")
    ).entries
    for entry in (panels, drafts):
        assert "<img" not in entry.summary_text and "&lt;img" not in entry.summary_html
    assert panels.summary_text == (
        "Six months in, 240 residents have shaped three policies. "
        "Here is what they changed & what they did not."
    )
    assert panels.image_url == "https://opengovlab.example.org/media/panel-session.jpg"
    assert drafts.summary_text == (
        "Every draft is public, from the first outline to the version the board signs."
    )
    assert drafts.image_url == "https://opengovlab.example.org/media/drafts.png"
    # Text that merely mentions a tag is left as the site wrote it.
    assert markup.summary_text == "We replaced every <table> used for layout with CSS grid."

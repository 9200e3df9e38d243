"""The editor's preview: the page and its frames, dark mode, checks, live reload, test copies."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from digest.web import WebOptions
from digest.web.lint import (
    GMAIL_CLIP_BYTES,
    check_headers,
    check_html,
    check_locale,
    check_sections,
    check_size,
    link_problem,
)
from digest.web.preview import force_dark, framed
from tests.support import web as support
from tests.support.web import client_for, csrf_of, outbox_messages, sign_in, web_world
from tests.support.world import World

sqlite_template = support.sqlite_template
fast_sqlite_url = support.fast_sqlite_url

QUERY = {"newsletter": "weekly", "as_of": "2026-11-23"}


@pytest.fixture
def lite(fast_sqlite_url: str, tmp_path: Path) -> World:
    return web_world(fast_sqlite_url, tmp_path)


@pytest.fixture
def overrides(tmp_path: Path) -> Path:
    folder = tmp_path / "my-templates"
    (folder / "partials").mkdir(parents=True)
    return folder


def test_the_preview_page_shows_everything_an_editor_checks(lite: World) -> None:
    with client_for(lite, open_preview=True) as client:
        page = client.get("/preview", params=QUERY)
    assert page.status_code == 200
    text = page.text
    assert text.count("<h1>") == 1
    assert "<dt>Subject</dt><dd>The Weekly: Policy story 1</dd>" in text
    assert "<dt>Preheader</dt><dd>Policy story 1 · Policy story 0 · Data story 1</dd>" in text
    assert "2026-W47, 2026-11-16 to 2026-11-22" in text
    assert re.search(r"\d+\.\d KB of 102 KB \(\d+ % of Gmail", text)
    assert 'class="desktop"' in text and text.count('class="mobile') == 2
    assert "mode=dark" in text and 'sandbox="allow-popups' in text
    assert "Hi Reader, here is what happened this week." in text  # the text twin
    assert 'action="/preview/send-test"' in text and 'for="test-to"' in text
    assert 'data-live-reload="/preview/events?since=' in text
    assert '<script src="/static/preview.js" defer></script>' in text
    assert "No problems found." in text
    # the variants on offer: everything and each section alone
    offered = re.findall(r'<option value="([^"]+)"[^>]*>([^<]*)<', text)[1:]
    assert [label for _, label in offered] == [
        "Everything (all sections)",
        "Only Policy",
        "Only Data",
        "Only Care",
    ]
    assert offered[0][0] == "all"
    assert all(re.fullmatch(r"s-[0-9a-f]{10}", key) for key, _ in offered[1:])


def test_frames_are_email_bodies_with_their_own_policy(lite: World) -> None:
    with client_for(lite, open_preview=True) as client:
        light = client.get("/preview/frame", params={**QUERY, "variant": "all"})
        dark = client.get("/preview/frame", params={**QUERY, "variant": "all", "mode": "dark"})
        page = client.get("/preview", params=QUERY)
    csp = light.headers["content-security-policy"]
    assert "frame-ancestors 'self'" in csp and "script-src" not in csp
    assert light.headers["x-frame-options"] == "SAMEORIGIN"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert "@media (prefers-color-scheme: dark)" in light.text
    assert "prefers-color-scheme: dark" not in dark.text and "color-scheme: dark;" in dark.text
    assert '<base target="_blank">' in light.text
    assert "Hi Reader," in light.text


def test_force_dark_and_framed_rewrite_only_what_they_must() -> None:
    html = (
        "<html><head><style>@media (prefers-color-scheme: dark) { a { color: red } }"
        "@media screen and (prefers-color-scheme:light) { a { color: blue } }</style></head>"
        "<body>x</body></html>"
    )
    dark = force_dark(html)
    assert "@media (min-width: 0px) { a { color: red } }" in dark
    assert "@media screen and (max-width: 0px)" in dark
    assert dark.index(":root { color-scheme: dark; }") < dark.index("</head>")
    assert framed(html).startswith('<html><head><base target="_blank">')


def test_the_preview_is_part_of_the_admin_console(lite: World) -> None:
    with client_for(lite) as client:
        assert client.get("/preview", params=QUERY).status_code == 401
        assert client.get("/preview/frame", params=QUERY).status_code == 401
        assert client.get("/preview/events").status_code == 401
        assert client.get("/api/preview", params=QUERY).status_code == 401
        sign_in(client)
        assert client.get("/preview", params=QUERY).status_code == 200


def test_checks_find_missing_alt_bad_links_and_empty_pieces(lite: World, overrides: Path) -> None:
    (overrides / "partials" / "masthead.mjml.j2").write_text(
        "<mj-section><mj-column><mj-text>"
        '<img src="https://img.example.org/logo.png"> '
        '<a href="javascript:alert(1)">bad</a> <a href="#top">top</a> '
        '<a href="https://ok.example.org/"><img src="https://x.example.org/i.png" alt=""></a>'
        "</mj-text></mj-column></mj-section>"
    )
    (overrides / "digest.preheader.txt.j2").write_text("")
    lite.app.settings.templates = overrides
    with client_for(lite, open_preview=True) as client:
        report = client.get("/api/preview", params=QUERY).json()
    messages = [(f["level"], f["message"]) for f in report["findings"]]
    assert ("warning", "the preheader is empty: inboxes will show body text") in messages
    assert ("warning", "image without alt text: https://img.example.org/logo.png") in messages
    assert any(lvl == "error" and "javascript: scheme" in m for lvl, m in messages)
    assert any(lvl == "error" and "'#top'" in m for lvl, m in messages)
    assert any(lvl == "warning" and "link without text" in m for lvl, m in messages)


def test_lint_rules() -> None:
    assert link_problem("https://example.org/a?b=c") is None
    assert link_problem("mailto:news@example.org") is None
    assert link_problem(None) == "has no href"
    assert link_problem("  ") == "has an empty href"
    assert "relative" in (link_problem("/u/x") or "")
    assert "spaces" in (link_problem("https://example.org/a b") or "")
    assert "placeholder" in (link_problem("https://x.org/~~digest.html.web_url~~") or "")
    assert "not a valid URL" in (link_problem("http://[::1") or "")
    assert "has no host" in (link_problem("https:///path") or "")
    assert check_size(80 * 1024) == []
    assert check_size(95 * 1024)[0].level == "warning"
    assert check_size(GMAIL_CLIP_BYTES + 1)[0].level == "error"
    assert check_headers("", "x")[0].level == "error"
    assert check_headers("x" * 90, "x")[0].level == "note"
    assert [f.message.split(":")[1].strip() for f in check_sections(["A", "B"], ["A"])] == [
        "'B' has no articles this period; readers who chose only it get no email"
    ]
    assert check_html('<a href="https://a.example">A</a><img src="x" alt="x">') == []
    assert check_locale("de_AT") == [] and check_locale("en_US") == []
    (mixed,) = check_locale("sk_SK")
    assert mixed.level == "warning"
    assert mixed.message == (
        "locale: no interface translation for 'sk_SK' (translations: de, en, es, fr, nl); "
        "dates are in Slovak, interface words in English"
    )


def test_a_broken_template_is_shown_and_the_page_keeps_watching(
    lite: World, overrides: Path
) -> None:
    (overrides / "digest.subject.txt.j2").write_text("{{ newsletter.title ")
    lite.app.settings.templates = overrides
    with client_for(lite, open_preview=True) as client:
        page = client.get("/preview", params=QUERY)
        api = client.get("/api/preview", params=QUERY)
    assert page.status_code == 200
    assert "Nothing to show:" in page.text and "digest.subject.txt.j2, line 1" in page.text
    assert "data-live-reload=" in page.text
    assert api.status_code == 400 and "digest.subject.txt.j2, line 1" in api.json()["error"]


def test_html_mrml_cannot_read_is_shown_with_what_to_fix(lite: World, overrides: Path) -> None:
    """MRML renders the whole document, the HTML inside mj-text included: HTML it cannot
    read is no email at all, and the preview quotes it."""
    (overrides / "partials" / "footer.mjml.j2").write_text(
        "<mj-section><mj-column><mj-text><p>Thanks for reading <!-- a note</p>"
        "</mj-text></mj-column></mj-section>"
    )
    lite.app.settings.templates = overrides
    with client_for(lite, open_preview=True) as client:
        page = client.get("/preview", params=QUERY)
        api = client.get("/api/preview", params=QUERY)
    assert page.status_code == 200 and "Nothing to show:" in page.text
    said = api.json()["error"]
    assert api.status_code == 400
    assert said.startswith("digest.mjml.j2: the HTML inside an mj-text is not valid (")
    assert "'<p>Thanks for reading <!-- a note</p>'; close its tags and comments" in said


def test_a_locale_with_no_interface_translation_is_a_finding(lite: World) -> None:
    config = Path(lite.app.settings.config_path)
    config.write_text(config.read_text().replace('timezone = "', 'locale = "sk_SK"\ntimezone = "'))
    with client_for(lite, open_preview=True) as client:
        found = client.get("/api/preview", params=QUERY).json()["findings"]
    assert {
        "level": "warning",
        "message": "locale: no interface translation for 'sk_SK' (translations: de, en, es, "
        "fr, nl); dates are in Slovak, interface words in English",
    } in found


def test_an_empty_period_or_unknown_variant_says_so(lite: World) -> None:
    with client_for(lite, open_preview=True) as client:
        empty = client.get("/preview", params={**QUERY, "as_of": "2020-01-06"})
        variant = client.get("/api/preview", params={**QUERY, "variant": "s-nope"})
        date = client.get("/preview", params={**QUERY, "as_of": "23/11/2026"})
        far = client.get("/api/preview", params={**QUERY, "as_of": "0001-01-01"})
    assert "has no articles" in empty.text
    assert variant.status_code == 404 and "choose one of all" in variant.json()["error"]
    assert "is not a date" in date.text
    assert far.status_code == 400


def test_live_reload_tells_the_page_when_a_template_or_the_config_changes(
    lite, overrides: Path
) -> None:
    lite.app.settings.templates = overrides
    options = WebOptions(live_reload_poll=0.05, live_reload_max=0.2)
    with client_for(lite, open_preview=True, options=options) as client:
        page = client.get("/preview", params=QUERY)
        events = re.search(r'data-live-reload="([^"]+)"', page.text)
        assert events is not None
        url = events.group(1)
        quiet = client.get(url)
        assert quiet.status_code == 200 and quiet.headers["content-type"].startswith(
            "text/event-stream"
        )
        assert quiet.text == "retry: 1000\n\n"  # nothing changed: the stream ends, to reconnect

        (overrides / "digest.subject.txt.j2").write_text("Edited: {{ newsletter.title }}\n")
        changed = client.get(url)
        assert "event: change" in changed.text
        assert "<dd>Edited: The Weekly</dd>" in client.get("/preview", params=QUERY).text

        after_template = re.search(r'data-live-reload="([^"]+)"', client.get("/preview").text)
        assert after_template is not None
        config = Path(lite.env["DIGEST_CONFIG"])
        config.write_text(config.read_text().replace('"The Weekly"', '"The Weekly Post"'))
        assert "event: change" in client.get(after_template.group(1)).text
        assert "<dd>Edited: The Weekly Post</dd>" in client.get("/preview", params=QUERY).text


def test_send_a_test_copy_from_the_preview(lite: World) -> None:
    with client_for(lite, open_preview=True) as client:
        page = client.get("/preview", params=QUERY)
        token = csrf_of(page.text)
        form = {"csrf": token, **QUERY, "variant": "all"}
        sent = client.post(
            "/preview/send-test", data={**form, "to": "ed@example.org, b@example.org"}
        )
        assert sent.status_code == 303 and sent.headers["location"].startswith("/preview?")
        shown = client.get(sent.headers["location"])
        # the outbox wrote files: the page says so, and which backend and why
        assert (
            "Test copy for ed@example.org, b@example.org written to a file, not emailed: "
            "backend outbox (the default: DIGEST_BACKEND is unset" in shown.text
        )
        bad = client.post("/preview/send-test", data={**form, "to": "not an address"})
        assert "The test copy was not sent" in client.get(bad.headers["location"]).text
        many = ",".join(f"e{i}@example.org" for i in range(11))
        client.post("/preview/send-test", data={**form, "to": many})
        assert "at most 10 addresses" in client.get("/preview", params=QUERY).text
        assert client.post("/preview/send-test", data={**form, "csrf": "x"}).status_code == 403
    messages = outbox_messages(lite)
    assert sorted(m["To"].addresses[0].addr_spec for m in messages) == [
        "b@example.org",
        "ed@example.org",
    ]
    assert all(m["Subject"] == "[TEST] The Weekly: Policy story 1" for m in messages)


def test_a_single_section_variant_can_be_sent_as_a_test(lite: World) -> None:
    with client_for(lite, open_preview=True) as client:
        report = client.get("/api/preview", params=QUERY).json()
        only_data = next(v["key"] for v in report["variants"] if v["sections"] == ["Data"])
        page = client.get("/preview", params={**QUERY, "variant": only_data})
        assert "<dt>Sections</dt><dd>Data (2 articles)</dd>" in page.text
        client.post(
            "/preview/send-test",
            data={"csrf": csrf_of(page.text), **QUERY, "variant": only_data, "to": "e@example.org"},
        )
    (message,) = outbox_messages(lite)
    assert message["X-Digest-Edition"].endswith(only_data)


def test_a_test_copys_links_all_work_before_the_edition_exists(
    fast_sqlite_url: str, tmp_path: Path
) -> None:
    """A test copy goes out before the edition is made, so there is no web version yet:
    its "View in your browser" (HTML and text) opens the editor's preview of the same
    variant, after signing in as `digest serve` asks; its unsubscribe and preferences
    links say they belong to no one. Nothing answers 404."""
    from datetime import UTC, datetime

    from sqlalchemy import func, select

    from digest.models import Edition
    from digest.sendtest import send_test

    world = web_world(fast_sqlite_url, tmp_path)
    nl = world.app.config.newsletter("weekly")
    as_of = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    send_test(world.app, nl, ["ed@example.org"], as_of, variant="Data", backend="outbox")
    with world.app.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Edition)) == 0
    (message,) = outbox_messages(world)
    html, text = support.html_of(message), support.text_of(message)
    web = re.search(r'href="([^"]+)"[^>]*>View in your browser<', html)
    assert web is not None
    link = web.group(1).replace("&amp;", "&")
    assert link in text and link.startswith(f"{support.BASE}/preview?")
    assert link.endswith("&variant=" + message["X-Digest-Edition"].rsplit("/", 1)[1])
    path = link.removeprefix(support.BASE)
    with client_for(world) as client:
        signin = client.get(path)
        assert signin.status_code == 401 and f'value="{path.replace("&", "&amp;")}"' in signin.text
        token = csrf_of(signin.text)
        signed = client.post(
            "/admin/login", data={"csrf": token, "password": support.PASSWORD, "next": path}
        )
        assert signed.status_code == 303 and signed.headers["location"] == path
        shown = client.get(path)
        assert shown.status_code == 200
        assert "<dt>Sections</dt><dd>Data (2 articles)</dd>" in shown.text
        for kind in ("u", "p"):
            stand_in = client.get(support.link_path(text, kind))
            assert stand_in.status_code == 200 and "belongs to no one" in stand_in.text

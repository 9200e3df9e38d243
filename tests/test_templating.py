"""The template environment: lookup order, filters, escaping and error reports."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import digest
from digest.errors import ConfigError, TemplateError
from digest.templating import (
    add_params,
    builtin_templates_dir,
    create_environment,
    format_date_range,
    format_day,
    mjml_to_html,
    render,
    safe_url,
    tracked_url,
    translate,
    trim_summary,
    utm_params,
    wrap_text,
)

ROOT = Path(__file__).resolve().parent.parent

# ---------------------------------------------------------------------------
# Where templates come from


def test_builtins_come_from_the_checkout() -> None:
    assert builtin_templates_dir() == ROOT / "templates"


def test_builtins_come_from_the_wheel_layout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "site-packages" / "digest"
    (package / "_templates").mkdir(parents=True)
    (package / "_templates" / "base.mjml.j2").write_text("wheel")
    monkeypatch.setattr(digest, "__file__", str(package / "__init__.py"))
    assert builtin_templates_dir() == package / "_templates"


def test_no_builtins_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(digest, "__file__", str(tmp_path / "x" / "digest" / "__init__.py"))
    with pytest.raises(TemplateError, match="built-in templates not found"):
        builtin_templates_dir()


def test_override_first_then_builtin(tmp_path: Path) -> None:
    (tmp_path / "digest.subject.txt.j2").write_text("Override: {{ newsletter }}")
    env = create_environment(tmp_path)
    assert render(env, "digest.subject.txt.j2", {"newsletter": "x"}) == "Override: x"
    # anything else is the built-in, also reachable as builtin/<name> from an override
    assert env.get_template("partials/theme.j2").filename == str(
        ROOT / "templates" / "partials" / "theme.j2"
    )
    assert (
        "{{ newsletter.title }}" in env.loader.get_source(env, "builtin/digest.subject.txt.j2")[0]
    )  # type: ignore[union-attr]


def test_override_folder_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"DIGEST_TEMPLATES: .*nope is not a folder"):
        create_environment(tmp_path / "nope")


def test_missing_template_names_what_was_searched(tmp_path: Path) -> None:
    (tmp_path / "a.txt.j2").write_text('{% include "partials/nothing.txt.j2" %}')
    env = create_environment(tmp_path)
    with pytest.raises(TemplateError, match=r"'partials/nothing.txt.j2' not found .*searched"):
        render(env, "a.txt.j2", {})


# ---------------------------------------------------------------------------
# Escaping


def test_autoescape_is_on_for_mjml_and_off_for_text(tmp_path: Path) -> None:
    (tmp_path / "x.mjml.j2").write_text("{{ v }}")
    (tmp_path / "x.txt.j2").write_text("{{ v }}")
    env = create_environment(tmp_path)
    assert render(env, "x.mjml.j2", {"v": "<b>&"}) == "&lt;b&gt;&amp;"
    assert render(env, "x.txt.j2", {"v": "<b>&"}) == "<b>&"


def test_printed_values_can_never_spell_a_placeholder(tmp_path: Path) -> None:
    (tmp_path / "x.mjml.j2").write_text("{{ v }}|{{ v|upper }}|{{ safe }}")
    env = create_environment(tmp_path)
    from markupsafe import Markup

    out = render(
        env,
        "x.mjml.j2",
        {"v": "a ~~digest.html.web_url~~ ~~~ b", "safe": Markup("~~digest.html.web_url~~")},
    )
    first, upper, kept = out.split("|")
    assert "~~" not in first and "~~" not in upper
    assert first.replace("\u2060", "") == "a ~~digest.html.web_url~~ ~~~ b"
    assert kept == "~~digest.html.web_url~~"  # the template's own placeholders stay


def test_strict_undefined_reports_template_and_line(tmp_path: Path) -> None:
    (tmp_path / "x.txt.j2").write_text("one\ntwo {{ missing.attr }}\n")
    with pytest.raises(TemplateError, match=r"x\.txt\.j2, line 2: .*'missing' is undefined"):
        render(create_environment(tmp_path), "x.txt.j2", {})


def test_syntax_error_reports_template_and_line(tmp_path: Path) -> None:
    (tmp_path / "x.txt.j2").write_text("one\ntwo\n{% if %}\n")
    with pytest.raises(TemplateError, match=r"x\.txt\.j2, line 3: "):
        render(create_environment(tmp_path), "x.txt.j2", {})


# ---------------------------------------------------------------------------
# URLs


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        " JaVaScRiPt:alert(1)",
        "java\tscript:alert(1)",
        "vbscript:msgbox(1)",
        "data:text/html,<script>alert(1)</script>",
        "//evil.example/x",
        "/relative/path",
        "mailto:a@example.org",
        "https://",
        "https://ok.example/\x00",
        "https://ok.example/a\x1fb",
        "https://ok.example/\x7f",
        "",
        None,
        42,
    ],
)
def test_safe_url_refuses_everything_but_http(url: object) -> None:
    assert safe_url(url) is None


def test_safe_url_requotes() -> None:
    assert safe_url('https://ok.example/a b"<>é~') == "https://ok.example/a%20b%22%3C%3E%C3%A9%7E"
    assert safe_url(" http://ok.example/?q=1&r=2#f ") == "http://ok.example/?q=1&r=2#f"
    assert safe_url("https://ok.example/%7Efine") == "https://ok.example/%7Efine"


def test_tracked_url_adds_and_replaces_utm() -> None:
    params = utm_params(
        {"utm_source": "digest", "utm_campaign": "{newsletter}-{period}"},
        newsletter="weekly",
        period="2026-W47",
    )
    assert params == {"utm_source": "digest", "utm_campaign": "weekly-2026-W47"}
    assert (
        tracked_url("https://ok.example/a?utm_source=rss&id=3#top", params)
        == "https://ok.example/a?id=3&utm_source=digest&utm_campaign=weekly-2026-W47#top"
    )
    assert tracked_url("javascript:alert(1)", params) is None
    assert (
        tracked_url("https://ok.example/a b#top", params)
        == "https://ok.example/a%20b?utm_source=digest&utm_campaign=weekly-2026-W47#top"
    )
    assert add_params("https://ok.example/", {}) == "https://ok.example/"


def test_bad_utm_template_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"newsletters\.weekly\.utm\.utm_term: .*\{newsletter\}"):
        utm_params({"utm_term": "{edition}"}, newsletter="weekly", period="2026-W47")


# ---------------------------------------------------------------------------
# Summaries

SENTENCES = (
    "The council approved the plan on Tuesday after a long debate. "
    "It will cost £4m over three years and cover twelve services. "
    "Officials said the housing team moves first, in January. "
    "Residents will be asked for feedback through an online survey. "
    "A second phase is planned for 2028."
)


def test_short_summary_is_kept_whole() -> None:
    assert trim_summary("  One   sentence.\n Two. ") == "One sentence. Two."
    assert trim_summary(None) == ""


def test_long_summary_ends_at_the_sentence_nearest_240() -> None:
    out = trim_summary(SENTENCES)
    assert out == SENTENCES[: SENTENCES.index("Residents will") + 62].strip()
    assert out.endswith("online survey.")
    assert 200 < len(out) <= 280


def test_no_sentence_end_cuts_at_a_word_with_an_ellipsis() -> None:
    text = "word " * 100
    out = trim_summary(text)
    assert out.endswith("word…")
    assert len(out) <= 241
    assert trim_summary("x" * 500) == "x" * 500  # never inside a word


@given(st.text(alphabet=st.sampled_from("abc de.F!?, \n"), min_size=0, max_size=700))
def test_trim_never_cuts_mid_word(text: str) -> None:
    out = trim_summary(text)
    squashed = " ".join(text.split())
    if out.endswith("…") and not squashed.endswith("…"):
        kept = out[:-1].rstrip(" ,;:–—-")
        assert squashed.startswith(kept)
        assert squashed[len(kept) :][:1] in {" ", ",", ";", ":", "-"}
    else:
        assert squashed.startswith(out)
        rest = squashed[len(out) :]
        assert rest == "" or rest.startswith(" ")


# ---------------------------------------------------------------------------
# Text wrapping


def test_wrap_keeps_indent_and_never_breaks_urls() -> None:
    url = "https://news.example/" + "a" * 100
    text = f"* {'word ' * 30}\n  {'more ' * 25}\n  {url}\nshort\n"
    out = wrap_text(text)
    lines = out.splitlines()
    assert all(len(line) <= 78 for line in lines if url not in line)
    assert f"  {url}" in lines
    assert lines[0].startswith("* word") and lines[1].startswith("  word")
    assert out.endswith("short\n")
    # a URL in running text moves to its own line, whole
    out = wrap_text("see " * 18 + url)
    assert url in out.splitlines()[-1]


def test_wrap_strips_trailing_spaces_but_keeps_the_signature_separator() -> None:
    """A signature separator, "-- ", keeps its space (RFC 3676, 4.3): without it, it is text."""
    assert wrap_text("body  \n-- \nfooter \n--  \n") == "body\n-- \nfooter\n--\n"


# ---------------------------------------------------------------------------
# Dates and words


def test_date_ranges_in_locales() -> None:
    first, last = date(2026, 11, 16), date(2026, 11, 22)
    assert format_date_range(first, last, "en_GB") == "16\u2009–\u200922 November 2026"
    assert format_date_range(first, last, "de_DE") == "16.–22. November 2026"
    assert format_date_range(first, last, "en_US") == "November 16\u2009–\u200922, 2026"
    assert format_date_range(date(2026, 11, 30), date(2026, 12, 6), "en_GB") == (
        "30 November\u2009–\u20096 December 2026"
    )
    assert format_date_range(date(2026, 12, 28), date(2027, 1, 3), "fr_FR") == (
        "28 décembre 2026\u2009–\u20093 janvier 2027"
    )
    assert format_date_range(first, first, "en_GB") == "16 November 2026"
    assert (
        format_date_range(first, last, "en_GB", long_months=False) == "16\u2009–\u200922 Nov 2026"
    )


def test_format_day_uses_the_newsletters_zone() -> None:
    from zoneinfo import ZoneInfo

    late = datetime(2026, 11, 22, 23, 30, tzinfo=UTC)
    assert format_day(late, "MMMd", "en_GB", ZoneInfo("Europe/London")) == "22 Nov"
    assert format_day(late, "MMMd", "en_GB", ZoneInfo("Asia/Tokyo")) == "23 Nov"
    assert format_day(late, "long", "de_DE", ZoneInfo("UTC")) == "22. November 2026"


def test_format_day_tells_locales_formats_and_days_apart() -> None:
    from zoneinfo import ZoneInfo

    utc = ZoneInfo("UTC")
    day = date(2026, 11, 16)
    assert format_day(day, "MMMd", "en_GB", utc) == "16 Nov"
    assert format_day(day, "MMMd", "fr_FR", utc) == "16 nov."
    assert format_day(day, "long", "en_GB", utc) == "16 November 2026"
    assert format_day(date(2026, 11, 17), "MMMd", "en_GB", utc) == "17 Nov"
    assert format_day(datetime(2026, 11, 16, 12, tzinfo=UTC), "MMMd", "en_GB", utc) == "16 Nov"


def test_filters_in_a_template(tmp_path: Path) -> None:
    (tmp_path / "x.txt.j2").write_text(
        "{{ d|date('MMMMd') }}|{{ a|daterange(b) }}|{{ u|link }}|{{ s|summary(20) }}|"
        "{{ _('Unsubscribe') }}"
    )
    env = create_environment(tmp_path, locale="de_DE", timezone="Europe/Berlin")
    out = render(
        env,
        "x.txt.j2",
        {
            "d": datetime(2026, 11, 16, 23, 30, tzinfo=UTC),
            "a": date(2026, 11, 16),
            "b": date(2026, 11, 22),
            "u": "https://ok.example/",
            "s": "Erster Satz hier. Zweiter Satz ist länger als gedacht.",
            "utm": {"utm_source": "x"},
        },
    )
    assert out == (
        "17. November|16.–22. November 2026|https://ok.example/?utm_source=x|"
        "Erster Satz hier.|Abbestellen"
    )


def test_translate_falls_back_to_english() -> None:
    assert translate("Unsubscribe", "fr_FR") == "Se désabonner"
    assert translate("Unsubscribe", "ja_JP") == "Unsubscribe"
    assert translate("Never heard of it", "de_DE") == "Never heard of it"
    assert re.fullmatch(r"\w+", translate("Hi", "nl_NL"))
    assert translate("Unsubscribe", "no such locale") == "Unsubscribe"


def test_blank_digest_templates_means_builtins_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from digest.config import load_settings

    monkeypatch.setenv("DIGEST_TEMPLATES", "")  # as copied from .env.example
    settings = load_settings()
    assert settings.templates is None
    env = create_environment(settings.templates)
    assert env.get_template("digest.mjml.j2").filename == str(ROOT / "templates" / "digest.mjml.j2")


def test_other_emails_extend_the_base_layout(tmp_path: Path) -> None:
    """E.g. the double opt-in email: its own content in the shared layout and styles."""
    (tmp_path / "confirm.mjml.j2").write_text(
        '{% extends "base.mjml.j2" %}\n'
        "{% block content %}<mj-section><mj-column><mj-text>"
        '<a href="{{ url }}">{{ _("Confirm") }}</a>'
        "</mj-text></mj-column></mj-section>{% endblock %}\n"
    )
    env = create_environment(tmp_path, locale="fr_FR")
    source = render(
        env,
        "confirm.mjml.j2",
        {"subject": "Confirm <now>", "preheader": "One click", "url": "https://x.example/c/t"},
    )
    html = mjml_to_html(source, template="confirm.mjml.j2")
    assert '<html lang="fr-FR"' in html
    assert "<title>Confirm &lt;now&gt;</title>" in html
    assert 'href="https://x.example/c/t"' in html
    assert "prefers-color-scheme: dark" in html


_WRAP_PIECES = ["a", "bb", "x" * 30, "y" * 90, " ", " ", "  ", "\t", "\xa0", "- ", "1. ", "é", "\n"]


@given(
    st.lists(st.sampled_from(_WRAP_PIECES), max_size=60).map("".join),
    st.sampled_from([78, 20, 5, 1]),
)
def test_wrapping_is_textwraps(text: str, width: int) -> None:
    """The fast path for plain lines gives exactly what textwrap gives."""
    import textwrap

    expected = []
    for line in text.splitlines():
        line = line.rstrip()
        if len(line) <= width:
            expected.append(line)
            continue
        lead = re.match(r"\s*(?:[-*•]\s+|\d+[.)]\s+)?", line).group(0)  # type: ignore[union-attr]
        expected.extend(
            textwrap.wrap(
                line[len(lead) :],
                width=width,
                initial_indent=lead,
                subsequent_indent=" " * len(lead),
                break_long_words=False,
                break_on_hyphens=False,
            )
        )
    result = "\n".join(expected) + ("\n" if text.endswith("\n") else "")
    assert wrap_text(text, width) == result

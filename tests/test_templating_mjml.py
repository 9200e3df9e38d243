"""MJML → HTML: MRML (mjml-python) renders the whole document, the HTML inside its
ending tags (mj-text, mj-button, mj-table) included; what it cannot read is a
TemplateError that quotes it."""

from __future__ import annotations

import re

import pytest

from digest.errors import TemplateError
from digest.templating import mjml_to_html


def _mjml(body: str, head: str = "") -> str:
    return (
        f"<mjml><mj-head>{head}</mj-head><mj-body><mj-section><mj-column>{body}"
        "</mj-column></mj-section></mj-body></mjml>"
    )


def test_the_digest_renders_whole_with_each_article_s_html() -> None:
    from digest.compose import Composer
    from digest.config import Settings
    from tests.data.compose import factory as f

    nl = f.newsletter()
    composer = Composer(Settings(base_url="https://civic.example"), nl)
    variant = composer.render(f.collection(f.articles(40), nl))
    html = variant.html
    assert html.startswith("<!doctype html>") and html.endswith("</html>")
    assert "<mj-" not in html
    # each article's heading, as the template wrote it (MRML closes <img> as <img />)
    headings = re.findall(r'<h3 style="[^"]*">.*?</h3>', variant.mjml)
    assert len(headings) == 40 - 1  # the top story has its own title block
    for heading in headings:
        assert heading in html
    assert html.count('border-radius:3px" />') == variant.mjml.count('border-radius:3px">')


def test_ending_tags_html_comes_through_as_mrml_writes_it() -> None:
    source = _mjml(
        '<mj-text><p>  a  </p>\n<img src="x.png" alt="x"> <!-- note -->'
        "<!--[if mso]><b>mso</b><![endif]--></mj-text>"
        '<mj-button href="https://x.example/a">Read <b>more</b> →</mj-button>'
        "<mj-table><tr><td>1</td><td>2</td></tr></mj-table>"
    )
    out = mjml_to_html(source, template="t")
    # spaces stay; blank text holding a line break between two tags is left out
    assert '<p>  a  </p><img src="x.png" alt="x" />' in out
    assert "note" not in out  # plain comments are left out …
    assert "<!--[if mso]><b>mso</b><![endif]-->" in out  # … Outlook's conditionals stay
    assert 'href="https://x.example/a"' in out and "Read <b>more</b> →</a>" in out
    assert "<tr><td>1</td><td>2</td></tr></table>" in out


def test_a_line_break_between_two_inline_tags_is_lost_and_a_space_is_not() -> None:
    """What templates/README.md warns of: write ``<b>a</b> <i>b</i>``, not a line break."""
    out = mjml_to_html(
        _mjml("<mj-text><b>a</b>\n<i>b</i> <b>c</b> <i>d</i></mj-text>"), template="t"
    )
    assert "<b>a</b><i>b</i> <b>c</b> <i>d</i>" in out


def test_the_head_applies_and_no_web_font_is_fetched() -> None:
    head = (
        '<mj-attributes><mj-text color="#123456" font-family="Roboto, sans-serif" />'
        "</mj-attributes>"
    )
    out = mjml_to_html(_mjml("<mj-text>hi</mj-text>", head), template="t")
    assert "color:#123456;" in out and ">hi</div>" in out
    assert "fonts.googleapis.com" not in out


@pytest.mark.parametrize(
    "html",
    [
        "<p>a <!-- unclosed",
        "<p>Thanks for reading<b></p>",
        "<img src=x>",
        "1 < 2",
        "a </mj-button> b",
    ],
)
def test_html_mrml_cannot_read_is_quoted_in_the_error(html: str) -> None:
    source = _mjml(f'<mj-text>fine</mj-text><mj-text css-class="a>b">\n  {html}\n</mj-text>')
    with pytest.raises(TemplateError) as caught:
        mjml_to_html(source, template="t.mjml.j2")
    message = str(caught.value)
    assert message.startswith("t.mjml.j2: the HTML inside an mj-text is not valid (")
    assert f"): {html!r}; close its tags and comments, quote its attributes" in message


def test_a_long_broken_html_is_quoted_shortened() -> None:
    html = "<p>" + "word " * 40 + "<b></p>"
    with pytest.raises(TemplateError, match=r": '<p>(word ){15}w…'; close its tags"):
        mjml_to_html(_mjml(f"<mj-button>{html}</mj-button>"), template="t")


@pytest.mark.parametrize(
    "source",
    [
        "<mjml><mj-body><mj-section><mj-column><mj-text>x</mj-text>",
        _mjml("<mj-text>x"),
        _mjml("<mj-text>x</mj-text></mj-column>"),
    ],
)
def test_invalid_mjml_is_a_template_error(source: str) -> None:
    with pytest.raises(TemplateError, match=r"^t\.mjml\.j2: the rendered MJML is not valid \("):
        mjml_to_html(source, template="t.mjml.j2")

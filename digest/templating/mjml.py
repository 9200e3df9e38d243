"""MJML → HTML with MRML (mjml-python, in Rust), on the whole document.

MRML reads the HTML inside MJML's *ending tags* (``mj-text``, ``mj-button``,
``mj-table``) as it renders, and re-serialises it: ``<img …>`` comes out as
``<img … />``, plain HTML comments are left out (Outlook's ``<!--[if mso]>``
conditionals stay), and HTML it cannot read (an unclosed tag or comment, an
unquoted attribute, a bare ``<``) makes the whole document fail.  Such a failure
is a :class:`~digest.errors.TemplateError` that quotes the broken HTML, so the
preview and ``digest compose`` show the editor what to fix.
"""

from __future__ import annotations

import re

import mjml

from digest.errors import TemplateError

#: An ending tag and its content (group 1: the tag's name, 2: its content).  Used
#: only to say *which* HTML MRML refused, once it has refused the document.
_ENDING_TAG = re.compile(
    r"""<(mj-(?:text|button|table))(?![\w-])(?:"[^"]*"|'[^']*'|[^"'>])*(?<!/)>(.*?)</\1\s*>""",
    re.DOTALL,
)
_QUOTE_CHARS = 80


def _mrml(source: str) -> str:
    # No web fonts fetched (``fonts={}``), MJML comments left out.
    return mjml.mjml2html(source, disable_comments=True, fonts={})


def mjml_to_html(source: str, *, template: str) -> str:
    """The HTML email MRML renders from the MJML ``source`` (``template`` names it in
    errors); a TemplateError saying what to fix when MRML cannot render it."""
    try:
        return _mrml(source)
    except ValueError as exc:
        raise TemplateError(f"{template}: {_problem(source, exc)}") from None


def _problem(source: str, exc: ValueError) -> str:
    """What MRML objects to in ``source``, quoting the broken HTML of an ending tag when
    that is the trouble, and how to fix it."""
    broken = _broken_ending_tag(source)
    if broken is None:
        return (
            f"the rendered MJML is not valid ({exc}); check the template's mj-* tags are "
            "balanced and only use components MJML knows"
        )
    tag, content = broken
    quoted = " ".join(content.split())
    if len(quoted) > _QUOTE_CHARS:
        quoted = quoted[: _QUOTE_CHARS - 1] + "…"
    return (
        f"the HTML inside an {tag} is not valid ({exc}): {quoted!r}; close its tags and "
        "comments, quote its attributes and write a bare < as &lt;"
    )


def _broken_ending_tag(source: str) -> tuple[str, str] | None:
    """The first ending tag (name and content) whose HTML MRML refuses on its own."""
    body = source.find("<mj-body")
    for match in _ENDING_TAG.finditer(source, max(body, 0)):
        tag, content = match.group(1), match.group(2)
        alone = (
            f"<mjml><mj-body><mj-section><mj-column><{tag}>{content}</{tag}>"
            "</mj-column></mj-section></mj-body></mjml>"
        )
        try:
            _mrml(alone)
        except ValueError:
            return tag, content
    return None


__all__ = ["mjml_to_html"]

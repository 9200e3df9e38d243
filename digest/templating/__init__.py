"""Rendering emails from templates: one concern per module, the names callers use here.

* :mod:`.loader`: where templates live (``DIGEST_TEMPLATES`` first, then the built-ins);
* :mod:`.environment`: the Jinja2 environment (escaping, filters, interface words)
  and :func:`render`, which reports a template's file and line;
* :mod:`.placeholders`: no printed value can spell a personalisation placeholder;
* :mod:`.urls`: http(s)-only URLs and the edition's UTM parameters;
* :mod:`.text`: summaries trimmed at a sentence, plain text wrapped at 78 columns;
* :mod:`.dates`: days and date ranges in the newsletter's locale;
* :mod:`.i18n`: interface words from gettext catalogues (``locale/``, made with Babel);
* :mod:`.mjml`: MJML → HTML with MRML (mjml-python).
"""

from __future__ import annotations

from digest.templating.dates import day_format, format_date_range, format_day
from digest.templating.environment import create_environment, render
from digest.templating.i18n import (
    has_interface_translation,
    html_lang,
    interface_languages,
    locale_warning,
    translate,
)
from digest.templating.loader import builtin_templates_dir, template_dirs
from digest.templating.mjml import mjml_to_html
from digest.templating.placeholders import neutralise
from digest.templating.text import SUMMARY_LIMIT, TEXT_WIDTH, trim_summary, wrap_text
from digest.templating.urls import add_params, safe_url, tracked_url, utm_params

__all__ = [
    "SUMMARY_LIMIT",
    "TEXT_WIDTH",
    "add_params",
    "builtin_templates_dir",
    "create_environment",
    "day_format",
    "format_date_range",
    "format_day",
    "has_interface_translation",
    "html_lang",
    "interface_languages",
    "locale_warning",
    "mjml_to_html",
    "neutralise",
    "render",
    "safe_url",
    "template_dirs",
    "tracked_url",
    "translate",
    "trim_summary",
    "utm_params",
    "wrap_text",
]

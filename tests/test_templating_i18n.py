"""Interface words: gettext catalogues (Babel .po/.mo) in sync with the templates, and
their use in templates and code."""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from digest.templating import create_environment, render, translate
from digest.templating.i18n import (
    LOCALE_DIR,
    catalogue_path,
    has_interface_translation,
    interface_languages,
    locale_warning,
)

ROOT = Path(__file__).resolve().parent.parent
#: The languages of the built-in catalogues (English is the templates' own).
LANGUAGES = ("de", "es", "fr", "nl")
#: What `make i18n` passes to `pybabel extract` besides babel.cfg: `-k translate`.
KEYWORDS = {**DEFAULT_KEYWORDS, "translate": None}


def _extracted() -> set[str | tuple[str, str]]:
    """Every msgid `pybabel extract` finds, as `make i18n` runs it (plural: a pair)."""
    with (ROOT / "babel.cfg").open() as fp:
        method_map, options_map = parse_mapping_cfg(fp)
    found: set[str | tuple[str, str]] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        ROOT, method_map, options_map, keywords=KEYWORDS
    ):
        if isinstance(message, tuple):
            found.add((message[0], message[1]))
        else:
            found.add(message)
    return found


def _po(language: str) -> Catalog:
    with (LOCALE_DIR / language / "LC_MESSAGES" / "messages.po").open("rb") as fp:
        return read_po(fp)


def _ids(catalog: Catalog) -> set[str | tuple[str, str]]:
    return {(m.id[0], m.id[1]) if isinstance(m.id, tuple) else m.id for m in catalog if m.id}


def _translations(catalog: Catalog) -> dict[object, object]:
    def flat(value: object) -> object:
        return tuple(value) if isinstance(value, list | tuple) else value

    return {flat(m.id): flat(m.string) for m in catalog if m.id}


def test_the_catalogues_are_the_languages_there_are() -> None:
    assert sorted(p.name for p in LOCALE_DIR.iterdir() if p.is_dir()) == list(LANGUAGES)
    assert interface_languages() == ("de", "en", "es", "fr", "nl")


def test_the_template_and_each_catalogue_hold_every_word_of_the_templates() -> None:
    """`make i18n` has been run: every word the templates and code ask for is in
    messages.pot and translated in each .po (none fuzzy, none left over)."""
    extracted = _extracted()
    assert "Unsubscribe" in extracted and "there" in extracted  # templates and code
    with (LOCALE_DIR / "messages.pot").open("rb") as fp:
        assert _ids(read_po(fp)) == extracted
    for language in LANGUAGES:
        catalog = _po(language)
        assert _ids(catalog) == extracted, f"{language}: run `make i18n`"
        for message in catalog:
            if not message.id:
                continue
            strings = message.string if isinstance(message.string, tuple) else (message.string,)
            assert all(strings), f"{language}: {message.id!r} is not translated"
            assert not message.fuzzy, f"{language}: {message.id!r} is marked fuzzy"
        problems = [(m.id, errors) for m, errors in catalog.check()]
        assert not problems, f"{language}: {problems}"


def test_each_compiled_catalogue_is_its_po_file() -> None:
    """The .mo files (what is read at run time) are compiled from the current .po files."""
    for language in LANGUAGES:
        po = _po(language)
        path = catalogue_path(language)
        assert path is not None and path.parent == LOCALE_DIR / language / "LC_MESSAGES"
        with path.open("rb") as fp:
            mo = read_mo(fp)
        assert _translations(mo) == _translations(po), (
            f"{language}: run `make i18n` (pybabel compile)"
        )
        assert mo.plural_forms == po.plural_forms


@pytest.mark.parametrize(
    ("locale", "words"),
    [
        ("de_DE", {"Unsubscribe": "Abbestellen", "Top story": "Top-Thema", "there": "zusammen"}),
        ("fr_FR", {"Unsubscribe": "Se désabonner", "Read more": "Lire la suite", "By": "Par"}),
        ("es_ES", {"Unsubscribe": "Darse de baja", "In this issue": "En este número"}),
        ("nl_NL", {"Unsubscribe": "Afmelden", "Manage preferences": "Voorkeuren beheren"}),
        ("de_AT", {"Unsubscribe": "Abbestellen"}),  # no catalogue of its own: German's
        ("en_GB", {"Unsubscribe": "Unsubscribe"}),
        ("sk_SK", {"Unsubscribe": "Unsubscribe"}),  # none: English
        ("no such locale", {"Unsubscribe": "Unsubscribe"}),
    ],
)
def test_translate_reads_the_locale_s_catalogue(locale: str, words: dict[str, str]) -> None:
    for english, translated in words.items():
        assert translate(english, locale) == translated
    assert translate("Never heard of it", locale) == "Never heard of it"


def test_templates_use_gettext_trans_blocks_and_plurals(tmp_path: Path) -> None:
    (tmp_path / "t.txt.j2").write_text(
        '{{ _("Unsubscribe") }}|{{ _("You receive this because you subscribed to %(title)s.",'
        " title=name) }}|{% trans count=n %}here is what happened in the last {{ count }} day."
        "{% pluralize %}here is what happened in the last {{ count }} days.{% endtrans %}|"
        '{{ _("old %s style", name) }}|{{ ngettext("%(num)d day", "%(num)d days", 2, num=2) }}'
    )
    (tmp_path / "t.mjml.j2").write_text(
        "{% trans count=n %}here is what happened in the last {{ count }} day.{% pluralize %}"
        "here is what happened in the last {{ count }} days.{% endtrans %}|"
        '{{ _("You receive this because you subscribed to %(title)s.", title=name) }}'
    )
    context = {"name": "<Die Woche>", "n": 3}
    de = create_environment(tmp_path, locale="de_DE")
    assert render(de, "t.txt.j2", context) == (
        "Abbestellen|Sie erhalten diese E-Mail, weil Sie <Die Woche> abonniert haben.|"
        "das war in den letzten 3 Tagen wichtig.|old <Die Woche> style|2 days"
    )
    # in HTML the values are escaped, the translations are not
    assert render(de, "t.mjml.j2", {**context, "n": 1}) == (
        "das war am letzten Tag wichtig.|"
        "Sie erhalten diese E-Mail, weil Sie &lt;Die Woche&gt; abonniert haben."
    )
    fr = create_environment(tmp_path, locale="fr_FR")
    assert render(fr, "t.mjml.j2", {**context, "n": 1}).startswith(
        "voici l’essentiel du dernier jour.|"
    )


def test_a_locale_without_a_catalogue_is_named_with_the_ones_there_are() -> None:
    assert has_interface_translation("de_CH") and has_interface_translation("en_US")
    assert not has_interface_translation("sk_SK")
    assert locale_warning("nl_BE") is None
    assert locale_warning("sk_SK") == (
        "no interface translation for 'sk_SK' (translations: de, en, es, fr, nl); "
        "dates are in Slovak, interface words in English"
    )
    assert "Portuguese" in (locale_warning("pt_BR") or "")

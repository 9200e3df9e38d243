"""Interface words in the newsletter's language: gettext catalogues made with Babel.

The words are English in the templates (``_("Unsubscribe")``, ``{% trans %}``) and
in the few places the code needs one (:func:`translate`).  ``pybabel extract``
collects them (``babel.cfg``, ``make i18n``) into ``locale/messages.pot``; each
language has ``locale/LANG/LC_MESSAGES/messages.po``, compiled to the
``messages.mo`` read here.  English is the source language and needs no
catalogue.  A locale is matched to a catalogue by its full name, then without
its territory (``de_AT`` → ``de``); with none, the words stay English (and
``digest.config`` warns, naming the languages there are).
"""

from __future__ import annotations

import functools
import gettext
from collections.abc import Callable
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.support import Translations

#: The catalogues: ``LOCALE_DIR / LANG / "LC_MESSAGES" / "messages.mo"``.
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "messages"
#: The language the templates are written in.
SOURCE_LANGUAGE = "en"


def _names(locale: str) -> list[str]:
    """Catalogue names to try for ``locale``, most specific first: ``de_DE``, ``de``."""
    parsed = Locale.parse(locale)
    names = [str(parsed)]
    if parsed.script:
        names.append(f"{parsed.language}_{parsed.script}")
    names.append(parsed.language)
    return list(dict.fromkeys(names))


def catalogue_path(locale: str) -> Path | None:
    """The compiled catalogue for ``locale``, or None when there is none (or ``locale``
    is not a locale)."""
    try:
        names = _names(locale)
    except (ValueError, TypeError, UnknownLocaleError):
        return None
    for name in names:
        path = LOCALE_DIR / name / "LC_MESSAGES" / f"{DOMAIN}.mo"
        if path.is_file():
            return path
    return None


@functools.cache
def interface_languages() -> tuple[str, ...]:
    """The languages the interface words come in: English and each catalogue's."""
    found = {p.parent.parent.name for p in LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.mo")}
    return tuple(sorted({SOURCE_LANGUAGE, *found}))


def has_interface_translation(locale: str) -> bool:
    """True when the interface words are in ``locale``'s language (English included)."""
    try:
        if Locale.parse(locale).language == SOURCE_LANGUAGE:
            return True
    except (ValueError, TypeError, UnknownLocaleError):
        return False
    return catalogue_path(locale) is not None


def locale_warning(locale: str) -> str | None:
    """Why ``locale``'s emails will mix languages (dates in its language, interface
    words in English), or None when its interface words are translated."""
    if has_interface_translation(locale):
        return None
    try:
        parsed = Locale.parse(locale)
        language = parsed.get_language_name(SOURCE_LANGUAGE) or parsed.language
    except (ValueError, TypeError, UnknownLocaleError):
        return f"{locale!r} is not a locale; use a name such as 'en_GB'"
    return (
        f"no interface translation for {locale!r} (translations: "
        f"{', '.join(interface_languages())}); dates are in {language}, interface words "
        "in English"
    )


@functools.lru_cache(maxsize=64)
def translations(locale: str) -> gettext.NullTranslations:
    """``locale``'s catalogue; one that leaves every word English when there is none."""
    path = catalogue_path(locale)
    if path is None:
        return gettext.NullTranslations()
    with path.open("rb") as fp:
        return Translations(fp, domain=DOMAIN)


def translate(message: str, locale: str) -> str:
    """``message`` in ``locale``'s language when its catalogue has it, else as it is."""
    return translations(locale).gettext(message)


def gettext_callables(
    locale: str,
) -> tuple[Callable[..., str], Callable[..., str]]:
    """``gettext`` and ``ngettext`` for templates (Jinja2's i18n extension, old style).

    ``_("… %(name)s …", name=value)`` fills named values, and ``_("… %s …", value)``
    positional ones, as templates written before the catalogues did; with no values
    the text comes back as it is (``{% trans %}`` blocks fill it themselves)."""
    words = translations(locale)

    def gettext_(message: str, *args: object, **kwargs: object) -> str:
        return _fill(words.gettext(message), args, kwargs)

    def ngettext_(singular: str, plural: str, n: int, *args: object, **kwargs: object) -> str:
        return _fill(words.ngettext(singular, plural, n), args, kwargs)

    return gettext_, ngettext_


def _fill(text: str, args: tuple[object, ...], kwargs: dict[str, object]) -> str:
    if args:
        return text % args
    if kwargs:
        return text % kwargs
    return text


def html_lang(locale: str) -> str:
    """``en_GB`` → ``en-GB`` for ``<html lang>``."""
    return str(Locale.parse(locale)).replace("_", "-")


__all__ = [
    "DOMAIN",
    "LOCALE_DIR",
    "SOURCE_LANGUAGE",
    "catalogue_path",
    "gettext_callables",
    "has_interface_translation",
    "html_lang",
    "interface_languages",
    "locale_warning",
    "translate",
    "translations",
]

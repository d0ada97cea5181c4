"""Interface text in vi, ru, zh and en from gettext catalogues (Babel reads and compiles them).

Catalogues live in `feedback/locales/<locale>/LC_MESSAGES/*.po`; every `.po` file of a locale is
merged, so each face (survey page, posters, …) keeps its own file. Message ids are English.
Survey texts are not here: a survey definition carries its own text per language.

A plugin ships its own catalogues (the `register_translations` hook names a folder laid out the
same way); they are merged after the core's, so the core's translation of a message id wins, then
the plugin registered first. They are added for the whole process when a plugin manager holding the
plugin is built: catalogues only add translations, so apps with other plugin sets lose nothing.
"""

from __future__ import annotations

import gettext
import io
import threading
from functools import cache
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from feedback.models import LANGUAGES

LOCALES_DIR = Path(__file__).parent / "locales"
# Our language codes -> the catalogue folders (Simplified Chinese is zh_Hans).
CATALOGUE = {"vi": "vi", "ru": "ru", "zh": "zh_Hans", "en": "en"}
# Each language named in itself, for the language switcher.
ENDONYMS = {"vi": "Tiếng Việt", "ru": "Русский", "zh": "中文", "en": "English"}
HTML_LANG = {"vi": "vi", "ru": "ru", "zh": "zh-Hans", "en": "en"}


# Plugins' locales folders, in the order they were added (after the core's own).
_plugin_locales: list[Path] = []
_plugin_locales_lock = threading.Lock()


def add_locales(folder: str | Path) -> None:
    """Merge a plugin's catalogues (`<folder>/<locale>/LC_MESSAGES/*.po`) after the core's."""
    path = Path(folder).resolve()
    with _plugin_locales_lock:
        if path in _plugin_locales:
            return
        _plugin_locales.append(path)
        translations.cache_clear()


@cache
def translations(lang: str) -> gettext.NullTranslations:
    """The merged catalogue of a language; English (and anything unknown) falls back to the msgid."""
    locale = CATALOGUE.get(lang, "en")
    merged = Catalog(locale=locale)
    for root in (LOCALES_DIR, *_plugin_locales):
        for po_file in sorted((root / locale / "LC_MESSAGES").glob("*.po")):
            with po_file.open("rb") as handle:
                catalog = read_po(handle, locale=locale)
            for message in catalog:
                # The first translation of an id wins (the core's, then the plugins' in order); an
                # empty or fuzzy one is no translation, so a later catalogue may still give one.
                if message.id and message.string and not message.fuzzy and message.id not in merged:
                    merged[message.id] = message
    buffer = io.BytesIO()
    write_mo(buffer, merged)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


def gettext_for(lang: str):
    """A `_()` function for one language."""
    return translations(lang).gettext


def negotiate(accept_language: str | None, available: list[str] | tuple[str, ...] = LANGUAGES) -> str | None:
    """The best of `available` for an Accept-Language header, or None."""
    if not accept_language:
        return None
    wanted = []
    for part in accept_language.split(","):
        tag, _, quality = part.strip().partition(";q=")
        try:
            weight = float(quality) if quality else 1.0
        except ValueError:
            weight = 0.0
        if tag and weight > 0:
            wanted.append((weight, tag.strip().replace("-", "_")))
    preferred = [tag for _, tag in sorted(wanted, key=lambda item: -item[0])]
    for tag in preferred:
        try:
            language = Locale.parse(tag).language
        except (UnknownLocaleError, ValueError):
            language = tag.split("_")[0].lower()
        if language in available:
            return language
    return None


def text_in(texts: dict[str, str] | None, lang: str, fallback: str = "") -> str:
    """Pick a survey text in `lang`, else English, else any language present."""
    if not texts:
        return fallback
    return texts.get(lang) or texts.get("en") or next(iter(texts.values()), fallback)


def counter_label(counter: str | None, lang: str) -> str | None:
    """A counter as people read it: "3" becomes "Counter 3" in the language; "Quầy 3" stays as it is."""
    if not counter:
        return None
    if any(ch.isalpha() for ch in counter):
        return counter
    return gettext_for(lang)("Counter %(counter)s") % {"counter": counter}

"""Interface text in vi, ru, zh and en from gettext catalogues (Babel reads and compiles them).

Catalogues live in `feedback/locales/<locale>/LC_MESSAGES/*.po`; every `.po` file of a locale is
merged, so each face (survey page, posters, …) keeps its own file. Message ids are English.
Survey texts are not here: a survey definition carries its own text per language.
"""

from __future__ import annotations

import gettext
import io
from functools import cache
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from feedback.models import LANGUAGES

LOCALES_DIR = Path(__file__).parent / "locales"
# Our language codes -> the catalogue folders (Simplified Chinese is zh_Hans).
CATALOGUE = {"vi": "vi", "ru": "ru", "zh": "zh_Hans", "en": "en"}
# Each language named in itself, for the language switcher.
ENDONYMS = {"vi": "Tiếng Việt", "ru": "Русский", "zh": "中文", "en": "English"}
HTML_LANG = {"vi": "vi", "ru": "ru", "zh": "zh-Hans", "en": "en"}


@cache
def translations(lang: str) -> gettext.NullTranslations:
    """The merged catalogue of a language; English (and anything unknown) falls back to the msgid."""
    folder = LOCALES_DIR / CATALOGUE.get(lang, "en") / "LC_MESSAGES"
    merged: gettext.NullTranslations | None = None
    for po_file in sorted(folder.glob("*.po")):
        with po_file.open("rb") as handle:
            catalog = read_po(handle, locale=CATALOGUE.get(lang, "en"))
        buffer = io.BytesIO()
        write_mo(buffer, catalog)
        buffer.seek(0)
        part = gettext.GNUTranslations(buffer)
        if merged is None:
            merged = part
        else:
            merged.add_fallback(part)
    return merged or gettext.NullTranslations()


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

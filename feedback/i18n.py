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
from collections.abc import Mapping
from datetime import date, timedelta
from functools import cache
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_interval, format_skeleton
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal, format_percent

from feedback.models import LANGUAGES

LOCALES_DIR = Path(__file__).parent / "locales"
# Our language codes -> the catalogue folders (Simplified Chinese is zh_Hans).
CATALOGUE = {"vi": "vi", "ru": "ru", "zh": "zh_Hans", "en": "en"}
# Each language named in itself, for the language switcher.
ENDONYMS = {"vi": "Tiếng Việt", "ru": "Русский", "zh": "中文", "en": "English"}
HTML_LANG = {"vi": "vi", "ru": "ru", "zh": "zh-Hans", "en": "en"}


def N_(message: str) -> str:
    """Marks a message for extraction where it is defined; it is translated where it is shown."""
    return message


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


def name_in(names: Mapping[str, str] | None, lang: str, own_lang: str | None = None, name: str = "") -> str:
    """A unit's or service's name for a reader of `lang`: in that language, else in English, else in the
    unit's own language (`own_lang`; `name`, the record's one name, is in it too), else in any it has."""
    names = names or {}
    return (
        names.get(lang)
        or names.get("en")
        or (names.get(own_lang) if own_lang else None)
        or name
        or next((value for value in names.values() if value), "")
    )


def counter_label(counter: str | None, lang: str) -> str | None:
    """A counter as people read it: "3" becomes "Counter 3" in the language; "Quầy 3" stays as it is."""
    if not counter:
        return None
    if any(ch.isalpha() for ch in counter):
        return counter
    return gettext_for(lang)("Counter %(counter)s") % {"counter": counter}


# -- numbers, days and periods as each language writes them (pages, titles, mail) ----------------------

# Our language codes -> Babel locales for numbers and dates.
BABEL_LOCALES = {"vi": "vi", "ru": "ru", "zh": "zh_Hans_CN", "en": "en"}
# Periods of quality objectives (feedback.models.OBJECTIVE_PERIODS) by their names in the catalogues.
ROLLING_PERIOD = "30 days"


def _locale(lang: str) -> str:
    return BABEL_LOCALES.get(lang, "en")


def share_digits(value: float, most: int = 2) -> int:
    """The decimals a share needs as a percentage to keep what it was set to (0.9947 -> 2, 0.9 -> 0)."""
    percent = value * 100
    for digits in range(most + 1):
        if abs(round(percent, digits) - percent) < 1e-9:
            return digits
    return most


def format_share(value: float | None, lang: str, digits: int | None = 1) -> str:
    """A share (0-1) as a percentage in the language's own pattern; `digits=None` keeps what it needs."""
    if value is None:
        return "–"
    places = share_digits(value) if digits is None else digits
    pattern = Locale.parse(_locale(lang)).percent_formats[None].pattern
    pattern = pattern.replace("#,##0", "#,##0" + ("." + "0" * places if places > 0 else ""), 1)
    return format_percent(value, format=pattern, locale=_locale(lang))


def format_mean(value: float | None, lang: str, digits: int = 1) -> str:
    """A mean score (0-100) with `digits` decimals, as the language writes numbers."""
    if value is None:
        return "–"
    return format_decimal(value, format="#,##0" + ("." + "0" * digits if digits > 0 else ""), locale=_locale(lang))


def days_text(first: date | str, last: date | str, lang: str) -> str:
    """A span of days, e.g. "Oct 1 – Dec 2, 2026" / "1 thg 10 – 2 thg 12, 2026"; one day alone as a date."""
    start = date.fromisoformat(first) if isinstance(first, str) else first
    end = date.fromisoformat(last) if isinstance(last, str) else last
    if start == end:
        return format_date(start, format="medium", locale=_locale(lang))
    return format_interval(start, end, "yMMMd", locale=_locale(lang))


def period_name(period: str, first: date | str, lang: str) -> str:
    """The name of an objective's period that starts on `first`: "December 2026", "4th quarter 2026",
    or "30 days" for a rolling window (whose days say which)."""
    start = date.fromisoformat(first) if isinstance(first, str) else first
    if period == "month":
        return format_skeleton("yMMMM", start, locale=_locale(lang))
    if period == "quarter":
        return format_skeleton("yQQQQ", start, locale=_locale(lang))
    return gettext_for(lang)(ROLLING_PERIOD)


def week_days(week: str) -> tuple[date, date] | None:
    """Monday and Sunday of an ISO week written "2026-W45", or None for anything else."""
    year, _, number = week.partition("-W")
    if not (year.isdecimal() and number.isdecimal()):
        return None
    try:
        monday = date.fromisocalendar(int(year), int(number), 1)
    except ValueError:
        return None
    return monday, monday + timedelta(days=6)


def short_day(day: date | str, lang: str) -> str:
    """A day without its year, short: "Nov 2", "2 thg 11", "2 нояб.", "11月2日" (chart axes)."""
    value = date.fromisoformat(day) if isinstance(day, str) else day
    return format_skeleton("MMMd", value, locale=_locale(lang))

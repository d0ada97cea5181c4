"""Working-day calendars per jurisdiction: weekends plus public holidays from the `holidays` library.

Deadlines of corrective actions are counted in working days on the calendar of the unit's country
(`units.country`, an ISO 3166 code, optionally with a subdivision: "CN", "US-CA"). The core names no
jurisdiction: the code comes from data. Without a country (or with one the library does not know)
the calendar is Monday to Friday with no holidays.

Some countries move working days onto weekends around long holidays (China's Golden Week, Vietnam's
Tết, Russia's New Year): those weekend workdays count as working days.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

import holidays

log = logging.getLogger("feedback.calendars")

MONDAY_TO_FRIDAY = frozenset({5, 6})  # the weekend, as date.weekday() numbers


@dataclass(frozen=True)
class YearCalendar:
    weekend: frozenset[int]
    days_off: frozenset[date]  # public holidays (and substituted days off) of the year
    weekend_workdays: frozenset[date]  # weekend days declared working days that year

    def is_working_day(self, day: date) -> bool:
        if day.weekday() in self.weekend:
            return day in self.weekend_workdays
        return day not in self.days_off


_PLAIN = YearCalendar(MONDAY_TO_FRIDAY, frozenset(), frozenset())


def _split(country: str) -> tuple[str, str | None]:
    code, _, subdivision = country.strip().upper().partition("-")
    return code, subdivision or None


@lru_cache(maxsize=1024)
def year_calendar(country: str | None, year: int) -> YearCalendar:
    """One country's calendar for one year, built once and kept (holiday tables are slow to build)."""
    if not country:
        return _PLAIN
    code, subdivision = _split(country)
    try:
        table = holidays.country_holidays(code, subdiv=subdivision, years=year)
    except (RuntimeError, KeyError, ValueError) as error:
        # The library refuses a code it does not know with a RuntimeError subclass. That must not
        # stop deadlines: count plain weekdays instead.
        log.warning("no holiday calendar for %r (%s); using Monday to Friday", country, error)
        return _PLAIN
    workdays = getattr(table, "weekend_workdays", set()) or set()
    return YearCalendar(
        weekend=frozenset(getattr(table, "weekend", MONDAY_TO_FRIDAY)),
        days_off=frozenset(day for day in table if day.year == year),
        weekend_workdays=frozenset(day for day in workdays if day.year == year),
    )


def is_working_day(day: date, country: str | None) -> bool:
    """Whether `day` is a working day in `country` (None: Monday to Friday, no holidays)."""
    return year_calendar(country or None, day.year).is_working_day(day)


def add_working_days(start: date, days: int, country: str | None) -> date:
    """The `days`-th working day after `start` (a deadline counted from the day something opened).

    0 gives `start` itself; a negative count goes back that many working days.
    """
    step = timedelta(days=1 if days >= 0 else -1)
    day = start
    remaining = abs(days)
    while remaining:
        day += step
        if is_working_day(day, country):
            remaining -= 1
    return day


def working_days_between(start: date, end: date, country: str | None) -> int:
    """How many working days lie after `start` up to and including `end`.

    `working_days_between(d, add_working_days(d, n, c), c) == n` for n >= 0; an `end` before `start`
    gives `-working_days_between(end, start, c)`.
    """
    if end == start:
        return 0
    sign = 1 if end > start else -1
    low, high = (start, end) if sign > 0 else (end, start)
    count = 0
    day = low + timedelta(days=1)
    while day <= high:
        if is_working_day(day, country):
            count += 1
        day += timedelta(days=1)
    return sign * count

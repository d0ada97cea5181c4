"""Working-day calendars with the real holiday data of the `holidays` library (VN, CN, RU)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from feedback.calendars import add_working_days, is_working_day, working_days_between, year_calendar


def test_vietnam_tet_2026_is_five_days_off() -> None:
    for day in range(16, 21):  # Mon 16 – Fri 20 February 2026
        assert not is_working_day(date(2026, 2, day), "VN")
    assert is_working_day(date(2026, 2, 13), "VN") and is_working_day(date(2026, 2, 23), "VN")
    # A bad review on the Friday before Tết, due in 1 working day: the Monday after Tết.
    assert add_working_days(date(2026, 2, 13), 1, "VN") == date(2026, 2, 23)
    # Ben Tre's 5 working days from the same Friday.
    assert add_working_days(date(2026, 2, 13), 5, "VN") == date(2026, 2, 27)
    assert working_days_between(date(2026, 2, 13), date(2026, 2, 27), "VN") == 5


def test_vietnam_works_on_a_swapped_saturday() -> None:
    # 2026: Saturday 22 August is worked so that Monday 31 August bridges to National Day.
    assert is_working_day(date(2026, 8, 22), "VN")
    assert not is_working_day(date(2026, 8, 31), "VN")
    assert not is_working_day(date(2026, 9, 1), "VN") and not is_working_day(date(2026, 9, 2), "VN")
    assert add_working_days(date(2026, 8, 21), 1, "VN") == date(2026, 8, 22)
    assert add_working_days(date(2026, 8, 28), 1, "VN") == date(2026, 9, 3)


def test_china_golden_week_2025_with_adjusted_weekend_workdays() -> None:
    for day in range(1, 9):  # National Day + Mid-Autumn: 1–8 October 2025 off
        assert not is_working_day(date(2025, 10, day), "CN")
    # The weekend days worked in exchange.
    assert is_working_day(date(2025, 9, 28), "CN")  # a Sunday
    assert is_working_day(date(2025, 10, 11), "CN")  # a Saturday
    assert not is_working_day(date(2025, 10, 12), "CN")  # an ordinary Sunday
    assert add_working_days(date(2025, 9, 26), 1, "CN") == date(2025, 9, 28)
    assert add_working_days(date(2025, 9, 30), 1, "CN") == date(2025, 10, 9)
    assert add_working_days(date(2025, 10, 10), 1, "CN") == date(2025, 10, 11)
    # Dezhou's 5 working days from the eve of the holiday.
    assert add_working_days(date(2025, 9, 30), 5, "CN") == date(2025, 10, 14)


def test_china_golden_week_2026() -> None:
    for day in (1, 2, 3, 5, 6, 7):
        assert not is_working_day(date(2026, 10, day), "CN")
    assert is_working_day(date(2026, 9, 20), "CN")  # Sunday worked
    assert is_working_day(date(2026, 10, 10), "CN")  # Saturday worked
    assert add_working_days(date(2026, 9, 30), 1, "CN") == date(2026, 10, 8)
    # Spring Festival 2026: 16–20 and 23 February off, Saturday 14 and 28 February worked.
    assert is_working_day(date(2026, 2, 14), "CN") and is_working_day(date(2026, 2, 28), "CN")
    assert add_working_days(date(2026, 2, 13), 1, "CN") == date(2026, 2, 14)
    assert add_working_days(date(2026, 2, 14), 1, "CN") == date(2026, 2, 24)


def test_russia_new_year_holidays() -> None:
    for day in range(1, 9):
        assert not is_working_day(date(2026, 1, day), "RU")
    assert not is_working_day(date(2026, 1, 9), "RU")  # 2026: the 3 January day off moved to the 9th
    assert not is_working_day(date(2025, 12, 31), "RU")
    assert add_working_days(date(2025, 12, 30), 1, "RU") == date(2026, 1, 12)
    assert working_days_between(date(2025, 12, 30), date(2026, 1, 12), "RU") == 1
    # Backwards across the same holidays.
    assert add_working_days(date(2026, 1, 12), -1, "RU") == date(2025, 12, 30)
    assert working_days_between(date(2026, 1, 12), date(2025, 12, 30), "RU") == -1


def test_no_country_is_monday_to_friday_without_holidays() -> None:
    friday = date(2026, 2, 13)
    assert not is_working_day(date(2026, 2, 14), None) and not is_working_day(date(2026, 2, 15), None)
    assert is_working_day(date(2026, 2, 17), None)  # Tết is nobody's holiday without a country
    assert add_working_days(friday, 1, None) == date(2026, 2, 16)
    assert add_working_days(friday, 10, None) == date(2026, 2, 27)
    assert add_working_days(friday, 0, None) == friday
    assert working_days_between(friday, friday + timedelta(days=14), None) == 10
    # A code the library does not know counts plain weekdays rather than failing a deadline.
    assert add_working_days(friday, 1, "XX") == date(2026, 2, 16)


def test_lower_case_and_subdivision_codes() -> None:
    assert not is_working_day(date(2026, 2, 17), "vn")
    # Only California keeps César Chávez Day in the US calendar data.
    assert not is_working_day(date(2026, 3, 31), "US-CA")
    assert is_working_day(date(2026, 3, 31), "US")


@pytest.mark.parametrize("country", ["VN", "CN", "RU", None])
def test_between_is_the_inverse_of_add(country: str | None) -> None:
    start = date(2025, 12, 20)
    for n in range(0, 40, 3):
        end = add_working_days(start, n, country)
        assert is_working_day(end, country) or n == 0
        assert working_days_between(start, end, country) == n


def test_calendars_are_cached_per_country_and_year() -> None:
    assert year_calendar("VN", 2026) is year_calendar("VN", 2026)
    assert year_calendar("VN", 2026) is not year_calendar("VN", 2025)

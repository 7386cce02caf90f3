"""Which working-day calendar a clinic setting gives (written to kill surviving mutants)."""

from __future__ import annotations

from datetime import date

import pytest

from app.domain.working_days import (
    ChinaWorkingDays,
    HolidayWorkingDays,
    WeekendsOnly,
    is_public_holiday,
    working_days_for,
)


@pytest.mark.parametrize("code", ["CN", "cn", " cn "])
def test_china_in_any_case_is_the_china_calendar(code: str) -> None:
    calendar = working_days_for(code)

    assert isinstance(calendar, ChinaWorkingDays)
    assert not calendar.is_working_day(date(2026, 10, 1))  # National Day
    assert calendar.is_working_day(date(2026, 9, 30))  # a Wednesday


@pytest.mark.parametrize("code", ["", "weekends", "NONE"])
def test_no_country_means_weekends_only(code: str) -> None:
    calendar = working_days_for(code)

    assert isinstance(calendar, WeekendsOnly)
    assert calendar.is_working_day(date(2026, 10, 1))  # a Thursday: no holidays here
    assert not calendar.is_working_day(date(2026, 10, 3))  # a Saturday


def test_another_country_uses_its_own_holidays() -> None:
    calendar = working_days_for("jp")

    assert isinstance(calendar, HolidayWorkingDays)
    assert repr(calendar) == "HolidayWorkingDays('JP')"
    assert not calendar.is_working_day(date(2026, 2, 11))  # National Foundation Day, Wednesday
    assert calendar.holiday_name(date(2026, 2, 11))
    assert calendar.holiday_name(date(2026, 2, 12)) is None


def test_an_unknown_code_is_refused_by_name() -> None:
    with pytest.raises(ValueError) as refused:
        working_days_for("XX")

    assert str(refused.value) == (
        "unknown working-day calendar 'XX': expected a country code supported by the holidays "
        "library (e.g. CN) or 'weekends'"
    )


def test_the_calendars_name_themselves() -> None:
    assert repr(WeekendsOnly()) == "WeekendsOnly()"
    assert repr(ChinaWorkingDays()) == "ChinaWorkingDays()"
    assert ChinaWorkingDays().holiday_name(date(2026, 10, 1))


# -- public holidays (is_public_holiday): China's 2026 National Day week, read from the State
# Council schedule: 1-3 Oct holidays (3 Oct a Saturday), 5-7 Oct days off in lieu, Sunday 20 Sep
# and Saturday 10 Oct make-up working days (调休).


@pytest.mark.parametrize(
    ("day", "holiday"),
    [
        (date(2026, 10, 1), True),  # Thursday, National Day
        (date(2026, 10, 3), True),  # Saturday, National Day itself
        (date(2026, 10, 6), True),  # Tuesday, a day off in lieu
        (date(2026, 10, 4), False),  # Sunday: an ordinary weekend day
        (date(2026, 9, 20), False),  # Sunday, a make-up working day
        (date(2026, 10, 10), False),  # Saturday, a make-up working day
        (date(2026, 9, 30), False),  # Wednesday, an ordinary working day
        (date(2026, 10, 17), False),  # an ordinary Saturday
    ],
)
def test_china_public_holidays(day: date, holiday: bool) -> None:
    assert is_public_holiday(ChinaWorkingDays(), day) is holiday


def test_weekends_are_never_holidays_on_a_calendar_without_names() -> None:
    calendar = WeekendsOnly()

    assert is_public_holiday(calendar, date(2026, 10, 3)) is False  # Saturday
    assert is_public_holiday(calendar, date(2026, 10, 1)) is False  # a working Thursday


def test_a_closed_weekday_is_a_holiday_even_without_names() -> None:
    class ClosedThursdays:
        holiday_name = "not callable"

        def is_working_day(self, day: date) -> bool:
            return day.weekday() not in (3, 5, 6)

    assert is_public_holiday(ClosedThursdays(), date(2026, 10, 1)) is True  # Thursday
    assert is_public_holiday(ClosedThursdays(), date(2026, 10, 3)) is False  # Saturday
    assert is_public_holiday(ClosedThursdays(), date(2026, 9, 30)) is False  # Wednesday


def test_working_days_are_the_same_asked_twice() -> None:
    calendar = ChinaWorkingDays()

    first = [calendar.is_working_day(date(2026, 10, d)) for d in range(1, 12)]
    again = [calendar.is_working_day(date(2026, 10, d)) for d in range(1, 12)]

    # 1-7 Oct closed, 8-9 working, 10 Oct (Saturday) a make-up day, 11 Oct Sunday
    expected = [False] * 7 + [True, True, True, False]
    assert first == again == expected

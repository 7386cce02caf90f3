"""Which working-day calendar a clinic setting gives (written to kill surviving mutants)."""

from __future__ import annotations

from datetime import date

import pytest

from app.domain.working_days import (
    ChinaWorkingDays,
    HolidayWorkingDays,
    WeekendsOnly,
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

"""Working-day calendars: which dates a clinic is open (weekends, public holidays, make-up days)."""

from __future__ import annotations

import typing
from datetime import date

import holidays

WEEKENDS_ONLY_CODES = ("", "WEEKENDS", "NONE")


class WorkingDays(typing.Protocol):
    """Anything that can tell whether a clinic works on a given date."""

    def is_working_day(self, day: date) -> bool:
        """True when the clinic is open on `day`."""
        ...


class WeekendsOnly:
    """Monday to Friday are working days; no public holidays (tests, sites without a calendar)."""

    def is_working_day(self, day: date) -> bool:
        """True from Monday to Friday."""
        return day.weekday() < 5

    def __repr__(self) -> str:
        return "WeekendsOnly()"


class HolidayWorkingDays:
    """Working days of a country from the `holidays` library, with its weekend make-up days."""

    def __init__(self, country_code: str) -> None:
        """Build the calendar of `country_code` (ISO 3166-1 alpha-2); years are added on demand."""
        self.country_code = country_code.upper()
        self._calendar = holidays.country_holidays(self.country_code)
        self._years: set[int] = set()
        self._cache: dict[date, bool] = {}

    def is_working_day(self, day: date) -> bool:
        """True unless `day` is a weekend day that is not a make-up working day, or a holiday."""
        cached = self._cache.get(day)
        if cached is None:
            self._ensure_year(day.year)
            cached = bool(self._calendar.is_working_day(day))
            self._cache[day] = cached
        return cached

    def holiday_name(self, day: date) -> str | None:
        """The holiday's name on `day`, if any (for messages to the nurse)."""
        self._ensure_year(day.year)
        return self._calendar.get(day)

    def _ensure_year(self, year: int) -> None:
        """Load the year and its neighbours (make-up days can cross a year boundary)."""
        for neighbour in (year - 1, year, year + 1):
            if neighbour not in self._years:
                _ = date(neighbour, 7, 1) in self._calendar  # the library expands its years lazily
                self._years.add(neighbour)

    def __repr__(self) -> str:
        return f"HolidayWorkingDays({self.country_code!r})"


class ChinaWorkingDays(HolidayWorkingDays):
    """Mainland China: weekends, public holidays and the make-up working days (调休)."""

    def __init__(self) -> None:
        """Build the mainland China calendar (State Council schedule, via `holidays`)."""
        super().__init__("CN")

    def __repr__(self) -> str:
        return "ChinaWorkingDays()"


def is_public_holiday(calendar: WorkingDays, day: date) -> bool:
    """True on a public holiday: a closed Monday-Friday, or a weekend day with a holiday's name.

    Make-up working days (调休) are not holidays; ordinary weekends are not holidays.
    """
    if calendar.is_working_day(day):
        return False
    if day.weekday() < 5:
        return True
    name = getattr(calendar, "holiday_name", None)
    return bool(name(day)) if callable(name) else False


def working_days_for(country_code: str) -> WorkingDays:
    """The working-day calendar for a country code ("CN", ...) or "weekends" for Monday-Friday."""
    code = (country_code or "").strip().upper()
    if code in WEEKENDS_ONLY_CODES:
        return WeekendsOnly()
    if code == "CN":
        return ChinaWorkingDays()
    if code not in holidays.list_supported_countries():
        raise ValueError(
            f"unknown working-day calendar {country_code!r}: expected a country code supported "
            "by the holidays library (e.g. CN) or 'weekends'"
        )
    return HolidayWorkingDays(code)

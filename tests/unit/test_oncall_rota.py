"""The on-call rota as data: weekdays, time ranges, overnight and 24-hour shifts, priority."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest

from app.domain.oncall import (
    RotaError,
    Shift,
    check_role,
    format_time_range,
    format_weekdays,
    on_call,
    parse_time_range,
    parse_weekdays,
)

SH = ZoneInfo("Asia/Shanghai")


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment in March 2026 (2 March is a Monday)."""
    return datetime(2026, 3, day, hour, minute, tzinfo=SH)


def shift(role: str, phone: str, days: str, hours: str, priority: int = 0) -> Shift:
    start, end = parse_time_range(hours)
    return Shift(role, phone, phone, parse_weekdays(days), start, end, priority)


@pytest.mark.parametrize(
    ("text", "days"),
    [
        ("mon-fri", {0, 1, 2, 3, 4}),
        ("sat,sun", {5, 6}),
        ("daily", set(range(7))),
        ("weekdays", {0, 1, 2, 3, 4}),
        ("weekends", {5, 6}),
        ("fri-mon", {4, 5, 6, 0}),
        ("Monday, wed", {0, 2}),
    ],
)
def test_weekdays_are_parsed(text: str, days: set[int]) -> None:
    assert parse_weekdays(text) == frozenset(days)


@pytest.mark.parametrize("text", ["", "funday", "mo", "mon-xyz"])
def test_bad_weekdays_are_refused_with_a_message(text: str) -> None:
    with pytest.raises(RotaError, match="weekdays"):
        parse_weekdays(text)


def test_weekdays_and_hours_round_trip() -> None:
    assert format_weekdays(parse_weekdays("fri-mon")) == "mon,fri,sat,sun"
    assert parse_time_range("08:00-24:00") == (time(8, 0), time(0, 0))
    assert format_time_range(*parse_time_range("8:30-17:45")) == "08:30-17:45"


@pytest.mark.parametrize("text", ["8-17", "25:00-26:00", "08:00-17:61", "x"])
def test_bad_hours_are_refused(text: str) -> None:
    with pytest.raises(RotaError, match="hours"):
        parse_time_range(text)


def test_a_day_shift_covers_its_hours_on_its_days_only() -> None:
    day = shift("clinician", "+1", "mon-fri", "08:00-17:00")
    assert day.covers(at(2, 8, 0)) and day.covers(at(2, 16, 59))
    assert not day.covers(at(2, 17, 0)) and not day.covers(at(2, 7, 59))
    assert not day.covers(at(7, 10))  # Saturday


def test_an_overnight_shift_belongs_to_the_day_it_starts() -> None:
    night = shift("clinician", "+2", "fri", "17:00-08:00")
    assert night.covers(at(6, 17, 0))  # Friday evening
    assert night.covers(at(7, 7, 59))  # Saturday early morning, Friday's shift
    assert not night.covers(at(7, 8, 0))
    assert not night.covers(at(7, 20, 0))  # Saturday evening: no Saturday shift
    assert not night.covers(at(6, 7, 0))  # Friday early morning belongs to Thursday


def test_a_24_hour_shift_runs_from_start_to_start() -> None:
    full = shift("investigator", "+3", "sun", "08:00-08:00")
    assert full.covers(at(8, 8, 0)) and full.covers(at(8, 23, 0)) and full.covers(at(9, 7, 59))
    assert not full.covers(at(9, 8, 0)) and not full.covers(at(8, 7, 59))


def test_on_call_filters_by_role_orders_by_priority_and_dedupes_numbers() -> None:
    shifts = [
        shift("clinician", "+20", "daily", "00:00-00:00", priority=2),
        shift("clinician", "+10", "daily", "00:00-00:00", priority=1),
        shift("clinician", "+10", "mon", "08:00-17:00", priority=5),
        shift("investigator", "+30", "daily", "00:00-00:00"),
        shift("clinician", "+40", "sat", "08:00-17:00"),
    ]
    assert [s.phone for s in on_call(shifts, at(2, 9), "clinician")] == ["+10", "+20"]
    assert [s.phone for s in on_call(shifts, at(2, 9), "investigator")] == ["+30"]
    assert on_call(shifts, at(2, 9), "nurse") == []


def test_roles_are_checked() -> None:
    assert check_role("nurse") == "nurse"
    with pytest.raises(RotaError, match="role"):
        check_role("janitor")

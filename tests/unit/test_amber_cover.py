"""Amber means today, every day: nurse cover from the rota across weekends and public holidays,
escalation by cover time, the promise made to the patient, and gaps in cover."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.domain.escalation import (
    AMBER_HORIZON,
    EscalationPolicy,
    add_cover_time,
    amber_deadline,
    amber_promise,
    first_escalation_at,
)
from app.domain.oncall import (
    AMBER_ROLES,
    RotaError,
    Shift,
    cover_gaps,
    cover_intervals,
    days_from_choices,
    format_weekdays,
    parse_days,
    parse_time_range,
)
from app.domain.working_days import WeekendsOnly, is_public_holiday, working_days_for

SH = ZoneInfo("Asia/Shanghai")
CN = working_days_for("CN")
HOURS4 = timedelta(hours=4)


def holiday(day):
    return is_public_holiday(CN, day)


def local(m: int, d: int, hh: int, mm: int = 0) -> datetime:
    return datetime(2026, m, d, hh, mm, tzinfo=SH)


def nurse(days: str, hours: str, phone: str = "+8613900000003") -> Shift:
    weekdays, holidays = parse_days(days)
    start, end = parse_time_range(hours)
    return Shift("nurse", phone, phone, weekdays, start, end, holidays=holidays)


WORKING_DAY_NURSE = nurse("mon-fri", "08:00-17:00", "+8613900000010")
WEEKEND_AND_HOLIDAY_NURSE = nurse("sat,sun,hol", "08:00-08:00", "+8613900000011")
EVENING_NURSE = nurse("mon-fri", "17:00-08:00", "+8613900000012")


def test_public_holidays_are_closed_weekdays_and_named_weekend_days() -> None:
    assert holiday(local(2, 17, 0).date())  # Spring Festival, a Tuesday
    assert holiday(local(2, 20, 0).date())  # a day off moved from Saturday 14 February
    assert not holiday(local(2, 14, 0).date())  # the make-up working Saturday
    assert not holiday(local(3, 7, 0).date())  # an ordinary Saturday
    assert not holiday(local(3, 4, 0).date())  # an ordinary Wednesday
    assert not is_public_holiday(WeekendsOnly(), local(2, 17, 0).date())


def test_monday_to_friday_entries_are_off_on_public_holidays_holiday_entries_are_on() -> None:
    tuesday_festival = local(2, 17, 10)
    assert not WORKING_DAY_NURSE.covers(tuesday_festival, holiday)
    assert WORKING_DAY_NURSE.covers(local(3, 3, 10), holiday)
    assert WEEKEND_AND_HOLIDAY_NURSE.covers(tuesday_festival, holiday)
    assert not WEEKEND_AND_HOLIDAY_NURSE.covers(local(3, 3, 10), holiday)
    every_day = nurse("daily", "08:00-08:00")
    assert every_day.covers(tuesday_festival, holiday)  # a daily entry knows no holidays


def test_the_spring_festival_amber_alert_escalates_the_same_evening() -> None:
    raised = local(2, 14, 18)  # Saturday 14 February 2026, 18:00, the eve of the holiday
    rota = [WORKING_DAY_NURSE, WEEKEND_AND_HOLIDAY_NURSE]
    cover = cover_intervals(rota, AMBER_ROLES, raised, raised + AMBER_HORIZON, SH, holiday)
    due = first_escalation_at("amber", raised, EscalationPolicy(), cover)
    assert due is not None and due.astimezone(SH) == local(2, 14, 22)
    old_rule = datetime(2026, 2, 24, 12, 0, tzinfo=SH)  # the working-hours rule of before
    assert due < old_rule


def test_cover_time_skips_the_gaps_and_falls_back_to_wall_clock_without_cover() -> None:
    start = local(3, 6, 15)  # Friday 15:00; the working-day nurse leaves at 17:00
    rota = [WORKING_DAY_NURSE, nurse("sat", "08:00-20:00")]
    cover = cover_intervals(rota, AMBER_ROLES, start, start + AMBER_HORIZON, SH, holiday)
    assert add_cover_time(start, HOURS4, cover) == local(3, 7, 10).astimezone(UTC)
    assert amber_deadline(start, HOURS4, cover) == local(3, 7, 10).astimezone(UTC)
    assert amber_deadline(start, HOURS4, []) == start.astimezone(UTC) + HOURS4
    assert add_cover_time(start, HOURS4, []) is None


def test_gaps_over_the_spring_festival_week_with_a_working_day_rota() -> None:
    week = local(2, 16, 0), local(2, 23, 0)  # Monday 16 to Sunday 22 February
    gaps = cover_gaps([WORKING_DAY_NURSE, EVENING_NURSE], AMBER_ROLES, *week, SH, holiday)
    # Monday 16 to Friday 20 are holidays and Saturday 21, Sunday 22 a weekend: nothing covered
    assert gaps == [(week[0].astimezone(UTC), week[1].astimezone(UTC))]
    covered = cover_gaps(
        [WORKING_DAY_NURSE, EVENING_NURSE, WEEKEND_AND_HOLIDAY_NURSE],
        AMBER_ROLES,
        *week,
        SH,
        holiday,
    )
    assert covered == []  # Sunday 15 08:00 runs into Monday; every day after has its own shift


def test_an_ordinary_week_shows_its_night_gaps() -> None:
    start, end = local(3, 2, 0), local(3, 3, 0)
    gaps = cover_gaps([WORKING_DAY_NURSE], AMBER_ROLES, start, end, SH, holiday)
    assert gaps == [
        (start.astimezone(UTC), local(3, 2, 8).astimezone(UTC)),
        (local(3, 2, 17).astimezone(UTC), end.astimezone(UTC)),
    ]


@pytest.mark.parametrize(
    ("now", "kind", "call_by", "cover_from"),
    [
        (local(3, 4, 9), "now", local(3, 4, 13), local(3, 4, 9)),
        (local(3, 4, 20), "later", local(3, 5, 12), local(3, 5, 8)),
    ],
)
def test_the_promise_follows_the_rota(
    now: datetime, kind: str, call_by: datetime, cover_from: datetime
) -> None:
    cover = cover_intervals([WORKING_DAY_NURSE], AMBER_ROLES, now, now + AMBER_HORIZON, SH)
    promise = amber_promise(now, HOURS4, cover)
    assert promise.kind == kind
    assert promise.call_by == call_by.astimezone(UTC)
    assert promise.cover_from == cover_from.astimezone(UTC)


def test_no_call_is_promised_when_the_rota_cannot_keep_it_within_24_hours() -> None:
    friday_evening = local(3, 6, 18)
    cover = cover_intervals(
        [WORKING_DAY_NURSE], AMBER_ROLES, friday_evening, friday_evening + AMBER_HORIZON, SH
    )
    assert cover == []
    assert amber_promise(friday_evening, HOURS4, cover).kind == "none"
    thin = [(friday_evening.astimezone(UTC), (friday_evening + timedelta(hours=1)).astimezone(UTC))]
    assert amber_promise(friday_evening, HOURS4, thin).kind == "none"  # 1 h of cover < 4 h


def test_days_round_trip_with_holidays_and_day_boxes() -> None:
    assert parse_days("sat,sun,hol") == (frozenset({5, 6}), True)
    assert parse_days("hol") == (frozenset(), True)
    assert parse_days("mon-fri") == (frozenset(range(5)), False)
    assert format_weekdays({5, 6}, holidays=True) == "sat,sun,hol"
    assert days_from_choices(["5", "6", "hol"]) == (frozenset({5, 6}), True)
    with pytest.raises(RotaError, match="days"):
        days_from_choices([])
    with pytest.raises(RotaError, match="days"):
        days_from_choices(["7"])

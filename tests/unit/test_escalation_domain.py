"""Escalation arithmetic: working hours across evenings, weekends and Chinese holidays."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.escalation import (
    EscalationConfigError,
    EscalationPolicy,
    WorkingHours,
    add_working_time,
    first_escalation_at,
    next_escalation_at,
    working_time_between,
)
from app.domain.working_days import WeekendsOnly, working_days_for

SH = ZoneInfo("Asia/Shanghai")
HOURS = WorkingHours(time(8, 0), time(17, 0))
CN = working_days_for("CN")


def local(y: int, m: int, d: int, hh: int, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=SH)


def add(start: datetime, hours: float, days=CN) -> datetime:
    return add_working_time(start, timedelta(hours=hours), HOURS, days, SH).astimezone(SH)


def test_inside_working_hours_it_is_plain_addition() -> None:
    assert add(local(2026, 3, 2, 10), 4) == local(2026, 3, 2, 14)


def test_the_rest_carries_over_to_the_next_working_morning() -> None:
    assert add(local(2026, 3, 2, 15), 4) == local(2026, 3, 3, 10)


def test_evenings_and_weekends_do_not_count() -> None:
    assert add(local(2026, 3, 6, 16), 4) == local(2026, 3, 9, 11)  # Friday 16:00 -> Monday
    assert add(local(2026, 3, 7, 12), 4) == local(2026, 3, 9, 12)  # Saturday noon -> Monday
    assert add(local(2026, 3, 2, 21), 4) == local(2026, 3, 3, 12)  # Monday night


def test_chinese_public_holidays_and_make_up_days_are_respected() -> None:
    # 2026: Mid-Autumn Festival 25 Sep, National Day 1-7 Oct off; Saturday 10 Oct is worked.
    assert add(local(2026, 9, 30, 16), 4) == local(2026, 10, 8, 11)
    assert add(local(2026, 9, 24, 16), 4) == local(2026, 9, 28, 11)
    assert add(local(2026, 10, 9, 16), 4) == local(2026, 10, 10, 11)


def test_working_time_between_inverts_add_working_time() -> None:
    start = local(2026, 3, 6, 16)
    end = add(start, 4)
    assert working_time_between(start, end, HOURS, CN, SH) == timedelta(hours=4)
    assert working_time_between(end, start, HOURS, CN, SH) == timedelta(0)


@given(
    start=st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31)),
    minutes=st.integers(min_value=0, max_value=60 * 40),
)
def test_add_then_measure_gives_the_duration_back(start: datetime, minutes: int) -> None:
    moment = start.replace(tzinfo=SH)
    end = add_working_time(moment, timedelta(minutes=minutes), HOURS, WeekendsOnly(), SH)
    assert end >= moment
    measured = working_time_between(moment, end, HOURS, WeekendsOnly(), SH)
    assert measured == timedelta(minutes=minutes)
    local_end = end.astimezone(SH)
    if minutes:
        assert time(8, 0) < local_end.time() <= time(17, 0) and local_end.weekday() < 5


def test_red_counts_wall_clock_minutes_and_green_never_escalates() -> None:
    policy = EscalationPolicy()
    created = datetime(2026, 3, 7, 23, 0, tzinfo=UTC)  # a Saturday night in Nanjing
    assert first_escalation_at("red", created, policy) == created + timedelta(minutes=15)
    assert next_escalation_at("red", created, policy) == created + timedelta(minutes=15)
    assert first_escalation_at("green", created, policy) is None
    cover = [(created + timedelta(hours=2), created + timedelta(hours=10))]
    amber = first_escalation_at("amber", created, policy, cover)
    assert amber == created + timedelta(hours=6)  # 4 h of cover, starting 2 h later
    assert first_escalation_at("amber", created, policy) == created + timedelta(hours=4)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(EscalationConfigError):
        WorkingHours(time(17, 0), time(8, 0))
    with pytest.raises(EscalationConfigError):
        WorkingHours.parse("9 to 5")
    with pytest.raises(EscalationConfigError):
        EscalationPolicy(red_first=timedelta(0))
    assert WorkingHours.parse("08:30-17:30") == WorkingHours(time(8, 30), time(17, 30))

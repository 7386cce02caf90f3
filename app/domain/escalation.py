"""Escalation arithmetic: working hours, deadlines and when an open alert is due to escalate.

Pure domain code (standard library only). Amber alerts count *working* time: only the clinic's
working hours on its working days (weekends, public holidays and make-up days come from a
``WorkingDays`` calendar passed in). Red alerts count wall-clock minutes. The clock and the time
zone are arguments; every datetime returned is aware and in UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

MAX_SEARCH_DAYS = 3660
"""A calendar with no working day in ten years is a configuration error."""


class EscalationConfigError(ValueError):
    """An escalation setting that cannot be used (the message names it)."""


class WorkingDays(Protocol):
    """Anything that can tell whether the clinic works on a date."""

    def is_working_day(self, day: date) -> bool:
        """True when the clinic is open on ``day``."""
        ...


@dataclass(frozen=True)
class WorkingHours:
    """The clinic's opening hours on a working day (local time, start before end)."""

    start: time
    end: time

    def __post_init__(self) -> None:
        if not self.start < self.end:
            raise EscalationConfigError(
                f"working hours must start before they end, got {self.start:%H:%M}-{self.end:%H:%M}"
            )

    @classmethod
    def parse(cls, text: str) -> WorkingHours:
        """'08:00-17:00' -> WorkingHours(08:00, 17:00)."""
        start_text, sep, end_text = (text or "").partition("-")
        try:
            start = time.fromisoformat(start_text.strip())
            end = time.fromisoformat(end_text.strip())
        except ValueError as exc:
            raise EscalationConfigError(
                f"working hours: expected HH:MM-HH:MM such as 08:00-17:00, got {text!r}"
            ) from exc
        if not sep:
            raise EscalationConfigError(f"working hours: expected HH:MM-HH:MM, got {text!r}")
        return cls(start, end)


@dataclass(frozen=True)
class EscalationPolicy:
    """When open alerts escalate: red by wall-clock minutes, amber by working hours."""

    red_first: timedelta = timedelta(minutes=15)
    red_repeat: timedelta = timedelta(minutes=15)
    amber_first: timedelta = timedelta(hours=4)
    amber_repeat: timedelta = timedelta(hours=4)
    working_hours: WorkingHours = WorkingHours(time(8, 0), time(17, 0))

    def __post_init__(self) -> None:
        for name in ("red_first", "red_repeat", "amber_first", "amber_repeat"):
            if getattr(self, name) <= timedelta(0):
                raise EscalationConfigError(f"escalation {name} must be more than zero")


def add_working_time(
    start: datetime,
    duration: timedelta,
    hours: WorkingHours,
    working_days: WorkingDays,
    tz: ZoneInfo,
) -> datetime:
    """The moment ``duration`` of working time after ``start`` (UTC); counting starts at the
    next opening when ``start`` falls outside working hours."""
    if start.tzinfo is None:
        raise ValueError("start must be an aware datetime")
    remaining = max(duration, timedelta(0))
    local = start.astimezone(tz)
    day = local.date()
    for _ in range(MAX_SEARCH_DAYS):
        if working_days.is_working_day(day):
            opens = datetime.combine(day, hours.start, tzinfo=tz).astimezone(UTC)
            closes = datetime.combine(day, hours.end, tzinfo=tz).astimezone(UTC)
            cursor = max(start.astimezone(UTC), opens)
            if cursor < closes:
                available = closes - cursor
                if remaining <= available:
                    return cursor + remaining
                remaining -= available
        day += timedelta(days=1)
    raise EscalationConfigError(f"no working day within {MAX_SEARCH_DAYS} days of {start:%Y-%m-%d}")


def working_time_between(
    start: datetime,
    end: datetime,
    hours: WorkingHours,
    working_days: WorkingDays,
    tz: ZoneInfo,
) -> timedelta:
    """How much working time lies between two moments (zero when ``end`` is not after start)."""
    if end <= start:
        return timedelta(0)
    total = timedelta(0)
    day = start.astimezone(tz).date()
    last = end.astimezone(tz).date()
    while day <= last:
        if working_days.is_working_day(day):
            opens = datetime.combine(day, hours.start, tzinfo=tz).astimezone(UTC)
            closes = datetime.combine(day, hours.end, tzinfo=tz).astimezone(UTC)
            lo, hi = max(start, opens), min(end, closes)
            if hi > lo:
                total += hi - lo
        day += timedelta(days=1)
    return total


def first_escalation_at(
    level: str,
    created_at: datetime,
    policy: EscalationPolicy,
    working_days: WorkingDays,
    tz: ZoneInfo,
) -> datetime | None:
    """When an unacknowledged alert first escalates (None for levels that never do)."""
    if level == "red":
        return created_at.astimezone(UTC) + policy.red_first
    if level == "amber":
        return add_working_time(
            created_at, policy.amber_first, policy.working_hours, working_days, tz
        )
    return None


def next_escalation_at(
    level: str,
    escalated_at: datetime,
    policy: EscalationPolicy,
    working_days: WorkingDays,
    tz: ZoneInfo,
) -> datetime | None:
    """When an alert escalated at ``escalated_at`` escalates again if still unacknowledged."""
    if level == "red":
        return escalated_at.astimezone(UTC) + policy.red_repeat
    if level == "amber":
        return add_working_time(
            escalated_at, policy.amber_repeat, policy.working_hours, working_days, tz
        )
    return None

"""Escalation arithmetic: working hours, deadlines and when an open alert is due to escalate.

Pure domain code (standard library only). Red alerts count wall-clock minutes. Amber alerts
count *cover* time: the time a nurse is on call (UTC intervals from app.domain.oncall, every day
of the week and the calendar), so an amber alert raised on a Saturday evening or a holiday
escalates that evening when the rota has a nurse on call. When the rota has no amber cover
within AMBER_HORIZON, amber counts wall-clock time (the pages then go to the fallbacks) and the
patient is promised no call (``amber_promise``). Green review deadlines count *working* time:
the clinic's working hours on its working days (``WorkingDays`` calendar passed in). The clock
and the time zone are arguments; every datetime returned is aware and in UTC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal, Protocol
from zoneinfo import ZoneInfo

MAX_SEARCH_DAYS = 3660
"""A calendar with no working day in ten years is a configuration error."""
AMBER_HORIZON = timedelta(hours=24)
"""Amber means today: a call is promised, and escalation waits for cover, only within 24 h."""

Interval = tuple[datetime, datetime]


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
    """When open alerts escalate: red by wall-clock minutes, amber by nurse cover time; the
    working hours are for green review deadlines."""

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


def add_cover_time(
    start: datetime, duration: timedelta, cover: Sequence[Interval]
) -> datetime | None:
    """The moment ``duration`` of cover time after ``start`` (UTC), or None when the merged
    ``cover`` intervals end first."""
    if start.tzinfo is None:
        raise ValueError("start must be an aware datetime")
    remaining = max(duration, timedelta(0))
    cursor = start.astimezone(UTC)
    for a, b in cover:
        lo = max(a, cursor)
        if b <= lo:
            continue
        if remaining <= b - lo:
            return lo + remaining
        remaining -= b - lo
    return None


def amber_deadline(start: datetime, duration: timedelta, cover: Sequence[Interval]) -> datetime:
    """When an amber alert (raised or last escalated at ``start``) is due to escalate.

    After ``duration`` of cover time when that falls within AMBER_HORIZON; otherwise (no nurse
    on call to wait for) after ``duration`` of wall-clock time, so an alert never waits longer.
    """
    due = add_cover_time(start, duration, cover)
    utc_start = start.astimezone(UTC)
    if due is not None and due <= utc_start + AMBER_HORIZON:
        return due
    return utc_start + duration


@dataclass(frozen=True)
class AmberPromise:
    """What the patient may be told after an amber report.

    ``now``: a nurse is on call now and will call by ``call_by``; ``later``: nobody is on call now,
    cover starts at ``cover_from`` and a nurse will call by ``call_by``; ``none``: no call can be
    promised within AMBER_HORIZON (the patient is told to call the clinic or 120 if worse).
    """

    kind: Literal["now", "later", "none"]
    call_by: datetime | None = None
    cover_from: datetime | None = None


def amber_promise(now: datetime, duration: timedelta, cover: Sequence[Interval]) -> AmberPromise:
    """The call we can promise at ``now``: by the amber deadline when the rota keeps it in 24 h."""
    utc_now = now.astimezone(UTC)
    due = add_cover_time(utc_now, duration, cover)
    if due is None or due > utc_now + AMBER_HORIZON:
        return AmberPromise("none")
    first = next((a for a, b in cover if b > utc_now), None)
    if first is not None and first <= utc_now:
        return AmberPromise("now", call_by=due, cover_from=utc_now)
    return AmberPromise("later", call_by=due, cover_from=first)


def first_escalation_at(
    level: str,
    created_at: datetime,
    policy: EscalationPolicy,
    amber_cover: Sequence[Interval] = (),
) -> datetime | None:
    """When an unacknowledged alert first escalates (None for levels that never do).

    ``amber_cover``: the nurses' cover from ``created_at`` for AMBER_HORIZON (merged intervals).
    """
    if level == "red":
        return created_at.astimezone(UTC) + policy.red_first
    if level == "amber":
        return amber_deadline(created_at, policy.amber_first, amber_cover)
    return None


def next_escalation_at(
    level: str,
    escalated_at: datetime,
    policy: EscalationPolicy,
    amber_cover: Sequence[Interval] = (),
) -> datetime | None:
    """When an alert escalated at ``escalated_at`` escalates again if still unacknowledged."""
    if level == "red":
        return escalated_at.astimezone(UTC) + policy.red_repeat
    if level == "amber":
        return amber_deadline(escalated_at, policy.amber_repeat, amber_cover)
    return None

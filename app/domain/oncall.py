"""The on-call rota as data: who covers which weekdays and local times, by role.

Pure domain code (standard library only). A shift covers the listed weekdays from ``start`` to
``end`` local time; when ``end`` is not after ``start`` the shift runs overnight into the next
day (``08:00-08:00`` is a 24-hour shift). The day of an overnight shift is the day it starts.

Public holidays (a predicate passed in, from app.domain.working_days): on a public holiday only
the entries marked ``hol`` or listing all seven days apply, plus the Saturday / Sunday entries
when the holiday falls on a weekend; Monday-Friday entries do not (their nurse has the day off). Cover for a role is the
union of its shifts; ``cover_intervals`` and ``cover_gaps`` give it as UTC intervals. The clock
and the time zone are always passed in.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

ROTA_ROLES = ("clinician", "investigator", "nurse")
"""Who can be on the rota: clinicians get red pages, investigators escalations, nurses reminders."""
WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HOLIDAY_TOKEN = "hol"
"""In the stored days ('sat,sun,hol'): the entry also applies on public holidays."""
HOLIDAY_WORDS = (HOLIDAY_TOKEN, "holiday", "holidays")
AMBER_ROLES = ("nurse",)
"""Who gives amber cover: a nurse on duty can call the patient the same day."""
RED_ROLES = ("clinician", "investigator")
"""Who gives red cover: red alerts page the clinician, falling back to the investigator."""

Interval = tuple[datetime, datetime]
"""A half-open UTC interval [start, end)."""
IsHoliday = Callable[[date], bool]


def no_holidays(day: date) -> bool:
    """The holiday predicate of a calendar without public holidays."""
    return False


_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


class RotaError(ValueError):
    """A rota entry that cannot be understood (the message says which part and why)."""


@dataclass(frozen=True)
class Shift:
    """One rota entry: a role, a contact number, weekdays and a local time range."""

    role: str
    name: str
    phone: str
    weekdays: frozenset[int]
    start: time
    end: time
    priority: int = 0
    locale: str = "zh"
    id: int | None = None
    holidays: bool = False

    def applies_on(self, day: date, is_holiday: IsHoliday = no_holidays) -> bool:
        """True when the shift starts on ``day`` (public holidays: see the module docstring)."""
        weekday = day.weekday()
        if is_holiday(day):
            every_day = len(self.weekdays) == 7
            return self.holidays or every_day or (weekday >= 5 and weekday in self.weekdays)
        return weekday in self.weekdays

    def covers(self, local: datetime, is_holiday: IsHoliday = no_holidays) -> bool:
        """True when this shift is on duty at ``local`` (a datetime in the clinic's zone)."""
        moment = local.time().replace(tzinfo=None)
        today = local.date()
        yesterday = today - timedelta(days=1)
        if self.start < self.end:
            return self.applies_on(today, is_holiday) and self.start <= moment < self.end
        started_today = moment >= self.start and self.applies_on(today, is_holiday)
        started_yesterday = moment < self.end and self.applies_on(yesterday, is_holiday)
        return started_today or started_yesterday

    def interval_on(self, day: date, tz: ZoneInfo) -> Interval:
        """The UTC interval of the shift that starts on ``day`` (whether or not it applies)."""
        start = datetime.combine(day, self.start, tzinfo=tz)
        end_day = day if self.start < self.end else day + timedelta(days=1)
        end = datetime.combine(end_day, self.end, tzinfo=tz)
        return start.astimezone(UTC), end.astimezone(UTC)


def on_call(
    shifts: Iterable[Shift], local: datetime, role: str, is_holiday: IsHoliday = no_holidays
) -> list[Shift]:
    """The shifts of ``role`` on duty at ``local``, by priority (lowest first), one per phone."""
    found = sorted(
        (s for s in shifts if s.role == role and s.covers(local, is_holiday)),
        key=lambda s: (s.priority, s.id or 0),
    )
    unique: dict[str, Shift] = {}
    for shift in found:
        unique.setdefault(shift.phone, shift)
    return list(unique.values())


def parse_weekdays(text: str) -> frozenset[int]:
    """'mon-fri', 'sat,sun', 'weekdays', 'weekends' or 'daily' -> weekday numbers (Monday 0)."""
    cleaned = (text or "").strip().lower()
    if cleaned in ("daily", "all", "*", "mon-sun"):
        return frozenset(range(7))
    if cleaned in ("weekdays", "workdays"):
        return frozenset(range(5))
    if cleaned == "weekends":
        return frozenset({5, 6})
    days: set[int] = set()
    for part in filter(None, (p.strip() for p in cleaned.split(","))):
        first, sep, last = part.partition("-")
        start = _weekday(first.strip())
        end = _weekday(last.strip()) if sep else start
        span = (end - start) % 7
        days.update((start + offset) % 7 for offset in range(span + 1))
    if not days:
        raise RotaError(f"weekdays: expected e.g. 'mon-fri' or 'sat,sun', got {text!r}")
    return frozenset(days)


def _weekday(name: str) -> int:
    key = name[:3]
    if len(name) < 3 or key not in WEEKDAY_NAMES:
        raise RotaError(f"weekdays: unknown day {name!r} (use mon, tue, ... sun)")
    return WEEKDAY_NAMES.index(key)


def format_weekdays(days: Iterable[int], holidays: bool = False) -> str:
    """Weekday numbers -> 'mon,tue,...' (canonical, Monday first), ',hol' for public holidays."""
    names = [WEEKDAY_NAMES[d] for d in sorted(set(days))]
    return ",".join([*names, HOLIDAY_TOKEN] if holidays else names)


def parse_days(text: str) -> tuple[frozenset[int], bool]:
    """Stored or typed days ('mon-fri', 'sat,sun,hol', 'hol') -> (weekdays, on public holidays)."""
    parts = [p.strip() for p in (text or "").lower().split(",")]
    holidays = any(p in HOLIDAY_WORDS for p in parts)
    rest = ",".join(p for p in parts if p and p not in HOLIDAY_WORDS)
    if holidays and not rest:
        return frozenset(), True
    return parse_weekdays(rest if holidays else text), holidays


def days_from_choices(choices: Iterable[str]) -> tuple[frozenset[int], bool]:
    """Ticked day boxes ('0'..'6' for Monday..Sunday, 'hol') -> (weekdays, on public holidays)."""
    days: set[int] = set()
    holidays = False
    for choice in choices:
        value = (choice or "").strip().lower()
        if value in HOLIDAY_WORDS:
            holidays = True
        elif value.isdigit() and int(value) < 7:
            days.add(int(value))
        else:
            raise RotaError(f"days: unknown choice {choice!r}")
    if not days and not holidays:
        raise RotaError("days: tick at least one day or public holidays")
    return frozenset(days), holidays


# -- cover: the union of a role's shifts over time -------------------------------------------------


def cover_intervals(
    shifts: Iterable[Shift],
    roles: Sequence[str],
    start: datetime,
    end: datetime,
    tz: ZoneInfo,
    is_holiday: IsHoliday = no_holidays,
) -> list[Interval]:
    """The merged UTC intervals within [start, end) when someone of ``roles`` is on duty."""
    lo, hi = start.astimezone(UTC), end.astimezone(UTC)
    if hi <= lo:
        return []
    chosen = [s for s in shifts if s.role in roles]
    first = lo.astimezone(tz).date() - timedelta(days=1)
    last = hi.astimezone(tz).date()
    raw: list[Interval] = []
    day = first
    while day <= last:
        for shift in chosen:
            if shift.applies_on(day, is_holiday):
                a, b = shift.interval_on(day, tz)
                if b > lo and a < hi:
                    raw.append((max(a, lo), min(b, hi)))
        day += timedelta(days=1)
    return merge_intervals(raw)


def merge_intervals(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, non-overlapping intervals covering the same time (touching ones joined)."""
    merged: list[Interval] = []
    for a, b in sorted(i for i in intervals if i[1] > i[0]):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def gaps_between(covered: Sequence[Interval], start: datetime, end: datetime) -> list[Interval]:
    """The parts of [start, end) that ``covered`` (merged intervals) leaves out."""
    gaps: list[Interval] = []
    cursor = start.astimezone(UTC)
    for a, b in covered:
        if a > cursor:
            gaps.append((cursor, min(a, end)))
        cursor = max(cursor, b)
    if cursor < end:
        gaps.append((cursor, end.astimezone(UTC)))
    return [g for g in gaps if g[1] > g[0]]


def cover_gaps(
    shifts: Iterable[Shift],
    roles: Sequence[str],
    start: datetime,
    end: datetime,
    tz: ZoneInfo,
    is_holiday: IsHoliday = no_holidays,
) -> list[Interval]:
    """The UTC intervals within [start, end) when nobody of ``roles`` is on duty."""
    covered = cover_intervals(shifts, roles, start, end, tz, is_holiday)
    return gaps_between(covered, start.astimezone(UTC), end.astimezone(UTC))


def covered_fraction(covered: Sequence[Interval], start: datetime, end: datetime) -> float:
    """How much of [start, end) the merged intervals cover, from 0.0 to 1.0."""
    total = (end - start).total_seconds()
    if total <= 0:
        return 0.0
    inside = sum(
        (min(b, end) - max(a, start)).total_seconds() for a, b in covered if b > start and a < end
    )
    return max(0.0, min(1.0, inside / total))


def parse_time_range(text: str) -> tuple[time, time]:
    """'08:00-17:30' -> (08:00, 17:30); '24:00' is allowed as an end and means midnight."""
    match = _RANGE.match(text or "")
    if not match:
        raise RotaError(f"hours: expected HH:MM-HH:MM such as 08:00-17:30, got {text!r}")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h2 == 24 and m2 == 0:
        h2 = 0
    for hour, minute in ((h1, m1), (h2, m2)):
        if hour > 23 or minute > 59:
            raise RotaError(f"hours: {hour:02d}:{minute:02d} is not a time of day")
    return time(h1, m1), time(h2, m2)


def format_time_range(start: time, end: time) -> str:
    """(08:00, 17:30) -> '08:00-17:30'."""
    return f"{start:%H:%M}-{end:%H:%M}"


def check_role(role: str) -> str:
    """The role, or RotaError when it is not one of ROTA_ROLES."""
    if role not in ROTA_ROLES:
        raise RotaError(f"role: expected one of {', '.join(ROTA_ROLES)}, got {role!r}")
    return role

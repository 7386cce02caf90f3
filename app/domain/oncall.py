"""The on-call rota as data: who covers which weekdays and local times, by role.

Pure domain code (standard library only). A shift covers the listed weekdays from ``start`` to
``end`` local time; when ``end`` is not after ``start`` the shift runs overnight into the next
day (``08:00-08:00`` is a 24-hour shift). The weekday of an overnight shift is the day it
starts. The clock and the time zone are always passed in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time

ROTA_ROLES = ("clinician", "investigator", "nurse")
"""Who can be on the rota: clinicians get red pages, investigators escalations, nurses reminders."""
WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
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

    def covers(self, local: datetime) -> bool:
        """True when this shift is on duty at ``local`` (a datetime in the clinic's zone)."""
        moment = local.time().replace(tzinfo=None)
        day = local.weekday()
        if self.start < self.end:
            return day in self.weekdays and self.start <= moment < self.end
        started_today = day in self.weekdays and moment >= self.start
        started_yesterday = (day - 1) % 7 in self.weekdays and moment < self.end
        return started_today or started_yesterday


def on_call(shifts: Iterable[Shift], local: datetime, role: str) -> list[Shift]:
    """The shifts of ``role`` on duty at ``local``, by priority (lowest first), one per phone."""
    found = sorted(
        (s for s in shifts if s.role == role and s.covers(local)),
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


def format_weekdays(days: Iterable[int]) -> str:
    """Weekday numbers -> 'mon,tue,...' (canonical, Monday first)."""
    return ",".join(WEEKDAY_NAMES[d] for d in sorted(set(days)))


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

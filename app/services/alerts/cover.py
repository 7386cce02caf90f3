"""Amber and red cover from the on-call rota: escalation deadlines, the patient's promise,
the rota's week grid and the gaps the Today page warns about.

Amber cover is a nurse on call (app.domain.oncall.AMBER_ROLES); red cover is a clinician or an
investigator on call. Public holidays come from the clinic's working-day calendar. The rules
themselves are pure (app.domain.oncall, app.domain.escalation); this module loads the rota.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from app.domain import oncall as rota
from app.domain.escalation import (
    AMBER_HORIZON,
    AmberPromise,
    amber_promise,
    first_escalation_at,
    next_escalation_at,
)
from app.domain.oncall import AMBER_ROLES, RED_ROLES, Interval, IsHoliday, Shift
from app.services.alerts.oncall import active_rota, holiday_predicate
from app.services.shared.clinic import clinic_zone, escalation_policy

WARNING_DAYS = 7
"""The Today page looks this many days ahead for public holidays without amber cover."""
DAYTIME = (time(8, 0), time(20, 0))
"""A day has amber cover when a nurse is on call at some time in these local hours (a night
shift ending at 08:00 does not cover the day it ends on)."""
GRID_STEP = timedelta(minutes=15)


def active_shifts() -> list[Shift]:
    """The active rota entries as domain shifts (read once per transaction)."""
    return active_rota()


def amber_cover(start: datetime, span: timedelta = AMBER_HORIZON) -> list[Interval]:
    """The nurses' cover (merged UTC intervals) from ``start`` for ``span``."""
    return rota.cover_intervals(
        active_shifts(), AMBER_ROLES, start, start + span, clinic_zone(), holiday_predicate()
    )


def first_escalation(level: str, created_at: datetime) -> datetime | None:
    """When a new alert of ``level`` first escalates (amber: by nurse cover time)."""
    cover = amber_cover(created_at) if level == "amber" else ()
    return first_escalation_at(level, created_at, escalation_policy(), cover)


def next_escalation(level: str, escalated_at: datetime) -> datetime | None:
    """When an alert escalated at ``escalated_at`` escalates again."""
    cover = amber_cover(escalated_at) if level == "amber" else ()
    return next_escalation_at(level, escalated_at, escalation_policy(), cover)


def promise(now: datetime) -> AmberPromise:
    """The call an amber acknowledgement may promise at ``now`` (from the rota)."""
    return amber_promise(now, escalation_policy().amber_first, amber_cover(now))


# -- the rota page: a week grid ------------------------------------------------------------------


@dataclass(frozen=True)
class GridCell:
    """One hour of one day: how much of it has amber and red cover (0.0 to 1.0)."""

    amber: float
    red: float

    @property
    def gap(self) -> bool:
        """True when amber or red cover is missing for part of the hour."""
        return self.amber < 1.0 or self.red < 1.0


@dataclass(frozen=True)
class GridDay:
    """A column of the week grid: the date, whether it is a public holiday, 24 cells."""

    day: date
    holiday: bool
    cells: list[GridCell]


def week_grid(first_day: date) -> list[GridDay]:
    """Seven days from ``first_day`` by hour, with the share of amber and red cover per hour."""
    tz = clinic_zone()
    is_holiday = holiday_predicate()
    entries = active_shifts()
    start = datetime.combine(first_day, datetime.min.time(), tzinfo=tz)
    end = start + timedelta(days=7)
    amber = rota.cover_intervals(entries, AMBER_ROLES, start, end, tz, is_holiday)
    red = rota.cover_intervals(entries, RED_ROLES, start, end, tz, is_holiday)
    days = []
    for offset in range(7):
        day = first_day + timedelta(days=offset)
        cells = []
        for hour in range(24):
            lo = datetime.combine(day, datetime.min.time(), tzinfo=tz) + timedelta(hours=hour)
            lo, hi = lo.astimezone(UTC), (lo + timedelta(hours=1)).astimezone(UTC)
            cells.append(
                GridCell(rota.covered_fraction(amber, lo, hi), rota.covered_fraction(red, lo, hi))
            )
        days.append(GridDay(day, is_holiday(day), cells))
    return days


# -- the Today page: days without amber cover ----------------------------------------------------


@dataclass(frozen=True)
class CoverWarning:
    """A day (tomorrow, or a public holiday within WARNING_DAYS) with no nurse on call in the
    DAYTIME hours."""

    day: date
    holiday: bool
    tomorrow: bool


def cover_warnings(today: date) -> list[CoverWarning]:
    """Tomorrow and the public holidays of the next WARNING_DAYS days with no nurse on call
    in the DAYTIME hours."""
    tz = clinic_zone()
    is_holiday = holiday_predicate()
    entries = active_shifts()
    found = []
    for offset in range(1, WARNING_DAYS + 1):
        day = today + timedelta(days=offset)
        holiday = is_holiday(day)
        if offset > 1 and not holiday:
            continue
        if not _day_cover(entries, day, tz, is_holiday):
            found.append(CoverWarning(day, holiday, offset == 1))
    return found


def _day_cover(entries: Sequence[Shift], day: date, tz: ZoneInfo, is_holiday: IsHoliday) -> bool:
    start = datetime.combine(day, DAYTIME[0], tzinfo=tz)
    end = datetime.combine(day, DAYTIME[1], tzinfo=tz)
    return bool(rota.cover_intervals(entries, AMBER_ROLES, start, end, tz, is_holiday))

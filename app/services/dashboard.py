"""The Today page: visits of today and tomorrow, overdue and flagged events, open alerts, and
days ahead (tomorrow, public holidays within a week) with no nurse on call for amber alerts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from app.services.alerts.cover import CoverWarning, cover_warnings
from app.services.conversations.inbox import CATEGORIES, counts
from app.services.schedule import queries as sq

DAY_LIMIT = 200


@dataclass(frozen=True)
class DayAgenda:
    """The events of one day: hospital visits and the rest (check-ins, reminders, contacts)."""

    day: date
    visits: list[sq.EventRow]
    other: list[sq.EventRow]
    total: int

    @property
    def shown(self) -> int:
        """How many events are listed (the rest are on the day page)."""
        return len(self.visits) + len(self.other)


@dataclass(frozen=True)
class Overview:
    """Everything the Today page shows."""

    today: DayAgenda
    tomorrow: DayAgenda
    overdue: list[sq.EventRow]
    overdue_total: int
    flagged: list[sq.EventRow]
    flagged_total: int
    inbox: dict[str, int]
    decisions: list[sq.EventRow] = field(default_factory=list)
    decisions_total: int = 0
    cover: list[CoverWarning] = field(default_factory=list)


def day_agenda(day: date, *, limit: int = DAY_LIMIT) -> DayAgenda:
    """One day's open and recorded events across patients."""
    filters = sq.Filters()
    rows = sq.events_between(day, day, filters, limit=limit)
    total = len(rows) if len(rows) < limit else sq.count_between(day, day, filters)
    visits = [r for r in rows if r.kind in sq.ATTENDANCE_KINDS]
    other = [r for r in rows if r.kind not in sq.ATTENDANCE_KINDS]
    return DayAgenda(day=day, visits=visits, other=other, total=total)


def overview(today: date) -> Overview:
    """The Today page for `today` (the clinic's date)."""
    overdue, overdue_total = sq.overdue(today)
    flagged, flagged_total = sq.flagged(today)
    decisions, decisions_total = sq.decisions_waiting(today)
    return Overview(
        today=day_agenda(today),
        tomorrow=day_agenda(today + timedelta(days=1)),
        overdue=overdue,
        overdue_total=overdue_total,
        flagged=flagged,
        flagged_total=flagged_total,
        inbox=inbox_counts(),
        decisions=decisions,
        decisions_total=decisions_total,
        cover=cover_warnings(today),
    )


def inbox_counts() -> dict[str, int]:
    """Unresolved triage-inbox items by category (red, amber, call_task, ...), with 'total' and
    'open' (not yet acknowledged): what the nurse will do, the inbox's own categories."""
    return counts()


INBOX_CATEGORIES = CATEGORIES
"""The inbox categories in the inbox's order (most urgent first), as the Today page lists them."""

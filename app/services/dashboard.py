"""The Today page: visits of today and tomorrow, overdue and flagged events, open alerts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select

from app.extensions import db
from app.services import schedule_queries as sq

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
    alerts: dict[str, int] | None


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
    return Overview(
        today=day_agenda(today),
        tomorrow=day_agenda(today + timedelta(days=1)),
        overdue=overdue,
        overdue_total=overdue_total,
        flagged=flagged,
        flagged_total=flagged_total,
        alerts=open_alert_counts(),
    )


# Unknown states count as open: when unsure, treat an alert as needing attention.
CLOSED_ALERT_STATES = ("closed", "resolved", "dismissed", "done", "cancelled")


def open_alert_counts() -> dict[str, int] | None:
    """Open alerts by priority, or None while the alerts model (app.models.Alert) does not exist.

    Counts rows of Alert whose `status` (if the model has one) is not a closed state, grouped by its
    `priority` (or `level`) column when there is one; nothing is invented when the model is absent.
    """
    import app.models as models

    alert: Any = getattr(models, "Alert", None)
    if alert is None:
        return None
    query = select(func.count())
    status = getattr(alert, "status", None)
    priority = getattr(alert, "priority", None) or getattr(alert, "level", None)
    if priority is not None:
        query = select(priority, func.count()).group_by(priority)
    query = query.select_from(alert)
    if status is not None:
        query = query.where(status.notin_(CLOSED_ALERT_STATES))
    if priority is None:
        return {"total": int(db.session.scalar(query) or 0)}
    counts = {str(p): int(n) for p, n in db.session.execute(query).all()}
    counts["total"] = sum(counts.values())
    return counts

"""Service metrics from plain records: check-in response rates, alerts by level, response times.

Definitions (shown on the metrics page; the study team may quote them):

- A check-in counts as *due* once its answer window has closed or it was answered: statuses
  ``answered``, ``partial`` and ``missed``. ``pending`` (window still open) and ``cancelled``
  (e.g. the visit moved) are left out of both numerator and denominator.
- *Response rate* = (answered + partial) / due; *completion rate* = answered / due. The overall
  rate pools every check-in (sum over patients), it is not the mean of patients' rates.
- *Time to acknowledge* = first acknowledgement - alert creation; an alert resolved without a
  separate acknowledgement counts as acknowledged when resolved. *Time to resolve* = resolution
  - creation. Alerts still waiting are not in the statistics (they are counted as ``pending``);
  a record whose end is before its start (clock error) is counted as ``excluded``.
- *Median*: the middle value, or the mean of the two middle values for an even count.
- *90th percentile*: nearest-rank method, the value at rank ceil(0.90 x n) of the sorted values
  (1-based), so it is always an observed value (n = 1..10 gives the largest value).

Pure domain code: standard library only; the records are built by the services.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from fractions import Fraction
from typing import TypeVar

CHECKIN_STATUSES = ("answered", "partial", "missed", "pending", "cancelled")
"""Status of a scheduled check-in; see the module docstring for which ones count."""
DUE_STATUSES = frozenset({"answered", "partial", "missed"})
RESPONDED_STATUSES = frozenset({"answered", "partial"})
ALERT_LEVELS = ("red", "amber", "green")
"""Alert levels always reported (most urgent first); any other level follows, sorted."""

T = TypeVar("T")


@dataclass(frozen=True)
class CheckinRecord:
    """One scheduled check-in of a patient and what became of it."""

    patient_id: str
    due_on: date
    status: str

    def __post_init__(self) -> None:
        """Refuse unknown statuses (a typo would silently change the rates)."""
        if self.status not in CHECKIN_STATUSES:
            raise ValueError(
                f"check-in status must be one of {', '.join(CHECKIN_STATUSES)}, not {self.status!r}"
            )


@dataclass(frozen=True)
class AlertRecord:
    """One triage alert with its timestamps (aware datetimes, any time zone)."""

    alert_id: str | int
    patient_id: str
    level: str
    created_at: datetime
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None


@dataclass(frozen=True)
class ResponseRate:
    """Check-ins due, responded to and completed, for one patient (or overall: patient None)."""

    patient_id: str | None
    due: int
    responded: int
    completed: int

    @property
    def rate(self) -> float | None:
        """Responded / due (0-1), None when nothing was due."""
        return self.responded / self.due if self.due else None

    @property
    def completion_rate(self) -> float | None:
        """Completed / due (0-1), None when nothing was due."""
        return self.completed / self.due if self.due else None


@dataclass(frozen=True)
class DurationStats:
    """Median and 90th percentile (nearest rank) of a set of durations."""

    count: int
    median: timedelta | None
    p90: timedelta | None
    pending: int = 0
    excluded: int = 0


@dataclass(frozen=True)
class AlertMetrics:
    """Alerts by level, open alerts, and the times to acknowledge and to resolve."""

    by_level: dict[str, int]
    open: int
    acknowledge: DurationStats
    resolve: DurationStats
    acknowledge_by_level: dict[str, DurationStats] = field(default_factory=dict)
    resolve_by_level: dict[str, DurationStats] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Number of alerts."""
        return sum(self.by_level.values())


# --------------------------------------------------------------------------- statistics


def median(values: Sequence[T]) -> T:
    """The middle value, or the mean of the two middle ones (numbers or timedeltas)."""
    if not values:
        raise ValueError("median of no values")
    ordered = sorted(values)  # type: ignore[type-var]
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2  # type: ignore[operator]


def percentile_nearest_rank(values: Sequence[T], percent: float) -> T:
    """The nearest-rank percentile: the value at rank ceil(percent/100 x n), 1-based."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 < percent <= 100:
        raise ValueError(f"percent must be in (0, 100], got {percent}")
    ordered = sorted(values)  # type: ignore[type-var]
    rank = max(1, math.ceil(Fraction(str(percent)) * len(ordered) / 100))
    return ordered[rank - 1]


def duration_stats(
    durations: Sequence[timedelta], *, pending: int = 0, excluded: int = 0
) -> DurationStats:
    """Median and nearest-rank 90th percentile of durations (None when there are none)."""
    if not durations:
        return DurationStats(0, None, None, pending, excluded)
    return DurationStats(
        len(durations),
        median(durations),
        percentile_nearest_rank(durations, 90),
        pending,
        excluded,
    )


# --------------------------------------------------------------------------- check-ins


def response_rates(checkins: Iterable[CheckinRecord]) -> dict[str, ResponseRate]:
    """Response rate per patient, by patient id (patients with only pending check-ins: due 0)."""
    counts: dict[str, list[int]] = {}
    for record in checkins:
        due, responded, completed = counts.setdefault(record.patient_id, [0, 0, 0])
        if record.status in DUE_STATUSES:
            counts[record.patient_id] = [
                due + 1,
                responded + (record.status in RESPONDED_STATUSES),
                completed + (record.status == "answered"),
            ]
    return {pid: ResponseRate(pid, *counts[pid]) for pid in sorted(counts)}


def overall_response_rate(checkins: Iterable[CheckinRecord]) -> ResponseRate:
    """Response rate over every check-in (pooled, not the mean of the patients' rates)."""
    per_patient = response_rates(checkins).values()
    return ResponseRate(
        None,
        sum(r.due for r in per_patient),
        sum(r.responded for r in per_patient),
        sum(r.completed for r in per_patient),
    )


# --------------------------------------------------------------------------- alerts


def alerts_by_level(alerts: Iterable[AlertRecord]) -> dict[str, int]:
    """Number of alerts per level: red, amber, green (always present), then others sorted."""
    counts = dict.fromkeys(ALERT_LEVELS, 0)
    extra: dict[str, int] = {}
    for alert in alerts:
        target = counts if alert.level in counts else extra
        target[alert.level] = target.get(alert.level, 0) + 1
    return {**counts, **{level: extra[level] for level in sorted(extra)}}


def _elapsed(alert: AlertRecord, end: datetime | None) -> timedelta | None:
    if end is None:
        return None
    if (end.tzinfo is None) != (alert.created_at.tzinfo is None):
        raise ValueError(f"alert {alert.alert_id}: mixes time-zone-aware and naive datetimes")
    return end - alert.created_at


def _acknowledged_at(alert: AlertRecord) -> datetime | None:
    return alert.acknowledged_at or alert.resolved_at


def _times(alerts: Iterable[AlertRecord], end_of, level: str | None) -> DurationStats:
    durations: list[timedelta] = []
    pending = excluded = 0
    for alert in alerts:
        if level is not None and alert.level != level:
            continue
        elapsed = _elapsed(alert, end_of(alert))
        if elapsed is None:
            pending += 1
        elif elapsed < timedelta(0):
            excluded += 1
        else:
            durations.append(elapsed)
    return duration_stats(durations, pending=pending, excluded=excluded)


def time_to_acknowledge(
    alerts: Iterable[AlertRecord], *, level: str | None = None
) -> DurationStats:
    """Median and p90 time from alert to acknowledgement (resolution counts as one)."""
    return _times(alerts, _acknowledged_at, level)


def time_to_resolve(alerts: Iterable[AlertRecord], *, level: str | None = None) -> DurationStats:
    """Median and p90 time from alert to resolution."""
    return _times(alerts, lambda alert: alert.resolved_at, level)


def alert_metrics(alerts: Iterable[AlertRecord]) -> AlertMetrics:
    """Everything the metrics page shows about alerts, overall and per level."""
    records = list(alerts)
    by_level = alerts_by_level(records)
    return AlertMetrics(
        by_level=by_level,
        open=sum(1 for a in records if a.resolved_at is None),
        acknowledge=time_to_acknowledge(records),
        resolve=time_to_resolve(records),
        acknowledge_by_level={lv: time_to_acknowledge(records, level=lv) for lv in by_level},
        resolve_by_level={lv: time_to_resolve(records, level=lv) for lv in by_level},
    )


def format_duration(value: timedelta | None, *, missing: str = "-") -> str:
    """A duration as '2 h 05 min' / '3 d 4 h' / '45 min' (rounded down to the minute)."""
    if value is None:
        return missing
    minutes = int(value.total_seconds() // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min"

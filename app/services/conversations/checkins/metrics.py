"""The metrics page: check-in response rates, alerts by level, times to acknowledge and resolve.

Builds plain records from the database (app.services.conversations.checkins.queries) and computes with
app.domain.metrics, whose docstring defines every number shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from app.domain import metrics as dm
from app.extensions import db
from app.models import Alert
from app.services.conversations.checkins.queries import (
    alert_records,
    response_rates_page,
    symptom_reports_csv,
)
from app.services.shared import audit
from app.services.shared.pagination import Page

RATES_PER_PAGE = 50


@dataclass(frozen=True)
class MetricsOverview:
    """Everything the metrics page shows for one period."""

    since: datetime | None
    overall: dm.ResponseRate
    per_patient: list[dm.ResponseRate]
    """One page of patients (``rates_page``), by study id."""
    rates_page: Page
    alerts: dm.AlertMetrics
    call_tasks: int
    call_tasks_open: int


def overview(
    now: datetime, *, days: int | None = None, page: int = 1, per_page: int = RATES_PER_PAGE
) -> MetricsOverview:
    """Metrics over the last ``days`` days (None: since the start); response rates per patient
    one ``page`` at a time (counted in SQL: the page stays quick with 10,000 patients)."""
    since = now - timedelta(days=days) if days else None
    rates, overall = response_rates_page(now, since=since, page=page, per_page=per_page)
    tasks, tasks_open = _call_tasks(since)
    return MetricsOverview(
        since=since,
        overall=overall,
        per_patient=rates.items,
        rates_page=rates,
        alerts=dm.alert_metrics(alert_records(since=since)),
        call_tasks=tasks,
        call_tasks_open=tasks_open,
    )


def _call_tasks(since: datetime | None) -> tuple[int, int]:
    stmt = select(Alert.status, func.count()).where(Alert.kind == "call_task")
    if since is not None:
        stmt = stmt.where(Alert.created_at >= since)
    rows = db.session.execute(stmt.group_by(Alert.status)).all()
    total = sum(int(n) for _, n in rows)
    unresolved = sum(int(n) for status, n in rows if status != "resolved")
    return total, unresolved


def export_symptom_reports(
    *, actor: str, since: date | None, until: date | None, tz: ZoneInfo
) -> str:
    """The symptom-report CSV; the download is audited (who, which period, how many rows)."""
    body = symptom_reports_csv(since=since, until=until, tz=tz)
    audit.record(
        actor,
        "export.symptom_reports",
        entity_type="export",
        entity_id="symptom-reports.csv",
        after={
            "from": since.isoformat() if since else None,
            "to": until.isoformat() if until else None,
            "rows": max(body.count("\r\n") - 1, 0),
        },
    )
    db.session.commit()
    return body

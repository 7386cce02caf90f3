"""Read-only queries over the audit log: filter by patient, user, action and date; paginate."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, Patient
from app.services.shared.pagination import Page, paginate

PER_PAGE = 50


@dataclass(frozen=True)
class AuditFilters:
    """What the audit page filters on (all optional); dates are clinic-local days."""

    patient: str = ""
    actor: str = ""
    action: str = ""
    date_from: date | None = None
    date_to: date | None = None

    @property
    def active(self) -> bool:
        """True when any filter is set."""
        return bool(self.patient or self.actor or self.action or self.date_from or self.date_to)


@dataclass(frozen=True)
class AuditRow:
    """An audit entry with the study id of its patient."""

    entry: AuditEntry
    study_id: str | None


def _utc_start(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=tz)


def audit_page(filters: AuditFilters, *, tz: ZoneInfo, page: int, per_page: int = PER_PAGE) -> Page:
    """One page of audit entries, newest first."""
    query = select(AuditEntry, Patient.study_id).outerjoin(
        Patient, Patient.id == AuditEntry.patient_id
    )
    count_query = select(AuditEntry.id).outerjoin(Patient, Patient.id == AuditEntry.patient_id)
    for condition in _conditions(filters, tz):
        query = query.where(condition)
        count_query = count_query.where(condition)
    query = query.order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
    result = paginate(query, page, per_page, scalars=False, count_query=count_query)
    items = [AuditRow(entry=entry, study_id=study_id) for entry, study_id in result.items]
    return Page(items=items, page=result.page, per_page=per_page, total=result.total)


def _conditions(filters: AuditFilters, tz: ZoneInfo) -> list[Any]:
    conditions: list[Any] = []
    if filters.patient.strip():
        conditions.append(Patient.study_id == filters.patient.strip())
    if filters.actor.strip():
        conditions.append(AuditEntry.actor == filters.actor.strip())
    if filters.action.strip():
        action = filters.action.strip()
        if action.endswith(".*"):
            conditions.append(AuditEntry.action.startswith(action[:-1], autoescape=True))
        else:
            conditions.append(AuditEntry.action == action)
    if filters.date_from:
        conditions.append(AuditEntry.at >= _utc_start(filters.date_from, tz))
    if filters.date_to:
        conditions.append(AuditEntry.at < _utc_start(filters.date_to + timedelta(days=1), tz))
    return conditions


def patient_history(patient_id: int, *, limit: int = 20) -> list[AuditEntry]:
    """The latest audit entries about one patient."""
    query = (
        select(AuditEntry)
        .where(AuditEntry.patient_id == patient_id)
        .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
        .limit(limit)
    )
    return list(db.session.scalars(query))


def known_actors() -> list[str]:
    """Every actor that appears in the log, for the filter list."""
    query = select(AuditEntry.actor).distinct().order_by(AuditEntry.actor)
    return [a for a in db.session.scalars(query)]


def known_actions() -> list[str]:
    """Every action that appears in the log, for the filter list."""
    query = select(AuditEntry.action).distinct().order_by(AuditEntry.action)
    return [a for a in db.session.scalars(query)]

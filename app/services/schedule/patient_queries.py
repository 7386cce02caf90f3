"""Read-only patient queries for the web UI: the paginated list, enrolment checks, counts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from flask import current_app
from sqlalchemy import String, cast, func, nulls_last, select

from app.domain.patients import EnrolmentError, EnrolmentRequest, validate_enrolment
from app.extensions import db
from app.models import CalendarEvent, Patient
from app.services.schedule.queries import ATTENDANCE_KINDS, DOSE_KINDS, OPEN_STATUSES
from app.services.shared.pagination import Page, paginate
from app.services.shared.protocols import current_protocol

SORTS = ("study_id", "initials", "arm", "phase", "next_visit", "status")
PER_PAGE = 50


@dataclass(frozen=True)
class PatientRow:
    """One line of the patients list."""

    id: int
    study_id: str
    initials: str
    choices: dict[str, str]
    status: str
    start_date: date
    next_visit: date | None
    next_kind: str | None
    phase: str | None


def _next_visit(today: date) -> Any:
    """The date of the patient's next open hospital visit (correlated: one index lookup each)."""
    return (
        select(CalendarEvent.date)
        .where(
            CalendarEvent.patient_id == Patient.id,
            CalendarEvent.date >= today,
            CalendarEvent.status.in_(OPEN_STATUSES),
            CalendarEvent.kind.in_(ATTENDANCE_KINDS),
        )
        .order_by(CalendarEvent.date)
        .limit(1)
        .scalar_subquery()
    )


def _current_phase(today: date) -> Any:
    """The phase the patient is in: that of the next dose, else of the next open event, else of
    the last event (so a patient on salvage shows salvage even when a scan comes first)."""

    def first_open(*kinds: str) -> Any:
        query = select(CalendarEvent.phase).where(
            CalendarEvent.patient_id == Patient.id,
            CalendarEvent.date >= today,
            CalendarEvent.status.in_(OPEN_STATUSES),
        )
        if kinds:
            query = query.where(CalendarEvent.kind.in_(kinds))
        return query.order_by(CalendarEvent.date, CalendarEvent.id).limit(1).scalar_subquery()

    latest = (
        select(CalendarEvent.phase)
        .where(CalendarEvent.patient_id == Patient.id, CalendarEvent.status != "cancelled")
        .order_by(CalendarEvent.date.desc(), CalendarEvent.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    return func.coalesce(first_open(*DOSE_KINDS), first_open(), latest)


def patients_page(
    *,
    today: date,
    search: str = "",
    status: str = "",
    sort: str = "study_id",
    descending: bool = False,
    page: int = 1,
    per_page: int = PER_PAGE,
) -> Page:
    """One page of patients with their next visit and current phase, filtered and sorted in SQL.

    Next visit and phase are correlated subqueries on (patient_id, date): the database computes
    them for the rows of the page only, or for every patient when the list is sorted by them.
    """
    next_date = _next_visit(today).label("next_date")
    phase = _current_phase(today).label("phase")
    query = select(
        Patient.id,
        Patient.study_id,
        Patient.initials,
        Patient.choices,
        Patient.status,
        Patient.start_date,
        next_date,
        phase,
    )
    count_query = select(Patient.id)
    for condition in _conditions(search, status):
        query = query.where(condition)
        count_query = count_query.where(condition)
    columns = {
        "study_id": Patient.study_id,
        "initials": Patient.initials,
        "arm": cast(Patient.choices, String),
        "phase": phase,
        "next_visit": next_date,
        "status": Patient.status,
    }
    key = columns.get(sort, Patient.study_id)
    ordered = key.desc() if descending else key.asc()
    if sort == "next_visit":
        # Patients with no visit left go last in either direction. NULLS LAST orders by the
        # output column; `next_date IS NULL` as a sort key made the database run the
        # correlated subquery a second time for every patient (10,000 index lookups).
        query = query.order_by(nulls_last(ordered), Patient.study_id)
    else:
        query = query.order_by(ordered, Patient.study_id)
    result = paginate(query, page, per_page, scalars=False, count_query=count_query)
    rows = [
        PatientRow(
            id=r.id,
            study_id=r.study_id,
            initials=r.initials,
            choices=dict(r.choices or {}),
            status=r.status,
            start_date=r.start_date,
            next_visit=r.next_date,
            next_kind=None,
            phase=r.phase,
        )
        for r in result.items
    ]
    return Page(
        items=_with_next_kinds(rows), page=result.page, per_page=per_page, total=result.total
    )


def _conditions(search: str, status: str) -> list[Any]:
    conditions = []
    text = (search or "").strip()
    if text:
        conditions.append(
            Patient.study_id.icontains(text, autoescape=True)
            | Patient.initials.icontains(text, autoescape=True)
        )
    if status:
        conditions.append(Patient.status == status)
    return conditions


def _with_next_kinds(rows: list[PatientRow]) -> list[PatientRow]:
    """Fill in what the next visit is (one query for the page)."""
    wanted = {(r.id, r.next_visit) for r in rows if r.next_visit is not None}
    if not wanted:
        return rows
    query = (
        select(CalendarEvent.patient_id, CalendarEvent.date, CalendarEvent.kind)
        .where(
            CalendarEvent.patient_id.in_([pid for pid, _ in wanted]),
            CalendarEvent.date.in_({d for _, d in wanted}),
            CalendarEvent.status.in_(OPEN_STATUSES),
            CalendarEvent.kind.in_(ATTENDANCE_KINDS),
        )
        .order_by(CalendarEvent.id)
    )
    priority = {kind: i for i, kind in enumerate(ATTENDANCE_KINDS)}
    kinds: dict[int, str] = {}
    for pid, day, kind in db.session.execute(query).all():
        if (pid, day) not in wanted:
            continue
        if pid not in kinds or priority[kind] < priority[kinds[pid]]:
            kinds[pid] = kind
    return [
        PatientRow(**{**r.__dict__, "next_kind": kinds.get(r.id)}) if r.id in kinds else r
        for r in rows
    ]


def enrolment_errors(request: EnrolmentRequest, *, today: date) -> dict[str, str]:
    """Every problem of an enrolment request (field -> message), without writing anything."""
    try:
        validate_enrolment(
            request,
            current_protocol(),
            today=today,
            default_region=current_app.config.get("DEFAULT_PHONE_REGION", "CN"),
        )
    except EnrolmentError as exc:
        return dict(exc.errors)
    return {}


def status_counts() -> dict[str, int]:
    """How many patients have each status."""
    query = select(Patient.status, func.count(Patient.id)).group_by(Patient.status)
    return {status: int(n) for status, n in db.session.execute(query).all()}

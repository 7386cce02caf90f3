"""Use cases that change a patient's calendar: reschedule, status, progression, salvage, stop."""

from __future__ import annotations

from datetime import date, datetime

from app.domain import calendar as cal
from app.domain.calendar import CalendarChange, CalendarError, PlannedEvent
from app.extensions import db
from app.models import CalendarEvent, Patient
from app.services.messaging import reminders
from app.services.schedule.patients import copy_planned_into_row, event_row
from app.services.shared import audit
from app.services.shared.patient_lookup import get_patient
from app.services.shared.protocols import clinic_working_days, current_protocol

MARKABLE_STATUSES = ("confirmed", "done", "missed", "planned")


class CalendarActionError(CalendarError):
    """A calendar action that cannot be done as asked (the message says why)."""


def planned_events(patient: Patient) -> list[PlannedEvent]:
    """The patient's rows as domain events."""
    return [to_planned(row) for row in patient.events]


def to_planned(row: CalendarEvent) -> PlannedEvent:
    """One row as a domain event."""
    return PlannedEvent(
        key=row.key,
        kind=row.kind,
        phase=row.phase,
        cycle=row.cycle,
        date=row.date,
        window_start=row.window_start,
        window_end=row.window_end,
        title_en=row.title_en,
        title_zh=row.title_zh,
        drugs=tuple(row.drugs or ()),
        details=dict(row.details or {}),
        flags=tuple(row.flags or ()),
        moved_from=row.moved_from,
        anchor=row.anchor,
        status=row.status,
    )


def preview_reschedule(
    patient_ref: str | int, key: str, new_date: date, reason: str | None, *, today: date
) -> CalendarChange:
    """What a reschedule would do, without changing anything."""
    patient = get_patient(patient_ref)
    return cal.reschedule(
        current_protocol(),
        planned_events(patient),
        key,
        new_date,
        reason,
        clinic_working_days(),
        today=today,
    )


def reschedule_event(
    patient_ref: str | int,
    key: str,
    new_date: date,
    reason: str | None,
    *,
    actor: str,
    today: date,
) -> CalendarChange:
    """Move an event and everything that depends on it; audit and commit."""
    patient = get_patient(patient_ref)
    change = preview_reschedule(patient.id, key, new_date, reason, today=today)
    _apply(patient, change, actor=actor, action="calendar.reschedule", reason=reason, today=today)
    return change


def decide_flag(
    patient_ref: str | int,
    key: str,
    flag: str,
    decision: str,
    note: str,
    *,
    actor: str,
    today: date,
) -> CalendarChange:
    """Record a clinician's decision about an event's flag (e.g. holiday cover confirmed).

    The flag leaves the "decisions waiting" list; the decision, its note and who made it are
    kept in the event and in the audit log. A decision to delay is a reschedule instead.
    """
    patient = get_patient(patient_ref)
    change = cal.record_decision(planned_events(patient), key, flag, decision, note)
    _apply(
        patient,
        change,
        actor=actor,
        action="calendar.decision",
        reason=f"{flag}: {decision}: {note}",
        today=today,
    )
    return change


def set_event_status(
    patient_ref: str | int,
    key: str,
    status: str,
    *,
    actor: str,
    note: str | None = None,
    today: date | None = None,
) -> CalendarEvent:
    """Mark one event done, missed, confirmed or planned again; re-plan its reminders; commit."""
    if status not in MARKABLE_STATUSES:
        raise CalendarActionError(f"status must be one of {', '.join(MARKABLE_STATUSES)}")
    patient = get_patient(patient_ref)
    row = _row_by_key(patient, key)
    if row.status == "cancelled":
        raise CalendarActionError("a cancelled event cannot change status")
    if note:
        row.note = note
    mark_event(row, status, actor=actor, reason=note)
    reminders.plan_patient(patient, now=reminders.planning_moment(today), source=actor)
    db.session.commit()
    return row


def mark_event(
    row: CalendarEvent,
    status: str,
    *,
    actor: str,
    reason: str | None,
    at: datetime | None = None,
) -> None:
    """Set one event's status and audit it, inside the caller's transaction (no re-plan)."""
    before = row.status
    row.status = status
    audit.record(
        actor,
        "event.status",
        entity_type="calendar_event",
        entity_id=row.key,
        patient_id=row.patient_id,
        before={"status": before},
        after={"status": status, "note": row.note},
        reason=reason,
        at=at,
    )


def record_progression(
    patient_ref: str | int, on: date, *, actor: str, reason: str, today: date
) -> CalendarChange:
    """Record disease progression as the protocol says."""
    patient = get_patient(patient_ref)
    change = cal.record_progression(
        current_protocol(),
        planned_events(patient),
        on,
        today=today,
        working_days=clinic_working_days(),
    )
    patient.progression_date = on
    _apply(patient, change, actor=actor, action="patient.progression", reason=reason, today=today)
    return change


def start_salvage(
    patient_ref: str | int, start: date, *, actor: str, reason: str, today: date
) -> CalendarChange:
    """Add the salvage chemoradiation block and apply the maintenance rule."""
    patient = get_patient(patient_ref)
    if patient.salvage_start is not None:
        raise CalendarActionError(f"salvage already started on {patient.salvage_start}")
    _require_on_study(patient)
    change = cal.start_salvage(
        current_protocol(),
        planned_events(patient),
        patient.choices,
        start,
        clinic_working_days(),
        today=today,
        recurrence_date=patient.recurrence_date,
    )
    patient.salvage_start = start
    status_before, patient.status = patient.status, "salvage"
    _apply(
        patient,
        change,
        actor=actor,
        action="patient.salvage",
        reason=reason,
        status_before=status_before,
        today=today,
    )
    return change


def stop_treatment(
    patient_ref: str | int, on: date, *, actor: str, reason: str, today: date
) -> CalendarChange:
    """Stop treatment: cancel future treatment, schedule safety and survival follow-up."""
    patient = get_patient(patient_ref)
    _require_on_study(patient)
    change = cal.stop_treatment(
        current_protocol(),
        planned_events(patient),
        on,
        clinic_working_days(),
        today=today,
        recurrence_date=patient.recurrence_date,
    )
    status_before, patient.status = patient.status, "follow_up"
    _apply(
        patient,
        change,
        actor=actor,
        action="patient.stop_treatment",
        reason=reason,
        status_before=status_before,
        today=today,
    )
    return change


def withdraw(patient_ref: str | int, on: date, *, actor: str, reason: str) -> CalendarChange:
    """Take the patient off study: every later event is cancelled and no message is sent."""
    patient = get_patient(patient_ref)
    _require_on_study(patient)
    change = cal.off_study(planned_events(patient), on)
    status_before, patient.status = patient.status, "withdrawn"
    _apply(
        patient,
        change,
        actor=actor,
        action="patient.withdraw",
        reason=reason,
        status_before=status_before,
    )
    return change


def _require_on_study(patient: Patient) -> None:
    if patient.status in ("withdrawn", "off_study"):
        raise CalendarActionError(f"{patient.study_id} is off study")


def _row_by_key(patient: Patient, key: str) -> CalendarEvent:
    for row in patient.events:
        if row.key == key:
            return row
    raise CalendarActionError(f"{patient.study_id} has no event {key!r}")


def _apply(
    patient: Patient,
    change: CalendarChange,
    *,
    actor: str,
    action: str,
    reason: str | None,
    status_before: str | None = None,
    today: date | None = None,
) -> None:
    """Write a domain change to the rows (update by key, add new), audit it, re-plan the SMS
    reminders (same transaction), commit once."""
    if not reason or not reason.strip():
        reason = None
    rows = {row.key: row for row in patient.events}
    for item in change.events:
        row = rows.get(item.key)
        if row is None:
            patient.events.append(event_row(item))
        elif to_planned(row) != item:
            copy_planned_into_row(item, row)
    db.session.flush()
    audit.record(
        actor,
        action,
        entity_type="patient",
        entity_id=patient.id,
        patient_id=patient.id,
        before={"status": status_before or patient.status},
        after={
            "status": patient.status,
            "changes": [_change_json(c) for c in change.changes],
        },
        reason=reason,
    )
    reminders.plan_patient(
        patient,
        now=reminders.planning_moment(today),
        moves=reminders.moves_from_changes(change.changes),
        source=actor,
    )
    db.session.commit()


def _change_json(change: cal.EventChange) -> dict[str, object]:
    return {
        "key": change.key,
        "old_date": change.old_date.isoformat() if change.old_date else None,
        "new_date": change.new_date.isoformat() if change.new_date else None,
        "old_status": change.old_status,
        "new_status": change.new_status,
        "left_window": change.left_window,
    }

"""Use cases for patients: enrol (with the calendar, in one transaction), list, find."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import select

from app.domain.calendar import PlannedEvent, generate, mark_not_tracked
from app.domain.patients import (
    EnrolmentError,
    EnrolmentRequest,
    InvalidPhoneNumber,
    normalise_phone,
    validate_enrolment,
)
from app.extensions import db
from app.models import CalendarEvent, Patient, utcnow
from app.services.messaging import reminders
from app.services.schedule.contacts import add_self_contact, contact_snapshot
from app.services.shared import audit, date_inputs
from app.services.shared.protocols import clinic_working_days, current_protocol
from app.sms import privacy


def enrol_patient(request: EnrolmentRequest, *, actor: str, today: date) -> Patient:
    """Validate, create the patient and the whole calendar, audit it, and commit once."""
    protocol = current_protocol()
    region = current_app.config.get("DEFAULT_PHONE_REGION", "CN")
    request = replace(request, phone_used_by=_phone_used_by(request.phone, region))
    valid = validate_enrolment(
        request,
        protocol,
        today=today,
        default_region=current_app.config.get("DEFAULT_PHONE_REGION", "CN"),
        start_range=date_inputs.enrolment_start_range(today),
        date_range=date_inputs.any_date_range(today),
    )
    if db.session.scalar(select(Patient.id).where(Patient.study_id == valid.study_id)):
        raise EnrolmentError({"study_id": f"study id {valid.study_id} is already enrolled"})
    patient = Patient(
        study_id=valid.study_id,
        initials=valid.initials,
        phone_e164=valid.phone_e164,
        locale=valid.locale,
        timezone=valid.timezone,
        sms_consent=valid.sms_consent,
        sms_consent_date=valid.sms_consent_date,
        protocol_code=protocol.code,
        choices=valid.choices,
        start_date=valid.start_date,
        recurrence_date=valid.recurrence_date,
        status="active",
    )
    db.session.add(patient)
    planned = generate(
        protocol,
        valid.choices,
        valid.start_date,
        ZoneInfo(valid.timezone),
        clinic_working_days(),
        recurrence_date=valid.recurrence_date,
    )
    if valid.started_before_cadence:
        planned = mark_not_tracked(planned, before=today)
    for item in planned:
        patient.events.append(event_row(item))
    db.session.flush()
    consent_on = (valid.sms_consent_date or today) if valid.sms_consent else None
    own = add_self_contact(
        patient,
        actor=actor,
        now=utcnow(),
        consent_on=consent_on,
        scopes=enrolment_scopes(valid.health_consent),
    )
    audit.record(
        actor,
        "patient.enrol",
        entity_type="patient",
        entity_id=patient.id,
        patient_id=patient.id,
        after=patient_snapshot(patient)
        | {
            "events": len(planned),
            "started_before_cadence": valid.started_before_cadence,
            "not_tracked": sum(1 for e in planned if e.status == "not_tracked"),
            "warnings": valid.warnings,
            "contacts": [contact_snapshot(own)],
        },
        reason="enrolment"
        + (f"; shared phone: {valid.shared_phone_reason}" if valid.shared_phone_reason else ""),
    )
    reminders.plan_patient(patient, now=reminders.planning_moment(today), source=actor)
    db.session.commit()
    return patient


def enrolment_scopes(health_consent: bool) -> tuple[str, ...]:
    """What the enrolment consents cover: SMS reminders, plus check-ins and sensitive health
    information only with the separate consent PIPL requires for them."""
    if health_consent:
        return ("sms_reminders", "checkins", "sensitive_health")
    return ("sms_reminders",)


def _phone_used_by(raw: str, region: str) -> tuple[str, ...]:
    """Study ids of the patients already enrolled with this mobile number."""
    try:
        phone = normalise_phone(raw, region)
    except InvalidPhoneNumber:
        return ()  # validation reports the bad number
    rows = db.session.scalars(select(Patient.study_id).where(Patient.phone_e164 == phone))
    return tuple(sorted(rows))


def list_patients() -> list[Patient]:
    """All patients ordered by study id."""
    return list(db.session.scalars(select(Patient).order_by(Patient.study_id)))


def patient_snapshot(patient: Patient) -> dict[str, object]:
    """The audit view of a patient: identifiers and settings, phone masked."""
    return {
        "study_id": patient.study_id,
        "initials": patient.initials,
        "phone": mask_phone(patient.phone_e164),
        "locale": patient.locale,
        "timezone": patient.timezone,
        "sms_consent": patient.sms_consent,
        "sms_consent_date": _iso(patient.sms_consent_date),
        "choices": dict(patient.choices or {}),
        "start_date": _iso(patient.start_date),
        "status": patient.status,
    }


def mask_phone(e164: str) -> str:
    """The number masked as everywhere else (+86138****0001): app.sms.privacy.mask_phone."""
    return privacy.mask_phone(e164)


def event_row(item: PlannedEvent) -> CalendarEvent:
    """A new database row for a planned event."""
    row = CalendarEvent(key=item.key)
    copy_planned_into_row(item, row)
    return row


def copy_planned_into_row(item: PlannedEvent, row: CalendarEvent) -> None:
    """Copy the domain event's fields onto a row (same key)."""
    row.kind = item.kind
    row.phase = item.phase
    row.cycle = item.cycle
    row.date = item.date
    row.window_start = item.window_start
    row.window_end = item.window_end
    row.moved_from = item.moved_from
    row.title_en = item.title_en
    row.title_zh = item.title_zh
    row.drugs = list(item.drugs)
    row.details = dict(item.details)
    row.flags = list(item.flags)
    row.anchor = item.anchor
    row.status = item.status


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value else None

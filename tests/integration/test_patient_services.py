"""Enrolment and calendar services against a real database (SQLite or PostgreSQL)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest
from flask import Flask
from sqlalchemy import func, select

from app.domain.calendar import RescheduleError
from app.domain.patients import EnrolmentError, EnrolmentRequest
from app.extensions import db
from app.models import AuditEntry, AuditEntryImmutableError, CalendarEvent, Patient
from app.services.schedule import calendar as calendar_service
from app.services.schedule.patients import enrol_patient
from app.services.shared.patient_lookup import get_patient

TODAY = date(2026, 3, 1)


def _request(**overrides: object) -> EnrolmentRequest:
    values: dict[str, object] = dict(
        study_id="JSCH-100",
        initials="WL",
        phone="13800138000",
        choices={"pd1": "sintilimab", "chemo": "docetaxel"},
        start_date=date(2026, 3, 2),
        sms_consent=True,
        health_consent=True,
        sms_consent_date=date(2026, 2, 27),
        recurrence_date=date(2026, 1, 20),
    )
    values.update(overrides)
    return EnrolmentRequest(**values)  # type: ignore[arg-type]


def _infusion(patient: Patient, cycle: int) -> CalendarEvent:
    return next(e for e in patient.events if e.kind == "infusion" and e.cycle == cycle)


def test_enrol_creates_patient_calendar_and_audit(app_ctx: Flask) -> None:
    patient = enrol_patient(_request(), actor="user:nurse1", today=TODAY)
    assert patient.phone_e164 == "+8613800138000"
    assert patient.protocol_code == "NCT07016737"
    infusions = [e for e in patient.events if e.kind == "infusion"]
    assert len(infusions) >= 4 + 30
    assert _infusion(patient, 1).date == date(2026, 3, 2)
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "patient.enrol"))
    assert entry is not None
    assert entry.actor == "user:nurse1"
    assert entry.patient_id == patient.id
    assert entry.after["events"] == len(patient.events)
    assert "13800138000" not in str(entry.after)  # phone masked in the audit view


def test_invalid_enrolment_writes_nothing(app_ctx: Flask) -> None:
    with pytest.raises(EnrolmentError) as info:
        enrol_patient(_request(phone="12345"), actor="user:nurse1", today=TODAY)
    assert "phone" in info.value.errors
    assert db.session.scalar(select(func.count(Patient.id))) == 0
    assert db.session.scalar(select(func.count(CalendarEvent.id))) == 0
    assert db.session.scalar(select(func.count(AuditEntry.id))) == 0


def test_duplicate_study_id_is_refused(app_ctx: Flask) -> None:
    enrol_patient(_request(), actor="cli", today=TODAY)
    with pytest.raises(EnrolmentError) as info:
        enrol_patient(_request(phone="13800138009"), actor="cli", today=TODAY)
    assert "already enrolled" in info.value.errors["study_id"]


def test_reschedule_cascades_and_is_audited(app_ctx: Flask) -> None:
    patient = enrol_patient(_request(), actor="cli", today=TODAY)
    c2, c3 = _infusion(patient, 2), _infusion(patient, 3)
    c2_date, c3_date = c2.date, c3.date
    change = calendar_service.reschedule_event(
        patient.study_id,
        c2.key,
        c2_date + timedelta(days=7),
        "neutropenia, ANC 1.2",
        actor="user:nurse1",
        today=TODAY,
    )
    db.session.expire_all()
    patient = get_patient(patient.study_id)
    assert _infusion(patient, 2).date == c2_date + timedelta(days=7)
    assert _infusion(patient, 3).date >= c3_date + timedelta(days=7) - timedelta(days=3)
    assert change.moved_count > 10
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "calendar.reschedule"))
    assert entry.reason == "neutropenia, ANC 1.2"
    moved = {c["key"]: c for c in entry.after["changes"]}
    assert moved[c2.key]["old_date"] == c2_date.isoformat()


def test_done_events_never_move(app_ctx: Flask) -> None:
    patient = enrol_patient(_request(), actor="cli", today=TODAY)
    c1 = _infusion(patient, 1)
    calendar_service.set_event_status(patient.id, c1.key, "done", actor="user:nurse1")
    with pytest.raises(RescheduleError):
        calendar_service.reschedule_event(
            patient.id, c1.key, c1.date + timedelta(days=3), "late", actor="cli", today=TODAY
        )


def test_moving_outside_window_needs_a_reason(app_ctx: Flask) -> None:
    patient = enrol_patient(_request(), actor="cli", today=TODAY)
    c2 = _infusion(patient, 2)
    with pytest.raises(RescheduleError):
        calendar_service.reschedule_event(
            patient.id, c2.key, c2.window_end + timedelta(days=5), None, actor="cli", today=TODAY
        )
    db.session.expire_all()
    assert _infusion(get_patient(patient.id), 2).date == c2.date


def test_salvage_then_withdraw(app_ctx: Flask) -> None:
    patient = enrol_patient(_request(), actor="cli", today=TODAY)
    start, later = date(2026, 9, 7), date(2026, 9, 1)
    calendar_service.record_progression(
        patient.id, date(2026, 8, 31), actor="user:inv", reason="CT: wall thickening", today=later
    )
    calendar_service.start_salvage(
        patient.id, start, actor="user:inv", reason="salvage CRT", today=later
    )
    db.session.expire_all()
    patient = get_patient(patient.id)
    assert patient.status == "salvage"
    fractions = [e for e in patient.events if e.kind == "radiotherapy" and e.status != "cancelled"]
    assert 25 <= len(fractions) <= 28
    with pytest.raises(calendar_service.CalendarActionError):
        calendar_service.start_salvage(patient.id, start, actor="cli", reason="again", today=later)
    calendar_service.withdraw(
        patient.id, date(2026, 10, 1), actor="user:inv", reason="consent withdrawn"
    )
    db.session.expire_all()
    patient = get_patient(patient.id)
    assert patient.status == "withdrawn"
    later = [e for e in patient.events if e.date > date(2026, 10, 1)]
    assert later and all(e.status == "cancelled" for e in later)
    actions = db.session.scalars(
        select(AuditEntry.action).where(AuditEntry.patient_id == patient.id).order_by(AuditEntry.id)
    ).all()
    assert actions == [
        "patient.enrol",
        "patient.progression",
        "patient.salvage",
        "patient.withdraw",
    ]


def test_audit_rows_cannot_be_changed_or_deleted(app_ctx: Flask) -> None:
    enrol_patient(_request(), actor="cli", today=TODAY)
    entry = db.session.scalar(select(AuditEntry))
    entry.reason = "tampered"
    with pytest.raises(AuditEntryImmutableError):
        db.session.flush()
    db.session.rollback()
    entry = db.session.scalar(select(AuditEntry))
    db.session.delete(entry)
    with pytest.raises(AuditEntryImmutableError):
        db.session.flush()
    db.session.rollback()
    assert db.session.scalar(select(AuditEntry.reason)) == "enrolment"


# -- issue 11: enrolment that protects the record -----------------------------------------------


def test_a_patient_who_started_before_cadence_has_past_events_not_tracked(app_ctx: Flask) -> None:
    request = _request(
        start_date=date(2025, 9, 1),
        sms_consent_date=date(2025, 8, 28),
        recurrence_date=date(2025, 8, 1),
    )
    with pytest.raises(EnrolmentError) as info:
        enrol_patient(request, actor="user:nurse1", today=TODAY)
    assert "started before enrolment in Cadence" in info.value.errors["start_date"]

    patient = enrol_patient(
        replace(request, started_before_cadence=True), actor="user:nurse1", today=TODAY
    )

    past = [e for e in patient.events if e.date < TODAY]
    assert past and all(e.status in ("not_tracked", "cancelled") for e in past)
    assert all(e.status == "planned" for e in patient.events if e.date >= TODAY)
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "patient.enrol")).one()
    assert entry.after["started_before_cadence"] is True
    assert entry.after["not_tracked"] == len(past)


def test_a_second_patient_on_the_same_phone_needs_a_reason_which_is_audited(app_ctx: Flask) -> None:
    enrol_patient(_request(), actor="user:nurse1", today=TODAY)
    with pytest.raises(EnrolmentError) as info:
        enrol_patient(_request(study_id="JSCH-101"), actor="user:nurse1", today=TODAY)
    assert "already used by JSCH-100" in info.value.errors["phone"]

    enrol_patient(
        _request(study_id="JSCH-101", shared_phone_reason="daughter's phone"),
        actor="user:nurse1",
        today=TODAY,
    )

    entries = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "patient.enrol").order_by(AuditEntry.id)
    ).all()
    assert entries[-1].reason == "enrolment; shared phone: daughter's phone"
    assert entries[-1].after["warnings"] == ["mobile number shared with JSCH-100: daughter's phone"]

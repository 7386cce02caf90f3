"""Demo data: a few patients on different arms, one in salvage. Safe to run again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import select

from app.domain.patients import EnrolmentRequest
from app.extensions import db
from app.models import Patient
from app.services import audit, calendar, users
from app.services.patients import enrol_patient

DEMO_ACTOR = "demo"


@dataclass(frozen=True)
class DemoPatient:
    """One demo patient, with dates relative to today."""

    study_id: str
    initials: str
    phone: str
    pd1: str
    chemo: str
    start_offset_days: int
    locale: str = "zh"
    salvage_offset_days: int | None = None


DEMO_PATIENTS = (
    DemoPatient("JSCH-001", "WL", "13800138001", "sintilimab", "docetaxel", -35),
    DemoPatient("JSCH-002", "ZM", "13800138002", "camrelizumab", "paclitaxel", -10),
    DemoPatient("JSCH-003", "CH", "13800138003", "sintilimab", "irinotecan", 3),
    DemoPatient("JSCH-004", "LY", "13800138004", "camrelizumab", "docetaxel", -210, "zh", -4),
    DemoPatient("JSCH-005", "JS", "13800138005", "sintilimab", "paclitaxel", -60, "en"),
    DemoPatient("JSCH-006", "HX", "13800138006", "camrelizumab", "irinotecan", -120, "en"),
)


@dataclass(frozen=True)
class DemoStaff:
    """A demo staff account: its password is random and only known when it is created."""

    username: str
    display_name: str
    role: str
    locale: str


@dataclass(frozen=True)
class DemoStaffResult:
    """What happened to a demo account: created (with its password) or already there."""

    username: str
    role: str
    password: str | None


DEMO_STAFF = (
    DemoStaff("demo-nurse", "演示护士 Demo Nurse", "nurse", "zh"),
    DemoStaff("demo-admin", "Demo Admin", "admin", "en"),
)


def ensure_demo_staff() -> list[DemoStaffResult]:
    """Create the demo nurse and admin with random passwords; existing accounts are left alone."""
    results = []
    for staff in DEMO_STAFF:
        try:
            existing = users.get_user(staff.username)
        except users.UserNotFound:
            existing = None
        if existing is not None:
            results.append(DemoStaffResult(existing.username, existing.role, None))
            continue
        password = users.generate_password()
        users.create_user(
            staff.username,
            display_name=staff.display_name,
            role=staff.role,
            password=password,
            actor=DEMO_ACTOR,
            locale=staff.locale,
        )
        results.append(DemoStaffResult(staff.username, staff.role, password))
    return results


def load_demo_data(*, today: date) -> int:
    """Enrol the demo patients that do not exist yet; return how many were created."""
    created = 0
    for demo in DEMO_PATIENTS:
        if db.session.scalar(select(Patient.id).where(Patient.study_id == demo.study_id)):
            continue
        _enrol(demo, today)
        created += 1
    return created


def _enrol(demo: DemoPatient, today: date) -> None:
    start = today + timedelta(days=demo.start_offset_days)
    patient = enrol_patient(
        EnrolmentRequest(
            study_id=demo.study_id,
            initials=demo.initials,
            phone=demo.phone,
            choices={"pd1": demo.pd1, "chemo": demo.chemo},
            start_date=start,
            sms_consent=True,
            sms_consent_date=min(start, today) - timedelta(days=2),
            locale=demo.locale,
        ),
        actor=DEMO_ACTOR,
        today=today,
    )
    if demo.salvage_offset_days is not None:
        salvage_start = today + timedelta(days=demo.salvage_offset_days)
        calendar.record_progression(
            patient.id,
            salvage_start - timedelta(days=7),
            actor=DEMO_ACTOR,
            reason="demo: oesophageal wall thickening on CT",
            today=salvage_start - timedelta(days=7),
        )
        calendar.start_salvage(
            patient.id,
            salvage_start,
            actor=DEMO_ACTOR,
            reason="demo: salvage chemoradiation",
            today=salvage_start,
        )
    db.session.refresh(patient)
    _mark_past_done(patient, today)


def _mark_past_done(patient: Patient, today: date) -> None:
    past = [e for e in patient.events if e.date < today and e.status == "planned"]
    for event in past:
        event.status = "done"
    if past:
        audit.record(
            DEMO_ACTOR,
            "event.status",
            entity_type="patient",
            entity_id=patient.id,
            patient_id=patient.id,
            after={"status": "done", "events": len(past)},
            reason="demo: past visits marked done",
        )
    db.session.commit()

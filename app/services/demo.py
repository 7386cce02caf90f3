"""Demo data: a few patients on different arms, one in salvage. Safe to run again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from app.domain.checkins import applicable_questions
from app.domain.patients import EnrolmentRequest
from app.extensions import db
from app.models import Alert, CalendarEvent, CheckinSession, InboundMessage, Patient, utcnow
from app.services.alerts import oncall
from app.services.alerts.alerts import acknowledge, resolve
from app.services.conversations.checkins.schedule import start_checkin
from app.services.conversations.checkins.sessions import (
    make_call_task,
    patient_tz,
    record_answers,
    session_items,
)
from app.services.schedule import calendar
from app.services.schedule.contacts import (
    ConsentInput,
    ContactInput,
    add_contact,
    contacts_of,
    record_consent,
)
from app.services.schedule.patients import enrol_patient
from app.services.shared import audit, reply_texts, users

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
class DemoContact:
    """A demo caregiver contact with its consent (all of CONSENT_SCOPES unless given)."""

    study_id: str
    relation: str
    name: str
    phone: str
    messages: tuple[str, ...] = ("reminders", "checkins", "replies")
    scopes: tuple[str, ...] = ("sms_reminders", "checkins", "sensitive_health")


DEMO_CONTACTS = (
    # JSCH-001's daughter reads and answers the texts with her father.
    DemoContact("JSCH-001", "daughter", "王芳", "13900139001"),
    # A family phone: JSCH-003's own number is also JSCH-002's spouse contact (reminders only).
    DemoContact("JSCH-002", "spouse", "陈红", "13800138003", ("reminders",), ("sms_reminders",)),
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


DEMO_ROTA = (
    ("clinician", "Dr Demo (on call)", "13700000001"),
    ("investigator", "PI Demo", "13700000002"),
    ("nurse", "Nurse Demo", "13700000003"),
)


def ensure_demo_rota() -> int:
    """A round-the-clock on-call rota with demo numbers, unless a rota exists; return rows added."""
    if oncall.shifts(active_only=False):
        return 0
    for role, name, phone in DEMO_ROTA:
        oncall.add_shift(
            role=role,
            name=name,
            phone=phone,
            weekdays="daily",
            hours="08:00-08:00",
            actor=DEMO_ACTOR,
        )
    return len(DEMO_ROTA)


def load_demo_data(*, today: date) -> int:
    """Enrol the demo patients that do not exist yet; return how many were created."""
    created = 0
    for demo in DEMO_PATIENTS:
        if db.session.scalar(select(Patient.id).where(Patient.study_id == demo.study_id)):
            continue
        _enrol(demo, today)
        created += 1
    load_demo_contacts(today=today)
    return created


def load_demo_contacts(*, today: date) -> int:
    """Add the demo caregiver contacts that do not exist yet (with consent); commit."""
    added = 0
    now = utcnow()
    for demo in DEMO_CONTACTS:
        patient = db.session.scalar(select(Patient).where(Patient.study_id == demo.study_id))
        if patient is None or any(c.relation == demo.relation for c in contacts_of(patient)):
            continue
        contact = add_contact(
            patient,
            ContactInput(demo.relation, demo.phone, demo.name, "zh", demo.messages),
            actor=DEMO_ACTOR,
            now=now,
        )
        consent = ConsentInput(today - timedelta(days=3), "paper", demo.scopes)
        record_consent(contact, consent, actor=DEMO_ACTOR, now=now, today=today)
        added += 1
    db.session.commit()
    return added


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
            health_consent=True,
            sms_consent_date=min(start, today) - timedelta(days=2),
            locale=demo.locale,
            recurrence_date=start - timedelta(days=45),
            started_before_cadence=start < today,
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


# -- symptom check-ins (issue 6) -------------------------------------------------------------------

CHECKIN_DEMO_DAYS = 42
DEMO_CHECKIN_SCRIPTS: dict[str, tuple[tuple[str, dict[str, float]], ...]] = {
    # study id -> (channel, answers) for its most recent past check-ins, oldest first. Questions
    # not named are answered 0 (36.8 C for the temperature): every check-in is complete except
    # a "partial" one, which stops after its answers (as an SMS check-in stops at a red answer).
    "JSCH-001": (
        ("sms", {"N": 1, "NS": 1, "E": 2, "EI": 1, "A": 1, "AI": 1}),
        ("web", {"E": 1, "EI": 1, "N": 1, "NS": 1}),
        ("web", {"E": 1, "EI": 0, "T": 1, "TI": 1}),
    ),
    "JSCH-004": (
        ("sms", {}),
        ("web", {"S": 1, "K": 1, "KB": 0}),
        ("partial", {"F": 0, "HB": 0, "BS": 0, "CP": 0, "S": 4}),
    ),
    "JSCH-005": (
        ("sms", {}),
        ("web", {"N": 3, "NS": 3, "V": 2, "VS": 2, "E": 3, "EI": 3, "A": 2, "AI": 2}),
    ),
    "JSCH-002": (("web", {"K": 1, "KB": 0, "R": 1}),),
}
DEMO_CALL_TASKS = ("JSCH-006",)
"""Demo patients whose latest past check-in was never answered: a nurse call task."""


def load_demo_checkins(*, today: date) -> int:
    """Answered check-ins (graded, one red) and one call task for the demo patients.

    Separate from ``load_demo_data`` and idempotent: a check-in event that already has a session
    is left alone. Sessions are recorded without SMS (nothing is sent for the past); answers go
    through the same service as real ones, so grades, triage and alerts are real.
    """
    created = 0
    for study_id, scripts in [*DEMO_CHECKIN_SCRIPTS.items(), *((s, ()) for s in DEMO_CALL_TASKS)]:
        patient = db.session.scalar(select(Patient).where(Patient.study_id == study_id))
        if patient is None:
            continue
        events = _past_checkin_events(patient, today, max(len(scripts), 1))
        if study_id in DEMO_CALL_TASKS:
            events, scripts = events[-1:], (("none", {}),)
        for event_row, (channel, overrides) in zip(events, scripts[-len(events) :], strict=False):
            if _has_checkin(patient.id, event_row.key):
                continue
            sent = datetime.combine(event_row.date, time(10, 0), tzinfo=patient_tz(patient))
            session = start_checkin(event_row, now=sent, actor=DEMO_ACTOR, send=False)
            if session is None:
                continue
            if channel == "none":
                make_call_task(session, now=sent + timedelta(days=2), actor=DEMO_ACTOR,
                               reason="demo: check-in not answered after 2 days")  # fmt: skip
            else:
                answers = _demo_answers(session, overrides, complete=channel != "partial")
                answered = sent + timedelta(minutes=40)
                sms = channel in ("sms", "partial")
                inbound = _demo_inbound(patient, session, answers, answered) if sms else None
                outcome = record_answers(
                    session.id,
                    answers,
                    channel="sms" if sms else channel,
                    now=answered,
                    actor=DEMO_ACTOR,
                    inbound_message_id=inbound.id if inbound else None,
                )
                if inbound is not None:
                    _demo_inbound_outcome(inbound, outcome, patient)
            db.session.commit()
            created += 1
    if created:
        _demo_handling(today)
    return created


def _demo_inbound(
    patient: Patient, session: CheckinSession, answers: dict, at: datetime
) -> InboundMessage:
    """The SMS the demo patient 'sent': the whole check-in as one compact reply."""
    body = " ".join(f"{code}{value:g}" for code, value in answers.items())
    row = InboundMessage(
        sid=f"DEMO{session.id:08d}",
        from_number=patient.phone_e164,
        to_number=None,
        body=body,
        received_at=at,
        patient_id=patient.id,
        status="processed",
        processed_at=at,
        intent="checkin_answer",
        language=patient.locale,
    )
    db.session.add(row)
    db.session.flush()
    return row


def _demo_inbound_outcome(row: InboundMessage, outcome: Any, patient: Patient) -> None:
    """What the webhook would have recorded: the priority and, for red, the emergency reply."""
    row.priority = outcome.priority
    row.parse = {"intent": "checkin_answer", "priority": outcome.priority,
                 "reasons": list(outcome.result.reasons)}  # fmt: skip
    if outcome.priority == "red":
        row.reply_body = reply_texts.signed(reply_texts.red_reply(patient.locale))
        row.reply_locale = patient.locale


def _demo_handling(today: date) -> None:
    """Older green notes were seen and closed by the demo nurse (so the metrics have times)."""
    cutoff = datetime.combine(today - timedelta(days=5), time(0), tzinfo=ZoneInfo("Asia/Shanghai"))
    notes = db.session.scalars(
        select(Alert).where(
            Alert.level == "green", Alert.kind == "symptom", Alert.status == "open",
            Alert.created_at < cutoff,
        )
    ).all()  # fmt: skip
    for index, note in enumerate(notes):
        seen = note.created_at + timedelta(hours=2 + index)
        acknowledge(note.id, actor="user:demo-nurse", now=seen)
        resolve(note.id, actor="user:demo-nurse", note="", action="no_action_needed",
                now=seen + timedelta(hours=1))  # fmt: skip


def _past_checkin_events(patient: Patient, today: date, count: int) -> list[CalendarEvent]:
    earliest = today - timedelta(days=CHECKIN_DEMO_DAYS)
    events = [
        e
        for e in patient.events
        if e.kind == "checkin" and earliest <= e.date < today and e.status != "cancelled"
    ]
    return sorted(events, key=lambda e: (e.date, e.id))[-count:]


def _has_checkin(patient_id: int, event_key: str) -> bool:
    return (
        db.session.scalar(
            select(CheckinSession.id).where(
                CheckinSession.patient_id == patient_id, CheckinSession.event_key == event_key
            )
        )
        is not None
    )


def _demo_answers(session: CheckinSession, overrides: dict[str, float], *, complete: bool) -> dict:
    """Scripted answers: the given ones, and (for a complete check-in) 0 for the rest."""
    if not complete:
        return dict(overrides)
    answers: dict[str, float] = {}
    items = session_items(session)
    while True:
        pending = [q for q in applicable_questions(items, answers) if q.code not in answers]
        if not pending:
            return answers
        for question in pending:
            default = 36.8 if question.is_temperature else 0
            answers[question.code] = overrides.get(question.code, default)

"""Issuing check-ins from the calendar, reminders, nurse call tasks and expiry (the job's work).

- ``start_due(now)``: a check-in event whose day has come (CHECKIN_SEND_AT, default 10:00 in the
  patient's time zone, while its window is open) gets a session and its first SMS in the outbox:
  the introduction, the first question with numbered answers and the signed web link. A patient
  who cannot receive SMS (no consent, opted out, invalid number) gets a session that is at once a
  nurse call task. Starting a check-in closes the patient's older open ones, so an SMS answer
  always belongs to the newest.
- ``remind_due``: one reminder CHECKIN_REMINDER_HOURS (24) after an incomplete check-in was sent
  (a check-in is ``scheduled`` until its first question is handed to the provider, then ``sent``
  with ``sent_at`` moved to that moment, by app.services.messaging.invitations).
  At the same moment (the patient's own window has passed) the check-in is offered once to the
  next contact allowed to get check-ins, a caregiver (``checkin:<id>:caregiver``), who may
  answer for the patient; answers from that number reach the same session.
- ``call_tasks_due``: CHECKIN_CALL_TASK_DAYS (2) days after it was sent and still incomplete, the
  check-in becomes a call task in the triage inbox (PRO-TECT's backup call by a nurse).
- ``expire_due``: at ``expires_at`` (the link's lifetime, CHECKIN_LINK_HOURS = 96) an open
  check-in stops taking answers; a call task stays until a nurse resolves it.

Each step claims its rows with a conditional UPDATE (or INSERT .. ON CONFLICT DO NOTHING on the
UNIQUE key, so no process ever hits a unique violation) and commits per row, so several job
processes can run at once and every step happens once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import exists, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.domain import checkins as ck
from app.extensions import db
from app.models import CalendarEvent, CheckinSession, OutboxMessage, Patient
from app.services.conversations.checkins import texts as texts
from app.services.conversations.checkins.links import link_url
from app.services.conversations.checkins.sessions import (
    JOB_ACTOR,
    NO_SMS_STATUSES,
    STARTABLE_EVENT_STATUSES,
    CheckinSettings,
    close_session,
    get_session,
    item_of,
    items_for_patient,
    kick_dispatch_soon,
    make_call_task,
    patient_tz,
    position_of,
    questionnaire,
    queue_message,
    session_items,
    settings,
)
from app.services.messaging.recipients import Recipient, next_recipient, primary_recipient
from app.services.messaging.reminders import blocked_reason
from app.services.shared import audit
from app.services.shared.clinic import clinic_zone

logger = logging.getLogger("cadence.checkins")
INCOMPLETE_STATUSES = ("scheduled", "sent", "partial")
"""Not complete and not yet a call task (a scheduled check-in may never have gone out)."""


@dataclass
class RunReport:
    """What one pass of the check-ins job did."""

    started: int = 0
    call_tasks: int = 0
    reminded: int = 0
    expired: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for logs and the CLI."""
        return (
            f"started {self.started}, reminded {self.reminded}, call tasks {self.call_tasks}, "
            f"closed {self.expired}, skipped {self.skipped}, errors {len(self.errors)}"
        )


def run_due(now: datetime, *, actor: str = JOB_ACTOR) -> RunReport:
    """Everything the job does at ``now``: start, remind, hand over to nurses, close."""
    report = RunReport()
    start_due(now, actor=actor, report=report)
    remind_due(now, actor=actor, report=report)
    call_tasks_due(now, actor=actor, report=report)
    expire_due(now, actor=actor, report=report)
    if report.started or report.reminded:
        kick_dispatch_soon()
        db.session.commit()
    return report


def due_events(now: datetime) -> list[CalendarEvent]:
    """Check-in events due by ``now`` (send time reached, window open) without a session."""
    clinic_today = now.astimezone(clinic_zone()).date()
    has_session = exists().where(
        CheckinSession.patient_id == CalendarEvent.patient_id,
        CheckinSession.event_key == CalendarEvent.key,
    )
    rows = db.session.scalars(
        select(CalendarEvent)
        .join(Patient, Patient.id == CalendarEvent.patient_id)
        .where(
            CalendarEvent.kind == "checkin",
            CalendarEvent.status.in_(STARTABLE_EVENT_STATUSES),
            CalendarEvent.date <= clinic_today + timedelta(days=1),
            CalendarEvent.window_end >= clinic_today - timedelta(days=1),
            Patient.status.not_in(NO_SMS_STATUSES),
            ~has_session,
        )
        .order_by(CalendarEvent.date, CalendarEvent.id)
        .limit(500)
    ).all()
    conf = settings()
    due = []
    for row in rows:
        tz = patient_tz(row.patient)
        local = now.astimezone(tz)
        if local >= _send_moment(row.date, conf, tz) and local.date() <= row.window_end:
            due.append(row)
    return due


def _send_moment(day: date, conf: CheckinSettings, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, conf.send_at, tzinfo=tz)


def start_due(
    now: datetime, *, actor: str = JOB_ACTOR, report: RunReport | None = None
) -> list[CheckinSession]:
    """Issue every check-in that is due; commit each one."""
    report = report or RunReport()
    started = []
    for event_row in due_events(now):
        try:
            session = start_checkin(event_row, now=now, actor=actor)
        except Exception as exc:  # one bad row must not stop the others
            db.session.rollback()
            logger.exception("check-in %s of patient %s", event_row.key, event_row.patient_id)
            report.errors.append(f"{event_row.patient_id}:{event_row.key}: {exc}")
            continue
        if session is None:
            report.skipped += 1
            continue
        db.session.commit()
        started.append(session)
        report.started += 1
    return started


def start_checkin(
    event_row: CalendarEvent, *, now: datetime, actor: str, send: bool = True
) -> CheckinSession | None:
    """Create the session of one check-in event and plan its first SMS; flush, no commit.

    Returns None when the event already has a session (another process was first) or the
    patient is off study. ``send=False`` records the session only (demo data, tests).
    """
    patient = event_row.patient
    if patient.status in NO_SMS_STATUSES:
        return None
    items = items_for_patient(patient, event_row.phase)
    if not items:
        return None
    conf = settings()
    blocked = blocked_reason(patient, "checkin")
    first_contact = primary_recipient(patient, "checkin")
    first = ck.next_question(items, {})
    # Scheduled until its first question is handed to the provider (messaging.invitations).
    status = "scheduled" if send and blocked is None else "sent"
    values = {
        "patient_id": patient.id,
        "event_id": event_row.id,
        "event_key": event_row.key,
        "event_date": event_row.date,
        "phase": event_row.phase,
        "status": status,
        "locale": first_contact.locale if first_contact else _patient_locale(patient),
        "items": [i.code for i in items],
        "current_question": first.code if first else None,
        "answers": {},
        "answer_log": [],
        "results": [],
        "reasons": [],
        "delivery_blocked": blocked,
        "sent_at": now,
        "expires_at": now + conf.link_valid,
        "created_at": now,
        "updated_at": now,
    }
    session = _claim_session(values)
    if session is None:  # another process issued it first
        return None
    _close_older(patient.id, session.id, now, actor)
    audit.record(
        actor,
        "checkin.start",
        entity_type="checkin_session",
        entity_id=session.id,
        patient_id=patient.id,
        after={
            "event_key": event_row.key,
            "items": session.items,
            "delivery_blocked": blocked,
        },
        at=now,
    )
    if not send:
        return session
    if blocked is not None:
        make_call_task(session, now=now, actor=actor, reason=f"no SMS possible: {blocked}")
        return session
    send_after = max(now, _send_moment(event_row.date, conf, patient_tz(patient)).astimezone(UTC))
    item = item_of(items, first)
    assert first is not None and item is not None
    body = texts.start_message(
        questionnaire(),
        item,
        first,
        1,
        len(items),
        link_url(session.id, patient.id, now=now),
        session.locale,
    )
    queue_message(session, "start", body, due=send_after, question=first, source=actor, now=now)
    return session


def _claim_session(values: dict[str, Any]) -> CheckinSession | None:
    """Insert the session unless the event has one (INSERT .. ON CONFLICT DO NOTHING), so two
    jobs processes never race on the UNIQUE key; None when another process was first."""
    table = CheckinSession.__table__
    insert = pg_insert if db.session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["patient_id", "event_key"])
        .returning(table.c.id)
    )
    session_id = db.session.execute(statement).scalar_one_or_none()
    return None if session_id is None else db.session.get(CheckinSession, session_id)


def _close_older(patient_id: int, keep_id: int, now: datetime, actor: str) -> None:
    """A new check-in supersedes the patient's older open ones (answers go to the newest)."""
    older = db.session.scalars(
        select(CheckinSession).where(
            CheckinSession.patient_id == patient_id,
            CheckinSession.id != keep_id,
            CheckinSession.closed_at.is_(None),
        )
    ).all()
    for row in older:
        close_session(row, now, actor, reason="a newer check-in was sent")


def remind_due(now: datetime, *, actor: str = JOB_ACTOR, report: RunReport | None = None) -> int:
    """Queue one reminder for each incomplete check-in sent CHECKIN_REMINDER_HOURS ago."""
    report = report or RunReport()
    conf = settings()
    if conf.reminder_after is None:
        return 0
    rows = db.session.scalars(
        select(CheckinSession)
        .where(
            CheckinSession.status.in_(("sent", "partial")),
            CheckinSession.closed_at.is_(None),
            CheckinSession.reminded_at.is_(None),
            CheckinSession.delivery_blocked.is_(None),
            CheckinSession.sent_at <= now - conf.reminder_after,
            CheckinSession.expires_at > now,
        )
        .order_by(CheckinSession.sent_at, CheckinSession.id)
        .limit(500)
    ).all()
    for session in rows:
        claimed = db.session.execute(
            update(CheckinSession)
            .where(CheckinSession.id == session.id, CheckinSession.reminded_at.is_(None))
            .values(reminded_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            db.session.rollback()
            continue
        db.session.refresh(session)
        if blocked_reason(session.patient, "checkin") is None:
            _queue_reminder(session, now, actor)
            report.reminded += 1
        db.session.commit()
    return report.reminded


def _queue_reminder(session: CheckinSession, now: datetime, actor: str) -> None:
    items = session_items(session)
    question = ck.next_question(items, session.answers or {})
    body = texts.reminder_message(
        item_of(items, question),
        question,
        position_of(items, question),
        len(items),
        link_url(session.id, session.patient_id, now=now),
        session.locale,
    )
    queue_message(session, "reminder", body, due=now, question=question, source=actor, now=now)
    audit.record(
        actor,
        "checkin.remind",
        entity_type="checkin_session",
        entity_id=session.id,
        patient_id=session.patient_id,
        after={"answers": len(session.answers or {})},
        at=now,
    )
    offer_to_caregiver(session, now, actor)


def caregiver_for(session: CheckinSession) -> Recipient | None:
    """The caregiver a check-in is offered to: the next contact after the one its first
    question went to that is allowed to get check-ins (consent, choice, not opted out)."""
    first_contact = db.session.scalar(
        select(OutboxMessage.contact_id).where(
            OutboxMessage.patient_id == session.patient_id,
            OutboxMessage.dedupe_key == f"checkin:{session.id}:start",
        )
    )
    if first_contact is None:
        return None
    target = next_recipient(session.patient, "checkin", first_contact)
    return target if target is not None and target.relation != "self" else None


def offer_to_caregiver(session: CheckinSession, now: datetime, actor: str) -> bool:
    """Offer an unanswered check-in once to the patient's caregiver; flush, no commit."""
    target = caregiver_for(session)
    if target is None:
        return False
    items = session_items(session)
    question = ck.next_question(items, session.answers or {})
    body = texts.caregiver_offer_message(
        session.patient.initials,
        item_of(items, question),
        question,
        position_of(items, question),
        len(items),
        link_url(session.id, session.patient_id, now=now),
        target.locale,
    )
    row = queue_message(
        session,
        "caregiver",
        body,
        due=now,
        question=question,
        source=actor,
        now=now,
        recipient=target,
    )
    if row is None:
        return False
    audit.record(
        actor,
        "checkin.offered_to_contact",
        entity_type="checkin_session",
        entity_id=session.id,
        patient_id=session.patient_id,
        after={"contact_id": target.contact_id, "relation": target.relation},
        reason="check-in unanswered by the patient",
        at=now,
    )
    return True


def call_tasks_due(
    now: datetime, *, actor: str = JOB_ACTOR, report: RunReport | None = None
) -> int:
    """Make a call task of every check-in still incomplete CHECKIN_CALL_TASK_DAYS after sending."""
    report = report or RunReport()
    conf = settings()
    if conf.call_task_after is None:
        return 0
    ids = db.session.scalars(
        select(CheckinSession.id)
        .where(
            CheckinSession.status.in_(INCOMPLETE_STATUSES),
            CheckinSession.call_task_at.is_(None),
            CheckinSession.sent_at <= now - conf.call_task_after,
        )
        .order_by(CheckinSession.sent_at, CheckinSession.id)
        .limit(500)
    ).all()
    days = conf.call_task_after.total_seconds() / 86400
    for session_id in ids:
        claimed = db.session.execute(
            update(CheckinSession)
            .where(
                CheckinSession.id == session_id,
                CheckinSession.call_task_at.is_(None),
                CheckinSession.status.in_(INCOMPLETE_STATUSES),
            )
            .values(call_task_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            db.session.rollback()
            continue
        session = get_session(session_id)
        reason = (
            f"check-in incomplete {days:g} days after it was sent "
            f"({len(session.answers or {})} answers)"
        )
        make_call_task(session, now=now, actor=actor, reason=reason)
        db.session.commit()
        report.call_tasks += 1
    return report.call_tasks


def expire_due(now: datetime, *, actor: str = JOB_ACTOR, report: RunReport | None = None) -> int:
    """Close open check-ins past their expiry (call tasks stay until a nurse resolves them)."""
    report = report or RunReport()
    rows = db.session.scalars(
        select(CheckinSession)
        .where(
            CheckinSession.status.in_(INCOMPLETE_STATUSES),
            CheckinSession.closed_at.is_(None),
            CheckinSession.expires_at <= now,
        )
        .limit(500)
    ).all()
    for session in rows:
        close_session(session, now, actor, reason="the check-in expired unanswered")
        report.expired += 1
    if rows:
        db.session.commit()
    return report.expired


def _patient_locale(patient: Patient) -> str:
    """The patient's language (zh unless en)."""
    return patient.locale if patient.locale in ("zh", "en") else "zh"

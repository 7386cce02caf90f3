"""Reading what deciding an inbound SMS needs (the pipeline's loader): reads only, never writes.

``load_context(row, now)`` matches the sender (app.services.conversations.inbound.senders) and
reads the patient's open SMS check-in and the open events of the last reminder, as a pure
snapshot for app.domain.inbound_decision plus the rows the apply step writes to.
``triage_message`` reads the rest the triage needs (previous grades, where the patient is in
treatment) only for the messages whose decision needs a triage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import bindparam, select

from app.domain import checkins as ck
from app.domain.inbound_decision import (
    CLINICAL_INTENTS,
    CheckinView,
    ContactView,
    EventView,
    InboundContext,
    SenderKind,
    SharedPatient,
)
from app.domain.replies import ParsedReply, ReplyContext
from app.domain.triage import TriageContext, TriageResult, triage
from app.extensions import db
from app.models import CalendarEvent, CheckinSession, InboundMessage, OutboxMessage, Patient
from app.models.messages import HANDED_OVER_STATUSES
from app.services.conversations.checkins.by_sms import LOOK_UP, open_session_for_sms
from app.services.conversations.checkins.sessions import checkin_grades_since, session_items
from app.services.conversations.inbound.senders import SenderMatch, match_sender
from app.services.messaging.recipients import contact_locale
from app.services.schedule.treatment import treatment_context
from app.services.shared import reply_texts as texts

OPEN_EVENT_STATUSES = ("planned", "confirmed")
REMINDER_KINDS = ("reminder", "moved")
REMINDER_LOOKBACK = timedelta(days=7)
NOT_ENROLLED = TriageContext(enrolled=False)
"""A sender who is no enrolled patient: rules apply, the safety net for unread text does not."""

_INBOUND = InboundMessage.__table__
_OUTBOX = OutboxMessage.__table__
# Statements run for every inbound SMS, built once.
_RECENT_PARSES = (
    select(_INBOUND.c.received_at, _INBOUND.c.parse)
    .where(
        _INBOUND.c.patient_id == bindparam("p_patient"),
        _INBOUND.c.status == "processed",
        _INBOUND.c.id != bindparam("p_id"),
        _INBOUND.c.received_at >= bindparam("p_since", type_=_INBOUND.c.received_at.type),
        _INBOUND.c.intent.in_(CLINICAL_INTENTS),
    )
    .order_by(_INBOUND.c.received_at.desc(), _INBOUND.c.id.desc())
    .limit(20)
)
_LATEST_REMINDER_KEYS = (
    select(_OUTBOX.c.event_keys)
    .where(
        _OUTBOX.c.patient_id == bindparam("p_patient"),
        _OUTBOX.c.kind.in_(REMINDER_KINDS),
        _OUTBOX.c.status.in_(HANDED_OVER_STATUSES),
        _OUTBOX.c.sent_at >= bindparam("p_since", type_=_OUTBOX.c.sent_at.type),
    )
    .order_by(_OUTBOX.c.sent_at.desc(), _OUTBOX.c.id.desc())
    .limit(1)
)


@dataclass(frozen=True)
class StoredMessage:
    """The stored fields processing needs (as stored, or read back for late processing)."""

    id: int
    sid: str
    from_number: str
    body: str


@dataclass
class Loaded:
    """The snapshot for ``decide`` and the rows the apply step writes to."""

    context: InboundContext
    sender: SenderMatch
    patient: Patient | None = None
    events: list[CalendarEvent] = field(default_factory=list)

    @property
    def actor(self) -> str:
        """Who the audit rows name: the patient, or the contact who wrote."""
        patient, contact = self.patient, self.sender.contact
        if patient is None:
            return "system"
        if self.sender.from_caregiver and contact is not None:
            return f"contact:{patient.study_id}:{contact.relation}"
        return f"patient:{patient.study_id}"


def load_context(row: StoredMessage, now: datetime) -> Loaded:
    """Who sent the message and what is open for them: the snapshot ``decide`` reads."""
    sender = match_sender(row.from_number, row.body, now)
    default = texts.locale_or_default(None)
    if sender.ambiguous:
        locales = {p.locale for p in sender.ambiguous}
        shared = tuple(SharedPatient(p.study_id, p.initials) for p in sender.ambiguous)
        locale = texts.locale_or_default(locales.pop() if len(locales) == 1 else None)
        context = InboundContext("shared", locale, default, shared=shared)
        return Loaded(context, sender)
    if sender.patient is None:
        return Loaded(InboundContext("unknown", default, default), sender)
    return _patient_context(sender.patient, sender, now, default)


def _patient_context(patient: Patient, sender: SenderMatch, now: datetime, default: str) -> Loaded:
    contact = sender.contact
    locale = texts.locale_or_default(contact_locale(contact) if contact else patient.locale)
    kind: SenderKind = "caregiver" if sender.from_caregiver else "patient"
    keys = sender.reminder_keys
    events = related_events(patient, now, None if keys == LOOK_UP else list(keys or ()))
    context = InboundContext(
        kind,
        locale,
        default,
        contact=_contact_view(sender),
        resolved_by=sender.resolved_by,
        patient_opted_out=patient.sms_opted_out_at is not None,
        checkin=_checkin_view(patient, sender, now),
        events=tuple(EventView(e.key, e.status, e.date) for e in events),
    )
    return Loaded(context, sender, patient, events)


def _contact_view(sender: SenderMatch) -> ContactView | None:
    contact = sender.contact
    if contact is None:
        return None
    return ContactView(contact.id, contact.relation, contact.opted_out_at is not None)


def _checkin_view(patient: Patient, sender: SenderMatch, now: datetime) -> CheckinView | None:
    """The open SMS check-in: its items, the question a bare answer answers, a held red."""
    if sender.open_checkin == LOOK_UP:
        session = open_session_for_sms(patient.id, now)
    elif sender.open_checkin is None:
        return None
    else:
        session = db.session.get(CheckinSession, sender.open_checkin)
    if session is None:
        return None
    items = tuple(session_items(session))
    return CheckinView(
        session.id,
        items,
        ck.next_question(items, session.answers or {}),
        red_check_pending=bool(session.red_check),
    )


def reply_context(context: InboundContext) -> ReplyContext:
    """What the parser should know when reading free text: an opt-out decides whether "YES"
    opts back in (check-in answers are read by the check-in, not as free text)."""
    return ReplyContext(opted_out=context.patient_opted_out)


def triage_message(
    loaded: Loaded, parsed: ParsedReply, message_id: int, now: datetime
) -> TriageResult:
    """Triage with what the sender's kind allows: a patient's history and treatment context."""
    kind = loaded.context.sender
    if kind == "unknown":
        return triage(parsed, context=NOT_ENROLLED)
    if kind == "shared" or loaded.patient is None:
        return triage(parsed, context=TriageContext())
    patient = loaded.patient
    previous = previous_grades(patient.id, message_id, now) if parsed.active_symptoms else {}
    return triage(parsed, previous_grades=previous, context=treatment_context(patient, now))


def related_events(
    patient: Patient, now: datetime, event_keys: list[str] | None = None
) -> list[CalendarEvent]:
    """The open events of the last reminder sent to the patient (within 7 days), still ahead.

    ``event_keys``: that reminder's keys when already read (with the sender); None: read them.
    """
    if event_keys is None:
        params = {"p_patient": patient.id, "p_since": now - REMINDER_LOOKBACK}
        event_keys = db.session.connection().scalar(_LATEST_REMINDER_KEYS, params)
    if not event_keys:
        return []
    today = now.astimezone(ZoneInfo(patient.timezone or "Asia/Shanghai")).date()
    return list(
        db.session.scalars(
            select(CalendarEvent)
            .where(
                CalendarEvent.patient_id == patient.id,
                CalendarEvent.key.in_(list(event_keys)),
                CalendarEvent.status.in_(OPEN_EVENT_STATUSES),
                CalendarEvent.date >= today,
            )
            .order_by(CalendarEvent.date, CalendarEvent.id)
        )
    )


def previous_grades(patient_id: int, before_id: int, now: datetime) -> dict[str, int]:
    """The latest grade of each symptom the patient reported recently (baseline 0 otherwise).

    Before any report the patient's baseline is taken as grade 0 for every symptom, so a first
    report of grade 2 or more counts as 'worse by 2' (when unsure, the more urgent level).
    Check-in answers count too (web ones included).
    """
    days = int(current_app.config.get("ESCALATION_HISTORY_DAYS", 30))
    since = now - timedelta(days=days)
    parses = db.session.connection().execute(
        _RECENT_PARSES, {"p_patient": patient_id, "p_id": before_id, "p_since": since}
    )
    reports = [(received_at, grades_in(parse)) for received_at, parse in parses]
    reports += checkin_grades_since(patient_id, since)
    grades: dict[str, int] = {}
    for _, report in sorted(reports, key=lambda pair: pair[0], reverse=True):
        for code, grade in report.items():
            grades.setdefault(code, grade)
    return grades


def grades_in(parse: dict[str, Any] | None) -> dict[str, int]:
    """{code: grade} of one stored parse; symptoms the patient denied count as grade 0."""
    grades: dict[str, int] = {}
    for item in (parse or {}).get("symptoms", []):
        if isinstance(item, dict) and isinstance(item.get("grade"), int):
            grades[str(item.get("code"))] = int(item["grade"])
    for code in (parse or {}).get("negated", []):
        grades.setdefault(str(code), 0)
    return grades

"""Inbound SMS: store first, then understand, act and answer (the Twilio webhook's use case).

``handle_inbound(form, now)`` is all the webhook calls. In order:

1. ``store``: one INSERT under the UNIQUE MessageSid, committed before anything is interpreted.
   A retried webhook (same MessageSid) stores nothing new and gets the answer already given.
2. ``process``: one transaction that starts by claiming the row (conditional UPDATE
   ``received -> processed``, so two processes can never act twice on one message), matches the
   sender to a patient by E.164 number, parses and triages the text (app.domain.replies /
   app.domain.triage, with the patient's context and previous grades), acts on it (events,
   opt-out / opt-in, alerts, pages to the on-call clinician through the outbox) and records what
   it understood and answered. Commit.
3. If anything in step 2 fails, it is rolled back as a whole; the row is marked ``failed`` with
   the error, a nurse-visible alert points at it (red, with pages, when the bare text is a red
   flag) and the patient still gets a safe answer.

A row left ``received`` (the process died between 1 and 2) is picked up by ``process_stale``
(run by the escalation job); its answer then goes out through the outbox.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from flask import current_app
from flask_babel import force_locale
from sqlalchemy import JSON, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from app.domain.conversation_state import CHECKIN, CONFIRM, Reading, read_reply
from app.domain.escalation import add_working_time
from app.domain.replies import ParsedReply, ReplyContext, parse_reply
from app.domain.triage import TriageContext, TriageResult, triage
from app.extensions import db
from app.models import CalendarEvent, InboundMessage, OutboxMessage, Patient, utcnow
from app.models.inbound import MAX_NUMBER_CHARS, MAX_SID_CHARS
from app.models.messages import HANDED_OVER_STATUSES
from app.services.alerts import cover
from app.services.alerts.alerts import NewAlert, create_alert
from app.services.alerts.escalation import page_for_new_red
from app.services.conversations.checkins.by_sms import (
    LOOK_UP,
    SmsAnswer,
    answer_by_sms,
    current_question_for_sms,
    open_session_for_sms,
    read_single_answer,
    settle_red_check,
)
from app.services.conversations.checkins.sessions import checkin_grades_since, pending_red_check
from app.services.conversations.inbound.senders import (
    SenderMatch,
    match_sender,
    sender_record,
    shared_number_reasons,
    which_patient_reply,
)
from app.services.messaging.outbox import add_history
from app.services.messaging.recipients import contact_locale
from app.services.messaging.reminders import cancel_unsent, plan_patient
from app.services.messaging.send_now import kick_dispatch
from app.services.schedule.calendar import mark_event
from app.services.schedule.contacts import opt_in_contact, opt_out_contact
from app.services.schedule.treatment import treatment_context
from app.services.shared import audit
from app.services.shared import reply_texts as texts
from app.services.shared.clinic import clinic_zone, escalation_policy
from app.services.shared.protocols import clinic_working_days
from app.sms.segments import count_segments

logger = logging.getLogger("cadence.replies")

CLINICAL_INTENTS = ("symptom_report", "checkin_answer")
CONFIRMABLE_STATUSES = ("planned",)
OPEN_EVENT_STATUSES = ("planned", "confirmed")
REMINDER_KINDS = ("reminder", "moved")
REMINDER_LOOKBACK = timedelta(days=7)
MAX_BODY_CHARS = 20000
RESCHEDULE_FLAG = "reschedule_requested"
BARE_CONFIRM_INTENTS = ("confirm", "reschedule_request")
BARE_CODE_CHARS = 8
"""A confirmation this short ("1", "yes", "好的") is a bare code: it needs an open invitation."""

NOT_ENROLLED = TriageContext(enrolled=False)
"""A sender who is no enrolled patient: rules apply, the safety net for unread text does not."""


_INBOUND = InboundMessage.__table__
# Hot-path statements, built once (building SQLAlchemy statements per request is costly).
_STORE = (
    insert(_INBOUND)
    .values(
        sid=bindparam("p_sid"),
        from_number=bindparam("p_from"),
        to_number=bindparam("p_to"),
        body=bindparam("p_body"),
        num_media=bindparam("p_media"),
        received_at=bindparam("p_at"),
        status="received",
    )
    .returning(_INBOUND.c.id)
)
_ID_BY_SID = select(_INBOUND.c.id).where(_INBOUND.c.sid == bindparam("p_sid"))
_UNPROCESSED = select(_INBOUND.c.id, _INBOUND.c.sid, _INBOUND.c.from_number, _INBOUND.c.body).where(
    _INBOUND.c.id == bindparam("p_id"), _INBOUND.c.status == "received"
)
_FINISH = (
    update(_INBOUND)
    .where(_INBOUND.c.id == bindparam("p_id"), _INBOUND.c.status == "received")
    .values(
        status="processed",
        processed_at=bindparam("p_at"),
        patient_id=bindparam("p_patient"),
        contact_id=bindparam("p_contact"),
        reply_body=bindparam("p_reply"),
        reply_locale=bindparam("p_locale"),
        intent=bindparam("p_intent"),
        priority=bindparam("p_priority"),
        language=bindparam("p_language"),
        parse=bindparam("p_parse", type_=JSON(none_as_null=True)),
    )
)
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
_OUTBOX = OutboxMessage.__table__
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


class InvalidInbound(ValueError):
    """The form is not an inbound message (no MessageSid or no sender): nothing is stored."""


@dataclass(frozen=True)
class InboundForm:
    """The fields of Twilio's inbound-message webhook that we keep."""

    sid: str
    from_number: str
    to_number: str | None
    body: str
    num_media: int = 0

    @classmethod
    def parse(cls, form: Mapping[str, Any]) -> InboundForm:
        """Read Twilio's form (MessageSid/SmsSid, From, To, Body, NumMedia) or InvalidInbound."""
        sid = _text(form.get("MessageSid") or form.get("SmsSid")).strip()
        sender = _text(form.get("From")).strip()
        if not sid or len(sid) > MAX_SID_CHARS:
            raise InvalidInbound("MessageSid missing or too long")
        if not sender or len(sender) > MAX_NUMBER_CHARS:
            raise InvalidInbound("From missing or too long")
        to = _text(form.get("To")).strip()[:MAX_NUMBER_CHARS] or None
        media = _text(form.get("NumMedia")).strip()
        return cls(
            sid=sid,
            from_number=sender,
            to_number=to,
            body=_text(form.get("Body"))[:MAX_BODY_CHARS],
            num_media=int(media) if media.isdigit() and len(media) < 4 else 0,
        )


def _text(value: Any) -> str:
    """A form value as storable text (NUL is not allowed in PostgreSQL text)."""
    if value is None:
        return ""
    return str(value).replace("\x00", "\ufffd")


@dataclass
class Outcome:
    """What processing one message decided: what we understood, did and answer."""

    reply: str
    locale: str
    patient: Patient | None = None
    parsed: ParsedReply | None = None
    result: TriageResult | None = None
    alert_id: int | None = None
    actions: list[str] = field(default_factory=list)
    sender: SenderMatch = field(default_factory=SenderMatch)


@dataclass(frozen=True)
class InboundResult:
    """The end of one webhook call: the answer (None: answer nothing) and what happened."""

    reply: str | None
    status: str  # processed | failed | duplicate | in_progress
    message_id: int
    priority: str | None = None
    alert_id: int | None = None


@dataclass(frozen=True)
class StoredMessage:
    """The stored fields processing needs (as stored, or read back for late processing)."""

    id: int
    sid: str
    from_number: str
    body: str


# -- entry points ------------------------------------------------------------------------------


def handle_inbound(form: Mapping[str, Any], now: datetime) -> str:
    """Store, understand, act and return the reply text ('' to answer nothing)."""
    return receive(form, now).reply or ""


def receive(form: Mapping[str, Any], now: datetime) -> InboundResult:
    """Store the message (committed), then process it; never raises for a valid form."""
    inbound = InboundForm.parse(form)
    message_id, created = store(inbound, now)
    if not created:
        return _duplicate(message_id)
    stored = StoredMessage(message_id, inbound.sid, inbound.from_number, inbound.body)
    return process(message_id, now, stored=stored)


def receive_sms(inbound: InboundForm, now: datetime) -> InboundResult:
    """A provider-neutral inbound SMS (Tencent, Alibaba): store, process, answer by the outbox."""
    message_id, created = store(inbound, now)
    if not created:
        return _duplicate(message_id)
    stored = StoredMessage(message_id, inbound.sid, inbound.from_number, inbound.body)
    return process(message_id, now, reply_by_sms=True, stored=stored)


def store(inbound: InboundForm, now: datetime) -> tuple[int, bool]:
    """Insert the message and commit; (id, True), or (id of the first copy, False) if known."""
    values = {
        "p_sid": inbound.sid,
        "p_from": inbound.from_number,
        "p_to": inbound.to_number,
        "p_body": inbound.body,
        "p_media": inbound.num_media,
        "p_at": now,
    }
    try:
        message_id = db.session.connection().execute(_STORE, values).scalar_one()
        db.session.commit()
        return message_id, True
    except IntegrityError:
        db.session.rollback()
    existing = db.session.connection().scalar(_ID_BY_SID, {"p_sid": inbound.sid})
    if existing is None:  # pragma: no cover - an integrity error that was not the sid
        raise RuntimeError(f"could not store inbound message {inbound.sid}")
    return existing, False


def _duplicate(message_id: int) -> InboundResult:
    row = db.session.get(InboundMessage, message_id, populate_existing=True)
    assert row is not None
    if row.status == "received":
        return InboundResult(None, "in_progress", row.id)
    return InboundResult(row.reply_body, "duplicate", row.id, row.priority)


def process(
    message_id: int,
    now: datetime,
    *,
    reply_by_sms: bool = False,
    stored: StoredMessage | None = None,
) -> InboundResult:
    """Interpret one stored message and act on it in one transaction; on failure, fall back.

    ``stored`` (the fields just inserted by ``store``) saves reading the row back.
    """
    try:
        result = _process(message_id, now, reply_by_sms, stored)
    except Exception as exc:
        db.session.rollback()
        logger.exception("inbound message %s could not be interpreted", message_id)
        return _fallback(message_id, now, exc, reply_by_sms)
    if result.status == "processed" and result.priority == "red":
        kick_dispatch()
    return result


def process_stale(now: datetime, *, older_than: timedelta) -> int:
    """Process messages stored but never interpreted (a process died); answers go by SMS."""
    ids = db.session.scalars(
        select(InboundMessage.id)
        .where(InboundMessage.status == "received", InboundMessage.received_at <= now - older_than)
        .order_by(InboundMessage.received_at)
        .limit(100)
    ).all()
    done = 0
    for message_id in ids:
        result = process(message_id, now, reply_by_sms=True)
        done += result.status in ("processed", "failed")
    return done


# -- processing ----------------------------------------------------------------------------------


def _process(
    message_id: int, now: datetime, reply_by_sms: bool, stored: StoredMessage | None
) -> InboundResult:
    """Understand and act, then claim the row (``received -> processed``) with what we understood,
    all in one transaction: if another process claimed it first, everything is rolled back."""
    row = stored or _unprocessed(message_id)
    if row is None:
        db.session.rollback()
        return _duplicate(message_id)
    sender = match_sender(row.from_number, row.body, now)
    if sender.ambiguous:
        outcome = _from_shared_number(row, sender, now)
    elif sender.patient is None:
        outcome = _from_unknown_sender(row, now)
    else:
        outcome = _from_patient(row, sender.patient, now, sender.open_checkin, sender=sender)
    if reply_by_sms and outcome.patient is not None and outcome.reply:
        contact = outcome.sender.contact
        _queue_reply(
            outcome.patient,
            row,
            outcome.reply,
            outcome.locale,
            now,
            contact.id if contact else None,
        )
    if not _record(row, outcome, now):
        db.session.rollback()
        return _duplicate(message_id)
    db.session.commit()
    priority = outcome.result.priority if outcome.result else None
    return InboundResult(outcome.reply, "processed", message_id, priority, outcome.alert_id)


def _unprocessed(message_id: int) -> StoredMessage | None:
    """The stored message if it still waits to be processed."""
    found = db.session.connection().execute(_UNPROCESSED, {"p_id": message_id}).first()
    if found is None:
        return None
    return StoredMessage(found.id, found.sid, found.from_number, found.body or "")


def _record(row: StoredMessage, outcome: Outcome, now: datetime) -> bool:
    """Claim the row as processed with what we understood; False if it was no longer waiting."""
    parsed, result = outcome.parsed, outcome.result
    understood = parsed is not None and result is not None
    values: dict[str, Any] = {
        "p_id": row.id,
        "p_at": now,
        "p_patient": outcome.patient.id if outcome.patient else None,
        "p_contact": outcome.sender.contact.id if outcome.sender.contact else None,
        "p_reply": outcome.reply,
        "p_locale": outcome.locale,
        "p_intent": parsed.intent if understood else None,
        "p_priority": result.priority if understood else None,
        "p_language": parsed.language if understood else None,
        "p_parse": _with_sender(parse_record(parsed, result, outcome.actions), outcome)
        if understood
        else None,
    }
    claimed = db.session.connection().execute(_FINISH, values)
    return claimed.rowcount == 1  # type: ignore[attr-defined]


def parse_record(parsed: ParsedReply, result: TriageResult, actions: list[str]) -> dict[str, Any]:
    """What we understood, as stored on the message (the classify JSON plus details)."""
    return {
        "intent": parsed.intent,
        "symptoms": [
            {"code": m.code, "grade": m.grade, "evidence": _safe(m.evidence)[:80]}
            for m in parsed.active_symptoms
        ],
        "negated": sorted({m.code for m in parsed.negated_symptoms}),
        "temperature_c": parsed.temperature_c,
        "priority": result.priority,
        "reasons": [_safe(r) for r in result.reasons],
        "red_flags": list(result.red_flags),
        "flags": list(parsed.flags),
        "language": parsed.language,
        "answer": parsed.answer,
        "codes": dict(parsed.codes),
        "actions": actions,
    }


def _with_sender(record: dict[str, Any], outcome: Outcome) -> dict[str, Any]:
    """The parse record plus who sent it (a caregiver contact), when known."""
    sender = sender_record(outcome.sender)
    return record | {"sender": sender} if sender else record


def _safe(text: str) -> str:
    return str(text).replace("\x00", "\ufffd")


def match_patient(sender: str) -> Patient | None:
    """The patient a message from ``sender`` is about (its contacts' numbers included), or None.

    A number shared by several patients that nothing resolves is not matched to any of them
    (app.services.conversations.inbound.senders).
    """
    return match_sender(sender, "", utcnow()).patient


# -- a patient's message -------------------------------------------------------------------------


def _from_patient(
    row: StoredMessage,
    patient: Patient,
    now: datetime,
    open_checkin: int | Literal["look up"] | None = LOOK_UP,
    *,
    sender: SenderMatch | None = None,
) -> Outcome:
    sender = sender or SenderMatch(patient)
    contact = sender.contact
    locale = texts.locale_or_default(contact_locale(contact) if contact else patient.locale)
    if open_checkin == LOOK_UP:
        session = open_session_for_sms(patient.id, now)
        open_checkin = session.id if session else None
    if open_checkin is not None and pending_red_check(open_checkin) is not None:
        settled = settle_red_check(patient, row.id, row.body, now, open_checkin)
        if settled is not None:
            return _from_checkin(settled, patient, locale, sender)
    context = reply_context(patient, now)
    parsed = parse_reply(row.body, context=context)
    events = related_events(patient, now)
    reading = read_against_invitations(row.body, parsed, open_checkin, events)
    if reading.route in ("ask_back", "no_invitation"):
        return _ask_back(patient, parsed, reading, events, open_checkin, locale)
    answered = _checkin_answer(
        patient, row, now, open_checkin, single_answers=reading.route == "checkin"
    )
    if answered is not None:
        return _from_checkin(answered, patient, locale, sender)
    previous = previous_grades(patient.id, row.id, now) if parsed.active_symptoms else {}
    result = triage(parsed, previous_grades=previous, context=treatment_context(patient, now))
    outcome = Outcome(
        reply="",
        locale=locale,
        patient=patient,
        parsed=parsed,
        result=result,
        actions=_sender_actions(sender),
        sender=sender,
    )
    actor = f"patient:{patient.study_id}"
    if sender.from_caregiver and contact is not None:
        actor = f"contact:{patient.study_id}:{contact.relation}"
    _act_on_intent(outcome, row, actor, now)
    _act_on_priority(outcome, row, actor, now)
    outcome.reply = texts.signed(_patient_reply(outcome, now))
    return outcome


def _from_checkin(
    answered: SmsAnswer, patient: Patient, locale: str, sender: SenderMatch
) -> Outcome:
    """The outcome of a message the check-ins service took (an answer, or a yes/no asked back)."""
    return Outcome(
        reply=texts.signed(answered.reply) if answered.reply else "",
        locale=locale,
        patient=patient,
        parsed=answered.parsed,
        result=answered.result,
        alert_id=answered.alert_id,
        actions=[*_sender_actions(sender), *answered.actions],
        sender=sender,
    )


def read_against_invitations(
    body: str, parsed: ParsedReply, open_checkin: int | None, events: list[CalendarEvent]
) -> Reading:
    """Which open invitation a reply answers (app.domain.conversation_state): the reminder's
    "Reply 1 to confirm" while its events are ahead, the check-in question once handed over."""
    question = current_question_for_sms(open_checkin)
    fits_checkin = question is not None and read_single_answer(body, question) is not None
    fits_confirm = parsed.intent in BARE_CONFIRM_INTENTS and len(body.strip()) <= BARE_CODE_CHARS
    invitations = [CONFIRM] if events else []
    if question is not None:
        invitations.append(CHECKIN)
    return read_reply(
        fits_confirm=fits_confirm, fits_checkin=fits_checkin, open_invitations=invitations
    )


def _ask_back(
    patient: Patient,
    parsed: ParsedReply,
    reading: Reading,
    events: list[CalendarEvent],
    open_checkin: int | None,
    locale: str,
) -> Outcome:
    """A bare code that fits two open invitations (or none) is never guessed: ask back."""
    text = parsed.text.strip()
    if reading.route == "ask_back":
        question = current_question_for_sms(open_checkin)
        assert question is not None and events
        reply = texts.ask_back_reply(locale, text, events[0].date, f"{question.code}{text}")
        reason = "a bare code that fits two open messages: asked back"
    else:
        reply = texts.nothing_open_reply(locale, text)
        reason = "a bare code while no message awaits a reply: asked back"
    result = TriageResult("none", (f"conversation: {reason}",))
    return Outcome(
        reply=texts.signed(reply),
        locale=locale,
        patient=patient,
        parsed=parsed,
        result=result,
        actions=[f"asked_back:{'+'.join(reading.candidates) or 'nothing_open'}"],
    )


def _sender_actions(sender: SenderMatch) -> list[str]:
    """What the actions list says about who sent it: a caregiver, a shared phone resolved."""
    actions = []
    if sender.from_caregiver and sender.contact is not None:
        actions.append(f"from_contact:{sender.contact.relation}")
    if sender.resolved_by not in (None, "only"):
        actions.append(f"shared_phone_resolved_by:{sender.resolved_by}")
    return actions


def _checkin_answer(
    patient: Patient,
    row: StoredMessage,
    now: datetime,
    open_checkin: int | Literal["look up"] | None = LOOK_UP,
    *,
    single_answers: bool = True,
) -> Any:
    """The message read as an answer to the patient's open check-in (app.services.conversations.checkins.by_sms),
    or None when it is free text. Its next question or thank-you goes out through the outbox;
    a red answer gets the emergency reply here, as the webhook's answer."""
    return answer_by_sms(
        patient,
        row.id,
        row.body,
        now,
        open_session_id=open_checkin,
        single_answers=single_answers,
    )


def reply_context(patient: Patient, now: datetime) -> ReplyContext:
    """What the parser should know about the patient when reading free text.

    Check-in answers never get here (``_checkin_answer`` takes them first), so free text is read
    without an open question; an opt-out decides whether "YES" opts back in.
    """
    return ReplyContext(opted_out=patient.sms_opted_out_at is not None)


def previous_grades(patient_id: int, before_id: int, now: datetime) -> dict[str, int]:
    """The latest grade of each symptom the patient reported recently (baseline 0 otherwise).

    Before any report the patient's baseline is taken as grade 0 for every symptom, so a first
    report of grade 2 or more counts as 'worse by 2' (when unsure, the more urgent level).
    """
    days = int(current_app.config.get("ESCALATION_HISTORY_DAYS", 30))
    since = now - timedelta(days=days)
    parses = db.session.connection().execute(
        _RECENT_PARSES, {"p_patient": patient_id, "p_id": before_id, "p_since": since}
    )
    reports = [(received_at, grades_in(parse)) for received_at, parse in parses]
    reports += recent_checkin_grades(patient_id, since=since)
    grades: dict[str, int] = {}
    for _, report in sorted(reports, key=lambda pair: pair[0], reverse=True):
        for code, grade in report.items():
            grades.setdefault(code, grade)
    return grades


def recent_checkin_grades(patient_id: int, *, since: datetime) -> list[tuple[datetime, dict]]:
    """(answer time, {symptom: grade}) of the patient's check-ins answered since ``since``, so
    that a free-text report is compared with check-in answers too (web ones included)."""
    return checkin_grades_since(patient_id, since)


def grades_in(parse: dict[str, Any] | None) -> dict[str, int]:
    """{code: grade} of one stored parse; symptoms the patient denied count as grade 0."""
    grades: dict[str, int] = {}
    for item in (parse or {}).get("symptoms", []):
        if isinstance(item, dict) and isinstance(item.get("grade"), int):
            grades[str(item.get("code"))] = int(item["grade"])
    for code in (parse or {}).get("negated", []):
        grades.setdefault(str(code), 0)
    return grades


def _act_on_intent(outcome: Outcome, row: StoredMessage, actor: str, now: datetime) -> None:
    assert outcome.patient is not None and outcome.parsed is not None
    intent = outcome.parsed.intent
    contact = outcome.sender.contact
    if intent == "opt_out":
        if contact is not None:
            opt_out_contact(contact, now=now, actor=actor)
        else:
            opt_out(outcome.patient, now=now, actor=actor)
        outcome.actions.append("opted_out")
        outcome.alert_id = _raise(outcome, row, "opt_out", "green", now).id
    elif intent == "opt_in":
        if contact is not None:
            opted_in = opt_in_contact(contact, now=now, actor=actor)
        else:
            opted_in = opt_in(outcome.patient, now=now, actor=actor)
        if opted_in:
            outcome.actions.append("opted_in")
    elif intent == "confirm":
        confirmed = _confirm_events(outcome.patient, actor, now)
        outcome.actions.extend(f"confirmed:{key}" for key in confirmed)
    elif intent == "reschedule_request":
        keys = _flag_reschedule(outcome.patient, actor, now)
        outcome.actions.extend(f"reschedule_requested:{key}" for key in keys)
        alert = _raise(outcome, row, "reschedule", "amber", now, keys)
        outcome.alert_id = alert.id


def _act_on_priority(outcome: Outcome, row: StoredMessage, actor: str, now: datetime) -> None:
    assert outcome.parsed is not None and outcome.result is not None
    if outcome.alert_id is not None and outcome.result.priority != "red":
        return
    priority = outcome.result.priority
    parsed = outcome.parsed
    clinical = (
        parsed.intent in CLINICAL_INTENTS
        or bool(parsed.symptoms)
        or parsed.temperature_c is not None
    )
    if priority == "red":
        alert = _raise(outcome, row, "symptom", "red", now)
        page_for_new_red(alert, now=now, actor="system")
        outcome.actions.append("paged_on_call")
    elif priority == "amber":
        alert = _raise(outcome, row, "symptom" if clinical else "review", "amber", now)
    elif clinical and priority == "green":
        alert = _raise(outcome, row, "symptom", "green", now)
    elif parsed.intent == "unknown":
        alert = _raise(outcome, row, "review", "green", now)
    else:
        return
    outcome.alert_id = alert.id


def _raise(
    outcome: Outcome,
    row: StoredMessage | InboundMessage,
    kind: str,
    level: str,
    now: datetime,
    event_keys: list[str] | None = None,
) -> Any:
    parsed, result = outcome.parsed, outcome.result
    symptoms = _alert_symptoms(parsed) if parsed else []
    reasons = list(result.reasons) if result else []
    if kind == "reschedule":
        reasons = [f"reschedule requested: {', '.join(event_keys or []) or 'no open event found'}"]
    elif kind == "opt_out" and outcome.sender.from_caregiver:
        relation = outcome.sender.contact.relation if outcome.sender.contact else "contact"
        reasons = [f"opt-out keyword from the {relation}'s phone: no SMS to that contact only"]
    elif kind == "opt_out":
        reasons = ["opt-out keyword: no SMS until the patient opts back in (check-ins go to calls)"]
    summary = _summary(kind, symptoms, parsed.temperature_c if parsed else None, reasons)
    return create_alert(
        NewAlert(
            dedupe_key=f"inbound:{row.id}:{kind}",
            kind=kind,
            level=level,
            summary=summary,
            reasons=reasons,
            symptoms=symptoms,
            patient_id=outcome.patient.id if outcome.patient else None,
            inbound_message_id=row.id,
        ),
        now=now,
        # Normal processing runs before anyone committed a claim on the row, so no alert keyed
        # on it can exist (a racing claimer's alert collides on the UNIQUE key -> fallback).
        known_new=isinstance(row, StoredMessage),
    )


def _alert_symptoms(parsed: ParsedReply) -> list[dict[str, Any]]:
    """The active symptoms for the alert; the temperature rides on the fever entry."""
    symptoms: list[dict[str, Any]] = [
        {"code": m.code, "grade": m.grade} for m in parsed.active_symptoms
    ]
    if parsed.temperature_c is not None:
        fever = next((s for s in symptoms if s["code"] == "fever"), None)
        if fever is None:
            fever = {"code": "fever", "grade": None}
            symptoms.append(fever)
        fever["temperature_c"] = parsed.temperature_c
    return symptoms


def _summary(
    kind: str, symptoms: list[dict[str, Any]], temperature: float | None, reasons: list[str]
) -> str:
    if kind == "reschedule":
        return "reschedule request"
    if kind == "opt_out":
        return "opted out of SMS"
    parts = [
        f"{s['code']}" + (f" G{s['grade']}" if s.get("grade") is not None else "") for s in symptoms
    ]
    if temperature is not None:
        parts.append(f"{temperature:.1f} C")
    if not parts and kind == "review":
        parts.append("message to read")
    elif not parts and reasons:
        parts.append(reasons[0].partition(":")[0])
    return ", ".join(parts) or kind


def _patient_reply(outcome: Outcome, now: datetime) -> str:
    assert outcome.parsed is not None and outcome.result is not None
    locale, intent, priority = outcome.locale, outcome.parsed.intent, outcome.result.priority
    if priority == "red":
        return texts.red_reply(locale)
    if intent == "opt_out":
        return texts.opt_out_reply(locale)
    if intent == "opt_in":
        return texts.opt_in_reply(locale)
    if intent == "help":
        return texts.help_reply(locale)
    if intent == "reschedule_request":
        return texts.reschedule_reply(locale, _deadline_text("amber", outcome, now))
    if priority == "amber":
        return texts.amber_answer(locale, cover.promise(now), now, _patient_zone(outcome))
    if intent == "confirm":
        confirmed = any(a.startswith("confirmed:") for a in outcome.actions)
        return texts.confirm_reply(locale, confirmed)
    if priority == "green" and intent != "unknown":
        return texts.green_reply(locale, _deadline_text("green", outcome, now))
    return texts.unknown_reply(locale)


def _deadline_text(level: str, outcome: Outcome, now: datetime) -> str:
    config = current_app.config
    hours = float(
        config.get("ESCALATION_AMBER_HOURS", 4)
        if level == "amber"
        else config.get("ESCALATION_GREEN_REVIEW_WORKING_HOURS", 8)
    )
    policy = escalation_policy()
    deadline = add_working_time(
        now, timedelta(hours=hours), policy.working_hours, clinic_working_days(), clinic_zone()
    )
    with force_locale(outcome.locale):
        return texts.when_text(deadline, now, _patient_zone(outcome), outcome.locale)


def _patient_zone(outcome: Outcome) -> ZoneInfo:
    return ZoneInfo(outcome.patient.timezone) if outcome.patient else clinic_zone()


# -- intents -------------------------------------------------------------------------------------


def opt_out(patient: Patient, *, now: datetime, actor: str) -> int:
    """Stop every message to the patient now: record, audit, cancel unsent rows; no commit."""
    if patient.sms_opted_out_at is None:
        patient.sms_opted_out_at = now
        audit.record(
            actor,
            "patient.sms_opted_out",
            entity_type="patient",
            entity_id=patient.id,
            patient_id=patient.id,
            before={"sms_opted_out_at": None},
            after={"sms_opted_out_at": now.isoformat()},
            reason="opt-out keyword by SMS",
            at=now,
        )
        db.session.flush()
    return cancel_unsent(patient, reason="opted_out", source=actor)


def opt_in(patient: Patient, *, now: datetime, actor: str) -> bool:
    """Restart messages after an opt-out and plan them again; no commit. False if not opted out."""
    if patient.sms_opted_out_at is None:
        return False
    before = patient.sms_opted_out_at.isoformat()
    patient.sms_opted_out_at = None
    audit.record(
        actor,
        "patient.sms_opted_in",
        entity_type="patient",
        entity_id=patient.id,
        patient_id=patient.id,
        before={"sms_opted_out_at": before},
        after={"sms_opted_out_at": None},
        reason="opt-in keyword by SMS",
        at=now,
    )
    db.session.flush()
    plan_patient(patient, now=now, source=actor)
    return True


def related_events(patient: Patient, now: datetime) -> list[CalendarEvent]:
    """The open events of the last reminder sent to the patient (within 7 days), still ahead."""
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


def _confirm_events(patient: Patient, actor: str, now: datetime) -> list[str]:
    confirmed = []
    for event in related_events(patient, now):
        if event.status not in CONFIRMABLE_STATUSES:
            continue
        mark_event(
            event, "confirmed", actor=actor, reason="confirmed by the patient by SMS", at=now
        )
        confirmed.append(event.key)
    return confirmed


def _flag_reschedule(patient: Patient, actor: str, now: datetime) -> list[str]:
    keys = []
    for event in related_events(patient, now):
        flags = list(event.flags or [])
        if RESCHEDULE_FLAG not in flags:
            event.flags = [*flags, RESCHEDULE_FLAG]
            audit.record(
                actor,
                "event.reschedule_request",
                entity_type="calendar_event",
                entity_id=event.key,
                patient_id=patient.id,
                before={"flags": flags},
                after={"flags": event.flags},
                reason="the patient asked by SMS to change the date",
                at=now,
            )
        keys.append(event.key)
    return keys


# -- an unknown sender ---------------------------------------------------------------------------


def _from_unknown_sender(row: StoredMessage, now: datetime) -> Outcome:
    parsed = parse_reply(row.body)
    result = triage(parsed, context=NOT_ENROLLED)
    locale = texts.locale_or_default(parsed.language if parsed.language in ("zh", "en") else None)
    outcome = Outcome(reply="", locale=locale, parsed=parsed, result=result)
    level = result.priority if result.priority in ("red", "amber") else "green"
    alert = _raise(outcome, row, "review", level, now)
    outcome.alert_id = alert.id
    if level == "red":
        page_for_new_red(alert, now=now, actor="system")
        outcome.actions.append("paged_on_call")
    outcome.reply = texts.signed(texts.unknown_sender_reply(locale, emergency=level == "red"))
    return outcome


# -- a phone several patients share -------------------------------------------------------------


def _from_shared_number(row: StoredMessage, sender: SenderMatch, now: datetime) -> Outcome:
    """Nothing tells which patient: ask by initials, flag it for a nurse (red pages at once)."""
    parsed = parse_reply(row.body)
    result = triage(parsed, context=TriageContext())
    locales = {p.locale for p in sender.ambiguous}
    locale = texts.locale_or_default(locales.pop() if len(locales) == 1 else None)
    outcome = Outcome(
        reply="", locale=locale, parsed=parsed, result=result, sender=sender,
        actions=["shared_phone_asked"],
    )  # fmt: skip
    level = "red" if result.priority == "red" else "amber"
    alert = _raise(outcome, row, "review", level, now)
    alert.reasons = [*shared_number_reasons(sender.ambiguous), *alert.reasons]
    outcome.alert_id = alert.id
    if level == "red":
        page_for_new_red(alert, now=now, actor="system")
        outcome.actions.append("paged_on_call")
        outcome.reply = texts.signed(texts.red_reply(locale))
    else:
        outcome.reply = texts.signed(which_patient_reply(locale, sender.ambiguous))
    return outcome


# -- when interpretation fails -------------------------------------------------------------------


def _fallback(
    message_id: int, now: datetime, error: Exception, reply_by_sms: bool
) -> InboundResult:
    """Mark the message failed, raise a nurse-visible alert, answer safely."""
    locale = texts.locale_or_default(None)
    try:
        row = db.session.get(InboundMessage, message_id, populate_existing=True)
        assert row is not None
        if row.status != "received":
            return _duplicate(message_id)
        patient = _safe_patient(row.from_number)
        locale = texts.locale_or_default(patient.locale if patient else None)
        parsed = parse_reply(row.body)
        result = triage(parsed)
        level = "red" if result.priority == "red" else "amber"
        reply = texts.signed(
            texts.red_reply(locale) if level == "red" else texts.failure_reply(locale)
        )
        claimed = db.session.execute(
            update(InboundMessage)
            .where(InboundMessage.id == message_id, InboundMessage.status == "received")
            .values(
                status="failed",
                processed_at=now,
                error=f"{type(error).__name__}: {error}"[:2000],
                patient_id=patient.id if patient else None,
                reply_body=reply,
                reply_locale=locale,
                priority=level,
                intent=parsed.intent,
            )
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            db.session.rollback()
            return _duplicate(message_id)
        outcome = Outcome(reply=reply, locale=locale, patient=patient, parsed=parsed, result=result)
        alert = _raise(outcome, row, "review", level, now)
        alert.reasons = [
            f"interpretation failed ({type(error).__name__}): a person must read it",
            *alert.reasons,
        ]
        if level == "red":
            page_for_new_red(alert, now=now, actor="system")
        if reply_by_sms and patient is not None:
            _queue_reply(patient, row, reply, locale, now)
        db.session.commit()
        if level == "red":
            kick_dispatch()
        return InboundResult(reply, "failed", message_id, level, alert.id)
    except Exception:
        db.session.rollback()
        logger.exception("inbound message %s: the fallback failed too", message_id)
        return InboundResult(
            texts.signed(texts.failure_reply(locale)), "failed", message_id, "amber"
        )


def _safe_patient(sender: str) -> Patient | None:
    try:
        return match_patient(sender)
    except Exception:
        db.session.rollback()
        return None


# -- answering by SMS (late processing) ----------------------------------------------------------


def _queue_reply(
    patient: Patient,
    row: StoredMessage | InboundMessage,
    text: str,
    locale: str,
    now: datetime,
    contact_id: int | None = None,
) -> None:
    """The answer as an outbox message to the patient (when the webhook could not carry it)."""
    body = text
    info = count_segments(body)
    message = OutboxMessage(
        patient_id=patient.id,
        dedupe_key=f"reply:{row.sid}"[:160],
        kind="reply",
        status="planned",
        send_after=now,
        due_at=now,
        expires_at=now + timedelta(hours=24),
        body=body,
        locale=locale,
        segments=info.segments,
        encoding=info.encoding,
        event_keys=[],
        items=[],
        notes=["late answer to an inbound message"],
        contact_id=contact_id,
        attempts=0,
        created_at=now,
        updated_at=now,
    )
    db.session.add(message)
    db.session.flush()
    add_history(message.id, None, "planned", source="replies", detail=f"reply to {row.sid}", at=now)

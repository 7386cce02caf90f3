"""Carrying out an inbound decision (the pipeline's only writer): alerts, pages, opt-outs, events,
check-in answers, the reply (worded here, queued in the outbox when it goes by SMS) and the row.

``apply(decision, loaded, row, now)`` writes everything app.domain.inbound_decision decided, with
its audit rows, in the caller's transaction, and claims the stored row (``received ->
processed``) with what was understood. The caller commits (or rolls back when the claim lost).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from flask_babel import force_locale
from sqlalchemy import JSON, bindparam, update

from app.domain.escalation import add_working_time
from app.domain.inbound_decision import (
    AnswerCheckin,
    ConfirmEvents,
    Decision,
    FlagReschedule,
    OptIn,
    OptOut,
    PageOnCall,
    RaiseAlert,
    Reply,
    SettleRedCheck,
)
from app.domain.replies import ParsedReply
from app.domain.triage import TriageResult
from app.extensions import db
from app.models import Alert, InboundMessage, OutboxMessage, Patient
from app.services.alerts import cover
from app.services.alerts.alerts import NewAlert, create_alert
from app.services.alerts.escalation import page_for_new_red
from app.services.conversations.checkins.by_sms import SmsAnswer, answer_by_sms, settle_red_check
from app.services.conversations.inbound.context import Loaded, StoredMessage
from app.services.conversations.inbound.senders import sender_record, which_patient_reply
from app.services.messaging.outbox import add_history
from app.services.messaging.reminders import cancel_unsent, plan_patient
from app.services.schedule.calendar import mark_event
from app.services.schedule.contacts import opt_in_contact, opt_out_contact
from app.services.shared import audit
from app.services.shared import reply_texts as texts
from app.services.shared.clinic import clinic_zone, escalation_policy
from app.services.shared.protocols import clinic_working_days
from app.sms.segments import count_segments

RESCHEDULE_FLAG = "reschedule_requested"

_INBOUND = InboundMessage.__table__
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


class CheckinDeclined(Exception):
    """The check-in service found no answer to take (it was settled meanwhile): decide again."""


@dataclass
class Outcome:
    """What processing one message did: what we understood, the alert raised and the answer."""

    reply: str
    locale: str
    patient: Patient | None = None
    parsed: ParsedReply | None = None
    result: TriageResult | None = None
    alert_id: int | None = None
    actions: list[str] = field(default_factory=list)
    alerts: dict[str, Alert] = field(default_factory=dict)


def apply(
    decision: Decision,
    parsed: ParsedReply,
    loaded: Loaded,
    row: StoredMessage,
    now: datetime,
    *,
    reply_by_sms: bool,
) -> Outcome | None:
    """Write the decision and claim the row; None when another process claimed it first.

    Raises ``CheckinDeclined`` (nothing written) when the check-in took no answer after all.
    """
    outcome = carry_out(decision, parsed, loaded, row, now)
    if reply_by_sms and outcome.patient is not None and outcome.reply:
        contact = loaded.sender.contact
        queue_reply(outcome.patient, row, outcome.reply, outcome.locale, now,
                    contact.id if contact else None)  # fmt: skip
    return outcome if record(row, outcome, loaded, now) else None


def carry_out(
    decision: Decision, parsed: ParsedReply, loaded: Loaded, row: StoredMessage, now: datetime
) -> Outcome:
    """Every action of the decision in order, and the worded reply."""
    checkin = next(
        (a for a in decision.actions if isinstance(a, AnswerCheckin | SettleRedCheck)), None
    )
    if checkin is not None:
        return _by_checkin(checkin, decision, loaded, row, now)
    outcome = Outcome(
        reply="", locale=decision.locale, patient=loaded.patient, parsed=parsed,
        result=decision.result, actions=list(decision.labels),
    )  # fmt: skip
    for action in decision.actions:
        _carry(action, outcome, loaded, row, now)
    if decision.reply is not None:
        outcome.reply = texts.signed(render(decision.reply, decision.locale, loaded, now))
    return outcome


def _carry(
    action: Any, outcome: Outcome, loaded: Loaded, row: StoredMessage, now: datetime
) -> None:
    """One action (other than a check-in's)."""
    if isinstance(action, RaiseAlert):
        alert = raise_alert(action, row.id, outcome.patient, now, known_new=True)
        outcome.alerts[action.kind] = alert
        outcome.alert_id = alert.id
    elif isinstance(action, PageOnCall):
        page_for_new_red(outcome.alerts[action.alert_kind], now=now, actor="system", known_new=True)
    elif isinstance(action, OptOut):
        _opt_out(action, loaded, now)
    elif isinstance(action, OptIn):
        _opt_in(action, loaded, now)
    elif isinstance(action, ConfirmEvents):
        _confirm_events(action, loaded, now)
    elif isinstance(action, FlagReschedule):
        _flag_reschedule(action, loaded, now)
    else:  # pragma: no cover - a new action type without its writer
        raise TypeError(f"no writer for {type(action).__name__}")


def _by_checkin(
    action: AnswerCheckin | SettleRedCheck,
    decision: Decision,
    loaded: Loaded,
    row: StoredMessage,
    now: datetime,
) -> Outcome:
    """The check-in service records the answer (or settles the held red) and words the reply."""
    patient = loaded.patient
    assert patient is not None
    answered: SmsAnswer | None
    if isinstance(action, SettleRedCheck):
        answered = settle_red_check(patient, row.id, row.body, now, action.session_id)
    else:
        answered = answer_by_sms(patient, row.id, row.body, now, open_session_id=action.session_id,
                                 single_answers=action.single_answers)  # fmt: skip
    if answered is None:
        raise CheckinDeclined(action.session_id)
    return Outcome(
        reply=texts.signed(answered.reply) if answered.reply else "",
        locale=decision.locale,
        patient=patient,
        parsed=answered.parsed,
        result=answered.result,
        alert_id=answered.alert_id,
        actions=[*decision.labels, *answered.actions],
    )


def raise_alert(
    spec: RaiseAlert, message_id: int, patient: Patient | None, now: datetime, *, known_new: bool
) -> Alert:
    """Create the alert the decision asked for, keyed on the message and the alert's kind.

    ``known_new``: normal processing runs before anyone committed a claim on the row, so no alert
    keyed on it can exist (a racing claimer's alert collides on the UNIQUE key -> fallback).
    """
    return create_alert(
        NewAlert(
            dedupe_key=f"inbound:{message_id}:{spec.kind}",
            kind=spec.kind,
            level=spec.level,
            summary=spec.summary,
            reasons=list(spec.reasons),
            symptoms=[dict(s) for s in spec.symptoms],
            patient_id=patient.id if patient else None,
            inbound_message_id=message_id,
        ),
        now=now,
        known_new=known_new,
    )


# -- the reply ------------------------------------------------------------------------------------


def render(reply: Reply, locale: str, loaded: Loaded, now: datetime) -> str:
    """The reply's words in the locale (deadlines from the clinic's hours, the rota's promise)."""
    key, params = reply.key, reply.params
    simple = {
        "red": texts.red_reply, "opt_out": texts.opt_out_reply, "opt_in": texts.opt_in_reply,
        "help": texts.help_reply, "unknown": texts.unknown_reply,
    }  # fmt: skip
    if key in simple:
        return simple[key](locale)
    if key == "reschedule":
        return texts.reschedule_reply(locale, _deadline_text("amber", locale, loaded, now))
    if key == "amber":
        return texts.amber_answer(locale, cover.promise(now), now, _patient_zone(loaded))
    if key == "confirm":
        return texts.confirm_reply(locale, bool(params["confirmed"]))
    if key == "green":
        return texts.green_reply(locale, _deadline_text("green", locale, loaded, now))
    if key == "ask_back":
        return texts.ask_back_reply(locale, params["text"], params["visit"], params["code"])
    if key == "nothing_open":
        return texts.nothing_open_reply(locale, params["text"])
    if key == "unknown_sender":
        return texts.unknown_sender_reply(locale, emergency=bool(params["emergency"]))
    if key == "which_patient":
        return which_patient_reply(locale, loaded.sender.ambiguous)
    raise ValueError(f"no wording for the reply {key!r}")


def _deadline_text(level: str, locale: str, loaded: Loaded, now: datetime) -> str:
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
    with force_locale(locale):
        return texts.when_text(deadline, now, _patient_zone(loaded), locale)


def _patient_zone(loaded: Loaded) -> ZoneInfo:
    return ZoneInfo(loaded.patient.timezone) if loaded.patient else clinic_zone()


# -- intents ---------------------------------------------------------------------------------------


def _opt_out(action: OptOut, loaded: Loaded, now: datetime) -> None:
    contact, patient = loaded.sender.contact, loaded.patient
    assert patient is not None
    if action.scope == "contact" and contact is not None:
        opt_out_contact(contact, now=now, actor=loaded.actor)
    else:
        opt_out(patient, now=now, actor=loaded.actor)


def _opt_in(action: OptIn, loaded: Loaded, now: datetime) -> None:
    contact, patient = loaded.sender.contact, loaded.patient
    assert patient is not None
    if action.scope == "contact" and contact is not None:
        opt_in_contact(contact, now=now, actor=loaded.actor)
    else:
        opt_in(patient, now=now, actor=loaded.actor)


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


def _confirm_events(action: ConfirmEvents, loaded: Loaded, now: datetime) -> None:
    for event in loaded.events:
        if event.key in action.keys:
            mark_event(event, "confirmed", actor=loaded.actor,
                       reason="confirmed by the patient by SMS", at=now)  # fmt: skip


def _flag_reschedule(action: FlagReschedule, loaded: Loaded, now: datetime) -> None:
    assert loaded.patient is not None
    for event in loaded.events:
        flags = list(event.flags or [])
        if event.key not in action.keys or RESCHEDULE_FLAG in flags:
            continue
        event.flags = [*flags, RESCHEDULE_FLAG]
        audit.record(
            loaded.actor,
            "event.reschedule_request",
            entity_type="calendar_event",
            entity_id=event.key,
            patient_id=loaded.patient.id,
            before={"flags": flags},
            after={"flags": event.flags},
            reason="the patient asked by SMS to change the date",
            at=now,
        )


# -- the row and the late answer ---------------------------------------------------------------------


def record(row: StoredMessage, outcome: Outcome, loaded: Loaded, now: datetime) -> bool:
    """Claim the row as processed with what we understood; False if it was no longer waiting."""
    parsed, result = outcome.parsed, outcome.result
    understood = parsed is not None and result is not None
    contact = loaded.sender.contact
    values: dict[str, Any] = {
        "p_id": row.id,
        "p_at": now,
        "p_patient": outcome.patient.id if outcome.patient else None,
        "p_contact": contact.id if contact else None,
        "p_reply": outcome.reply,
        "p_locale": outcome.locale,
        "p_intent": parsed.intent if understood else None,
        "p_priority": result.priority if understood else None,
        "p_language": parsed.language if understood else None,
        "p_parse": _with_sender(parse_record(parsed, result, outcome.actions), loaded)
        if parsed is not None and result is not None
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


def _with_sender(record: dict[str, Any], loaded: Loaded) -> dict[str, Any]:
    """The parse record plus who sent it (a caregiver contact), when known."""
    sender = sender_record(loaded.sender)
    return record | {"sender": sender} if sender else record


def _safe(text: str) -> str:
    return str(text).replace("\x00", "\ufffd")


def queue_reply(
    patient: Patient,
    row: StoredMessage | InboundMessage,
    text: str,
    locale: str,
    now: datetime,
    contact_id: int | None = None,
) -> None:
    """The answer as an outbox message to the patient (when the webhook could not carry it)."""
    info = count_segments(text)
    message = OutboxMessage(
        patient_id=patient.id,
        dedupe_key=f"reply:{row.sid}"[:160],
        kind="reply",
        status="planned",
        send_after=now,
        due_at=now,
        expires_at=now + timedelta(hours=24),
        body=text,
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

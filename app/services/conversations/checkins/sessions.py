"""Symptom check-ins: issue them from the calendar, take answers by SMS or web link, grade, triage.

The life of a check-in (one ``CheckinSession`` per check-in event of a patient's calendar):

1. ``checkin_schedule.start_due(now)`` (the check-ins job): a check-in event whose day has
   come (CHECKIN_SEND_AT, default 10:00 in the patient's time zone, while its window is open) gets a session and its
   first SMS in the outbox: the introduction, the first question with numbered answers and the
   signed web link. A patient who cannot receive SMS (no consent, opted out, invalid number)
   gets a session that is at once a nurse call task. Starting a check-in closes the patient's
   older open ones, so an SMS answer always belongs to the latest.
2. Answers: ``checkin_sms.answer_by_sms`` (called by the inbound-SMS service) reads a bare answer to the
   current question ("2", "37.5", "有") or a whole compact reply ("D2 S1 F37.2",
   app.domain.checkins.parse_compact); ``submit_web`` takes the link page's form. Both end in
   ``record_answers``: merge, grade with the PRO-CTCAE composite grade, triage with the same
   rules as free-text reports (worsening judged against the patient's previous check-ins), keep
   one alert per check-in whose level only rises (red pages the on-call clinician at once, as
   for free text), mark the calendar event done when complete.
3. By SMS the next question is queued in the outbox after each answer (one question per
   message); a red answer instead gets the emergency reply at once and no further question.
4. ``checkin_schedule.remind_due``: one reminder CHECKIN_REMINDER_HOURS (24) after an incomplete check-in was
   sent; ``call_tasks_due``: CHECKIN_CALL_TASK_DAYS (2) days after, still incomplete, the
   session becomes a call task in the triage inbox; ``expire_due``: at ``expires_at`` (the link's
   lifetime, CHECKIN_LINK_HOURS = 96) an open session stops taking answers.

Daily budget (decision): check-in messages are planned here, not by the reminder planner, and are
never merged, deferred or dropped for the daily budget: a symptom question that arrives a day
late is worse than a merged reminder. They do count as sent messages when reminders are planned
(app.services.messaging.reminders counts every outbox row), so reminders of a check-in day merge instead.
Quiet hours still apply: the dispatcher holds any message until the quiet hours end.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from flask_babel import force_locale
from sqlalchemy import bindparam, select, update
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session as OrmSession

from app.domain import checkins as ck
from app.domain.escalation import add_working_time
from app.domain.replies import parse_reply
from app.domain.triage import PRIORITIES, TriageContext, TriageResult, triage
from app.extensions import db
from app.models import Alert, CheckinSession, OutboxMessage, Patient
from app.models.checkins import UNANSWERED_STATUSES
from app.services.alerts import cover
from app.services.alerts.alerts import NewAlert, create_alert
from app.services.alerts.escalation import page_for_new_red
from app.services.conversations.checkins import texts as texts
from app.services.conversations.checkins.links import link_lifetime
from app.services.messaging.invitations import to_answer
from app.services.messaging.outbox import add_history
from app.services.messaging.recipients import Recipient, recipient_values
from app.services.messaging.send_now import kick_dispatch
from app.services.schedule.calendar import mark_event
from app.services.schedule.treatment import treatment_context
from app.services.shared import audit, reply_texts
from app.services.shared.clinic import clinic_zone, escalation_policy
from app.services.shared.protocols import clinic_working_days, current_protocol
from app.sms.segments import count_segments

logger = logging.getLogger("cadence.checkins")

JOB_ACTOR = "job:checkins"
STARTABLE_EVENT_STATUSES = ("planned", "confirmed")
NO_SMS_STATUSES = ("withdrawn", "off_study")
ALERT_LEVEL_RANK = {"green": 1, "amber": 2, "red": 3}
KICK_FLAG = "cadence.checkins.kick_dispatch"
RED_CHECK_MINUTES = 10
RED_CHECK_AFTER = timedelta(minutes=RED_CHECK_MINUTES)
HELD_REASON = (
    "red_check: a red resting on a one-character SMS answer, asked back; red if confirmed or "
    f"unanswered within {RED_CHECK_MINUTES} minutes"
)


class CheckinError(ValueError):
    """A check-in action that cannot be done: ``code`` is closed, not_found or invalid."""

    def __init__(self, message: str, code: str = "invalid") -> None:
        super().__init__(message)
        self.code = code


# -- settings ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckinSettings:
    """CHECKIN_* settings: when to send, remind, hand over to a nurse, stop taking answers."""

    send_at: time = time(10, 0)
    reminder_after: timedelta | None = timedelta(hours=24)
    call_task_after: timedelta | None = timedelta(days=2)
    link_valid: timedelta = timedelta(hours=96)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> CheckinSettings:
        """Read the settings (app config first, then defaults); 0 disables reminder/call task."""
        raw_time = str(setting(config, "CHECKIN_SEND_AT") or "10:00")
        try:
            hour, minute = (int(part) for part in raw_time.split(":", 1))
            send_at = time(hour, minute)
        except ValueError as exc:
            raise ValueError(f"CHECKIN_SEND_AT must be HH:MM, got {raw_time!r}") from exc
        reminder = float(_config_number(config, "CHECKIN_REMINDER_HOURS", 24))
        call_days = float(_config_number(config, "CHECKIN_CALL_TASK_DAYS", 2))
        return cls(
            send_at=send_at,
            reminder_after=timedelta(hours=reminder) if reminder > 0 else None,
            call_task_after=timedelta(days=call_days) if call_days > 0 else None,
            link_valid=link_lifetime(),
        )


def setting(config: Mapping[str, Any], key: str) -> Any:
    """A CHECKIN_* setting from the app config, else the environment (None when unset)."""
    value = config.get(key)
    if value in (None, ""):
        value = os.environ.get(key)
    return value if value not in (None, "") else None


def _config_number(config: Mapping[str, Any], key: str, default: float) -> float:
    value = setting(config, key)
    try:
        return float(value) if value is not None else float(default)
    except ValueError as exc:
        raise ValueError(f"{key} must be a number, got {value!r}") from exc


def settings() -> CheckinSettings:
    """The current app's check-in settings."""
    return CheckinSettings.from_config(current_app.config)


# -- the questionnaire of a session --------------------------------------------------------------


def patient_tz(patient: Patient) -> ZoneInfo:
    """The patient's time zone."""
    return ZoneInfo(patient.timezone or "Asia/Shanghai")


def questionnaire() -> ck.Questionnaire:
    """The protocol's validated check-in questionnaire."""
    return ck.load_checkins(current_protocol())


def items_for_patient(patient: Patient, phase: str) -> list[ck.CheckinItem]:
    """The items asked of this patient in this phase (advice filtered for their treatment)."""
    return ck.items_for(current_protocol(), patient.choices or {}, phase)


def session_items(session: CheckinSession) -> list[ck.CheckinItem]:
    """The items of a session, in the order they were issued (with the patient's advice)."""
    try:
        available = {i.code: i for i in items_for_patient(session.patient, session.phase)}
    except ValueError:
        available = {}
    every = {i.code: i for i in questionnaire().items}
    items = []
    for code in session.items or []:
        item = available.get(code) or every.get(code)
        if item is not None:
            items.append(item)
    return items


def position_of(items: Sequence[ck.CheckinItem], question: ck.Question | None) -> int:
    """1-based number of the question's item (for '(2/15)')."""
    if question is None:
        return len(items)
    codes = [i.code for i in items]
    return codes.index(question.item_code) + 1 if question.item_code in codes else len(items)


def item_of(items: Sequence[ck.CheckinItem], question: ck.Question | None) -> ck.CheckinItem | None:
    """The item a question belongs to."""
    if question is None:
        return None
    return next((i for i in items if i.code == question.item_code), None)


def close_session(session: CheckinSession, now: datetime, actor: str, *, reason: str) -> None:
    """Stop taking answers (missed when nothing was answered); alert on what was answered."""
    before = session.status
    settle_alert(session, now=now, actor=actor)
    if session.status in UNANSWERED_STATUSES:
        session.status = "missed"
    session.closed_at = now
    session.updated_at = now
    session.current_question = None
    audit.record(
        actor,
        "checkin.close",
        entity_type="checkin_session",
        entity_id=session.id,
        patient_id=session.patient_id,
        before={"status": before},
        after={"status": session.status},
        reason=reason,
        at=now,
    )


# -- outbox --------------------------------------------------------------------------------------


def queue_message(
    session: CheckinSession,
    purpose: str,
    body: str,
    *,
    due: datetime,
    question: ck.Question | None,
    source: str,
    now: datetime,
    recipient: Recipient | None = None,
) -> OutboxMessage | None:
    """Plan one check-in SMS under the key ``checkin:<session>:<purpose>``; flush, no commit.

    The same key twice plans nothing new (exactly once). Returns the row, or None when it
    existed already. ``recipient``: a contact other than the first allowed one (a caregiver
    offered the check-in).
    """
    key = f"checkin:{session.id}:{purpose}"[:160]
    existing = db.session.scalar(
        select(OutboxMessage.id).where(
            OutboxMessage.patient_id == session.patient_id, OutboxMessage.dedupe_key == key
        )
    )
    if existing is not None:
        return None
    info = count_segments(body)
    item_json: dict[str, Any] = {"checkin_session": session.id, "purpose": purpose}
    if question is not None:
        item_json |= {
            "question": question.code,
            "checkin_symptom": _symptom_of(session, question),
            "checkin_scale": question.attribute
            if question.attribute in ("frequency", "severity")
            else "presence",
            "awaiting_temperature": question.is_temperature,
        }
    row = OutboxMessage(
        patient_id=session.patient_id,
        dedupe_key=key,
        kind="checkin",
        status="planned",
        send_after=due,
        due_at=due,
        expires_at=session.expires_at,
        body=body,
        locale=recipient.locale if recipient is not None else session.locale,
        segments=info.segments,
        encoding=info.encoding,
        event_keys=[session.event_key],
        items=[item_json],
        notes=[f"check-in {purpose}"],
        invites=to_answer(session.id, question.code if question else None),
        attempts=0,
        created_at=now,
        updated_at=now,
        **(
            {"contact_id": recipient.contact_id}
            if recipient is not None
            else recipient_values(session.patient, "checkin")
        ),
    )
    db.session.add(row)
    db.session.flush()
    add_history(row.id, None, "planned", source=source, detail=f"check-in {purpose}", at=now)
    return row


def _symptom_of(session: CheckinSession, question: ck.Question) -> str | None:
    item = questionnaire().item(question.item_code)
    return item.symptom if item else None


def kick_dispatch_soon() -> None:
    """Ask for the outbox to be sent right after this transaction commits (see the listener)."""
    db.session().info[KICK_FLAG] = True


@sa_event.listens_for(OrmSession, "after_commit")
def _kick_after_commit(session: OrmSession) -> None:
    """Send newly planned check-in messages at once (ESCALATION_PAGE_NOW); the job is the
    backstop."""
    if not session.info.pop(KICK_FLAG, False):
        return
    try:
        kick_dispatch()
    except Exception:  # never break a commit for this
        logger.exception("could not start sending check-in messages at once")


# -- answers -------------------------------------------------------------------------------------


@dataclass
class AnswerOutcome:
    """What recording answers did: what was kept, the grades, the triage and the alert."""

    session: CheckinSession
    accepted: dict[str, Any]
    problems: list[ck.AnswerProblem]
    graded: list[ck.GradedAnswer]
    result: TriageResult
    alert: Alert | None
    became_red: bool
    complete: bool
    next_question: ck.Question | None
    held_red: bool = False

    @property
    def priority(self) -> str:
        """The check-in's triage priority so far."""
        return self.result.priority


def get_session(session_id: int, *, lock: bool = False) -> CheckinSession:
    """The session with this id (row-locked on PostgreSQL when ``lock``), or CheckinError."""
    stmt = select(CheckinSession).where(CheckinSession.id == session_id)
    if lock:
        stmt = stmt.with_for_update()
    session = db.session.execute(
        stmt.execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if session is None:
        raise CheckinError(f"no check-in {session_id}", "not_found")
    return session


def accepts_answers(session: CheckinSession, now: datetime) -> bool:
    """True while the session takes answers (open and not past its expiry)."""
    return session.is_open and now < session.expires_at


def record_answers(
    session_id: int,
    answers: Mapping[str, Any],
    *,
    channel: str,
    now: datetime,
    actor: str,
    inbound_message_id: int | None = None,
    free_text: str = "",
    hold_red: bool = False,
) -> AnswerOutcome:
    """Keep answers from either channel, grade, triage and alert; flush, never commit.

    ``hold_red``: the answer is one character by SMS; if it alone makes the check-in red, the
    alert is amber until the patient confirms it or 10 minutes pass (``red_check``, issue 16).

    Answers to questions that do not apply (a follow-up after a 0) are dropped; invalid ones are
    returned as problems and not kept. A later answer to the same question replaces the earlier
    one (a correction); the answer log keeps both. ``free_text`` (words sent with a compact
    reply) is triaged too, and the more urgent result wins.

    Alerts: a red result alerts at once, whatever is still unanswered (an item whose follow-up is
    unanswered is graded by its first answer alone, the more severe reading). Amber and green
    alerts come from the items whose questions are all answered, or from everything once the
    check-in is complete or closes, so that answering one question at a time (SMS) and all at
    once (web) raise the same alert.
    """
    session = get_session(session_id, lock=True)
    if not accepts_answers(session, now):
        raise CheckinError(f"check-in {session_id} no longer takes answers", "closed")
    items = session_items(session)
    given = {str(k).strip().upper(): v for k, v in answers.items()}
    problems = [p for p in ck.check_answers(items, given) if p.kind != "not_applicable"]
    bad = {p.code for p in problems}
    valid = {code: _coerce(items, code, value) for code, value in given.items() if code not in bad}
    merged = {**(session.answers or {}), **valid}
    on_path = {q.code for q in ck.applicable_questions(items, merged)}
    merged = {
        q.code: merged[q.code]
        for i in items
        for q in i.questions
        if q.code in merged and q.code in on_path
    }
    accepted = {code: value for code, value in valid.items() if code in merged}
    context = treatment_context(session.patient, now)
    free = triage(parse_reply(free_text), context=context) if free_text.strip() else None
    graded, result = _triage(session, items, merged, free, context)
    complete = ck.is_complete(items, merged)
    was_red = session.priority == "red"
    if result.priority == "red" and _hold(session, hold_red and not was_red, accepted):
        result = _held(result)
        if session.red_check is None:
            code, value = next(iter(accepted.items()))
            session.red_check = {"question": code, "value": _json_value(value),
                                 "asked_at": now.isoformat(), "inbound": inbound_message_id}  # fmt: skip
    _store(session, items, merged, accepted, graded, result, complete, channel, now)
    alert = _alert_now(
        session, items, graded, result, free, context, complete, now, actor, inbound_message_id
    )
    if complete:
        _finish(session, now, actor)
    audit.record(
        actor,
        "checkin.answer",
        entity_type="checkin_session",
        entity_id=session.id,
        patient_id=session.patient_id,
        after={
            "channel": channel,
            "answers": {k: _json_value(v) for k, v in accepted.items()},
            "status": session.status,
            "priority": result.priority,
        },
        reason="; ".join(p.message for p in problems)[:500] or None,
        at=now,
    )
    db.session.flush()
    return AnswerOutcome(
        session=session,
        accepted=accepted,
        problems=problems,
        graded=graded,
        result=result,
        alert=alert,
        became_red=result.priority == "red" and not was_red,
        complete=complete,
        next_question=ck.next_question(items, merged),
        held_red=session.red_check is not None,
    )


def _hold(session: CheckinSession, new_hold: bool, accepted: Mapping[str, Any]) -> bool:
    """True while a red rests on an unconfirmed one-character answer (asked back)."""
    return session.red_check is not None or (new_hold and len(accepted) == 1)


def _held(result: TriageResult) -> TriageResult:
    """A red result held as amber until the patient confirms it (or RED_CHECK_MINUTES pass)."""
    return TriageResult("amber", (HELD_REASON, *result.reasons), result.red_flags)


def pending_red_check(session_id: int | None) -> dict[str, Any] | None:
    """The one-character red answer a check-in waits to have confirmed, if any."""
    session = db.session.get(CheckinSession, session_id) if session_id else None
    return dict(session.red_check) if session is not None and session.red_check else None


def confirm_red(session_id: int, *, now: datetime, actor: str, reason: str) -> Alert | None:
    """The held red is confirmed (or unanswered in time): raise the alert to red and page; flush."""
    session = get_session(session_id, lock=True)
    if session.red_check is None:
        return None  # another process or reply settled it
    before = dict(session.red_check)
    session.red_check = None
    items = session_items(session)
    context = treatment_context(session.patient, now)
    graded, result = _triage(session, items, session.answers or {}, None, context)
    session.priority, session.reasons = result.priority, list(result.reasons)
    session.updated_at = now
    _record_red_check(session, actor, before, "confirmed", reason, now)
    complete = ck.is_complete(items, session.answers or {})
    return _sync_alert(session, graded, result, complete, now, actor, before.get("inbound"))


def withdraw_red_answer(
    session_id: int, *, now: datetime, actor: str, inbound_message_id: int | None
) -> AnswerOutcome | None:
    """The patient says the one-character answer was wrong: drop it and re-triage; flush."""
    session = get_session(session_id, lock=True)
    if session.red_check is None:
        return None
    before = dict(session.red_check)
    session.red_check = None
    session.answers = {k: v for k, v in (session.answers or {}).items() if k != before["question"]}
    session.priority = None
    _record_red_check(session, actor, before, "withdrawn", "the patient said it was wrong", now)
    db.session.flush()
    return record_answers(session.id, {}, channel="sms", now=now, actor=actor,
                          inbound_message_id=inbound_message_id)  # fmt: skip


def _record_red_check(
    session: CheckinSession,
    actor: str,
    before: dict[str, Any],
    outcome: str,
    reason: str,
    now: datetime,
) -> None:
    audit.record(
        actor,
        f"checkin.red_{outcome}",
        entity_type="checkin_session",
        entity_id=session.id,
        patient_id=session.patient_id,
        before={"red_check": before},
        after={"red_check": None, "answers": dict(session.answers or {})},
        reason=reason,
        at=now,
    )


def escalate_unconfirmed_reds(now: datetime, *, actor: str = JOB_ACTOR) -> int:
    """Held reds not confirmed within RED_CHECK_MINUTES become red and page; commit each."""
    rows = db.session.execute(
        select(CheckinSession.id, CheckinSession.red_check).where(
            CheckinSession.red_check.is_not(None)
        )
    ).all()
    raised = 0
    for session_id, check in rows:
        asked = datetime.fromisoformat(str((check or {}).get("asked_at")))
        if now - asked < RED_CHECK_AFTER:
            continue
        alert = confirm_red(session_id, now=now, actor=actor,
                            reason=f"not answered within {RED_CHECK_MINUTES} minutes")  # fmt: skip
        db.session.commit()
        raised += alert is not None
    return raised


def _triage(
    session: CheckinSession,
    items: Sequence[ck.CheckinItem],
    answers: Mapping[str, Any],
    free: TriageResult | None,
    context: TriageContext,
) -> tuple[list[ck.GradedAnswer], TriageResult]:
    """Graded answers and their triage against the patient's previous check-ins."""
    graded = ck.grade_answers(items, answers)
    result = ck.triage_answers(
        graded, previous_grades=previous_checkin_grades(session), context=context
    )
    return graded, (result if free is None else _more_urgent(result, free))


def _alert_now(
    session: CheckinSession,
    items: Sequence[ck.CheckinItem],
    graded: list[ck.GradedAnswer],
    result: TriageResult,
    free: TriageResult | None,
    context: TriageContext,
    complete: bool,
    now: datetime,
    actor: str,
    inbound_message_id: int | None,
) -> Alert | None:
    """The alert for the answers so far (see record_answers: red at once, the rest settled; a
    held red as the amber it is held at)."""
    if result.priority == "red" or complete or session.red_check is not None:
        return _sync_alert(session, graded, result, complete, now, actor, inbound_message_id)
    settled = [g for g in graded if g.complete]
    settled_result = ck.triage_answers(
        settled, previous_grades=previous_checkin_grades(session), context=context
    )
    if free is not None:
        settled_result = _more_urgent(settled_result, free)
    return _sync_alert(session, settled, settled_result, False, now, actor, inbound_message_id)


def settle_alert(session: CheckinSession, *, now: datetime, actor: str) -> Alert | None:
    """A check-in closing incomplete: alert on everything answered, as if it were complete."""
    if not session.answers or session.status == "answered":
        return None
    items = session_items(session)
    context = treatment_context(session.patient, now)
    graded, result = _triage(session, items, session.answers, None, context)
    return _sync_alert(session, graded, result, True, now, actor, None)


def _coerce(items: Sequence[ck.CheckinItem], code: str, value: Any) -> Any:
    question = next(q for i in items for q in i.questions if q.code == code)
    return question.coerce(value)


def _json_value(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() and value < 5 else value


def _more_urgent(first: TriageResult, second: TriageResult) -> TriageResult:
    if PRIORITIES.index(second.priority) <= PRIORITIES.index(first.priority):
        return first
    reasons = tuple(dict.fromkeys((*second.reasons, *first.reasons)))
    return TriageResult(second.priority, reasons, tuple({*first.red_flags, *second.red_flags}))


def _store(
    session: CheckinSession,
    items: Sequence[ck.CheckinItem],
    merged: dict[str, Any],
    accepted: dict[str, Any],
    graded: Sequence[ck.GradedAnswer],
    result: TriageResult,
    complete: bool,
    channel: str,
    now: datetime,
) -> None:
    session.answers = {k: _json_value(v) for k, v in merged.items()}
    session.answer_log = [
        *(session.answer_log or []),
        *({"code": k, "value": _json_value(v), "channel": channel, "at": now.isoformat()}
          for k, v in accepted.items()),
    ]  # fmt: skip
    session.results = [result_json(g) for g in graded]
    session.priority = result.priority
    session.reasons = list(result.reasons)
    if accepted:
        session.channel = channel if session.channel in (None, channel) else "mixed"
        session.first_answer_at = session.first_answer_at or now
    following = ck.next_question(items, merged)
    session.current_question = following.code if following else None
    if complete:
        session.status = "answered"
        session.answered_at = now
        session.closed_at = now
    elif merged and session.status in UNANSWERED_STATUSES:
        session.status = "partial"
    session.updated_at = now


def result_json(answer: ck.GradedAnswer) -> dict[str, Any]:
    """One graded item as stored on the session."""
    return {
        "item": answer.item.code,
        "symptom": answer.symptom,
        "ctcae_term": answer.ctcae_term,
        "pro_ctcae_term": answer.item.pro_ctcae_term,
        "grading": answer.item.grading,
        "scores": {k: _json_value(v) for k, v in answer.scores.items()},
        "composite_grade": answer.composite_grade,
        "grade": answer.grade,
        "present": answer.present,
        "complete": answer.complete,
        "level": answer.level,
        "temperature_c": answer.temperature_c,
    }


def previous_checkin_grades(session: CheckinSession) -> dict[str, int]:
    """Latest grade of each symptom in the patient's earlier check-ins (baseline 0 otherwise)."""
    rows = db.session.scalars(
        select(CheckinSession.results)
        .where(
            CheckinSession.patient_id == session.patient_id,
            CheckinSession.id != session.id,
            CheckinSession.sent_at < session.sent_at,
            CheckinSession.first_answer_at.is_not(None),
        )
        .order_by(CheckinSession.sent_at.desc(), CheckinSession.id.desc())
        .limit(10)
    )
    grades: dict[str, int] = {}
    for results in rows:
        for item in results or []:
            grade = item.get("grade") if isinstance(item, dict) else None
            if isinstance(grade, int):
                grades.setdefault(str(item.get("symptom")), grade)
    return grades


_GRADES_SINCE = select(
    CheckinSession.first_answer_at, CheckinSession.results, CheckinSession.answer_log
).where(
    CheckinSession.patient_id == bindparam("p_patient"),
    CheckinSession.first_answer_at.is_not(None),
    CheckinSession.first_answer_at
    >= bindparam("p_since", type_=CheckinSession.first_answer_at.type),
)
"""The columns the grades need (not the whole session: items and answers are large), built
once: every triaged inbound symptom report reads it."""


def checkin_grades_since(patient_id: int, since: datetime) -> list[tuple[datetime, dict[str, int]]]:
    """(last answer time, {symptom: grade}) of each check-in the patient answered since then."""
    rows = db.session.execute(_GRADES_SINCE, {"p_patient": patient_id, "p_since": since})
    found = []
    for first_answer_at, results, answer_log in rows:
        grades = {
            str(r["symptom"]): r["grade"]
            for r in results or []
            if isinstance(r, dict) and isinstance(r.get("grade"), int)
        }
        times = [datetime.fromisoformat(str(e["at"])) for e in answer_log or [] if e.get("at")]
        found.append((max(times, default=first_answer_at), grades))
    return found


def _finish(session: CheckinSession, now: datetime, actor: str) -> None:
    """A complete check-in: its calendar event is done; an open call task is closed."""
    event_row = session.event
    if event_row is not None and event_row.status in STARTABLE_EVENT_STATUSES:
        mark_event(event_row, "done", actor=actor, reason="symptom check-in answered", at=now)
    audit.record(
        actor,
        "checkin.complete",
        entity_type="checkin_session",
        entity_id=session.id,
        patient_id=session.patient_id,
        after={"priority": session.priority, "channel": session.channel},
        at=now,
    )
    _close_call_task_answered(session, now)


# -- alerts --------------------------------------------------------------------------------------


def alert_key(session_id: int, kind: str) -> str:
    """The dedupe-key prefix of a session's alerts of one kind."""
    return f"checkin:{session_id}:{kind}"


def session_alerts(session_id: int, kind: str | None = None) -> list[Alert]:
    """The alerts raised for a check-in (symptom alerts and call tasks), oldest first."""
    stmt = select(Alert).where(Alert.checkin_session_id == session_id)
    if kind is not None:
        stmt = stmt.where(Alert.kind == kind)
    return list(db.session.scalars(stmt.order_by(Alert.created_at, Alert.id)))


def alert_level_for(
    graded: Sequence[ck.GradedAnswer], result: TriageResult, complete: bool
) -> str | None:
    """The alert a check-in needs: red/amber by triage; green once complete with any symptom."""
    if result.priority in ("red", "amber"):
        return result.priority
    if complete and any(g.present for g in graded):
        return "green"
    return None


def _sync_alert(
    session: CheckinSession,
    graded: Sequence[ck.GradedAnswer],
    result: TriageResult,
    complete: bool,
    now: datetime,
    actor: str,
    inbound_message_id: int | None,
) -> Alert | None:
    """One symptom alert per check-in: created, raised in place while unacknowledged, or a new
    one when a handled alert is overtaken by a more urgent answer. Red pages at once."""
    level = alert_level_for(graded, result, complete)
    alerts = session_alerts(session.id, "symptom")
    latest = alerts[-1] if alerts else None
    if level is None:
        return latest
    symptoms = [_alert_symptom(g) for g in graded if g.present]
    summary = _summary(graded)
    if latest is not None and ALERT_LEVEL_RANK[level] <= ALERT_LEVEL_RANK.get(latest.level, 0):
        if latest.status == "open" and level == latest.level:
            latest.reasons = list(result.reasons)
            latest.symptoms = symptoms
            latest.summary = summary[:300]
            latest.updated_at = now
        return latest
    if latest is not None and latest.status == "open":
        _raise_level(latest, level, result, symptoms, summary, now, actor)
        alert = latest
    else:
        alert = create_alert(
            NewAlert(
                dedupe_key=alert_key(session.id, "symptom") + (f":{len(alerts)}" if alerts else ""),
                kind="symptom",
                level=level,
                summary=summary,
                reasons=list(result.reasons),
                symptoms=symptoms,
                patient_id=session.patient_id,
                inbound_message_id=inbound_message_id,
                checkin_session_id=session.id,
            ),
            now=now,
            actor=actor,
        )
    if level == "red":
        page_for_new_red(alert, now=now, actor="system")
    return alert


def _alert_symptom(answer: ck.GradedAnswer) -> dict[str, Any]:
    """A symptom as alerts list it (the temperature rides on the fever entry)."""
    entry: dict[str, Any] = {"code": answer.symptom, "grade": answer.grade}
    if answer.temperature_c is not None:
        entry["temperature_c"] = answer.temperature_c
    return entry


def _raise_level(
    alert: Alert,
    level: str,
    result: TriageResult,
    symptoms: list[dict[str, Any]],
    summary: str,
    now: datetime,
    actor: str,
) -> None:
    before = alert.level
    db.session.execute(
        update(Alert)
        .where(Alert.id == alert.id, Alert.status == "open")
        .values(
            level=level,
            reasons=list(result.reasons),
            symptoms=symptoms,
            summary=summary[:300],
            next_escalation_at=cover.first_escalation(level, now),
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(alert)
    audit.record(
        actor,
        "alert.raise_level",
        entity_type="alert",
        entity_id=alert.id,
        patient_id=alert.patient_id,
        before={"level": before},
        after={"level": level},
        reason="; ".join(result.reasons)[:500] or None,
        at=now,
    )


def _summary(graded: Sequence[ck.GradedAnswer]) -> str:
    parts = []
    for answer in graded:
        if not answer.present:
            continue
        if answer.temperature_c is not None:
            parts.append(f"fever {answer.temperature_c:.1f} C")
        elif answer.grade is not None:
            parts.append(f"{answer.symptom} G{answer.grade}")
        else:
            parts.append(f"{answer.symptom} (ungraded)")
    return "check-in: " + (", ".join(parts) or "no symptoms")


# -- call tasks, reminders, expiry ---------------------------------------------------------------


def make_call_task(session: CheckinSession, *, now: datetime, actor: str, reason: str) -> Alert:
    """Turn the session into a nurse call task (an inbox item); flush, no commit."""
    settle_alert(session, now=now, actor=actor)
    before = session.status
    session.status = "call_task"
    session.call_task_at = now
    session.updated_at = now
    answered = len(session.answers or {})
    alert = create_alert(
        NewAlert(
            dedupe_key=alert_key(session.id, "call_task"),
            kind="call_task",
            level="green",
            summary=(
                f"check-in partly answered ({answered} answers): call the patient"
                if answered
                else "check-in not answered: call the patient"
            ),
            reasons=[reason],
            patient_id=session.patient_id,
            checkin_session_id=session.id,
        ),
        now=now,
        actor=actor,
    )
    audit.record(
        actor,
        "checkin.call_task",
        entity_type="checkin_session",
        entity_id=session.id,
        patient_id=session.patient_id,
        before={"status": before},
        after={"status": "call_task", "alert": alert.id},
        reason=reason,
        at=now,
    )
    return alert


def _close_call_task_answered(session: CheckinSession, now: datetime) -> None:
    """The patient answered after a call task was made: the task resolves itself."""
    for alert in session_alerts(session.id, "call_task"):
        if alert.status == "resolved":
            continue
        db.session.execute(
            update(Alert)
            .where(Alert.id == alert.id, Alert.status != "resolved")
            .values(
                status="resolved",
                acknowledged_at=alert.acknowledged_at or now,
                acknowledged_by=alert.acknowledged_by or "system",
                resolved_at=now,
                resolved_by="system",
                resolution_note="The patient answered the check-in.",
                next_escalation_at=None,
                updated_at=now,
                resolution_action="no_action_needed",
            )
            .execution_options(synchronize_session=False)
        )
        audit.record(
            "system",
            "alert.resolve",
            entity_type="alert",
            entity_id=alert.id,
            patient_id=alert.patient_id,
            before={"status": alert.status},
            after={"status": "resolved"},
            reason="the patient answered the check-in",
            at=now,
        )


def call_task_resolved(alert: Alert, *, now: datetime, actor: str) -> None:
    """A nurse resolved a call task: close its check-in (missed when nothing was answered)."""
    if alert.kind != "call_task" or alert.checkin_session_id is None:
        return
    session = db.session.get(CheckinSession, alert.checkin_session_id)
    if session is None or session.closed_at is not None:
        return
    if not session.answers:
        session.status = "missed"
    close_session(session, now, actor, reason="call task resolved")


def deadline_text(session: CheckinSession, priority: str | None, now: datetime) -> str:
    """When a nurse will have looked at this check-in, in the patient's words and zone."""
    config = current_app.config
    hours = float(
        config.get("ESCALATION_AMBER_HOURS", 4)
        if priority == "amber"
        else config.get("ESCALATION_GREEN_REVIEW_WORKING_HOURS", 8)
    )
    deadline = add_working_time(
        now,
        timedelta(hours=hours),
        escalation_policy().working_hours,
        clinic_working_days(),
        clinic_zone(),
    )
    with force_locale(session.locale):
        return reply_texts.when_text(deadline, now, patient_tz(session.patient), session.locale)


def amber_text(session: CheckinSession, lang: str, now: datetime) -> str:
    """The amber acknowledgement the on-call rota can keep at ``now`` (patient's zone)."""
    return reply_texts.amber_answer(lang, cover.promise(now), now, patient_tz(session.patient))


def outcome_text(session: CheckinSession, lang: str, now: datetime) -> str:
    """What a finished check-in tells the patient (web page), by its priority."""
    moment = session.answered_at or now
    when = deadline_text(session, session.priority, moment)
    amber = amber_text(session, lang, moment) if session.priority == "amber" else None
    return texts.done_text(session.priority, lang, when, amber)


def done_sms(session: CheckinSession, priority: str | None, now: datetime) -> str:
    """The signed SMS that closes a complete check-in, by its priority."""
    when = deadline_text(session, priority, now)
    amber = amber_text(session, session.locale, now) if priority == "amber" else None
    return texts.done_message(priority, session.locale, when, amber)


# -- answering on the web ------------------------------------------------------------------------


def submit_web(
    session_id: int, patient_id: int, answers: Mapping[str, Any], *, now: datetime
) -> AnswerOutcome:
    """Answers from the link page (the token named this session and patient); commit."""
    session = get_session(session_id)
    if session.patient_id != patient_id:
        raise CheckinError("this link is for another check-in", "not_found")
    outcome = record_answers(
        session.id,
        answers,
        channel="web",
        now=now,
        actor=f"patient:{session.patient.study_id}",
    )
    became_red = outcome.became_red
    db.session.commit()
    if became_red:
        kick_dispatch()
    return outcome

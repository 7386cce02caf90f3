"""Check-in answers by SMS: a bare answer to the current question, or the whole check-in at once.

``answer_by_sms(patient, inbound_id, body, now)`` is called by the inbound-SMS service before it
reads a message as free text. It reads a bare answer to the current question ("2", "37.5", "有",
"三") or a compact reply ("D2 S1 F37.2", app.domain.checkins.parse_compact) and returns None for
anything else, so free text keeps its own path. Answers go to
``app.services.conversations.checkins.sessions.record_answers`` (the same function as web answers). Then, one question
per message: the next question (or the thank-you) is queued in the outbox; a red answer gets the
emergency reply at once as the webhook's answer and no further question; an unreadable answer
gets the question again, saying what was not understood.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import bindparam, select

from app.domain import checkins as ck
from app.domain.replies import ParsedReply
from app.domain.sms_answers import bare, read_single_answer, read_yes_no
from app.domain.triage import TriageResult
from app.extensions import db
from app.models import CheckinSession, Patient
from app.models.checkins import SMS_ANSWER_STATUSES
from app.services.conversations.checkins import texts as texts
from app.services.conversations.checkins.links import link_url
from app.services.conversations.checkins.sessions import (
    AnswerOutcome,
    confirm_red,
    done_sms,
    item_of,
    kick_dispatch_soon,
    position_of,
    queue_message,
    record_answers,
    session_items,
    withdraw_red_answer,
)
from app.services.shared import reply_texts


def _open_for_sms(patient_id: Any, now: Any) -> tuple[Any, ...]:
    """Where-clauses of a check-in that takes SMS answers (one definition for both statements):
    open, its question handed to the provider (not ``scheduled``) and not known undelivered."""
    return (
        CheckinSession.patient_id == patient_id,
        CheckinSession.closed_at.is_(None),
        CheckinSession.status.in_(SMS_ANSWER_STATUSES),
        CheckinSession.expires_at > now,
        CheckinSession.delivery_blocked.is_(None),
    )


_NEWEST_FIRST = (CheckinSession.sent_at.desc(), CheckinSession.id.desc())
_NOW = bindparam("p_now", type_=CheckinSession.expires_at.type)
# Statements run for every inbound SMS, built once.
_OPEN_SESSION = (
    select(CheckinSession)
    .where(*_open_for_sms(bindparam("p_patient"), _NOW))
    .order_by(*_NEWEST_FIRST)
    .limit(1)
)
OPEN_SESSION_ID_OF_PATIENT = (
    select(CheckinSession.id)
    .where(*_open_for_sms(Patient.id, _NOW))
    .order_by(*_NEWEST_FIRST)
    .limit(1)
    .correlate(Patient)
    .scalar_subquery()
)
"""The id of the patient's open SMS check-in (as ``open_session_for_sms``), correlated to a
query on Patient (bind ``p_now``): lets the inbound service read both in one statement."""
LOOK_UP = "look up"


@dataclass
class SmsAnswer:
    """An SMS that answered a check-in: what to reply at once and what was understood."""

    session_id: int
    reply: str
    parsed: ParsedReply
    result: TriageResult
    alert_id: int | None
    actions: list[str]


def current_question_for_sms(session_id: int | None) -> ck.Question | None:
    """The question a bare SMS answer would answer in this check-in (None: no such check-in)."""
    if session_id is None:
        return None
    session = db.session.get(CheckinSession, session_id)
    if session is None:
        return None
    return ck.next_question(session_items(session), session.answers or {})


def open_session_for_sms(patient_id: int, now: datetime) -> CheckinSession | None:
    """The patient's newest check-in that takes SMS answers, if any."""
    return db.session.scalar(_OPEN_SESSION, {"p_patient": patient_id, "p_now": now})


def _question(items: Sequence[ck.CheckinItem], code: Any) -> ck.Question | None:
    return next((q for i in items for q in i.questions if q.code == code), None)


def settle_red_check(
    patient: Patient, inbound_message_id: int, body: str, now: datetime, session_id: int
) -> SmsAnswer | None:
    """A yes/no to the question asked back about a one-character red answer; None otherwise.

    Yes: the red stands (alert raised to red, on-call paged, emergency reply). No: the answer is
    dropped, the check-in re-triaged and its question asked again.
    """
    verdict = read_yes_no(body)
    if verdict is None:
        return None
    actor = f"patient:{patient.study_id}"
    session = db.session.get(CheckinSession, session_id)
    assert session is not None
    if verdict:
        alert = confirm_red(session_id, now=now, actor=actor, reason="confirmed by the patient")
        items = session_items(session)
        graded = ck.grade_answers(items, session.answers or {})
        result = TriageResult(session.priority or "red", tuple(session.reasons or ()))
        return SmsAnswer(
            session_id=session_id,
            reply=reply_texts.red_reply(session.locale),
            parsed=ck.to_parsed_reply(graded, text=body, language=session.locale),
            result=result,
            alert_id=alert.id if alert else None,
            actions=[f"checkin:{session_id}", "red_confirmed", "emergency_reply", "paged_on_call"],
        )
    outcome = withdraw_red_answer(
        session_id, now=now, actor=actor, inbound_message_id=inbound_message_id
    )
    if outcome is None:
        return None
    items = session_items(session)
    answer = _sms_reply(session, items, outcome, [], outcome.next_question, inbound_message_id,
                        body, now)  # fmt: skip
    answer.actions.insert(1, "red_withdrawn")
    return answer


def answer_by_sms(
    patient: Patient,
    inbound_message_id: int,
    body: str,
    now: datetime,
    *,
    open_session_id: int | Literal["look up"] | None = LOOK_UP,
    single_answers: bool = True,
) -> SmsAnswer | None:
    """Read an SMS as a check-in answer and act on it; None when it is not one (free text).

    ``single_answers=False``: a bare answer ("1") is not read as an answer to the current question
    (the inbound service decided it answers another message, or must be asked back); compact
    codes ("HB1") still are.

    Inside the inbound-SMS transaction: flush, never commit. The next question (or the thank-you
    message) is queued in the outbox; a red answer gets the emergency reply at once instead.
    ``open_session_id``: the open check-in's id (or None) when the caller already read it with
    ``OPEN_SESSION_ID_OF_PATIENT`` in the same transaction.
    """
    if open_session_id == LOOK_UP:
        session = open_session_for_sms(patient.id, now)
    elif open_session_id is None:
        return None
    else:
        session = db.session.get(CheckinSession, open_session_id)
    if session is None:
        return None
    items = session_items(session)
    current = ck.next_question(items, session.answers or {})
    answers, problems, leftover = _read_sms(body, items, current if single_answers else None)
    if answers is None:
        return None
    actor = f"patient:{patient.study_id}"
    if not answers:
        outcome = None
        question = current
    else:
        outcome = record_answers(
            session.id,
            answers,
            channel="sms",
            now=now,
            actor=actor,
            inbound_message_id=inbound_message_id,
            free_text=leftover,
            hold_red=single_answers and len(bare(body)) == 1,
        )
        problems = [*problems, *outcome.problems]
        question = outcome.next_question
    return _sms_reply(session, items, outcome, problems, question, inbound_message_id, body, now)


def _read_sms(
    body: str,
    items: Sequence[ck.CheckinItem],
    current: ck.Question | None,
) -> tuple[dict[str, Any] | None, list[ck.AnswerProblem], str]:
    """(answers, problems, leftover free text); answers None when the SMS is not an answer."""
    if current is not None:
        value = read_single_answer(body, current)
        if value is not None:
            problem = current.problem(value)
            if problem is not None:
                return {}, [ck.AnswerProblem("out_of_range", current.code, str(value), problem)], ""
            return {current.code: value}, [], ""
    compact = ck.parse_compact(body or "", items)
    if not compact.recognised:
        return None, [], ""
    leftover = " ".join(p.value for p in compact.problems if p.kind == "unreadable" and p.value)
    return dict(compact.answers), list(compact.problems), leftover


def _sms_reply(
    session: CheckinSession,
    items: Sequence[ck.CheckinItem],
    outcome: AnswerOutcome | None,
    problems: Sequence[ck.AnswerProblem],
    question: ck.Question | None,
    inbound_message_id: int,
    body: str,
    now: datetime,
) -> SmsAnswer:
    actions: list[str] = [f"checkin:{session.id}"]
    reply = ""
    url = link_url(session.id, session.patient_id, now=now)
    source = f"patient:{session.patient.study_id}"
    if outcome is not None and outcome.held_red:
        check = session.red_check or {}
        held = _question(items, check.get("question"))
        reply = reply_texts.red_check_reply(
            session.locale, str(check.get("value")), held.text(session.locale) if held else ""
        )
        actions.append("red_check_asked")
    elif outcome is not None and outcome.result.priority == "red":
        reply = reply_texts.red_reply(session.locale)
        actions.append("emergency_reply")
        if outcome.alert is not None:
            actions.append("paged_on_call")
    elif problems:
        text = texts.again_message(
            item_of(items, question), question, position_of(items, question), len(items),
            problems, url, session.locale,
        )  # fmt: skip
        queue_message(session, f"again:{inbound_message_id}", text, due=now, question=question,
                      source=source, now=now)  # fmt: skip
        actions.append("asked_again")
    elif outcome is not None and outcome.complete:
        text = done_sms(session, outcome.priority, now)
        queue_message(session, "done", text, due=now, question=None, source=source, now=now)
        actions.append("checkin_complete")
    elif question is not None:
        text = texts.question_message(
            item_of(items, question), question, position_of(items, question), len(items), url,
            session.locale,
        )  # fmt: skip
        purpose = f"q:{question.code}"
        if queue_message(session, purpose, text, due=now, question=question, source=source,
                         now=now) is None:  # fmt: skip
            queue_message(session, f"{purpose}:{inbound_message_id}", text, due=now,
                          question=question, source=source, now=now)  # fmt: skip
        actions.append(f"asked:{question.code}")
    if reply == "":
        kick_dispatch_soon()
    graded = outcome.graded if outcome else ck.grade_answers(items, session.answers or {})
    result = outcome.result if outcome else TriageResult(session.priority or "none", ())
    parsed = ck.to_parsed_reply(graded, text=body, language=session.locale)
    return SmsAnswer(
        session_id=session.id,
        reply=reply,
        parsed=parsed,
        result=result,
        alert_id=outcome.alert.id if outcome and outcome.alert else None,
        actions=actions,
    )

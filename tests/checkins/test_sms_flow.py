"""Check-ins by SMS: one question per message with branching, compact replies, bad answers, red
answers, completion; the next message goes through the outbox exactly once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, CalendarEvent, CheckinSession, OutboxMessage, Patient
from app.services.conversations.checkins import by_sms as checkin_sms
from app.services.conversations.checkins.by_sms import (
    SmsAnswer,
    answer_by_sms,
    read_single_answer,
    settle_red_check,
)
from app.services.conversations.checkins.sessions import session_items
from tests.checkins.conftest import (
    CLINICIAN_PHONE,
    add_rota,
    alerts,
    checkin_messages,
    enrol,
    fresh,
    full_answers,
    inbound,
    local,
    mark_checkin_messages_sent,
    start,
)

Started = tuple[Patient, CheckinSession]


def sms(patient: Patient, body: str, session: CheckinSession) -> SmsAnswer | None:
    """Send one SMS answer 30 minutes after the check-in was issued; commit like the webhook."""
    at = session.sent_at + _minutes(30)
    answer = answer_by_sms(patient, inbound(patient, body, at), body, at)
    db.session.commit()
    return answer


def _minutes(n: int) -> timedelta:
    return timedelta(minutes=n)


@pytest.fixture
def started(app_ctx: Flask) -> Started:
    patient = enrol(locale="en")
    session = start(patient)
    mark_checkin_messages_sent(session.sent_at)
    return patient, session


def test_each_answer_queues_the_next_question_once(started: Started) -> None:
    patient, session = started
    reply = sms(patient, "37.1", session)
    assert reply is not None and reply.reply == "" and "asked:HB" in reply.actions
    assert fresh(session).answers == {"F": 37.1}
    question = checkin_messages(session)[-1]
    assert question.dedupe_key == f"checkin:{session.id}:q:HB"
    assert "】(2/15) Past 7 days: have you vomited blood" in question.body
    assert "Reply 0 no, 1 yes. Or answer on your phone: https://cadence.example.org/c/" in (
        question.body
    )
    assert question.items[0]["question"] == "HB" and question.due_at == question.send_after


def test_branching_skips_the_severity_question_after_never(started: Started) -> None:
    patient, session = started
    for answer in ("36.8", "0", "0", "0", "0"):  # F HB BS S D
        sms(patient, answer, session)
    assert fresh(session).current_question == "N"
    sms(patient, "0", session)  # nausea: never
    assert fresh(session).current_question == "V"  # not NS
    sms(patient, "2", session)  # vomiting: occasionally
    assert fresh(session).current_question == "VS"
    asked = [m.items[0]["question"] for m in checkin_messages(session)[1:]]
    assert "NS" not in asked and asked[-1] == "VS"


def test_a_bad_answer_is_asked_again_and_nothing_is_kept(started: Started) -> None:
    patient, session = started
    sms(patient, "36.6", session)
    reply = sms(patient, "7", session)  # HB is yes/no
    assert reply is not None and "asked_again" in reply.actions
    again = checkin_messages(session)[-1]
    assert "could not read" in again.body and "one number from 0 to 1" in again.body
    assert "Not understood: HB7." in again.body and "(2/15)" in again.body
    assert fresh(session).answers == {"F": 36.6}


def test_answer_words_and_chinese_numerals(app_ctx: Flask) -> None:
    patient = enrol()
    session = start(patient)
    items = session_items(session)
    questions = {q.code: q for i in items for q in i.questions}
    assert read_single_answer("有", questions["HB"]) == 1
    assert read_single_answer("没有。", questions["HB"]) == 0
    assert read_single_answer("no", questions["BS"]) == 0
    assert read_single_answer("三", questions["D"]) == 3
    assert read_single_answer("37.5℃", questions["F"]) == 37.5
    assert read_single_answer("３８度", questions["F"]) == 38
    assert read_single_answer("我很好", questions["D"]) is None


def test_a_compact_reply_answers_many_questions_at_once(started: Started) -> None:
    patient, session = started
    reply = sms(patient, "F37.2 HB0 BS0 S1 d2 n0", session)
    assert reply is not None
    assert fresh(session).answers == {"F": 37.2, "HB": 0, "BS": 0, "S": 1, "D": 2, "N": 0}
    assert fresh(session).current_question == "V"
    assert checkin_messages(session)[-1].items[0]["question"] == "V"


def test_unknown_codes_are_reported_back_and_the_rest_kept(started: Started) -> None:
    patient, session = started
    reply = sms(patient, "D2 X3", session)
    assert reply is not None and "asked_again" in reply.actions
    assert fresh(session).answers == {"D": 2}
    assert "Not understood: X3." in checkin_messages(session)[-1].body


def test_free_text_is_left_to_the_free_text_reader(started: Started) -> None:
    patient, session = started
    assert sms(patient, "I feel much better today, thank you", session) is None
    assert fresh(session).answers == {}


def test_words_beside_codes_are_triaged_too(started: Started) -> None:
    patient, session = started
    add_rota()
    reply = sms(patient, "D1 I vomited blood", session)
    assert reply is not None and reply.result.priority == "red"
    assert "120" in reply.reply


def test_a_red_answer_gets_the_emergency_reply_and_a_page_and_no_more_questions(
    started: Started,
) -> None:
    patient, session = started
    add_rota()
    for answer in ("36.5", "0", "0"):
        sms(patient, answer, session)
    before = len(checkin_messages(session))
    held = sms(patient, "4", session)  # S: cannot swallow liquids (one character: asked back)
    assert (
        held is not None and held.result.priority == "amber" and "red_check_asked" in held.actions
    )
    assert "Reply YES" in held.reply and [a.level for a in alerts()] == ["amber"]
    at = session.sent_at + _minutes(31)
    reply = settle_red_check(patient, inbound(patient, "YES", at), "YES", at, session.id)
    db.session.commit()
    assert reply is not None and reply.result.priority == "red"
    assert "120" in reply.reply and "emergency department" in reply.reply
    assert {"emergency_reply", "paged_on_call"} <= set(reply.actions)
    assert len(checkin_messages(session)) == before  # nothing more is asked by SMS
    (alert,) = alerts()
    assert (alert.level, alert.kind, alert.patient_id) == ("red", "symptom", patient.id)
    assert any("dysphagia_liquids" in r for r in alert.reasons)
    pages = db.session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "page")).all()
    assert [p.recipient for p in pages] == [CLINICIAN_PHONE]
    assert patient.study_id in pages[0].body


def test_an_amber_alert_is_raised_in_place_to_red(started: Started) -> None:
    patient, session = started
    add_rota()
    sms(patient, "F36.5 HB0 BS0 S0 D3", session)  # diarrhoea frequently: amber
    (alert,) = alerts()
    assert alert.level == "amber"
    sms(patient, "V4 VS4", session)  # grade 3 vomiting and worse: stays amber
    sms(patient, "B4", session)  # shortness of breath very severe: red
    (alert,) = alerts()
    assert alert.level == "red" and alert.status == "open"
    actions = list(db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
    assert "alert.raise_level" in actions


def test_the_last_answer_completes_the_check_in(started: Started) -> None:
    patient, session = started
    answers = full_answers(session_items(session), {"E": 1, "EI": 1})
    codes = " ".join(f"{k}{v}" for k, v in answers.items() if k != "EI")
    sms(patient, codes, session)
    assert fresh(session).current_question == "EI"
    reply = sms(patient, "1", session)
    assert reply is not None and "checkin_complete" in reply.actions
    row = fresh(session)
    assert (row.status, row.priority, row.channel) == ("answered", "green", "sms")
    done = checkin_messages(session)[-1]
    assert done.dedupe_key == f"checkin:{session.id}:done" and "Thank you" in done.body
    event = db.session.get(CalendarEvent, row.event_id)
    assert event is not None and event.status == "done"
    (note,) = alerts()
    assert note.level == "green"


def test_without_single_answers_only_codes_answer_the_check_in(started: Started) -> None:
    patient, session = started
    at = session.sent_at + _minutes(30)
    # The inbound service decided "1" answers another message (or must be asked back).
    assert answer_by_sms(patient, inbound(patient, "1", at), "1", at, single_answers=False) is None
    coded = answer_by_sms(patient, inbound(patient, "F37 HB0", at), "F37 HB0", at,
                          single_answers=False)  # fmt: skip
    assert coded is not None and fresh(session).answers == {"F": 37, "HB": 0}


def test_no_open_check_in_means_no_check_in_answer(app_ctx: Flask) -> None:
    patient = enrol()
    at = local(patient.start_date, 12)
    assert answer_by_sms(patient, inbound(patient, "2", at), "2", at) is None
    assert checkin_sms.open_session_for_sms(patient.id, local(patient.start_date, 12)) is None


def test_a_red_first_answer_alerts_before_its_follow_up(started: Started) -> None:
    patient, session = started
    add_rota()
    sms(patient, "F36.5 HB0 BS0 S0 D0 N0 V0 A0 M0 E0", session)
    held = sms(patient, "4", session)  # shortness of breath: very severe, interference unasked
    assert held is not None and held.result.priority == "amber"  # one character: asked back
    at = session.sent_at + _minutes(31)
    reply = settle_red_check(patient, inbound(patient, "1", at), "1", at, session.id)
    db.session.commit()
    assert reply is not None and reply.result.priority == "red"
    (alert,) = alerts()
    assert alert.level == "red"

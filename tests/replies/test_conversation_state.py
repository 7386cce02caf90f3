"""Issue 16: a reply means what the patient was last asked (one conversation state per patient).

The soak's sequence: a check-in opened at 21:00 whose question is deferred by quiet hours takes no
SMS answer, so a bare "1" is never read as "fever: yes". A bare code is read against the open
invitations (a reminder's "Reply 1 to confirm", a check-in question handed to the provider); it is
asked back when it fits two of them, or none.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import Flask
from sqlalchemy import select

from app.domain.conversation_state import read_reply
from app.extensions import db
from app.models import CalendarEvent, CheckinSession, OutboxMessage, Patient
from app.services.conversations.checkins.schedule import start_checkin
from app.services.conversations.checkins.sessions import escalate_unconfirmed_reds
from app.services.conversations.inbound.replies import receive
from app.services.messaging.dispatch import dispatch_due
from app.services.messaging.outbox import transition
from app.services.messaging.status_callbacks import apply_status_callback
from app.sms.console import ConsoleGateway
from tests.checkins.conftest import mark_checkin_messages_sent
from tests.replies.conftest import add_rota, alerts, inbound_form, inbound_rows, patient

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _checkin_event(p: Patient) -> CalendarEvent:
    event = db.session.scalar(
        select(CalendarEvent)
        .where(CalendarEvent.patient_id == p.id, CalendarEvent.kind == "checkin")
        .order_by(CalendarEvent.date)
    )
    assert event is not None
    return event


def _at(day, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=SHANGHAI).astimezone(UTC)


def _open_checkin(p: Patient, at: datetime) -> CheckinSession:
    session = start_checkin(_checkin_event(p), now=at, actor="test")
    assert session is not None
    db.session.commit()
    return session


def _fresh(session: CheckinSession) -> CheckinSession:
    row = db.session.get(CheckinSession, session.id, populate_existing=True)
    assert row is not None
    return row


def _pages() -> list[OutboxMessage]:
    return list(db.session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "page")))


def _send_reminder(p: Patient, at: datetime) -> OutboxMessage:
    """Hand a reminder of the patient's about events still ahead to the provider at ``at``."""
    ahead = set(
        db.session.scalars(
            select(CalendarEvent.key).where(
                CalendarEvent.patient_id == p.id,
                CalendarEvent.date >= at.astimezone(SHANGHAI).date() + timedelta(days=1),
            )
        )
    )
    rows = db.session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.patient_id == p.id, OutboxMessage.kind == "reminder")
        .order_by(OutboxMessage.send_after)
    )
    row = next(r for r in rows if r.event_keys and set(r.event_keys) <= ahead)
    assert row.invites == {"reply": "confirm", "event_keys": row.event_keys}
    assert transition(row.id, expect=("planned",), to="sent", source="test",
                      values={"sent_at": at}, at=at)  # fmt: skip
    db.session.commit()
    return row


# -- the domain rule ---------------------------------------------------------------------------


def test_a_bare_code_is_read_against_the_open_invitations() -> None:
    both = ["confirm", "checkin"]
    assert read_reply(fits_confirm=True, fits_checkin=True, open_invitations=both).route == (
        "ask_back"
    )
    assert read_reply(fits_confirm=True, fits_checkin=False, open_invitations=both).route == (
        "confirm"
    )
    assert read_reply(fits_confirm=False, fits_checkin=True, open_invitations=both).route == (
        "checkin"
    )
    assert read_reply(fits_confirm=True, fits_checkin=False, open_invitations=[]).route == (
        "no_invitation"
    )
    assert read_reply(fits_confirm=False, fits_checkin=False, open_invitations=both).route == (
        "text"
    )


# -- the soak's sequence -----------------------------------------------------------------------


def test_a_1_before_the_deferred_question_arrives_is_no_red_and_is_asked_back(
    app_ctx: Flask,
) -> None:
    p = patient(locale="zh")
    add_rota()
    day = _checkin_event(p).date
    session = _open_checkin(p, _at(day, 21, 0))
    report = dispatch_due(_at(day, 21, 0), gateway=ConsoleGateway())  # quiet hours: deferred
    assert report.sent == 0 and _fresh(session).status == "scheduled"

    result = receive(inbound_form(p.phone_e164, "1"), _at(day, 21, 5))

    assert result.priority != "red" and "120" in (result.reply or "")
    assert "没有需要您回复的问题" in (result.reply or "")  # the clarifying reply
    assert [a for a in alerts() if a.level == "red"] == [] and _pages() == []
    assert _fresh(session).answers == {} and _fresh(session).status == "scheduled"
    (row,) = inbound_rows()
    assert row.parse["actions"] == ["asked_back:nothing_open"]


def test_the_question_handed_over_makes_the_check_in_sent(app_ctx: Flask) -> None:
    p = patient(locale="zh")
    day = _checkin_event(p).date
    session = _open_checkin(p, _at(day, 21, 0))
    report = dispatch_due(_at(day + timedelta(days=1), 8, 1), gateway=ConsoleGateway())
    assert report.sent >= 1
    (question,) = db.session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "checkin"))
    assert question.status == "sent" and question.sent_at is not None
    assert _fresh(session).status == "sent" and _fresh(session).sent_at == question.sent_at


def test_a_1_after_a_delivered_check_in_question_answers_it(app_ctx: Flask) -> None:
    p = patient(locale="zh")
    day = _checkin_event(p).date
    session = _open_checkin(p, _at(day, 10, 0))
    mark_checkin_messages_sent(_at(day, 10, 1))
    for answer in ("36.8", "0", "0"):  # F HB BS
        receive(inbound_form(p.phone_e164, answer), _at(day, 10, 5))
    assert _fresh(session).current_question == "S"
    mark_checkin_messages_sent(_at(day, 10, 6))

    result = receive(inbound_form(p.phone_e164, "1"), _at(day, 10, 10))

    assert result.reply == "" and _fresh(session).answers["S"] == 1
    assert inbound_rows()[-1].intent == "checkin_answer"


def test_a_1_after_a_reminder_confirms_the_appointment(app_ctx: Flask) -> None:
    p = patient(locale="en")
    day = _checkin_event(p).date
    session = _open_checkin(p, _at(day, 21, 0))  # scheduled: its question has not gone out
    reminder = _send_reminder(p, _at(day, 20, 0))
    now = min(_at(day, 21, 5), reminder.sent_at + timedelta(hours=1))

    result = receive(inbound_form(p.phone_e164, "1"), now)

    assert "confirmed" in (result.reply or "")
    assert _fresh(session).answers == {}


def test_a_code_that_fits_a_reminder_and_a_check_in_question_is_asked_back(
    app_ctx: Flask,
) -> None:
    p = patient(locale="zh")
    day = _checkin_event(p).date
    session = _open_checkin(p, _at(day, 10, 0))
    mark_checkin_messages_sent(_at(day, 10, 1))
    reminder = _send_reminder(p, _at(day, 10, 2))
    receive(inbound_form(p.phone_e164, "36.8"), _at(day, 10, 3))  # F: only the check-in fits
    assert _fresh(session).current_question == "HB"
    mark_checkin_messages_sent(_at(day, 10, 4))

    result = receive(inbound_form(p.phone_e164, "1"), _at(day, 10, 5))

    reply = result.reply or ""
    assert "两条短信" in reply and "HB1" in reply and "确认" in reply
    assert result.priority != "red" and _pages() == []
    assert set(_fresh(session).answers) == {"F"}  # nothing guessed
    events = db.session.scalars(
        select(CalendarEvent).where(CalendarEvent.key.in_(reminder.event_keys))
    ).all()
    assert {e.status for e in events} == {"planned"}
    assert inbound_rows()[-1].parse["actions"] == ["asked_back:confirm+checkin"]

    receive(inbound_form(p.phone_e164, "确认"), _at(day, 10, 6))  # what the ask-back suggests
    db.session.expire_all()
    assert {e.status for e in events} == {"confirmed"}
    answered = receive(inbound_form(p.phone_e164, "HB0"), _at(day, 10, 7))
    assert answered.status == "processed" and _fresh(session).answers["HB"] == 0


def test_no_sms_answers_once_a_receipt_says_the_question_failed(app_ctx: Flask) -> None:
    p = patient(locale="en")
    day = _checkin_event(p).date
    session = _open_checkin(p, _at(day, 10, 0))
    mark_checkin_messages_sent(_at(day, 10, 1))
    (question,) = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.kind == "checkin")
    ).all()
    question.provider_id = "SM" + "f" * 32
    db.session.commit()
    apply_status_callback(question.provider_id, "undelivered", error_code=30003, at=_at(day, 10, 2))
    assert _fresh(session).delivery_blocked == "undelivered"

    receive(inbound_form(p.phone_e164, "37.0"), _at(day, 10, 5))

    assert _fresh(session).answers == {}


# -- a red resting on a one-character answer is confirmed first --------------------------------


def _at_vomited_blood_question(p: Patient) -> tuple[CheckinSession, datetime]:
    day = _checkin_event(p).date
    session = _open_checkin(p, _at(day, 10, 0))
    mark_checkin_messages_sent(_at(day, 10, 1))
    receive(inbound_form(p.phone_e164, "36.8"), _at(day, 10, 2))  # F
    mark_checkin_messages_sent(_at(day, 10, 3))
    assert _fresh(session).current_question == "HB"
    return session, _at(day, 10, 5)


def _symptom_alerts() -> list:
    return [a for a in alerts() if a.kind == "symptom"]


def test_a_one_character_red_answer_is_amber_and_asked_back(app_ctx: Flask) -> None:
    p = patient(locale="en")
    add_rota()
    session, now = _at_vomited_blood_question(p)

    result = receive(inbound_form(p.phone_e164, "1"), now)

    assert result.priority == "amber" and "Is that right? Reply YES" in (result.reply or "")
    assert [a.level for a in _symptom_alerts()] == ["amber"] and _pages() == []
    assert _fresh(session).red_check["question"] == "HB"
    assert "red_check_asked" in inbound_rows()[-1].parse["actions"]

    confirmed = receive(inbound_form(p.phone_e164, "yes"), now + timedelta(minutes=2))

    assert confirmed.priority == "red" and "120" in (confirmed.reply or "")
    assert [a.level for a in _symptom_alerts()] == ["red"] and len(_pages()) >= 1
    pages = len(_pages())
    assert _fresh(session).red_check is None
    assert escalate_unconfirmed_reds(now + timedelta(minutes=30)) == 0
    assert len(_pages()) == pages  # paged once


def test_no_withdraws_the_one_character_answer_and_asks_again(app_ctx: Flask) -> None:
    p = patient(locale="en")
    add_rota()
    session, now = _at_vomited_blood_question(p)
    receive(inbound_form(p.phone_e164, "1"), now)

    result = receive(inbound_form(p.phone_e164, "no"), now + timedelta(minutes=1))

    assert result.priority != "red" and _pages() == []
    assert "HB" not in _fresh(session).answers and _fresh(session).red_check is None
    assert _fresh(session).current_question == "HB"
    asked = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.kind == "checkin").order_by(OutboxMessage.id)
    ).all()
    assert asked[-1].invites == {"reply": "checkin", "session": session.id, "question": "HB"}
    assert asked[-1].status == "planned"


def test_an_unanswered_red_check_becomes_red_after_10_minutes(app_ctx: Flask) -> None:
    p = patient(locale="zh")
    add_rota()
    session, now = _at_vomited_blood_question(p)
    receive(inbound_form(p.phone_e164, "1"), now)

    assert escalate_unconfirmed_reds(now + timedelta(minutes=9)) == 0
    assert [a.level for a in _symptom_alerts()] == ["amber"] and _pages() == []
    assert escalate_unconfirmed_reds(now + timedelta(minutes=10)) == 1
    assert [a.level for a in _symptom_alerts()] == ["red"] and len(_pages()) >= 1
    assert escalate_unconfirmed_reds(now + timedelta(minutes=11)) == 0
    assert _fresh(session).red_check is None


def test_a_red_from_free_text_stays_immediate(app_ctx: Flask) -> None:
    p = patient(locale="en")
    add_rota()
    session, now = _at_vomited_blood_question(p)

    result = receive(inbound_form(p.phone_e164, "I vomited blood this morning"), now)

    assert result.priority == "red" and _pages() != []
    assert _fresh(session).red_check is None
